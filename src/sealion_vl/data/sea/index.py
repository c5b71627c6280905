"""The SEA entity index: the YAML tables in ``entities/``, validated and matched.

Latin-script aliases match whole words case-insensitively (``cased`` ones only as written),
Thai/Lao/Khmer/Burmese/Tamil/Chinese ones as substrings, and ``masks.yaml`` blanks out
homonyms ("Java programming", "Burmese python") first.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from sealion_vl.data.sea.lang import SPACELESS_SCRIPTS, WORD_RE, script_of
from sealion_vl.errors import SealionError

__all__ = ["EntityDataError"]


class EntityDataError(SealionError, ValueError):
    """A file in ``entities/`` is malformed."""


@dataclass(frozen=True)
class _Entity:
    kind: str
    name: str
    weight: float
    unless: frozenset[str] = frozenset()


def _is_spaceless(alias: str) -> bool:
    return any(script_of(c) in SPACELESS_SCRIPTS for c in alias)


def _key(words: list[str]) -> str:
    return " ".join(words)


class _EntityIndex:
    """All entity aliases, for whole-word (Latin) and substring (spaceless scripts) lookup."""

    def __init__(self) -> None:
        self.words: dict[str, tuple[_Entity, bool]] = {}  # casefolded words -> (entity, plural)
        self.cased: dict[str, _Entity] = {}  # words as written -> entity
        self.substr: dict[str, list[tuple[str, _Entity]]] = {}  # first char -> aliases
        self.masks: dict[str, tuple[None, bool]] = {}  # casefolded words -> (None, plural)
        self.mask_first: set[str] = set()
        self.mask_substr: list[str] = []
        self.first: set[str] = set()
        self.max_words = 1

    def add(self, alias: str, ent: _Entity, *, plural: bool, cased: bool, where: str) -> None:
        alias = unicodedata.normalize("NFC", alias.strip())
        if _is_spaceless(alias):
            # Tamil inflects by suffix and the stem's final pulli (virama) becomes a vowel sign:
            # சிங்கப்பூர் -> சிங்கப்பூரில் "in Singapore". Match the stem without it.
            a = alias.casefold().removesuffix("\u0bcd")
            self.substr.setdefault(a[0], []).append((a, ent))
            return
        words = WORD_RE.findall(alias if cased else alias.casefold())
        if not words:
            raise EntityDataError(f"{where}: alias {alias!r} has no letters")
        table: dict[str, Any] = self.cased if cased else self.words
        key = _key(words)
        old = table.get(key)
        old_ent = old[0] if isinstance(old, tuple) else old
        if old_ent is not None and old_ent != ent:
            raise EntityDataError(
                f"{where}: alias {alias!r} is also an alias of {old_ent.kind} {old_ent.name!r}; "
                "an alias may belong to one entity only"
            )
        table[key] = ent if cased else (ent, plural)
        self.first.add(words[0])
        self.max_words = max(self.max_words, len(words))

    def finish(self) -> None:
        for lst in self.substr.values():
            lst.sort(key=lambda item: -len(item[0]))
        self.mask_substr.sort(key=len, reverse=True)


def _entity_files() -> list[tuple[str, str]]:
    folder = resources.files("sealion_vl.data.sea").joinpath("entities")
    files = [p for p in folder.iterdir() if p.name.endswith(".yaml")]
    return sorted((p.name, p.read_text(encoding="utf-8")) for p in files)


_ENTITY_KEYS = {"name", "aliases", "cased", "weight", "unless"}


def _parse_weight(value: Any, where: str) -> float:
    if not isinstance(value, int | float) or not 0 < value <= 1:
        raise EntityDataError(f"{where}: weight must be a number in (0, 1], got {value!r}")
    return float(value)


@functools.cache
def entity_index() -> _EntityIndex:
    index = _EntityIndex()
    for fname, text in _entity_files():
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise EntityDataError(f"sea/entities/{fname} is not valid YAML: {e}") from e
        if not isinstance(doc, dict):
            raise EntityDataError(f"sea/entities/{fname}: expected a mapping at the top")
        for phrase in doc.get("mask", []) or []:
            phrase = unicodedata.normalize("NFC", str(phrase)).casefold()
            if _is_spaceless(phrase):
                index.mask_substr.append(phrase)
            else:
                words = WORD_RE.findall(phrase)
                index.masks[_key(words)] = (None, True)
                index.mask_first.add(words[0])
                index.max_words = max(index.max_words, len(words))
        if "entities" not in doc:
            continue
        kind = doc.get("kind")
        if not isinstance(kind, str) or not kind:
            raise EntityDataError(f"sea/entities/{fname}: needs a 'kind' (e.g. dish)")
        default_w = _parse_weight(doc.get("weight", 0.6), f"sea/entities/{fname}")
        plural = bool(doc.get("plural", False))
        for i, item in enumerate(doc["entities"]):
            where = f"sea/entities/{fname} entity #{i + 1}"
            if isinstance(item, str):
                item = {"name": item.casefold(), "aliases": [item]}
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise EntityDataError(f"{where}: expected a name string or a mapping with 'name'")
            unknown = set(item) - _ENTITY_KEYS
            if unknown:
                raise EntityDataError(f"{where}: unknown keys {sorted(unknown)}")
            aliases, cased = item.get("aliases", []) or [], item.get("cased", []) or []
            if not aliases and not cased:
                raise EntityDataError(f"{where} ({item['name']}): no aliases")
            ent = _Entity(
                kind=kind,
                name=item["name"],
                weight=_parse_weight(item.get("weight", default_w), where),
                unless=frozenset(str(w).casefold() for w in item.get("unless", []) or []),
            )
            for a in aliases:
                index.add(str(a), ent, plural=plural, cased=False, where=where)
            for a in cased:
                index.add(str(a), ent, plural=False, cased=True, where=where)
    index.finish()
    return index


def _match_words(
    words: list[str], lookup: Any, first: set[str], max_words: int, plural_ok: bool
) -> list[tuple[int, int, Any]]:
    """Leftmost-longest whole-word matches: (start, length, table value)."""
    out = []
    i, n = 0, len(words)
    while i < n:
        w = words[i]
        hit = None
        if w in first or (plural_ok and w.endswith("s")):
            for length in range(min(max_words, n - i), 0, -1):
                key = _key(words[i : i + length])
                val = lookup.get(key)
                if val is None and plural_ok and key.endswith("s"):
                    for cut in (1, 2):  # durians -> durian, kuihes -> kuih
                        val = lookup.get(key[:-cut])
                        if val is not None and (not isinstance(val, tuple) or val[1]):
                            break
                        val = None
                if val is not None:
                    hit = (i, length, val)
                    break
        if hit:
            out.append(hit)
            i += hit[1]
        else:
            i += 1
    return out


def find_entities(text: str, has_spaceless: bool) -> list[_Entity]:
    idx = entity_index()
    raw_words = WORD_RE.findall(text)
    words = [w.casefold() for w in raw_words]
    # blank out homonym phrases ("burmese python") before matching anything
    masks = _match_words(words, idx.masks, idx.mask_first, idx.max_words, True)
    for start, length, _ in masks:
        for j in range(start, start + length):
            words[j] = raw_words[j] = ""
    found: list[_Entity] = []
    for _, _, val in _match_words(words, idx.words, idx.first, idx.max_words, True):
        found.append(val[0])
    for _, _, ent in _match_words(raw_words, idx.cased, idx.first, idx.max_words, False):
        found.append(ent)
    if has_spaceless:
        cf = text.casefold()
        for m in idx.mask_substr:
            cf = cf.replace(m, " ")
        i = 0
        while i < len(cf):
            for alias, ent in idx.substr.get(cf[i], ()):
                if cf.startswith(alias, i):
                    found.append(ent)
                    i += len(alias) - 1
                    break
            i += 1
    present = set(words)
    seen: dict[tuple[str, str], _Entity] = {}
    for ent in found:
        if not (ent.unless & present):
            seen.setdefault((ent.kind, ent.name), ent)
    return list(seen.values())

"""Southeast-Asian relevance filter for image-caption data.

``score_caption`` scores one caption; ``filter_captions`` streams JSONL files, folders of
JSONL shards or WebDataset tar shards through it over several processes.

How a caption is scored (deterministic; every weight is a module constant or a data file):
each piece of evidence ``i`` has a weight ``w_i`` in (0, 1] and they are combined as a noisy-OR,
``score = 1 - prod(1 - w_i)``, so independent clues add up but never pass 1.

=====================================  ==========================  ===========================
evidence                               weight                      reason
=====================================  ==========================  ===========================
caption mostly in Thai, Lao, Khmer,    ``LANG_WEIGHT`` 0.9         ``lang:th``
Burmese or Tamil script (exact)
caption in a SEA language by the       0.9 x min(1, p / 0.75),     ``lang:id``
language-ID model (p = probability     needs p >= 0.5; halved
mass on SEA languages)                 under 3 words
a few words in a SEA script            ``MINOR_SCRIPT_WEIGHT`` 0.5  ``script:th``
a SEA entity (country, people, city,   per data file / entity,     ``entity:dish:nasi lemak``
dish, landmark, festival)              0.3 - 0.7
``locale`` / ``country`` metadata in   ``LOCALE_WEIGHT`` 0.8        ``locale:MY``
a SEA country
declared ``lang`` metadata is SEA      ``META_LANG_WEIGHT`` 0.4     ``meta_lang:th``
Mandarin caption with a SEA entity     ``ZH_ENTITY_WEIGHT`` 0.3     ``lang:zh``
=====================================  ==========================  ===========================

So a SEA-language caption passes the default threshold 0.5 on its own, as does one strong
entity or a SEA locale; an English or Mandarin caption with nothing Southeast-Asian scores 0.

Language ID is ``py3langid`` (a Naive Bayes model shipped inside the package, nothing is
downloaded); the five scripts above are recognised from Unicode blocks, which is exact, and
py3langid handles the Latin-script languages (id, ms, tl, vi, jv; Sundanese is recognised
from a few of its function words since the model has no ``su``). The entity tables are the
YAML files in ``sea_entities/``: Latin-script aliases match whole words case-insensitively
(``cased`` ones only as written), Thai/Lao/Khmer/Burmese/Tamil/Chinese ones as substrings, and
``masks.yaml`` blanks out homonyms ("Java programming", "Burmese python") first.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import io
import json
import multiprocessing
import os
import re
import shutil
import tarfile
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from sealion_vl.errors import SealionError

__all__ = [
    "LANG_WEIGHT",
    "LOCALE_WEIGHT",
    "META_LANG_WEIGHT",
    "MINOR_SCRIPT_WEIGHT",
    "SEA_COUNTRIES",
    "SEA_LANGUAGES",
    "ZH_ENTITY_WEIGHT",
    "BadRow",
    "EntityDataError",
    "FilterError",
    "FilterReport",
    "LanguageCount",
    "ScoreResult",
    "ShardFailure",
    "ShardStats",
    "detect_language",
    "filter_captions",
    "score_caption",
]

LANG_WEIGHT = 0.9
LOCALE_WEIGHT = 0.8
META_LANG_WEIGHT = 0.4
MINOR_SCRIPT_WEIGHT = 0.5
ZH_ENTITY_WEIGHT = 0.3
_LANGID_MIN_MASS = 0.5  # SEA probability mass below this is not language evidence
_LANGID_FULL_MASS = 0.75  # ... and at or above this it counts fully
_LANGID_MIN_WORDS = 3  # Latin-script captions shorter than this count half

# Burmese, Filipino/Tagalog, Indonesian, Khmer, Lao, Malay, Tamil, Thai, Vietnamese, Javanese,
# Sundanese; ace (Acehnese) and bcl (Bikol) are regional SEA languages py3langid also knows.
SEA_LANGUAGES = frozenset({"my", "tl", "id", "km", "lo", "ms", "ta", "th", "vi", "jv", "su"})
_SEA_LANGID = SEA_LANGUAGES | {"ace", "bcl"}
SEA_COUNTRIES = {
    "SG": "Singapore",
    "MY": "Malaysia",
    "ID": "Indonesia",
    "TH": "Thailand",
    "VN": "Vietnam",
    "PH": "Philippines",
    "KH": "Cambodia",
    "LA": "Laos",
    "MM": "Myanmar",
    "BN": "Brunei",
    "TL": "Timor-Leste",
}
_ALPHA3 = {
    "SGP": "SG", "MYS": "MY", "IDN": "ID", "THA": "TH", "VNM": "VN", "PHL": "PH",
    "KHM": "KH", "LAO": "LA", "MMR": "MM", "BRN": "BN", "TLS": "TL",
}  # fmt: skip
_COUNTRY_NAMES = {v.casefold(): k for k, v in SEA_COUNTRIES.items()} | {
    "viet nam": "VN", "burma": "MM", "east timor": "TL", "lao pdr": "LA", "brunei darussalam": "BN",
}  # fmt: skip
_LANG_ALIASES = {
    "fil": "tl", "tgl": "tl", "filipino": "tl", "tagalog": "tl", "ind": "id", "in": "id",
    "indonesian": "id", "msa": "ms", "zsm": "ms", "may": "ms", "malay": "ms", "tha": "th",
    "thai": "th", "vie": "vi", "vietnamese": "vi", "khm": "km", "khmer": "km", "lao": "lo",
    "mya": "my", "bur": "my", "burmese": "my", "tam": "ta", "tamil": "ta", "jav": "jv",
    "jw": "jv", "javanese": "jv", "sun": "su", "sundanese": "su", "zho": "zh", "chi": "zh",
    "cmn": "zh", "yue": "zh", "wuu": "zh", "zxx": "und",
}  # fmt: skip
_SUNDANESE_MARKERS = frozenset(
    "keur jeung urang abdi anjeun henteu teu moal sareng barudak kana ogé oge ulin sakola "
    "indung isuk sare naon kumaha dimana".split()
)

# English function words no SEA language uses as words ("at" is Tagalog for "and": left out).
_ENGLISH_MARKERS = frozenset(
    "the a an of in on with and to for from by is are over near under his her their its this "
    "that into".split()
)

# Unicode blocks -> script. The five SEA scripts identify their language exactly.
_BLOCKS = (
    (0x0B80, 0x0BFF, "ta"),
    (0x0E00, 0x0E7F, "th"),
    (0x0E80, 0x0EFF, "lo"),
    (0x1000, 0x109F, "my"),
    (0x1780, 0x17FF, "km"),
    (0x19E0, 0x19FF, "km"),
    (0x3040, 0x30FF, "kana"),
    (0x3400, 0x4DBF, "han"),
    (0x4E00, 0x9FFF, "han"),
    (0xA9E0, 0xA9FF, "my"),
    (0xAA60, 0xAA7F, "my"),
    (0xAC00, 0xD7AF, "hangul"),
    (0xF900, 0xFAFF, "han"),
)
_SEA_SCRIPTS = ("th", "lo", "km", "my", "ta")
_SPACELESS = frozenset(_SEA_SCRIPTS + ("han", "kana"))
_WORD = re.compile(r"\w+")


class EntityDataError(SealionError, ValueError):
    """A file in ``sea_entities/`` is malformed."""


@dataclass
class ScoreResult:
    """How Southeast-Asia-relevant one caption is.

    Attributes:
        score: in [0, 1]; the filter keeps rows with ``score >= min_score``.
        language: detected language code (ISO 639-1 where one exists, ``und`` if none).
        reasons: the evidence that contributed, e.g. ``lang:th``, ``entity:dish:nasi lemak``,
            ``locale:MY`` (empty when the score is 0).
    """

    score: float
    language: str
    reasons: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- scripts, language


@functools.cache
def _script_of(ch: str) -> str:
    o = ord(ch)
    for lo, hi, name in _BLOCKS:
        if lo <= o <= hi:
            return name
    return "latin" if ch.isalpha() and (o < 0x250 or 0x1E00 <= o <= 0x1EFF) else "other"


def _script_counts(text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    if text.isascii():
        n = sum(1 for c in text if c.isalpha())
        return {"latin": n} if n else counts
    for c in text:
        if c.isalpha() or unicodedata.category(c).startswith("M"):
            s = _script_of(c)
            counts[s] = counts.get(s, 0) + 1
    return counts


@functools.cache
def _identifier() -> Any:
    # Imported lazily: loading the model takes ~1 s, paid once per process.
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str) -> tuple[str, float]:
    """Detect a caption's language.

    Args:
        text: the caption.

    Returns:
        ``(code, sea_confidence)``: the language code and, for SEA languages, how sure we are
        it is one (1.0 for the script-identified ones, the SEA probability mass from py3langid
        for Latin-script ones); 0.0 for non-SEA languages.
    """
    lang, conf, _ = _detect(text, _script_counts(text))
    return lang, conf


def _detect(text: str, counts: dict[str, int]) -> tuple[str, float, str | None]:
    """(language, SEA confidence, minority SEA script or None)."""
    total = sum(counts.values())
    if not total:
        return "und", 0.0, None
    sea = max(_SEA_SCRIPTS, key=lambda s: counts.get(s, 0))
    if counts.get(sea, 0) >= 0.3 * total:
        return sea, 1.0, None
    minor = sea if counts.get(sea, 0) >= 2 else None
    if counts.get("kana", 0):
        return "ja", 0.0, minor
    if counts.get("hangul", 0) >= 0.3 * total:
        return "ko", 0.0, minor
    if counts.get("han", 0) >= 0.3 * total:
        return "zh", 0.0, minor
    ranked = _identifier().rank(text)
    top = _LANG_ALIASES.get(ranked[0][0], ranked[0][0])
    mass = sum(p for code, p in ranked if code in _SEA_LANGID)
    words = [w.casefold() for w in _WORD.findall(text)]
    english = sum(1 for w in words if w in _ENGLISH_MARKERS)
    if english >= 2 and english >= 0.2 * len(words):
        # py3langid reads short English captions full of foreign names as Bikol or Pidgin
        return ("en" if top in _SEA_LANGID | {"pcm"} else top), 0.0, minor
    if top in _SEA_LANGID and len(set(words) & _SUNDANESE_MARKERS) >= 2:
        # the model has no Sundanese; two of its function words are our evidence instead
        return "su", max(mass, _LANGID_FULL_MASS), minor
    if mass < _LANGID_MIN_MASS:
        return top, 0.0, minor
    if top not in _SEA_LANGID:
        top = next(code for code, _ in ranked if code in _SEA_LANGID)
    if len(words) < _LANGID_MIN_WORDS:  # "Malaga beach" -> Tagalog: too short to trust alone
        mass = 0.5 * min(mass, _LANGID_FULL_MASS)
    return top, mass, minor


# ----------------------------------------------------------------------------- entities


@dataclass(frozen=True)
class _Entity:
    kind: str
    name: str
    weight: float
    unless: frozenset[str] = frozenset()


def _is_spaceless(alias: str) -> bool:
    return any(_script_of(c) in _SPACELESS for c in alias)


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
        words = _WORD.findall(alias if cased else alias.casefold())
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
    folder = resources.files("sealion_vl.data").joinpath("sea_entities")
    files = [p for p in folder.iterdir() if p.name.endswith(".yaml")]
    return sorted((p.name, p.read_text(encoding="utf-8")) for p in files)


_ENTITY_KEYS = {"name", "aliases", "cased", "weight", "unless"}


def _parse_weight(value: Any, where: str) -> float:
    if not isinstance(value, int | float) or not 0 < value <= 1:
        raise EntityDataError(f"{where}: weight must be a number in (0, 1], got {value!r}")
    return float(value)


@functools.cache
def _entity_index() -> _EntityIndex:
    index = _EntityIndex()
    for fname, text in _entity_files():
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise EntityDataError(f"sea_entities/{fname} is not valid YAML: {e}") from e
        if not isinstance(doc, dict):
            raise EntityDataError(f"sea_entities/{fname}: expected a mapping at the top")
        for phrase in doc.get("mask", []) or []:
            phrase = unicodedata.normalize("NFC", str(phrase)).casefold()
            if _is_spaceless(phrase):
                index.mask_substr.append(phrase)
            else:
                words = _WORD.findall(phrase)
                index.masks[_key(words)] = (None, True)
                index.mask_first.add(words[0])
                index.max_words = max(index.max_words, len(words))
        if "entities" not in doc:
            continue
        kind = doc.get("kind")
        if not isinstance(kind, str) or not kind:
            raise EntityDataError(f"sea_entities/{fname}: needs a 'kind' (e.g. dish)")
        default_w = _parse_weight(doc.get("weight", 0.6), f"sea_entities/{fname}")
        plural = bool(doc.get("plural", False))
        for i, item in enumerate(doc["entities"]):
            where = f"sea_entities/{fname} entity #{i + 1}"
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


def _find_entities(text: str, has_spaceless: bool) -> list[_Entity]:
    idx = _entity_index()
    raw_words = _WORD.findall(text)
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


# ----------------------------------------------------------------------------- metadata


def _country_code(value: str, *, lone_is_country: bool) -> str | None:
    v = value.strip()
    if not v:
        return None
    parts = [p for p in re.split(r"[-_.@\s]+", v) if p]
    if len(parts) == 1:
        p = parts[0]
        if len(p) == 2 and (lone_is_country or p.isupper()):
            return p.upper() if p.upper() in SEA_COUNTRIES else None
        if len(p) == 3 and p.upper() in _ALPHA3 and (lone_is_country or p.isupper()):
            return _ALPHA3[p.upper()]
        return _COUNTRY_NAMES.get(v.casefold())
    for p in parts[1:]:  # en_SG, zh-Hans-SG, th-TH.UTF-8
        if len(p) == 2 and p.upper() in SEA_COUNTRIES:
            return p.upper()
    return _COUNTRY_NAMES.get(v.casefold())


def _lang_code(value: str) -> str:
    v = re.split(r"[-_.@]", value.strip(), maxsplit=1)[0].casefold()
    return _LANG_ALIASES.get(v, v)


def _meta_evidence(meta: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(SEA country code, SEA declared language) found in a row's metadata."""
    country = lang = None
    layers = [meta] + [meta[k] for k in ("meta", "metadata") if isinstance(meta.get(k), Mapping)]
    for d in layers:
        for k in ("country", "country_code", "cc"):
            if isinstance(d.get(k), str):
                country = country or _country_code(d[k], lone_is_country=True)
        loc = d.get("locale")
        if isinstance(loc, str):
            loc_country = _country_code(loc, lone_is_country=False)
            country = country or loc_country
            if loc_country is None and not loc.strip().isupper():  # a bare language: "th"
                code = _lang_code(loc)
                lang = lang or (code if code in SEA_LANGUAGES else None)
        for k in ("lang", "language", "lang_code"):
            if isinstance(d.get(k), str):
                code = _lang_code(d[k])
                lang = lang or (code if code in SEA_LANGUAGES else None)
    return country, lang


# ----------------------------------------------------------------------------- scoring


def score_caption(text: str, meta: Mapping[str, Any] | None = None) -> ScoreResult:
    """Score how Southeast-Asia-relevant one caption is (see the module docstring for weights).

    Args:
        text: the caption, any language.
        meta: optional row metadata; ``locale`` (``en_SG``), ``country`` (``MY``, ``MYS``,
            ``Malaysia``) and ``lang`` / ``language`` keys are used, at the top level or
            under ``meta`` / ``metadata``. Other keys are ignored.

    Returns:
        A :class:`ScoreResult`; the same input always gives the same result.
    """
    text = unicodedata.normalize("NFC", text or "")
    counts = _script_counts(text)
    language, sea_conf, minor = _detect(text, counts)
    evidence: list[tuple[str, float]] = []
    if sea_conf > 0:
        w = LANG_WEIGHT * min(1.0, sea_conf / _LANGID_FULL_MASS)
        evidence.append((f"lang:{language}", w))
    if minor:
        evidence.append((f"script:{minor}", MINOR_SCRIPT_WEIGHT))
    entities = _find_entities(text, any(s in counts for s in _SPACELESS)) if text else []
    if entities and language == "zh":
        evidence.append(("lang:zh", ZH_ENTITY_WEIGHT))
    evidence += [(f"entity:{e.kind}:{e.name}", e.weight) for e in entities]
    if meta:
        country, meta_lang = _meta_evidence(meta)
        if country:
            evidence.append((f"locale:{country}", LOCALE_WEIGHT))
        if meta_lang:
            evidence.append((f"meta_lang:{meta_lang}", META_LANG_WEIGHT))
    miss = 1.0
    for _, w in evidence:
        miss *= 1.0 - w
    return ScoreResult(round(1.0 - miss, 4), language, [r for r, _ in evidence])


# ============================================================================= the filter job
# Input: one JSONL file, or a folder of shards (*.jsonl, *.jsonl.gz, *.tar, *.tar.gz, *.tgz).
# Work unit: a task = one shard, or a byte range of an uncompressed JSONL shard when workers > 1
# (so a single big JSONL file also spreads over processes). Each task streams its rows one at a
# time into temp part files in OUT; once every task is done, a shard's parts are renamed (or
# concatenated, for byte ranges) to the shard's final name, and the reasons parts are joined
# into reasons.jsonl in input order. Output is therefore identical for any number of workers.

_JSONL_SUFFIXES = (".jsonl", ".jsonl.gz")
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
_CAPTION_KEYS = ("caption", "text", "alt", "alt_text", "alttext", "txt", "captions", "description")
_ID_KEYS = ("id", "key", "__key__", "uid", "sample_id", "image_id")
_TAR_TEXT_EXTS = ("txt", "text", "caption")
_RESERVED = ("reasons.jsonl", "report.json")
_MAX_BAD_EXAMPLES = 100
_TICK_EVERY = 500
_COPY_BUFFER = 256 << 10  # bytes per read when joining part files: memory stays bounded
_TICK: Callable[[int], None] | None = None  # progress hook, set per process


class FilterError(SealionError, ValueError):
    """The filter's input or output could not be used (message says which and why)."""


class LanguageCount(BaseModel):
    rows: int = 0
    kept: int = 0


class BadRow(BaseModel):
    shard: str
    line: int | None = None
    key: str | None = None
    error: str


class ShardStats(BaseModel):
    shard: str
    rows: int
    kept: int
    bad: int
    seconds: float


class ShardFailure(BaseModel):
    shard: str
    error: str


class FilterReport(BaseModel):
    """What ``filter_captions`` did; also written to ``OUT/report.json``.

    ``rows`` counts every non-blank input row of the shards that succeeded, ``bad_rows`` those
    that could not be scored (invalid JSON, no caption), listed (first 100) in
    ``bad_row_examples``. ``reasons`` counts each reason over scored rows; ``languages`` gives
    rows and kept rows per detected language. Failed shards wrote no output and are listed in
    ``failed_shards``.
    """

    input: str
    output: str
    min_score: float
    workers: int
    text_field: str | None
    rows: int = 0
    kept: int = 0
    bad_rows: int = 0
    kept_fraction: float = 0.0
    languages: dict[str, LanguageCount] = {}
    reasons: dict[str, int] = {}
    bad_row_examples: list[BadRow] = []
    shards: list[ShardStats] = []
    failed_shards: list[ShardFailure] = []
    seconds: float = 0.0
    rows_per_second: float = 0.0


@dataclass
class _Task:
    index: int
    shard: str  # input path
    name: str  # output file name
    kind: str  # "jsonl" | "tar"
    start: int
    end: int | None
    kept_path: str
    reasons_path: str
    min_score: float
    text_field: str | None


@dataclass
class _TaskResult:
    index: int
    rows: int = 0
    kept: int = 0
    bad: int = 0
    lines: int = 0
    languages: dict[str, list[int]] = field(default_factory=dict)
    reasons: Counter = field(default_factory=Counter)
    bad_examples: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def _get_path(row: Any, path: str) -> Any:
    """``meta.caption`` / ``captions[0]`` style lookup; None when absent."""
    cur = row
    for part in path.split("."):
        m = re.fullmatch(r"([^\[\]]*)((?:\[\d+\])*)", part)
        if m is None:
            return None
        if m.group(1):
            cur = cur.get(m.group(1)) if isinstance(cur, Mapping) else None
        for idx in re.findall(r"\[(\d+)\]", m.group(2)):
            cur = cur[int(idx)] if isinstance(cur, list) and int(idx) < len(cur) else None
    return cur


def _as_text(value: Any) -> str | None:
    if isinstance(value, list):  # captions: ["first", "second"]
        value = next((v for v in value if isinstance(v, str) and v.strip()), None)
    return value.strip() if isinstance(value, str) and value.strip() else None


def _caption(row: Mapping[str, Any], text_field: str | None) -> str | None:
    if text_field:
        return _as_text(_get_path(row, text_field))
    for k in _CAPTION_KEYS:
        for key in (k, k.upper(), k.capitalize()):
            if key in row:
                return _as_text(row[key])
    return None


def _row_id(row: Mapping[str, Any]) -> str | None:
    for k in _ID_KEYS:
        v = row.get(k)
        if isinstance(v, str | int) and not isinstance(v, bool):
            return str(v)
    return None


def _no_caption(text_field: str | None) -> str:
    return (
        f"no caption in field {text_field!r}"
        if text_field
        else f"no caption (looked for {', '.join(_CAPTION_KEYS)}; use --text-field)"
    )


class _Sink:
    """Per-task writer of reasons lines and counters."""

    def __init__(self, task: _Task, reasons_file: Any) -> None:
        self.task, self.out, self.res = task, reasons_file, _TaskResult(task.index)
        self._pending = 0

    def _tick(self) -> None:
        self._pending += 1
        if self._pending >= _TICK_EVERY:
            self.flush_ticks()

    def flush_ticks(self) -> None:
        if _TICK is not None and self._pending:
            _TICK(self._pending)
        self._pending = 0

    def _loc(self, line: int | None, key: str | None) -> dict[str, Any]:
        loc: dict[str, Any] = {"shard": self.task.name}
        if key is not None and line is None:
            loc["key"] = key
        else:
            loc["line"] = line
        return loc

    def bad(self, line: int | None, key: str | None, row_id: str | None, error: str) -> None:
        r = self.res
        r.rows += 1
        r.bad += 1
        rec = self._loc(line, key) | {"id": row_id, "kept": False, "error": error}
        if len(r.bad_examples) < _MAX_BAD_EXAMPLES:
            r.bad_examples.append(self._loc(line, key) | {"error": error})
        self.out.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._tick()

    def scored(
        self, line: int | None, key: str | None, row_id: str | None, res: ScoreResult
    ) -> bool:
        kept = res.score >= self.task.min_score
        r = self.res
        r.rows += 1
        r.kept += kept
        lang = r.languages.setdefault(res.language, [0, 0])
        lang[0] += 1
        lang[1] += kept
        r.reasons.update(res.reasons)
        rec = self._loc(line, key) | {
            "id": row_id,
            "score": res.score,
            "kept": kept,
            "language": res.language,
            "reasons": res.reasons,
        }
        self.out.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._tick()
        return kept


def _jsonl_lines(task: _Task) -> Iterator[bytes]:
    """The task's raw lines, read one at a time (byte range: lines that start inside it)."""
    if task.shard.endswith(".gz"):
        with gzip.open(task.shard, "rb") as f:
            yield from f
        return
    with open(task.shard, "rb") as f:
        pos = task.start
        if pos > 0:
            f.seek(pos - 1)
            pos += len(f.readline()) - 1  # skip the line that started in the previous range
        while task.end is None or pos < task.end:
            line = f.readline()
            if not line:
                return
            pos += len(line)
            yield line


def _run_jsonl(task: _Task, sink: _Sink, kept_out: Any) -> None:
    for n, raw in enumerate(_jsonl_lines(task), 1):
        sink.res.lines = n
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
            sink.bad(n, None, None, f"invalid JSON: {e}")
            continue
        if not isinstance(row, dict):
            sink.bad(n, None, None, f"not a JSON object: {type(row).__name__}")
            continue
        text = _caption(row, task.text_field)
        if text is None:
            sink.bad(n, None, _row_id(row), _no_caption(task.text_field))
            continue
        if sink.scored(n, None, _row_id(row), score_caption(text, row)):
            kept_out.write(raw if raw.endswith(b"\n") else raw + b"\n")


def _split_key(name: str) -> tuple[str, str]:
    """WebDataset convention: ``dir/KEY.ext.ext2`` -> (``dir/KEY``, ``ext.ext2``)."""
    folder, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


def _tar_samples(path: str) -> Iterator[tuple[str, list[tuple[tarfile.TarInfo, str, bytes]]]]:
    """Consecutive members sharing a key, streamed (``r|*``: no seeking, no index)."""
    with tarfile.open(path, mode="r|*") as tf:
        key, group = None, []
        for m in tf:
            if not m.isfile():
                continue
            k, ext = _split_key(m.name)
            f = tf.extractfile(m)
            data = f.read() if f is not None else b""
            if k != key and group:
                yield key, group
                group = []
            key = k
            group.append((m, ext, data))
        if group:
            yield key, group


def _run_tar(task: _Task, sink: _Sink, kept_tar: tarfile.TarFile) -> None:
    for key, members in _tar_samples(task.shard):
        texts: dict[str, str | None] = {}
        meta: Any = {}
        error = None
        for _, ext, data in members:
            if ext == "json":
                try:
                    meta = json.loads(data)
                except ValueError as e:
                    error = f"invalid JSON in {key}.json: {e}"
                if not isinstance(meta, dict):
                    error, meta = error or f"{key}.json is not a JSON object", {}
            elif ext in _TAR_TEXT_EXTS:
                texts.setdefault(ext, _as_text(data.decode("utf-8", errors="replace")))
        if task.text_field:  # a key of KEY.json, else a text member's extension ("txt")
            text = _caption(meta, task.text_field) or texts.get(task.text_field)
        else:
            text = next((t for t in texts.values() if t), None) or _caption(meta, None)
        row_id = _row_id(meta) or key
        if error is None and text is None:
            error = f"sample {key}: no .txt member and " + _no_caption(task.text_field)
        if error is not None:
            sink.bad(None, key, row_id, error)
            continue
        if sink.scored(None, key, row_id, score_caption(text, meta)):
            for info, _, data in members:
                kept_tar.addfile(info, io.BytesIO(data))


def _run_task(task: _Task) -> _TaskResult:
    """Process one task into its two part files; on any error remove them and raise."""
    t0 = time.perf_counter()
    try:
        with (
            open(task.kept_path, "wb") as raw_out,
            open(task.reasons_path, "w", encoding="utf-8") as reasons,
        ):
            sink = _Sink(task, reasons)
            gz = task.name.endswith((".gz", ".tgz"))
            # mtime=0: byte-identical output from run to run
            out = gzip.GzipFile(fileobj=raw_out, mode="wb", mtime=0) if gz else raw_out
            try:
                if task.kind == "jsonl":
                    _run_jsonl(task, sink, out)
                else:
                    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tf:
                        _run_tar(task, sink, tf)
            finally:
                if gz:
                    out.close()
            sink.flush_ticks()
    except BaseException as e:
        for p in (task.kept_path, task.reasons_path):
            Path(p).unlink(missing_ok=True)
        if isinstance(e, Exception):
            raise _TaskFailed(f"{type(e).__name__}: {e}") from None
        raise
    sink.res.seconds = time.perf_counter() - t0
    return sink.res


class _TaskFailed(Exception):
    """A shard could not be read (corrupt gzip/tar, unreadable file); picklable across processes."""


def _discover(inp: Path) -> list[tuple[Path, str]]:
    def kind(p: Path) -> str | None:
        n = p.name.lower()
        if n.endswith(_JSONL_SUFFIXES):
            return "jsonl"
        return "tar" if n.endswith(_TAR_SUFFIXES) else None

    if inp.is_file():
        k = kind(inp)
        if k is None:
            raise FilterError(
                f"{inp}: not a caption file; expected .jsonl, .jsonl.gz, .tar, .tar.gz or .tgz"
            )
        return [(inp, k)]
    if inp.is_dir():
        shards = [(p, k) for p in sorted(inp.iterdir()) if p.is_file() and (k := kind(p))]
        if not shards:
            raise FilterError(f"{inp}: no *.jsonl, *.jsonl.gz or *.tar shards in this folder")
        return shards
    raise FilterError(f"{inp}: no such file or folder")


def _plan(
    shards: list[tuple[Path, str]], out: Path, workers: int, chunk_bytes: int, opts: dict
) -> list[_Task]:
    tasks: list[_Task] = []
    tag = f"{os.getpid()}"
    for path, kind in shards:
        ranges: list[tuple[int, int | None]] = [(0, None)]
        size = path.stat().st_size
        if kind == "jsonl" and not path.name.endswith(".gz") and workers > 1 and size > chunk_bytes:
            starts = list(range(0, size, chunk_bytes))
            ranges = [(s, s + chunk_bytes if s + chunk_bytes < size else None) for s in starts]
        for part, (start, end) in enumerate(ranges):
            stem = f".{path.name}.part{part}.{tag}"
            tasks.append(
                _Task(
                    index=len(tasks),
                    shard=str(path),
                    name=path.name,
                    kind=kind,
                    start=start,
                    end=end,
                    kept_path=str(out / f"{stem}.tmp"),
                    reasons_path=str(out / f"{stem}.reasons.tmp"),
                    **opts,
                )
            )
    return tasks


def _init_worker(counter: Any) -> None:
    global _TICK

    def tick(n: int) -> None:
        with counter.get_lock():
            counter.value += n

    _TICK = tick


def _execute(
    tasks: list[_Task], workers: int, on_rows: Callable[[int, int], None]
) -> dict[int, _TaskResult | str]:
    """Run every task; a failed task maps to its error message. on_rows(rows, tasks_done)."""
    global _TICK
    results: dict[int, _TaskResult | str] = {}
    if workers <= 1 or len(tasks) <= 1:
        rows = [0]

        def tick(n: int) -> None:
            rows[0] += n
            on_rows(rows[0], len(results))

        _TICK = tick
        try:
            for t in tasks:
                try:
                    results[t.index] = _run_task(t)
                except _TaskFailed as e:
                    results[t.index] = str(e)
                on_rows(rows[0], len(results))
        finally:
            _TICK = None
        return results
    # spawn: safe with threads in the parent (fork is not), same behaviour on every OS
    ctx = multiprocessing.get_context("spawn")
    counter = ctx.Value("q", 0)
    with ProcessPoolExecutor(
        min(workers, len(tasks)), mp_context=ctx, initializer=_init_worker, initargs=(counter,)
    ) as pool:
        futures = {pool.submit(_run_task, t): t.index for t in tasks}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for fut in done:
                    try:
                        results[futures[fut]] = fut.result()
                    except Exception as e:  # _TaskFailed, or a worker that died
                        results[futures[fut]] = str(e) or type(e).__name__
                on_rows(counter.value, len(results))
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return results


def _append(dst: Any, src_path: str, line_offset: int) -> None:
    with open(src_path, "rb") as src:
        if line_offset == 0:
            shutil.copyfileobj(src, dst, _COPY_BUFFER)
            return
        for line in src:  # a later byte range: make its line numbers file-wide
            rec = json.loads(line)
            if rec.get("line") is not None:
                rec["line"] += line_offset
            dst.write((json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8"))


def _assemble(
    tasks: list[_Task], results: dict[int, _TaskResult | str], out: Path, report: FilterReport
) -> None:
    """Rename/concatenate finished parts to final names; join reasons in input order."""
    by_shard: dict[str, list[_Task]] = {}
    for t in tasks:
        by_shard.setdefault(t.name, []).append(t)
    reasons_tmp = out / f".reasons.jsonl.{os.getpid()}.tmp"
    with open(reasons_tmp, "wb") as reasons:
        for name, parts in by_shard.items():
            errors = [results[t.index] for t in parts if isinstance(results[t.index], str)]
            if errors:
                report.failed_shards.append(ShardFailure(shard=name, error=str(errors[0])))
                continue
            final = out / name
            if len(parts) == 1:
                os.replace(parts[0].kept_path, final)
            else:
                tmp = out / f".{name}.{os.getpid()}.tmp"
                with open(tmp, "wb") as dst:
                    for t in parts:
                        with open(t.kept_path, "rb") as src:
                            shutil.copyfileobj(src, dst, _COPY_BUFFER)
                os.replace(tmp, final)
            offset = 0
            stats = ShardStats(shard=name, rows=0, kept=0, bad=0, seconds=0.0)
            for t in parts:
                res = results[t.index]
                assert isinstance(res, _TaskResult)
                _append(reasons, t.reasons_path, offset)
                for ex in res.bad_examples:
                    if len(report.bad_row_examples) < _MAX_BAD_EXAMPLES:
                        if ex.get("line") is not None:
                            ex["line"] += offset
                        report.bad_row_examples.append(BadRow(**ex))
                offset += res.lines
                stats.rows += res.rows
                stats.kept += res.kept
                stats.bad += res.bad
                stats.seconds += res.seconds
                for lang, (n, k) in res.languages.items():
                    lc = report.languages.setdefault(lang, LanguageCount())
                    lc.rows += n
                    lc.kept += k
                for reason, n in res.reasons.items():
                    report.reasons[reason] = report.reasons.get(reason, 0) + n
            stats.seconds = round(stats.seconds, 3)
            report.shards.append(stats)
            report.rows += stats.rows
            report.kept += stats.kept
            report.bad_rows += stats.bad
    os.replace(reasons_tmp, out / "reasons.jsonl")


def filter_captions(
    inp: Path,
    out: Path,
    *,
    min_score: float = 0.5,
    workers: int = 1,
    text_field: str | None = None,
    progress: bool = True,
    chunk_bytes: int = 64 << 20,
) -> FilterReport:
    """Keep the Southeast-Asia-relevant rows of a caption dataset.

    Args:
        inp: a JSONL file (``.jsonl`` / ``.jsonl.gz``), a WebDataset tar shard, or a folder of
            such shards (not recursive). JSONL rows are objects with a caption field; tar
            samples are members grouped by key (``KEY.jpg`` + ``KEY.txt`` and/or ``KEY.json``).
        out: output folder (created). Gets one output shard per input shard, same name and
            format, holding the kept rows (JSONL lines byte-for-byte; tar samples with all
            their members), plus ``reasons.jsonl`` (one line per input row: shard, line or key,
            id, score, kept, language, reasons — or error) and ``report.json``.
        min_score: keep rows with ``score >= min_score`` (0..1).
        workers: processes. Shards are spread over a process pool; an uncompressed JSONL shard
            bigger than ``chunk_bytes`` is split into byte ranges so one big file uses them
            too. Output does not depend on the number of workers. Workers are *spawned*
            (safe with threads, same on every OS): a script calling this with ``workers > 1``
            needs the usual ``if __name__ == "__main__":`` guard.
        text_field: caption field (``caption``, ``meta.text``, ``captions[0]``; for tar, a
            key in ``KEY.json`` or ``txt``); default: the first of caption, text, alt,
            alt_text, txt, captions, description (tar: the ``.txt`` member, then the JSON).
        progress: show a progress bar (rows, shards) on stderr.
        chunk_bytes: byte-range size for splitting JSONL shards when ``workers > 1``.

    Returns:
        The :class:`FilterReport`, also saved as ``out/report.json``.

    Raises:
        FilterError: unusable input/output paths or arguments. Bad rows and unreadable shards
            do not raise: they are counted and listed in the report.
    """
    t0 = time.perf_counter()
    inp, out = Path(inp), Path(out)
    if not 0.0 <= min_score <= 1.0:
        raise FilterError(f"min_score must be between 0 and 1, got {min_score}")
    if workers < 1:
        raise FilterError(f"workers must be at least 1, got {workers}")
    if chunk_bytes < 1:
        raise FilterError(f"chunk_bytes must be positive, got {chunk_bytes}")
    shards = _discover(inp)
    if out.exists() and not out.is_dir():
        raise FilterError(f"{out}: exists and is not a folder; OUT must be a folder")
    for path, _ in shards:
        if path.name in _RESERVED:
            raise FilterError(f"{path}: shard name clashes with the filter's own {path.name}")
        if (out / path.name).resolve() == path.resolve():
            raise FilterError(f"{out}: writing there would overwrite the input {path}")
    out.mkdir(parents=True, exist_ok=True)
    _entity_index()  # fail on bad entity data before any work, not once per process
    opts = {"min_score": min_score, "text_field": text_field}
    tasks = _plan(shards, out, workers, chunk_bytes, opts)
    report = FilterReport(
        input=str(inp), output=str(out), min_score=min_score, workers=workers, text_field=text_field
    )
    try:
        with _progress(progress, len(tasks)) as on_rows:
            results = _execute(tasks, workers, on_rows)
        _assemble(tasks, results, out, report)
    finally:  # whatever happened, leave no temp files behind
        for t in tasks:
            Path(t.kept_path).unlink(missing_ok=True)
            Path(t.reasons_path).unlink(missing_ok=True)
        for tmp in out.glob(f".*.{os.getpid()}.tmp"):
            tmp.unlink(missing_ok=True)
    report.reasons = dict(sorted(report.reasons.items(), key=lambda kv: (-kv[1], kv[0])))
    report.languages = dict(sorted(report.languages.items(), key=lambda kv: -kv[1].rows))
    report.kept_fraction = round(report.kept / report.rows, 4) if report.rows else 0.0
    report.seconds = round(time.perf_counter() - t0, 3)
    report.rows_per_second = round(report.rows / report.seconds, 1) if report.seconds else 0.0
    tmp = out / f".report.json.{os.getpid()}.tmp"
    tmp.write_text(report.model_dump_json(indent=2), encoding="utf-8")
    os.replace(tmp, out / "report.json")
    return report


@contextlib.contextmanager
def _progress(enabled: bool, n_tasks: int) -> Iterator[Callable[[int, int], None]]:
    if not enabled:
        yield lambda rows, done: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]SEA filter[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("parts · {task.fields[rows]:,} rows"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task("filter", total=n_tasks, rows=0)
        yield lambda rows, done: bar.update(task, completed=done, rows=rows)

"""Southeast-Asian relevance score of one caption (``score_caption``).

Used by the caption filter job (:mod:`sealion_vl.data.sea.filter`); language ID lives in
:mod:`sealion_vl.data.sea.lang` and the entity tables in :mod:`sealion_vl.data.sea.index`.

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
YAML files in ``entities/``: Latin-script aliases match whole words case-insensitively
(``cased`` ones only as written), Thai/Lao/Khmer/Burmese/Tamil/Chinese ones as substrings, and
``masks.yaml`` blanks out homonyms ("Java programming", "Burmese python") first.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sealion_vl.data.sea.index import find_entities
from sealion_vl.data.sea.lang import (
    LANG_ALIASES,
    LANGID_FULL_MASS,
    SEA_LANGUAGES,
    SPACELESS_SCRIPTS,
    detect,
    script_counts,
)

__all__ = [
    "LANG_WEIGHT",
    "LOCALE_WEIGHT",
    "META_LANG_WEIGHT",
    "MINOR_SCRIPT_WEIGHT",
    "SEA_COUNTRIES",
    "ZH_ENTITY_WEIGHT",
    "ScoreResult",
    "score_caption",
]

LANG_WEIGHT = 0.9
LOCALE_WEIGHT = 0.8
META_LANG_WEIGHT = 0.4
MINOR_SCRIPT_WEIGHT = 0.5
ZH_ENTITY_WEIGHT = 0.3
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
    return LANG_ALIASES.get(v, v)


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
    counts = script_counts(text)
    language, sea_conf, minor = detect(text, counts)
    evidence: list[tuple[str, float]] = []
    if sea_conf > 0:
        w = LANG_WEIGHT * min(1.0, sea_conf / LANGID_FULL_MASS)
        evidence.append((f"lang:{language}", w))
    if minor:
        evidence.append((f"script:{minor}", MINOR_SCRIPT_WEIGHT))
    entities = find_entities(text, any(s in counts for s in SPACELESS_SCRIPTS)) if text else []
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

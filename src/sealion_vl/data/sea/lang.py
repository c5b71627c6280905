"""Scripts and language ID for the SEA relevance score (:mod:`sealion_vl.data.sea.score`).

Language ID is ``py3langid`` (a Naive Bayes model shipped inside the package, nothing is
downloaded); Thai, Lao, Khmer, Burmese and Tamil are recognised from Unicode blocks, which is
exact, and py3langid handles the Latin-script languages (id, ms, tl, vi, jv; Sundanese is
recognised from a few of its function words since the model has no ``su``).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Any

__all__ = ["SEA_LANGUAGES", "detect_language"]

_LANGID_MIN_MASS = 0.5  # SEA probability mass below this is not language evidence
LANGID_FULL_MASS = 0.75  # ... and at or above this it counts fully
_LANGID_MIN_WORDS = 3  # Latin-script captions shorter than this count half

# Burmese, Filipino/Tagalog, Indonesian, Khmer, Lao, Malay, Tamil, Thai, Vietnamese, Javanese,
# Sundanese; ace (Acehnese) and bcl (Bikol) are regional SEA languages py3langid also knows.
SEA_LANGUAGES = frozenset({"my", "tl", "id", "km", "lo", "ms", "ta", "th", "vi", "jv", "su"})
_SEA_LANGID = SEA_LANGUAGES | {"ace", "bcl"}
LANG_ALIASES = {
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
SPACELESS_SCRIPTS = frozenset(_SEA_SCRIPTS + ("han", "kana"))
WORD_RE = re.compile(r"\w+")


@functools.cache
def script_of(ch: str) -> str:
    o = ord(ch)
    for lo, hi, name in _BLOCKS:
        if lo <= o <= hi:
            return name
    return "latin" if ch.isalpha() and (o < 0x250 or 0x1E00 <= o <= 0x1EFF) else "other"


def script_counts(text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    if text.isascii():
        n = sum(1 for c in text if c.isalpha())
        return {"latin": n} if n else counts
    for c in text:
        if c.isalpha() or unicodedata.category(c).startswith("M"):
            s = script_of(c)
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
    lang, conf, _ = detect(text, script_counts(text))
    return lang, conf


def detect(text: str, counts: dict[str, int]) -> tuple[str, float, str | None]:
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
    top = LANG_ALIASES.get(ranked[0][0], ranked[0][0])
    mass = sum(p for code, p in ranked if code in _SEA_LANGID)
    words = [w.casefold() for w in WORD_RE.findall(text)]
    english = sum(1 for w in words if w in _ENGLISH_MARKERS)
    if english >= 2 and english >= 0.2 * len(words):
        # py3langid reads short English captions full of foreign names as Bikol or Pidgin
        return ("en" if top in _SEA_LANGID | {"pcm"} else top), 0.0, minor
    if top in _SEA_LANGID and len(set(words) & _SUNDANESE_MARKERS) >= 2:
        # the model has no Sundanese; two of its function words are our evidence instead
        return "su", max(mass, LANGID_FULL_MASS), minor
    if mass < _LANGID_MIN_MASS:
        return top, 0.0, minor
    if top not in _SEA_LANGID:
        top = next(code for code, _ in ranked if code in _SEA_LANGID)
    if len(words) < _LANGID_MIN_WORDS:  # "Malaga beach" -> Tagalog: too short to trust alone
        mass = 0.5 * min(mass, LANGID_FULL_MASS)
    return top, mass, minor

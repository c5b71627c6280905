"""SEA-IFEval's 21 instruction checkers, re-implemented to give SEA-HELM's verdicts (v1.2.x).

One plain function per instruction id, each ``(response, kwargs, lang) -> bool``, and
:func:`check`, which looks the id up. Plain Python (no torch) because the RL rewards call
:func:`check` directly. The SEA-HELM quirks we reproduce on purpose are marked
"SEA-HELM quirk" (keywords used as regular expressions, case-sensitive substrings for some
languages, postscripts found anywhere on a line, ...): they are what makes our numbers equal
to the leaderboard's.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable

from sealion_vl.errors import EvalDataError
from sealion_vl.eval.metrics.langgate import detect_language, language_ok

# Languages whose keywords are matched as whole words, ignoring case, and those matched as plain
# (case-sensitive) substrings. SEA-HELM quirk: Tagalog and Tamil are in the substring group.
WORD_BOUNDED_LANGS = frozenset({"en", "id", "vi", "jv", "su", "ms"})
SUBSTRING_LANGS = frozenset({"my", "ta", "tl", "th", "lo", "km"})
# Languages written without spaces: SEA-HELM does not score number_words for them.
NO_WORD_COUNT_LANGS = frozenset({"th", "lo", "km", "my"})

# The three fixed answers a constrained_response item accepts, per language (SEA-HELM's list).
CONSTRAINED_OPTIONS: dict[str, tuple[str, ...]] = {
    "en": ("My answer is yes.", "My answer is no.", "My answer is maybe."),
    "id": (
        "Jawaban saya adalah ya.",
        "Jawaban saya adalah tidak.",
        "Jawaban saya adalah mungkin.",
    ),
    "vi": (
        "Câu trả lời của tôi là có.",
        "Câu trả lời của tôi là không.",
        "Câu trả lời của tôi là có thể.",
    ),
    "tl": ("Ang sagot ko ay oo.", "Ang sagot ko ay hindi.", "Ang sagot ko ay siguro."),
    "th": ("คำตอบของฉันคือใช่", "คำตอบของฉันคือไม่", "คำตอบของฉันคืออาจจะ"),
    "jv": ("Jawabanku ya.", "Jawabanku ora.", "Jawabanku mungkin."),
    "su": ("Jawapan abdi enya.", "Jawapan abdi henteu.", "Jawapan abdi meureun."),
    "ta": (
        "என்னுடைய பதில் ஆம்.",
        "என்னுடைய பதில் இல்லை.",
        "என்னுடைய பதில் ஒருவேளை இருக்கலாம்.",
    ),
    "ms": ("Jawapan saya ialah ya.", "Jawapan saya ialah tidak.", "Jawapan saya ialah mungkin."),
    "my": (
        "ကျွန်ုပ်၏အဖြေသည် ဟုတ်ပါတယ်။",
        "ကျွန်ုပ်၏အဖြေသည် မဟုတ်ပါ။",
        "ကျွန်ုပ်၏အဖြေသည် တစ်ချို့ဖြစ်နိုင်ပါတယ်။",
    ),
    "lo": ("ຄໍາຕອບຂອງຂ້ອຍແມ່ນຈິງ.", "ຄໍາຕອບຂອງຂ້ອຍແມ່ນບໍ່ຈິງ.", "ຄໍາຕອບຂອງຂ້ອຍແມ່ນອາດຈະຈິງ."),
    "km": ("ខ្ញុំយល់ស្រប។", "ខ្ញុំមិនយល់ស្រប។", "ខ្ញុំមិនច្បាស់ដែរ។"),
}

# Postscript markers and the (lower-cased) pattern each must match. SEA-HELM quirk: the pattern
# has no ``^`` anchor, so the marker may sit anywhere on a line, not only at its start.
POSTSCRIPT_PATTERNS: dict[str, str] = {
    "P.S.": r"\s*p\.\s?s\..*$",
    "P.P.S.": r"\s*p\.\s?p\.\s?s\..*$",
    "ป.ล.": r"\s*ป\.\s?ล\..*$",
    "ป.ป.ล.": r"\s*ป\.\s?ป\.\s?ล\..*$",
    "பி.கு.": r"\s*பி\.\s?கு\..*$",
    "பி.பி.கு.": r"\s*பி\.\s?பி\.\s?கு\..*$",
    "ປ.ລ.": r"\s*ປ\.\s?ລ\..*$",
}

_WORD = re.compile(r"\w+")


# ---------------------------------------------------------------- helpers


def _arg(kwargs: dict, name: str):
    if kwargs.get(name) is None:
        raise EvalDataError(f"SEA-IFEval kwargs lack {name!r} (got keys {sorted(kwargs)})")
    return kwargs[name]


def _int(kwargs: dict, name: str) -> int:
    value = _arg(kwargs, name)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise EvalDataError(f"SEA-IFEval kwarg {name}={value!r} is not a number") from None


def _compare(count: int, kwargs: dict, target_name: str) -> bool:
    """``count`` against the row's target under its relation (exactly / at least / less than)."""
    target = _int(kwargs, target_name)
    relation = _arg(kwargs, "relation")
    if relation == "exactly":
        return count == target
    if relation == "at least":
        return count >= target
    if relation == "less than":
        return count < target
    raise EvalDataError(
        f"SEA-IFEval relation {relation!r} is not one of 'exactly', 'at least', 'less than'"
    )


def _keyword_group(lang: str) -> bool:
    """True for the word-bounded languages, False for the substring ones; others are refused."""
    if lang in WORD_BOUNDED_LANGS:
        return True
    if lang in SUBSTRING_LANGS:
        return False
    # SEA-HELM silently passes existence/forbidden items and crashes on frequency items for a
    # language in neither group; refusing is clearer and no SEA-IFEval language is affected.
    raise EvalDataError(f"SEA-IFEval keyword checks are not defined for language {lang!r}")


def _keyword_found(word: str, text: str, lang: str) -> bool:
    # SEA-HELM quirk: the keyword is used as a regular expression, unescaped.
    if _keyword_group(lang):
        return re.search(r"\b" + word + r"\b", text, flags=re.IGNORECASE) is not None
    # SEA-HELM quirk: case-sensitive plain search for my/ta/tl/th/lo/km.
    return re.search(word, text) is not None


# ---------------------------------------------------------------- 1. length constraints


def number_words(response: str, kwargs: dict, lang: str) -> bool:
    """Words = ``\\w+`` runs (so "pag-ibig" is two), compared under the row's relation."""
    if lang in NO_WORD_COUNT_LANGS:
        raise EvalDataError(f"number_words is not scored for {lang!r} (SEA-HELM skips it)")
    return _compare(len(_WORD.findall(response)), kwargs, "num_words")


def number_sentences(response: str, kwargs: dict, lang: str) -> bool:
    """Sentences = non-blank pieces between ``***`` dividers (outer asterisks stripped first)."""
    pieces = [s for s in response.strip("*").split("***") if s.strip()]
    return _compare(len(pieces), kwargs, "num_sentences")


def number_paragraphs(response: str, kwargs: dict, lang: str) -> bool:
    """Paragraphs = non-blank pieces split on ``***``; must equal ``num_paragraphs`` exactly."""
    pieces = [p for p in re.split(r"\s?\*\*\*\s?", response) if p.strip()]
    return len(pieces) == _int(kwargs, "num_paragraphs")


# ---------------------------------------------------------------- 2. detectable content


def postscript(response: str, kwargs: dict, lang: str) -> bool:
    """A line holding the marker (case-insensitive; one optional space after each dot)."""
    marker = _arg(kwargs, "postscript_marker")
    if marker not in POSTSCRIPT_PATTERNS:
        raise EvalDataError(f"SEA-IFEval postscript marker {marker!r} is not one SEA-HELM knows")
    found = re.findall(POSTSCRIPT_PATTERNS[marker], response.lower(), flags=re.MULTILINE)
    return bool(found)


def number_placeholders(response: str, kwargs: dict, lang: str) -> bool:
    """At least ``num_placeholders`` bracketed placeholders with something inside."""
    found = re.findall(r"\[.*?\]", response)
    real = [p for p in found if p.strip("[").strip("]").strip()]
    return len(real) >= _int(kwargs, "num_placeholders")


# ---------------------------------------------------------------- 3. detectable format


def title(response: str, kwargs: dict, lang: str) -> bool:
    """A ``<<title>>`` on one line with a non-blank inside."""
    for found in re.findall(r"<<[^\n]+>>", response):
        if found.lstrip("<").rstrip(">").strip():
            return True
    return False


def number_bullet_lists(response: str, kwargs: dict, lang: str) -> bool:
    """Exactly ``num_bullets`` lines starting ``* `` or ``- `` (then optional bold, then text)."""
    stars = re.findall(r"^\s*\* \*?\*?[^\*\n\s].*$", response, flags=re.MULTILINE)
    dashes = re.findall(r"^\s*- \*?\*?[^\*\n\s].*$", response, flags=re.MULTILINE)
    return len(stars) + len(dashes) == _int(kwargs, "num_bullets")


def multiple_sections(response: str, kwargs: dict, lang: str) -> bool:
    """Exactly ``num_sections`` occurrences of the title word, spaces, then a number or word."""
    # SEA-HELM quirk: the section title goes into the pattern unescaped.
    pattern = r"\b" + _arg(kwargs, "section_title") + r"\s+[\d|\w]+\b"
    return len(re.findall(pattern, response)) == _int(kwargs, "num_sections")


def number_highlighted_sections(response: str, kwargs: dict, lang: str) -> bool:
    """At least ``num_highlights`` non-empty ``*x*`` plus ``**x**`` spans (counted separately)."""
    single = [h for h in re.findall(r"\*[^\n\*]*\*", response) if h.strip("*").strip()]
    double = [h for h in re.findall(r"\*\*[^\n\*]*\*\*", response) if h.strip("*").strip()]
    return len(single) + len(double) >= _int(kwargs, "num_highlights")


def json_format(response: str, kwargs: dict, lang: str) -> bool:
    """The whole reply parses as JSON, after removing one optional code fence.

    SEA-HELM quirk: the fence is only removed when the stripped reply starts with it, so any
    text before the fence fails; a trailing fence is removed only together with an opening one.
    """
    text = response.strip()
    for fence in ("```json", "```Json", "```JSON", "```"):
        if text.startswith(fence):
            text = text.removeprefix(fence).removesuffix("```").strip()
            break
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def constrained_response(response: str, kwargs: dict, lang: str) -> bool:
    """The reply contains one of the language's three fixed answers (exact, case-sensitive)."""
    if lang not in CONSTRAINED_OPTIONS:
        raise EvalDataError(f"SEA-IFEval has no constrained answers for language {lang!r}")
    text = response.strip()
    return any(option in text for option in CONSTRAINED_OPTIONS[lang])


# ---------------------------------------------------------------- 4. start / end


def first_word(response: str, kwargs: dict, lang: str) -> bool:
    """The stripped, lower-cased reply starts with the (lower-cased) first word."""
    return response.strip().lower().startswith(str(_arg(kwargs, "first_word")).lower())


def end_checker(response: str, kwargs: dict, lang: str) -> bool:
    """The stripped, lower-cased reply ends with the (lower-cased) end phrase."""
    return response.strip().lower().endswith(str(_arg(kwargs, "end_phrase")).lower())


def quotation(response: str, kwargs: dict, lang: str) -> bool:
    """Wrapped in double quotes with something non-blank inside."""
    text = response.strip()
    return text.startswith('"') and text.endswith('"') and bool(text.strip('"').strip())


# ---------------------------------------------------------------- 5. keywords


def keywords_existence(response: str, kwargs: dict, lang: str) -> bool:
    """Every keyword is present (word-bounded, any case; or case-sensitive substring)."""
    return all(_keyword_found(w, response, lang) for w in _arg(kwargs, "keywords"))


def forbidden_words(response: str, kwargs: dict, lang: str) -> bool:
    """No forbidden word is present (same matching as :func:`keywords_existence`)."""
    return not any(_keyword_found(w, response, lang) for w in _arg(kwargs, "forbidden_words"))


def keywords_frequency(response: str, kwargs: dict, lang: str) -> bool:
    """Occurrences of the keyword vs ``frequency`` under the relation.

    SEA-HELM quirk: unlike existence/forbidden, this count ignores case in every language.
    """
    keyword = _arg(kwargs, "keyword")
    pattern = r"\b" + keyword + r"\b" if _keyword_group(lang) else keyword
    return _compare(len(re.findall(pattern, response, flags=re.IGNORECASE)), kwargs, "frequency")


def number_frequency(response: str, kwargs: dict, lang: str) -> bool:
    """Occurrences of the number string (used as a pattern, no boundaries) vs ``frequency``."""
    number = _arg(kwargs, "number")
    if isinstance(number, float) and number.is_integer():
        number = int(number)  # a numeric column would otherwise read "3.0"
    return _compare(len(re.findall(str(number), response)), kwargs, "frequency")


# ---------------------------------------------------------------- 6. combination


def repeat_prompt(response: str, kwargs: dict, lang: str) -> bool:
    """Starts with the prompt (any case) AND has a non-blank answer after it."""
    text = response.strip().lower()
    prompt = str(_arg(kwargs, "prompt_to_repeat")).strip().lower()
    return text.startswith(prompt) and bool(text.removeprefix(prompt).strip())


def two_responses(response: str, kwargs: dict, lang: str) -> bool:
    """Exactly two parts with content, separated by ``******``."""
    parts = response.strip().split("******")
    parts = [p for p in parts if p.strip().strip(string.punctuation)]
    return len(parts) == 2


# ---------------------------------------------------------------- 7. language


def response_language(response: str, kwargs: dict, lang: str) -> bool:
    """The detected language is ``response_language``.

    SEA-HELM quirk: here only ``id`` accepts ``ms``; the later language gate accepts both ways.
    """
    wanted = _arg(kwargs, "response_language")
    detected = detect_language(response)
    if wanted == "id":
        return language_ok(detected, "id")
    return detected == wanted


CHECKERS: dict[str, Callable[[str, dict, str], bool]] = {
    "length_constraints:number_words": number_words,
    "length_constraints:number_sentences": number_sentences,
    "length_constraints:number_paragraphs": number_paragraphs,
    "detectable_content:postscript": postscript,
    "detectable_content:number_placeholders": number_placeholders,
    "detectable_format:title": title,
    "detectable_format:number_bullet_lists": number_bullet_lists,
    "detectable_format:multiple_sections": multiple_sections,
    "detectable_format:number_highlighted_sections": number_highlighted_sections,
    "detectable_format:json_format": json_format,
    "detectable_format:constrained_response": constrained_response,
    "startend:first_word": first_word,
    "startend:end_checker": end_checker,
    "startend:quotation": quotation,
    "keywords:existence": keywords_existence,
    "keywords:forbidden_words": forbidden_words,
    "keywords:frequency": keywords_frequency,
    "keywords:number_frequency": number_frequency,
    "combination:repeat_prompt": repeat_prompt,
    "combination:two_responses": two_responses,
    "language:response_language": response_language,
}


def check(instruction_id: str, response: str, kwargs: dict, lang: str) -> bool:
    """Whether ``response`` follows instruction ``instruction_id`` (SEA-HELM's checker verdict).

    ``kwargs`` is the row's ``kwargs[0]``; keys whose value is None are ignored, as SEA-HELM
    does (the public rows carry every kwarg name, most of them null). The language gate is
    not applied here (see :mod:`sealion_vl.eval.metrics.ifeval`). Raises :class:`EvalDataError`
    for an unknown id, missing or malformed kwargs, or a keyword that is not a valid pattern.
    """
    checker = CHECKERS.get(instruction_id)
    if checker is None:
        raise EvalDataError(
            f"unknown SEA-IFEval instruction id {instruction_id!r}; known: {sorted(CHECKERS)}"
        )
    clean = {k: v for k, v in (kwargs or {}).items() if v is not None}
    try:
        return bool(checker(response, clean, lang))
    except re.error as exc:
        raise EvalDataError(
            f"SEA-IFEval {instruction_id}: a kwarg is not a valid regular expression ({exc})"
        ) from None

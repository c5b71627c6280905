"""A more forgiving multiple-choice answer extraction, reported only as a diagnostic.

SEA-HELM's own extraction (``mcq.seahelm_extract``) is what every score uses, so numbers stay
comparable with the leaderboard. It misses answers a reader would accept: a reasoning block that
mentions a label before the answer tag, the tag without its colon or with a full-width colon,
``**Jawaban**: C``, ``(C)``, ``C. Bakso``, "The answer is A", or "Benar" inside a sentence. This
module finds those, so a report can say how much of a low score is formatting rather than
knowledge (``mcq.score`` puts the robust accuracy and the items where the two differ in
``TaskScore.diagnostics``).
"""

from __future__ import annotations

import re

# Reasoning blocks the model families emit (Qwen3 ``<think>``, Gemma 4
# ``<|channel>thought ... <channel|>``, and common hand-written variants).
_BLOCKS = [
    re.compile(r"<think>.*?</think>", re.S | re.I),
    re.compile(r"<thinking>.*?</thinking>", re.S | re.I),
    re.compile(r"<reasoning>.*?</reasoning>", re.S | re.I),
    re.compile(r"<\|channel>.*?<channel\|>", re.S),
]
# A closing tag with no opening one (the template put ``<think>`` in the prompt): keep the tail.
_CLOSERS = ["</think>", "</thinking>", "</reasoning>", "<channel|>"]
# An opening tag never closed (generation cut off mid-thought): nothing after it is an answer.
_OPENERS = ["<think>", "<thinking>", "<reasoning>", "<|channel>"]

_DECOR = r"[\s\*_`\"'“”‘’«»\[\(]*"  # markdown / quotes / brackets between the tag and the label
_ENGLISH = [
    r"(?:the\s+)?(?:correct\s+|final\s+|best\s+)?answer\s+(?:is|would\s+be|:)",
    r"(?:final\s+)?answer\s*[:：]",
    r"(?:the\s+)?correct\s+(?:option|choice)\s+is",
    r"I\s+(?:choose|pick|select)",
]


def strip_reasoning(text: str) -> str:
    """The reply without reasoning blocks, so labels mentioned while thinking are not read."""
    for block in _BLOCKS:
        text = block.sub(" ", text)
    for closer in _CLOSERS:
        if closer in text:
            text = text.rsplit(closer, 1)[1]
    for opener in _OPENERS:
        if opener in text:
            text = text.split(opener, 1)[0]
    return text


def _label_alternation(labels: list[str]) -> str:
    # Longest first so a label that is a prefix of another ("A" vs "AB") never shadows it.
    ordered = sorted(dict.fromkeys(labels), key=len, reverse=True)
    return "|".join(re.escape(label) for label in ordered)


_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def _after(label_re: str, labels: list[str]) -> str:
    # A word boundary: the label must not run on into a letter or digit ("A" in "Answer: Bakso"
    # is refused). Chinese/Japanese words are not space-delimited ("正确的"), so no boundary there.
    if any(_CJK.search(label) for label in labels):
        return rf"(?P<label>{label_re})"
    return rf"(?P<label>{label_re})(?![^\W_])"


def _whole_word(label: str) -> str:
    if _CJK.search(label):
        return re.escape(label)
    return rf"(?<![^\W_]){re.escape(label)}(?![^\W_])"


def _tag_pattern(answer_tag: str) -> str | None:
    core = answer_tag.strip().rstrip(":：").strip()
    if not core:
        return None
    words = [re.escape(w) for w in core.split()]
    tag = r"\s+".join(words)
    # Tag, optionally bold/italic, then an optional ASCII or full-width colon (possibly inside
    # the bold), then decoration.
    return rf"(?:\*\*|__|\*|_)?{tag}(?:\*\*|__|\*|_)?\s*[:：]?\s*(?:\*\*|__|\*|_)?{_DECOR}"


def _canonical(found: str, labels: list[str]) -> str:
    by_lower = {label.lower(): label for label in labels}
    return by_lower.get(found.lower(), found)


def _last(pattern: str, text: str, flags: int = re.I) -> str | None:
    matches = list(re.finditer(pattern, text, flags))
    return matches[-1].group("label") if matches else None


def robust_extract(response: str | None, labels: list[str], answer_tag: str) -> str | None:
    """The label the reply most plausibly gives, or None when it gives none unambiguously.

    Order (first that finds something wins):
    1. the answer tag (any case, with/without colon, full-width colon, markdown bold), last
       occurrence after reasoning is stripped;
    2. English phrasings ("The answer is A", "Answer: A");
    3. the whole reply is a label, or starts with "(C)", "C.", "C)", "C:", "**C**";
    4. a single distinct "(C)" anywhere;
    5. for label words longer than one character (Benar/Salah, 正确/错误): exactly one of them
       occurs as a whole word.

    Args:
        response: the raw reply (None for a failed request).
        labels: every label word of the task in this language (not only those in the run).
        answer_tag: the task's answer tag in this language ("Jawaban:"), may be "".
    """
    if response is None or not labels:
        return None
    text = strip_reasoning(response)
    alt = _label_alternation(labels)
    label_re = _after(alt, labels)

    tag = _tag_pattern(answer_tag)
    if tag is not None:
        found = _last(tag + label_re, text)
        if found is not None:
            return _canonical(found, labels)

    for phrase in _ENGLISH:
        found = _last(rf"\b{phrase}{_DECOR}" + label_re, text)
        if found is not None:
            return _canonical(found, labels)

    stripped = text.strip().strip("*_`\"'“”‘’ \t\n.。!！")
    whole = re.fullmatch(rf"[\(\[]?(?P<label>{alt})[\)\]]?", stripped, re.I)
    if whole:
        return _canonical(whole.group("label"), labels)
    opening = rf"[\*_]*[\(\[]?(?P<label>{alt})(?:[\)\]]|[\.:：)]|\*\*)(?:\s|$)"
    start = re.match(opening, stripped, re.I)
    if start:
        return _canonical(start.group("label"), labels)

    paren = {m.group("label").upper() for m in re.finditer(rf"\((?P<label>{alt})\)", text, re.I)}
    if len(paren) == 1:
        return _canonical(paren.pop(), labels)

    words = [label for label in labels if len(label) > 1]
    if words:
        seen = {label.lower() for label in words if re.search(_whole_word(label), text, re.I)}
        if len(seen) == 1:
            return _canonical(seen.pop(), labels)
    return None

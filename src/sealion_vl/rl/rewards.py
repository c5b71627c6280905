"""Verifiable rewards: plain functions that score replies, usable as TRL ``reward_funcs``.

Every reward has TRL's calling convention ``(prompts, completions, **columns) -> list[float]``:
``completions`` are strings or conversational message lists (TRL gives the latter when the
prompts are conversations), and ``columns`` are the dataset's other columns, one value per
completion (TRL repeats each prompt's row for each of its generations). Extra keyword arguments
a reward does not use are ignored, so several rewards can share one dataset.

No torch here: the rewards are cheap and can be called anywhere (a test, a notebook, an
eval hook). Malformed *data* (a gold answer with no number, an unknown instruction id, a
schema that is not a schema) raises :class:`RewardInputError` naming the row; a malformed
*reply* just scores 0, because a policy's bad output is what the reward is for.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Sequence

from sealion_vl.errors import SealionError

RewardFunc = Callable[..., list[float]]


class RewardInputError(SealionError, ValueError):
    """A reward's data column (gold answer, instruction, schema...) cannot be used as given."""


def completion_text(completion) -> str:
    """The reply text of one completion: a string, or the last message of a conversation.

    Message content may be a string or a list of typed parts (``{"type": "text", ...}``); the
    text parts are joined.
    """
    if completion is None or isinstance(completion, str):
        return completion or ""
    if isinstance(completion, dict):
        completion = [completion]
    if isinstance(completion, Sequence) and completion:
        content = completion[-1].get("content", "") if isinstance(completion[-1], dict) else ""
        if isinstance(content, str):
            return content
        if isinstance(content, Sequence):
            parts = (p for p in content if isinstance(p, dict) and p.get("type") == "text")
            return "".join(str(p.get("text", "")) for p in parts)
        return ""
    if isinstance(completion, Sequence):  # an empty conversation
        return ""
    raise RewardInputError(
        f"a completion must be a string or a list of messages, got {type(completion).__name__}"
    )


def _column(columns: dict, key: str, n: int, default=None, *, required: bool = True) -> list:
    """Per-completion values of dataset column ``key`` (a fixed default fills a missing one)."""
    if key in columns and columns[key] is not None:
        values = columns[key]
        if isinstance(values, (str, bytes, dict)) or not isinstance(values, Sequence):
            return [values] * n  # one fixed value given directly (not through TRL)
        if len(values) != n:
            raise RewardInputError(
                f"column {key!r} has {len(values)} values for {n} completions; TRL passes one "
                "value per completion"
            )
        return list(values)
    if default is not None or not required:
        return [default] * n
    raise RewardInputError(
        f"this reward needs a {key!r} column in the dataset (got columns: {sorted(columns)})"
    )


def _maybe_json(value, what: str, row: int):
    """A dict/list given directly, or one stored as a JSON string (our JSONL loader's form)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as e:
            raise RewardInputError(f"row {row}: {what} is a string but not JSON ({e})") from None
    return value


# --- numeric answer match

# A number as people write it: optional sign and currency, thousands commas, decimals. A minus
# right after a word or digit is a hyphen ("10-12" is 10 and 12), and no number starts mid-number.
_SIGN = r"(?:(?<![\w.])[-−–]\s*)?"
_NUM = (
    _SIGN + r"[$€£¥₹₱฿₫]?\s*(?<![\d.])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
    r"|" + _SIGN + r"(?<!\d)\.\d+"
)
_NUM_RE = re.compile(_NUM)
_HASHES = re.compile(r"####\s*(" + _NUM + ")")
_BOXED = re.compile(r"\\boxed\s*\{")
_SAYS = re.compile(
    r"(?:the\s+)?(?:final\s+)?answer\s*(?:is|:|=)\s*:?\s*\**\s*(" + _NUM + ")", re.IGNORECASE
)


def _to_float(token: str) -> float | None:
    """``-$1,234.50`` -> -1234.5; digits of any script (``၃`` -> 3) count as digits."""
    text = "".join(
        str(unicodedata.digit(c)) if c.isdigit() and not c.isascii() else c for c in token
    )
    negative = bool(re.match(r"\s*[-−–]", text))
    digits = re.sub(r"[^0-9.]", "", text)
    if not digits or digits == ".":
        return None
    try:
        value = float(digits)
    except ValueError:
        return None
    return -value if negative else value


def _boxed_contents(text: str) -> list[str]:
    """The contents of every ``\\boxed{...}``, braces balanced."""
    out = []
    for m in _BOXED.finditer(text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            out.append(text[m.end() : i - 1])
    return out


_FRAC = re.compile(r"^\s*(-?)\s*\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}\s*$")
_SLASH = re.compile(r"^\s*(" + _NUM + r")\s*/\s*(" + _NUM + r")\s*$")


def _box_value(box: str) -> float | None:
    """The number inside one ``\\boxed{}``: a plain number, ``\\frac{a}{b}`` or ``a/b``."""
    box = box.replace("{,}", ",").replace("\\!", "").replace("\\,", "")
    if m := _FRAC.match(box) or _SLASH.match(box):
        sign, a, b = (m.group(1), m.group(2), m.group(3)) if m.re is _FRAC else ("", *m.groups())
        num, den = _to_float(a), _to_float(b)
        if num is None or not den:
            return None
        return (-1 if sign else 1) * num / den
    nums = _NUM_RE.findall(box)
    return _to_float(nums[-1]) if nums else None


def extract_number(text: str) -> float | None:
    """The final numeric answer of a reply, or None.

    Looked for in this order (the first kind found wins, its last occurrence): ``#### 42``
    (GSM8K), ``\\boxed{42}``, "the answer is 42" / "Answer: 42", then the last number in the
    text. Thousands commas, a currency sign, a minus sign and decimals are read as numbers,
    so ``$1,234.50`` gives 1234.5.
    """
    if not text:
        return None
    if found := _HASHES.findall(text):
        return _to_float(found[-1])
    for box in reversed(_boxed_contents(text)):
        if (v := _box_value(box)) is not None:
            return v
    if found := _SAYS.findall(text):
        return _to_float(found[-1])
    nums = _NUM_RE.findall(text)
    return _to_float(nums[-1]) if nums else None


def gold_number(answer) -> float:
    """The number of a gold answer: a number, ``"42"``, or a GSM8K solution ending ``#### 42``."""
    if isinstance(answer, bool):
        raise RewardInputError(f"gold answer {answer!r} is a boolean, not a number")
    if isinstance(answer, (int, float)):
        return float(answer)
    text = str(answer)
    tail = text.rsplit("####", 1)[1] if "####" in text else text
    nums = _NUM_RE.findall(tail)
    value = _to_float(nums[-1]) if nums else None
    if value is None:
        raise RewardInputError(f"gold answer {text[:80]!r} holds no number")
    return value


def numeric_match(prompts, completions, answer=None, tolerance: float = 1e-6, **columns):
    """1.0 where the reply's final number equals the gold number, else 0.0.

    Args:
        completions: replies (strings or message lists).
        answer: the ``answer`` column: numbers, numeric strings or GSM8K solutions (``#### 42``).
        tolerance: absolute tolerance of the comparison (and relative, for large numbers).
    """
    golds = _column({"answer": answer}, "answer", len(completions))
    out = []
    for i, (c, g) in enumerate(zip(completions, golds, strict=True)):
        try:
            gold = gold_number(g)
        except RewardInputError as e:
            raise RewardInputError(f"row {i}: {e}") from None
        got = extract_number(completion_text(c))
        ok = got is not None and abs(got - gold) <= tolerance * max(1.0, abs(gold))
        out.append(1.0 if ok else 0.0)
    return out


# --- instruction following (SEA-IFEval checkers + language gate)


def ifeval_reward(prompts, completions, instruction_id=None, lang=None, **columns):
    """Fraction of a row's instructions the reply follows, times SEA-HELM's language gate.

    Columns: ``instruction_id`` (one id such as ``"detectable_format:title"`` or a list of them;
    ``instruction_id_list`` is accepted too), ``kwargs`` (a dict, or a list of dicts parallel
    to the ids, or their JSON string) and ``lang`` (the language the reply must be in; for
    ``language:response_language`` the kwarg ``response_language`` is the one required).
    A reply in the wrong language (``id`` and ``ms`` accept each other) scores 0, as in
    SEA-HELM's headline metric.
    """
    from sealion_vl.eval.metrics.ifeval_checks import check
    from sealion_vl.eval.metrics.langgate import detect_language, language_ok

    n = len(completions)
    if instruction_id is None and columns.get("instruction_id_list") is not None:
        instruction_id = columns["instruction_id_list"]
    ids = _column({"instruction_id": instruction_id}, "instruction_id", n)
    langs = _column({"lang": lang}, "lang", n)
    kwargs_col = _column(columns, "kwargs", n, required=False)
    out = []
    for i, c in enumerate(completions):
        row_ids = [ids[i]] if isinstance(ids[i], str) else list(ids[i] or [])
        kws = _maybe_json(kwargs_col[i], "kwargs", i) if kwargs_col[i] is not None else None
        kws = kws if isinstance(kws, list) else [kws or {}] * len(row_ids)
        if not row_ids or len(kws) != len(row_ids):
            raise RewardInputError(
                f"row {i}: {len(row_ids)} instruction ids but {len(kws)} kwargs dicts"
            )
        text = completion_text(c)
        try:
            pairs = zip(row_ids, kws, strict=True)
            passed = [check(iid, text, kw or {}, str(langs[i])) for iid, kw in pairs]
        except SealionError as e:
            raise RewardInputError(f"row {i}: {e}") from None
        expected = str(langs[i])
        for iid, kw in zip(row_ids, kws, strict=True):
            if iid.startswith("language:") and (kw or {}).get("response_language"):
                expected = str(kw["response_language"])
        in_language = language_ok(detect_language(text), expected)
        out.append(sum(passed) / len(passed) if in_language else 0.0)
    return out


# --- answer-tag format


def answer_tag_format(
    prompts, completions, answer_tag="Answer:", labels: Sequence[str] | str = "ABCD", **columns
):
    """1.0 where the reply holds ``<tag> <label>`` with a valid label, else 0.0.

    ``answer_tag`` ("Jawapan:") and ``labels`` (["A", "B", "C", "D"] or "ABCD") may be dataset
    columns (one per row) or fixed values. The tag matches ignoring case, with spaces or
    markdown bold between it and the label; the label must end there (``Answer: Bee`` is not
    ``B``).
    """
    n = len(completions)
    tags = _column({"answer_tag": answer_tag}, "answer_tag", n)
    if isinstance(labels, str) or (
        isinstance(labels, Sequence) and all(isinstance(x, str) and x[:1] != "[" for x in labels)
    ):
        label_col = [labels] * n  # one label set for every row ("ABCD" or ["A", "B", ...])
    else:
        label_col = _column({"labels": labels}, "labels", n)  # one list (or JSON list) per row
    out = []
    for i, c in enumerate(completions):
        row_labels = label_col[i]
        if isinstance(row_labels, str) and row_labels.startswith("["):
            row_labels = _maybe_json(row_labels, "labels", i)
        row_labels = list(row_labels or [])
        if not tags[i] or not row_labels:
            raise RewardInputError(f"row {i}: answer_tag and labels must be non-empty")
        pattern = (
            re.escape(str(tags[i]).strip())
            + r"[\s\*]*("
            + "|".join(re.escape(str(x)) for x in sorted(row_labels, key=len, reverse=True))
            + r")(?![\w])"
        )
        out.append(1.0 if re.search(pattern, completion_text(c), re.IGNORECASE) else 0.0)
    return out


# --- JSON-schema validity

_FENCE = re.compile(r"```[ \t]*([\w+-]*)[ \t]*\n(.*?)```", re.DOTALL)


def json_payload(text: str):
    """The JSON a reply holds: the whole reply, or its one fenced code block; else raises."""
    stripped = text.strip()
    try:
        return json.loads(stripped)
    except json.JSONDecodeError:
        pass
    blocks = _FENCE.findall(stripped)
    if len(blocks) != 1:
        raise ValueError(f"no JSON: the reply is not JSON and has {len(blocks)} fenced blocks")
    return json.loads(blocks[0][1])


def json_schema_valid(prompts, completions, schema=None, **columns):
    """1.0 where the reply (whole, or its one fenced block) is JSON valid against ``schema``.

    ``schema``: a JSON Schema (dict or JSON string) per row, or one fixed schema. An invalid
    schema is an error (the data is wrong), an invalid reply scores 0.
    """
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - depends on the environment
        raise RewardInputError(
            "json_schema_valid needs the jsonschema package (pip install jsonschema==4.26.0)"
        ) from None
    n = len(completions)
    schemas = _column({"schema": schema}, "schema", n)
    validators: dict[str, object] = {}
    out = []
    for i, c in enumerate(completions):
        sch = _maybe_json(schemas[i], "schema", i)
        key = json.dumps(sch, sort_keys=True)
        if key not in validators:
            cls = jsonschema.validators.validator_for(sch)
            try:
                cls.check_schema(sch)
            except jsonschema.SchemaError as e:
                raise RewardInputError(f"row {i}: not a valid JSON Schema: {e.message}") from None
            validators[key] = cls(sch)
        try:
            payload = json_payload(completion_text(c))
        except ValueError:  # json.JSONDecodeError is one
            out.append(0.0)
            continue
        out.append(1.0 if validators[key].is_valid(payload) else 0.0)
    return out

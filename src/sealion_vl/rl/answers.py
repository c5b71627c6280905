"""Answer-matching rewards: the option label after an answer tag (multiple choice) and an
exact short answer, each the per-item rule of an eval task (``nano_mcq``, ``nano_vqa``), so
raising the reward raises that task's score.

Plain functions with TRL's reward signature, like those in :mod:`sealion_vl.rl.rewards`
(kept in their own module so each file stays one kind of check).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sealion_vl.rl.rewards import RewardInputError, _column, _maybe_json, completion_text

# --- multiple-choice letter match


def chosen_label(text: str, answer_tag: str, labels: Sequence[str] = "ABCD") -> str | None:
    """The option label a reply chose: the one right after ``answer_tag``, else a bare label.

    As SEA-HELM reads MCQ replies: the tag matches ignoring case and its colon (``Jawapan``,
    ``Jawapan:`` and a full-width ``：`` alike), spaces or markdown bold may sit between it and
    the label, and the label must end there (``Answer: Bee`` chose nothing). A reply that is
    only a label (``"B."``) chose it. The first tag in the reply wins: a policy must not earn
    the reward by listing every letter after several tags.
    """
    labels = [str(x) for x in labels]
    alternatives = "|".join(re.escape(x) for x in sorted(labels, key=len, reverse=True))
    tag = re.escape(str(answer_tag).strip().rstrip(":："))
    m = re.search(tag + r"\s*[:：]?[\s*]*(" + alternatives + r")(?!\w)", text, re.IGNORECASE)
    if m:
        said = m.group(1).casefold()
        return next(x for x in labels if x.casefold() == said)
    bare = text.strip().strip("*. ").casefold()
    return next((x for x in labels if x.casefold() == bare), None)


def mcq_letter_match(
    prompts,
    completions,
    letter=None,
    answer_tag="Answer:",
    labels: Sequence[str] | str = "ABCD",
    **columns,
):
    """1.0 where the label the reply chose (:func:`chosen_label`) is the gold one, else 0.0.

    Columns (or fixed values): ``letter`` (the gold label, e.g. ``"C"``), ``answer_tag`` (the
    language's tag, ``"Jawapan:"``), ``labels`` (the option labels, default A-D). This is the
    per-item accuracy of SEA-HELM-style MCQ tasks, so raising it raises their score.
    """
    n = len(completions)
    golds = _column({"letter": letter}, "letter", n)
    tags = _column({"answer_tag": answer_tag}, "answer_tag", n)
    label_list = list(labels)
    out = []
    for i, c in enumerate(completions):
        gold, tag = str(golds[i] or "").strip(), str(tags[i] or "").strip()
        if not tag or gold.casefold() not in {x.casefold() for x in label_list}:
            raise RewardInputError(
                f"row {i}: the gold letter {golds[i]!r} is not one of {label_list}, or the "
                "answer_tag is empty"
            )
        got = chosen_label(completion_text(c), tag, label_list)
        out.append(1.0 if got is not None and got.casefold() == gold.casefold() else 0.0)
    return out


# --- short-answer exact match

_TRAILING = " \t\n.。।။!?！？"


def short_answer(text: str) -> str:
    """A reply's short answer as compared: its first line, outer spaces and sentence-final
    punctuation removed, case-folded (``" Square.\\n..."`` -> ``"square"``). No Unicode
    normalisation: a reply must spell the answer as the scorer compares it."""
    first = text.strip().split("\n", 1)[0] if text.strip() else ""
    return first.strip(_TRAILING).casefold()


def exact_answer(prompts, completions, answer=None, **columns):
    """1.0 where the reply's first line is the gold short answer (see :func:`short_answer`),
    else 0.0: the exact-match rule of short-answer VQA (a colour, a shape, a fruit's name).

    ``answer``: the gold answer per row (a string; a list of accepted strings or its JSON
    form also works).
    """
    golds = _column({"answer": answer}, "answer", len(completions))
    out = []
    for i, (c, g) in enumerate(zip(completions, golds, strict=True)):
        accepted = _maybe_json(g, "answer", i) if isinstance(g, str) and g[:1] == "[" else g
        accepted = [accepted] if isinstance(accepted, str) else list(accepted or [])
        keys = {short_answer(str(a)) for a in accepted} - {""}
        if not keys:
            raise RewardInputError(f"row {i}: empty gold answer {g!r}")
        out.append(1.0 if short_answer(completion_text(c)) in keys else 0.0)
    return out

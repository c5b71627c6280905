"""Held-out evaluation of a model on the synthetic SEA world (nano's card numbers).

Scoring follows SEA-HELM's conventions where they apply: MCQ answers are read after the
language's answer tag ("Jawapan: B", case-insensitive, spaces or ``*`` allowed), falling
back to a bare letter; MARVL's true/false word is read from the reply's last line (nano
writes the facts it compared first); anything else counts as wrong. Chance levels come from
the number of distinct gold answers of each question type. Captions are scored with chrF++.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from sealion_vl.families import parse_reply

_TRAILING = " \t\n.。।။!?！？"


def norm(text: str) -> str:
    """Lower-case, first line only, outer spaces and sentence-final punctuation removed."""
    first = text.strip().split("\n", 1)[0] if text.strip() else ""
    return first.strip(_TRAILING).casefold()


def mcq_letter(text: str, tag: str) -> str | None:
    """The option letter after ``tag`` (or a bare letter reply); None when there is none."""
    m = re.search(re.escape(tag.rstrip(":：")) + r"\s*[:：]?[\s*]*([A-D])\b", text, re.I)
    if m:
        return m.group(1).upper()
    bare = text.strip().strip("*. ").upper()
    return bare if bare in {"A", "B", "C", "D"} else None


def tool_call(text: str) -> tuple[str, dict] | None:
    """The first tool call in ``text`` (Gemma 3's format), read by the family's own parser."""
    calls = parse_reply(text, "gemma3").tool_calls
    if not calls:
        return None
    fn = calls[0]["function"]
    return fn["name"], json.loads(fn["arguments"])


def score_item(meta: dict, reply: str) -> bool:
    """Whether ``reply`` answers the held-out item described by ``meta`` correctly."""
    task = meta["task"]
    if task in ("mcq", "lookup"):
        return mcq_letter(reply, meta["tag"]) == meta["letter"]
    if task == "marvl":  # the verdict is the last line, after the facts compared
        said = norm(reply.strip().rsplit("\n", 1)[-1])
        if said == norm(meta["true_word"]):
            return bool(meta["label"])
        if said == norm(meta["false_word"]):
            return not meta["label"]
        return False
    if task == "toolcall":
        call = tool_call(reply)
        return call is not None and call == (meta["tool"], meta["arguments"])
    return norm(reply) == norm(meta["answer"])


def chance_levels() -> dict[str, float]:
    """% a uniform guess over the world's answers scores, per question type.

    From the synthetic world's own tables (so it stays right if the world grows):
    colours, shapes, counts 1-4 (fruits 1-3), countries, fruits; the capital in a tool
    call; 4 MCQ options; true/false.
    """
    from sealion_vl.nano.synth import COLOURS, COUNTRIES, COUNTS, FRUITS, SHAPES

    sizes = {
        "colour": len(COLOURS),
        "shape": len(SHAPES),
        "count": len(COUNTS),
        "fruit_count": 3,
        "flag": len(COUNTRIES),
        "fruit": len(FRUITS),
        "toolcall": len(COUNTRIES),
        "mcq": 4,
        "lookup": 4,
        "marvl": 2,
    }
    return {k: round(100.0 / n, 1) for k, n in sizes.items()}


def _bucket(meta: dict) -> str:
    return meta.get("question", meta["task"]) if meta["task"] == "vqa" else meta["task"]


def _prompt(record: dict) -> list[dict]:
    """The conversation up to (not including) the final assistant reply, paths absolute."""
    msgs = record["messages"][:-1]
    return msgs


def load_items(folder: Path, limit: int | None = None) -> list[dict]:
    """Held-out conversation records (``sft.jsonl``) with image paths made absolute."""
    rows = []
    for line in (folder / "sft.jsonl").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        for m in rec["messages"]:
            if isinstance(m["content"], list):
                for p in m["content"]:
                    if p.get("type") == "image" and "path" in p:
                        p["path"] = str(folder / p["path"])
        rows.append(rec)
    return rows[:limit] if limit else rows


def evaluate(
    model,
    folder: Path,
    *,
    batch_size: int = 16,
    limit: int | None = None,
    max_new_tokens: int = 24,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Score ``model`` (a :class:`sealion_vl.ChatModel`) on a held-out synthetic split.

    Returns:
        ``{"tasks": {bucket: {lang: {"n", "correct", "accuracy", "chance"}}},
        "captions": {lang: {"n", "chrf++"}}, "by_kind": {"mcq" | "marvl": {question or
        hypothesis: {"n", "correct", "accuracy"}}}, "n": total}`` with accuracy and chance in %.
    """
    from sacrebleu.metrics import CHRF

    items = load_items(folder, limit)
    replies: list[str] = []
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        out = model.chat_batch(
            [_prompt(r) for r in chunk], max_new_tokens=max_new_tokens, temperature=0
        )
        replies.extend(r.text for r in out)
        if progress:
            progress(len(replies), len(items))
    scores: dict = defaultdict(lambda: defaultdict(lambda: {"n": 0, "correct": 0}))
    by_kind: dict = defaultdict(lambda: defaultdict(lambda: {"n": 0, "correct": 0}))
    caps: dict = defaultdict(lambda: ([], []))
    for rec, reply in zip(items, replies, strict=True):
        meta = rec["meta"]
        if meta["task"] == "caption":
            hyp, refs = caps[meta["lang"]]
            hyp.append(reply.strip())
            refs.append(meta["answer"])
            continue
        bucket = _bucket(meta)
        ok = int(score_item(meta, reply))
        cells = [scores[bucket][meta["lang"]]]
        if bucket in ("mcq", "marvl"):  # which question / hypothesis: what is (not) learned
            cells.append(by_kind[bucket][meta.get("concept") or meta["question"]])
        for cell in cells:
            cell["n"] += 1
            cell["correct"] += ok
    chance = chance_levels()
    tasks = {}
    for bucket, langs in scores.items():
        tasks[bucket] = {
            lang: {**_with_accuracy(c), "chance": chance.get(bucket, 0.0)}
            for lang, c in sorted(langs.items())
        }
    chrf = CHRF(word_order=2)
    captions = {
        lang: {"n": len(h), "chrf++": round(chrf.corpus_score(h, [r]).score, 1)}
        for lang, (h, r) in sorted(caps.items())
    }
    breakdown = {
        bucket: {k: _with_accuracy(c) for k, c in sorted(kinds.items())}
        for bucket, kinds in sorted(by_kind.items())
    }
    return {"n": len(items), "tasks": tasks, "captions": captions, "by_kind": breakdown}


def _with_accuracy(cell: dict) -> dict:
    """``{"n", "correct"}`` plus ``accuracy`` in % (one decimal)."""
    return {**cell, "accuracy": round(100.0 * cell["correct"] / cell["n"], 1)}


def far_above_chance(accuracy: float, chance: float) -> bool:
    """At least halfway from chance to 100%: the error rate is at most half a guesser's.

    One rule for 2-way and 11-way tasks alike (2x chance is meaningless for true/false).
    """
    return accuracy >= chance + (100.0 - chance) / 2


def summary(result: dict) -> dict:
    """Per-task accuracy averaged over languages (and over all items), for a short table."""
    out = {}
    for bucket, langs in result["tasks"].items():
        n = sum(c["n"] for c in langs.values())
        correct = sum(c["correct"] for c in langs.values())
        out[bucket] = {
            "n": n,
            "accuracy": round(100.0 * correct / max(1, n), 1),
            "chance": next(iter(langs.values()))["chance"],
        }
    return out

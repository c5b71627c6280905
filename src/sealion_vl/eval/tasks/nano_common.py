"""The hooks of the ``nano_*`` task folders: nano's held-out synthetic split as eval tasks.

Each ``nano_<kind>/task.yaml`` names this module (``hooks: sealion_vl.eval.tasks.nano_common``)
and its item kind (``params: {kind: <kind>}``), so the six tasks load, prompt and score
exactly like ``sealion_vl.nano.evaluate`` (the numbers on nano's card):

* **Docs** are the records of nano's held-out split (``sft.jsonl``: ``id``, ``messages``,
  ``meta``), of one item kind and one language, in file order. The split is the one
  ``sealion-vl nano build`` evaluates: ``generate(part="sea", split="heldout",
  n=BuildPlan.n_heldout, seed=BuildPlan.seed)``. It is read from ``<data_dir>/sea/heldout``
  (a nano build's ``work/data`` folder, or one written by the generator) or generated there
  (or, without a data dir, into a temporary folder once per process).
* **Disjoint from training**: the generator draws item ``i`` of a split from its own RNG
  seeded with ``(version, seed, part, split, i)``, so "heldout" and "train" are different
  random streams; a folder whose ``synth.json`` is not a "sea"/"heldout" split is refused.
* **Items**: the conversation nano is evaluated on (all messages but the gold reply), sent
  as is (``Item.conversation``: the system turn, images before the text, as nano learnt);
  ``Item.prompt`` is the text with any system text folded in, for reports and keys.
* **Scores**: nano's own per-item rules (``nano.evaluate.score_item``): the MCQ letter after
  the language's tag, MARVL's verdict on the last line, exact short answers, tool calls read
  by the Gemma 3 parser, chrF++ (sacrebleu, word order 2) for captions. Choice tasks also
  report SEA-HELM-style balanced and normalised accuracy.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
import threading
import warnings
from functools import cache
from pathlib import Path

from sealion_vl.errors import EvalDataError
from sealion_vl.eval.types import Item, TaskScore

NULL = "null"
PART, SPLIT = "sea", "heldout"
#: The parts a task may read (``params.part``): nano's SEA split (eight languages, the
#: default) and the general split (English shape scenes: what stage 1 alone learned).
PARTS = ("sea", "general")
_LOCK = threading.Lock()


def plan_defaults(part: str = PART) -> tuple[int, int]:
    """``(n, seed)`` of the held-out split of ``part`` that nano's build evaluates (its
    card's numbers)."""
    from sealion_vl.nano.build import BuildPlan

    plan = BuildPlan()
    return (plan.n_heldout if part == PART else plan.n_general_heldout), plan.seed


def part_of(task) -> str:
    """The synthetic part a nano task reads (``params.part``, default "sea")."""
    value = task.spec.params.get("part", PART)
    if value not in PARTS:
        raise EvalDataError(f"task {task.name!r}: params.part is {value!r}; expected one of {PARTS}")
    return value


def _check_folder(folder: Path, part: str = PART) -> Path:
    """``folder`` if it is a held-out split of ``part``, else a clear error."""
    manifest = folder / "synth.json"
    if not (folder / "sft.jsonl").is_file() or not manifest.is_file():
        raise EvalDataError(
            f"{folder} is not a synthetic split written by sealion_vl.nano.synth.generate "
            "(needs sft.jsonl and synth.json)"
        )
    info = json.loads(manifest.read_text(encoding="utf-8"))
    if (info.get("part"), info.get("split")) != (part, SPLIT):
        raise EvalDataError(
            f"{folder} holds part {info.get('part')!r}, split {info.get('split')!r}; this nano "
            f"task evaluates only part {part!r}, split {SPLIT!r} (never training items)"
        )
    return folder


@cache
def _temporary_split(part: str, n: int, seed: int) -> Path:
    from sealion_vl.nano.synth import generate

    root = Path(tempfile.mkdtemp(prefix="sealion-vl-nano-heldout-"))
    atexit.register(shutil.rmtree, root, True)
    generate(root / part / SPLIT, part=part, split=SPLIT, n=n, seed=seed)
    return root / part / SPLIT


def heldout_folder(data_dir: Path | None, part: str = PART) -> Path:
    """The held-out split of ``part``: ``<data_dir>/<part>/heldout`` (generated there if
    absent), else a temporary folder generated once per process."""
    n, seed = plan_defaults(part)
    with _LOCK:
        if data_dir is None:
            return _check_folder(_temporary_split(part, n, seed), part)
        folder = Path(data_dir).expanduser() / part / SPLIT
        if not (folder / "sft.jsonl").is_file():
            from sealion_vl.nano.synth import generate

            generate(folder, part=part, split=SPLIT, n=n, seed=seed)
        return _check_folder(folder, part)


KINDS = ("vqa", "mcq", "lookup", "marvl", "caption", "toolcall")


def kind(task) -> str:
    """The task's item kind, from its ``params`` (one of :data:`KINDS`)."""
    value = task.spec.params.get("kind")
    if value not in KINDS:
        raise EvalDataError(
            f"task {task.name!r}: params.kind is {value!r}; the nano hooks need one of {KINDS}"
        )
    return value


def load_docs(task, lang: str, *, data_dir=None, limit=None) -> list[dict]:
    """The held-out records of the task's kind in ``lang``, in file order, image paths
    absolute (generated deterministically if absent)."""
    from sealion_vl.nano.evaluate import load_items

    task.lang_spec(lang)
    kind_ = kind(task)
    docs = [
        r
        for r in load_items(heldout_folder(data_dir, part_of(task)))
        if r["meta"]["task"] == kind_ and r["meta"]["lang"] == lang
    ]
    if not docs:
        raise EvalDataError(
            f"task {task.name!r} [{lang}]: the {part_of(task)} held-out split has no {kind_} items"
        )
    return docs[:limit] if limit is not None else docs


def gold(meta: dict):
    """The gold answer of a held-out item as the scorers compare it."""
    kind = meta["task"]
    if kind in ("mcq", "lookup"):
        return meta["letter"]
    if kind == "marvl":
        return meta["true_word"] if meta["label"] else meta["false_word"]
    if kind == "caption":
        return [meta["answer"]]
    return meta["answer"]


def to_fields(task, doc: dict, lang: str) -> dict:
    """Prompt text (system folded in), the images in order, gold and breakdown keys."""
    msgs = doc.get("messages") or []
    if not msgs or msgs[-1].get("role") != "assistant" or "meta" not in doc:
        raise EvalDataError(
            f"task {task.name!r}: doc {doc.get('id')!r} is not a nano held-out record "
            "(id, messages ending with the gold reply, meta)"
        )
    prompt = msgs[:-1]  # what nano.evaluate sends: everything but the gold reply
    system = "\n\n".join(m["content"].strip() for m in prompt if m["role"] == "system")
    user = [m for m in prompt if m["role"] == "user"][-1]["content"]
    parts = user if isinstance(user, list) else [{"type": "text", "text": user}]
    text = "".join(p["text"].strip() for p in parts if p.get("type") == "text")
    images = []
    for p in parts:
        if p.get("type") == "image" and p.get("path") and Path(p["path"]).is_file():
            images.append(Path(p["path"]).read_bytes())
    meta = doc["meta"]
    return {
        "values": {"prompt": f"{system}\n\n{text}" if system else text},
        "images": images,
        "conversation": _conversation(prompt),
        "gold": gold(meta),
        "meta": {k: meta[k] for k in ("question", "concept") if k in meta},
    }


def _conversation(msgs: list[dict]) -> list[dict]:
    """The messages exactly as nano.evaluate sends them (system turn, images where the
    record puts them), image paths read into bytes."""
    out = []
    for m in msgs:
        content = m["content"]
        if isinstance(content, list):
            parts = []
            for p in content:
                if p.get("type") != "image":
                    parts.append(p)
                elif p.get("path") and Path(p["path"]).is_file():  # absent: a replies file
                    parts.append({"type": "image", "image": Path(p["path"]).read_bytes()})
            content = parts
        out.append({"role": m["role"], "content": content})
    return out


def _meta(item: Item) -> dict:
    meta = item.doc.get("meta")
    if not isinstance(meta, dict):
        raise EvalDataError(f"{item.task} [{item.lang}]: item {item.id!r} has no nano meta")
    return meta


def _pair_check(items, responses, lang: str) -> None:
    if len(items) != len(responses):
        raise EvalDataError(
            f"{items[0].task if items else '?'} [{lang}]: {len(responses)} responses for "
            f"{len(items)} items; they must pair one to one"
        )


def _choice_metrics(golds: list[str], preds: list[str]) -> dict:
    """SEA-HELM's names: balanced accuracy, normalised by the distinct golds, macro F1."""
    from sklearn.metrics import balanced_accuracy_score, f1_score

    if not golds:
        return {"accuracy": 0.0, "normalized_accuracy": 0.0, "macro_f1": 0.0, "null_count": 0}
    k = len(set(golds))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        acc = float(balanced_accuracy_score(golds, preds))
        f1 = float(f1_score(golds, preds, average="macro"))
    norm = 0.0 if k <= 1 else max((acc - 1 / k) / (1 - 1 / k), 0.0)
    return {
        "accuracy": 100 * acc,
        "normalized_accuracy": 100 * norm,
        "macro_f1": 100 * f1,
        "null_count": sum(p == NULL for p in preds),
    }


def extract(meta: dict, reply: str | None) -> str:
    """What nano's rule reads from ``reply``: a letter, a verdict word, a call, or the text."""
    from sealion_vl.nano.evaluate import mcq_letter, norm, tool_call

    text = reply or ""
    kind = meta["task"]
    if kind in ("mcq", "lookup"):
        return mcq_letter(text, meta["tag"]) or NULL
    if kind == "marvl":
        said = norm(text.strip().rsplit("\n", 1)[-1])
        for word in (meta["true_word"], meta["false_word"]):
            if said == norm(word):
                return word
        return NULL
    if kind == "toolcall":
        try:
            call = tool_call(text)
        except Exception:  # noqa: BLE001 - an unreadable call is no call
            call = None
        return NULL if call is None else json.dumps([call[0], call[1]], ensure_ascii=False)
    return text.strip()


def score_exact(items: list[Item], responses: list[str | None], *, lang: str) -> TaskScore:
    """nano's per-item rule for every item; choice kinds add balanced/normalised accuracy.

    ``metrics["accuracy"]`` is balanced accuracy for choice kinds (mcq, lookup, marvl; as
    SEA-HELM), the plain share correct otherwise; ``diagnostics["raw_accuracy"]`` is always
    the plain share correct (nano's card), with the chance level per question type.
    """
    from sealion_vl.nano.evaluate import chance_levels, score_item

    _pair_check(items, responses, lang)
    chance = chance_levels()
    per_item, golds, preds, by_q = [], [], [], {}
    for it, reply in zip(items, responses, strict=True):
        meta = _meta(it)
        try:
            ok = bool(score_item(meta, reply or ""))
        except Exception:  # noqa: BLE001 - a reply nano's rules cannot read is wrong
            ok = False
        got = extract(meta, reply)
        per_item.append({"id": it.id, "extracted": got, "gold": it.gold, "score": int(ok)})
        golds.append(str(it.gold))
        preds.append(got)
        q = meta.get("question", meta["task"]) if meta["task"] == "vqa" else meta["task"]
        cell = by_q.setdefault(q, {"n": 0, "correct": 0, "chance": chance.get(q, 0.0)})
        cell["n"] += 1
        cell["correct"] += int(ok)
    raw = 100.0 * sum(p["score"] for p in per_item) / len(per_item) if per_item else 0.0
    for cell in by_q.values():
        cell["accuracy"] = 100.0 * cell["correct"] / cell["n"]
    choice = bool(items) and _meta(items[0])["task"] in ("mcq", "lookup", "marvl")
    metrics = _choice_metrics(golds, preds) if choice else {"accuracy": raw}
    diagnostics = {"raw_accuracy": raw, "n": len(per_item), "by_question": by_q}
    return TaskScore(metrics=metrics, per_item=per_item, diagnostics=diagnostics)


def score(items: list[Item], responses: list[str | None], *, lang: str, task) -> TaskScore:
    """nano.evaluate's per-item rule for the task's kind: chrF++ for captions
    (:func:`score_caption`), the exact rules otherwise (:func:`score_exact`)."""
    fn = score_caption if kind(task) == "caption" else score_exact
    return fn(items, responses, lang=lang)


def score_caption(items: list[Item], responses: list[str | None], *, lang: str) -> TaskScore:
    """Corpus chrF++ of the stripped replies against each image's one reference caption
    (as ``nano.evaluate``), plus each item's sentence chrF++ as its score."""
    from sacrebleu.metrics import CHRF

    _pair_check(items, responses, lang)
    if not items:
        return TaskScore(metrics={"chrf++": 0.0}, per_item=[])
    chrf = CHRF(word_order=2)
    hyps = [(r or "").strip() for r in responses]
    refs = [it.gold[0] for it in items]
    per_item = [
        {"id": it.id, "extracted": h, "gold": r, "score": chrf.sentence_score(h, [r]).score}
        for it, h, r in zip(items, hyps, refs, strict=True)
    ]
    corpus = float(chrf.corpus_score(hyps, [refs]).score)
    return TaskScore(metrics={"chrf++": corpus}, per_item=per_item, diagnostics={"n": len(items)})

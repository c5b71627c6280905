"""``sealion-vl eval score``: SEA-HELM's scores for replies made anywhere, without a model.

Each line of the replies file is ``{"task", "lang", "doc", "response"}``: ``doc`` a row in
the public dataset's schema (image columns optional; for WorldCuisines its ``options`` and
``mcq_answer_index`` in the order the model was shown), ``response`` the model's reply (or
null). Lines are grouped by task and language in file order and scored as one run.
"""

from __future__ import annotations

import json
from pathlib import Path

from sealion_vl.errors import EvalDataError
from sealion_vl.eval.outputs import write_run_outputs
from sealion_vl.eval.scoring import Group


def read_replies(path: Path, task_dirs=()) -> list[Group]:
    """Parse and check a replies file; every problem names its line number."""
    from sealion_vl.eval.task import load_task

    path = Path(path)
    if not path.is_file():
        raise EvalDataError(f"replies file {path} does not exist")
    tasks: dict = {}
    groups: dict = {}
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as e:
                raise EvalDataError(f"{path}:{n}: not JSON ({e})") from None
            if not isinstance(rec, dict):
                raise EvalDataError(f"{path}:{n}: expected an object, got {type(rec).__name__}")
            missing = [k for k in ("task", "lang", "doc", "response") if k not in rec]
            if missing:
                raise EvalDataError(f"{path}:{n}: missing {', '.join(missing)}")
            if not isinstance(rec["doc"], dict):
                raise EvalDataError(f"{path}:{n}: 'doc' must be an object (a dataset row)")
            resp = rec["response"]
            if resp is not None and not isinstance(resp, str):
                raise EvalDataError(f"{path}:{n}: 'response' must be a string or null")
            name, lang = str(rec["task"]), str(rec["lang"])
            if name not in tasks:
                tasks[name] = load_task(name, task_dirs)
            task = tasks[name]
            if lang not in task.languages:
                raise EvalDataError(
                    f"{path}:{n}: task {name!r} has no language {lang!r} "
                    f"(it has {', '.join(task.languages)})"
                )
            groups.setdefault((name, lang), (task, []))[1].append((n, rec))
    if not groups:
        raise EvalDataError(f"replies file {path} has no lines")
    out = []
    for (name, lang), (task, recs) in groups.items():
        try:
            task.validate([rec["doc"] for _, rec in recs], lang)  # names every bad row at once
        except EvalDataError as e:
            raise EvalDataError(f"{path}: {e}") from None
        g = Group(task, lang, [], [], [])
        for n, rec in recs:
            try:
                g.items.append(task.item(rec["doc"], lang))
            except EvalDataError as e:
                raise EvalDataError(f"{path}:{n}: {e}") from None
            except OSError as e:
                raise EvalDataError(f"{path}:{n}: image not readable ({e})") from None
            except (KeyError, TypeError, ValueError, IndexError) as e:
                raise EvalDataError(
                    f"{path}:{n}: the doc is not a {name} row ({type(e).__name__}: {e})"
                ) from None
            g.responses.append(rec["response"])
            g.errors.append(None)
        out.append(g)
    return out


def score_replies(replies: Path, out: Path, *, task_dirs=(), clip_model: str | None = None) -> dict:
    """Score a replies file as SEA-HELM would and write ``out`` (results.json, items.jsonl,
    diagnostics.json, headline.json, config.json).

    Returns:
        SEA-HELM's nested results.
    """
    groups = read_replies(Path(replies), task_dirs)
    config = {
        "model": Path(replies).stem,
        "replies": str(replies),
        "tasks": {},
        "runs": 1,
        "clip_model": clip_model,
    }
    for g in groups:
        config["tasks"].setdefault(g.task.name, []).append(g.lang)
    return write_run_outputs(Path(out), [(None, groups)], config, clip=clip_model)

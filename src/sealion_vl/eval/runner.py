"""``sealion-vl eval run``: generate replies for SEA-HELM tasks (local model or endpoint),
resumably, then score every run and aggregate them as SEA-HELM does.

Order of work: every task/language is loaded and its labels checked before the first
request (so a bad split is refused, not half-evaluated); replies go to the per-item store as
they finish (so a kill loses only requests in flight); scores are computed from the store in
the items' own order (so they do not depend on completion order and a resumed run writes the
same bytes as an uninterrupted one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sealion_vl.errors import EvalDataError
from sealion_vl.eval.backends import EndpointBackend, LocalBackend, Request
from sealion_vl.eval.outputs import write_run_outputs
from sealion_vl.eval.progress import EvalProgress
from sealion_vl.eval.scoring import Group
from sealion_vl.eval.store import ReplyStore, item_key

#: SEA-HELM's eight run seeds, in its order.
SEAHELM_SEEDS = [25008113, 42008474, 15226423, 28126671, 19128282, 39305000, 17765035, 23194592]


class EvalRunConfig(BaseModel):
    """Everything that decides an evaluation run (saved, resolved, beside the results)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="Checkpoint (catalog name, folder, hub id) or served name.")
    tasks: list[str] = Field(description="Task names (or task folders).")
    out: Path = Field(description="Output folder; rerunning into it resumes.")
    langs: list[str] | None = Field(None, description="Only these languages (default: all).")
    runs: int = Field(8, ge=1, description="Runs; seeds are SEA-HELM's eight unless given.")
    seeds: list[int] | None = Field(None, description="Explicit seeds (one run per seed).")
    endpoint: str | None = Field(None, description="OpenAI-compatible API base URL.")
    api_key: str | None = Field(None, exclude=True, description="Bearer token (not saved).")
    concurrency: int = Field(8, ge=1, description="Endpoint requests in flight.")
    limit: int | None = Field(None, ge=1, description="First N items per task and language.")
    data_dir: Path | None = Field(None, description="Local copies of the datasets.")
    task_dirs: list[Path] = Field(default_factory=list, description="Extra task folders.")
    generation: dict[str, Any] = Field(
        default_factory=dict, description="Generation settings over the checkpoint's."
    )
    clip_model: str | None = Field(None, description="CLIP model for RefCLIPScore.")
    retry_errors: bool = Field(False, description="Regenerate items stored as errors.")

    def resolved_seeds(self) -> list[int]:
        if self.seeds:
            return list(self.seeds)
        if self.runs > len(SEAHELM_SEEDS):
            raise EvalDataError(
                f"--runs {self.runs}: SEA-HELM defines {len(SEAHELM_SEEDS)} seeds; "
                "give --seeds for more runs"
            )
        return SEAHELM_SEEDS[: self.runs]


#: Names ``--tasks`` expands: SEA-HELM's default vision group (per language, as its
#: task_config.yaml), that group plus SEA-IFEval, and nano's synthetic tasks (SEA split;
#: English general split).
GROUPS = {
    "vision": "the SEA-HELM default vision group",
    "seahelm": "the vision group and sea_ifeval",
    "nano": "nano's held-out synthetic tasks (the SEA split, eight languages)",
    "nano_general": "nano's held-out English shape scenes (what its general stage learned)",
}


def expand_tasks(names: list[str], task_dirs=()) -> list[tuple[Any, list[str] | None]]:
    """Task names (and group names, see :data:`GROUPS`) -> ``[(task, languages or None)]``."""
    from sealion_vl.eval.task import available_tasks, load_task

    out: list = []
    for name in names:
        if name in ("vision", "seahelm"):
            for folder in sorted(available_tasks(task_dirs).values()):
                task = load_task(folder)
                if task.default_group_languages:
                    out.append((task, task.default_group_languages))
            if name == "seahelm":
                out.append((load_task("sea_ifeval", task_dirs), None))
        elif name in ("nano", "nano_general"):
            part = "sea" if name == "nano" else "general"
            for tname, folder in sorted(available_tasks(task_dirs).items()):
                if tname.startswith("nano_"):
                    task = load_task(folder)
                    if task.spec.params.get("part", "sea") == part:
                        out.append((task, None))
        else:
            out.append((load_task(name, task_dirs), None))
    seen, unique = set(), []
    for task, langs in out:
        if task.name not in seen:
            seen.add(task.name)
            unique.append((task, langs))
    return unique


def plan_items(cfg: EvalRunConfig) -> list[tuple[Any, str, list]]:
    """Load every task and language asked for, labels checked, before any generation."""
    plan = []
    for task, group_langs in expand_tasks(cfg.tasks, cfg.task_dirs):
        langs = [
            lang for lang in (group_langs or task.languages) if not cfg.langs or lang in cfg.langs
        ]
        if not langs:
            if group_langs is not None:
                continue  # a group member without the asked languages: nothing to run
            raise EvalDataError(
                f"task {task.name!r} has none of the languages {cfg.langs}; "
                f"it has {', '.join(task.languages)}"
            )
        for lang in langs:
            plan.append((task, lang, task.items(lang, data_dir=cfg.data_dir, limit=cfg.limit)))
    if not plan:
        raise EvalDataError(f"nothing to evaluate for tasks {cfg.tasks} and languages {cfg.langs}")
    return plan


def run_eval(cfg: EvalRunConfig, *, chat_model=None, progress: bool = True) -> dict:
    """Evaluate a model on SEA-HELM-style tasks; resumable; returns the aggregated results.

    Args:
        cfg: the run's settings (see :class:`EvalRunConfig`).
        chat_model: an already loaded :class:`sealion_vl.ChatModel` to use instead of
            loading ``cfg.model`` (ignored with an endpoint).
        progress: draw a progress bar per task (items/s, ETA).

    Returns:
        SEA-HELM's nested results, averaged over runs (also written to ``out/results.json``).
    """
    seeds = cfg.resolved_seeds()
    plan = plan_items(cfg)
    settings = {k: v for k, v in cfg.generation.items() if v is not None}
    backend = _backend(cfg, chat_model)
    identity = backend.describe()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    keys: dict = {}
    unfinished: list[str] = []
    if hasattr(backend, "check"):
        backend.check()
    with ReplyStore(out / "store.jsonl", retry_errors=cfg.retry_errors) as store:
        bar = EvalProgress(enabled=progress)
        with bar:
            for task in _unique(t for t, _, _ in plan):
                todo, total, queued = [], 0, set()
                for t, lang, items in plan:
                    if t is not task:
                        continue
                    fp = task.fingerprint(lang)
                    for seed in seeds:
                        for i, item in enumerate(items):  # by position: ids may repeat
                            key = item_key(identity, fp, item, seed, settings)
                            keys[(task.name, lang, seed, i)] = key
                            total += 1
                            if key not in store and key not in queued:
                                queued.add(key)  # the same item twice is generated once
                                todo.append(_request(key, item, seed, settings))
                todo.sort(key=lambda r: r.size)  # length buckets: similar sizes batch together
                bar.start(task.name, total, total - len(todo))

                def done(req, text, error, usage, _name=task.name):
                    if usage.get("transient"):  # endpoint unreachable: retried on rerun
                        unfinished.append(error)
                    else:
                        store.put(req.key, text, error=error, **usage)
                    bar.advance(_name)

                backend.run(todo, done)
                bar.finish(task.name)
        if unfinished:
            raise EvalDataError(
                f"{len(unfinished)} items could not be generated ({unfinished[0]}); the "
                f"{len(store)} finished ones are kept in {out / 'store.jsonl'}: rerun the same "
                "command to resume"
            )
        runs = []
        for seed in seeds:
            groups = []
            for task, lang, items in plan:
                recs = [store.get(keys[(task.name, lang, seed, i)]) for i in range(len(items))]
                groups.append(
                    Group(
                        task, lang, items, [r["response"] for r in recs], [r["error"] for r in recs]
                    )
                )
            runs.append((seed, groups))
    config = _resolved_config(cfg, seeds, plan, identity)
    return write_run_outputs(out, runs, config, clip=cfg.clip_model)


def _request(key: str, item, seed: int, settings: dict) -> Request:
    gen = dict(settings)
    max_tokens = gen.pop("max_new_tokens", None) or item.max_tokens
    size = len(item.prompt) + 1000 * len(item.images)
    return Request(key, item.messages(), max_tokens, seed, gen, size)


def _backend(cfg: EvalRunConfig, chat_model):
    if cfg.endpoint:
        return EndpointBackend(
            cfg.endpoint, cfg.model, api_key=cfg.api_key, concurrency=cfg.concurrency
        )
    if chat_model is None:
        from sealion_vl.runtime.load import load

        chat_model = load(cfg.model)
    return LocalBackend(chat_model)


def _unique(tasks) -> list:
    seen: list = []
    for t in tasks:
        if all(t is not s for s in seen):
            seen.append(t)
    return seen


def _resolved_config(cfg: EvalRunConfig, seeds: list[int], plan, identity: dict) -> dict:
    import sealion_vl

    tasks: dict = {}
    versions: dict = {}
    for task, lang, _ in plan:
        tasks.setdefault(task.name, []).append(lang)
        versions[task.name] = task.version
    return {
        **identity,
        "tasks": tasks,
        "runs": len(seeds),
        "seeds": seeds,
        "generation": {"base": "the checkpoint's generation_config", **cfg.generation},
        "limit": cfg.limit,
        "task_versions": versions,
        "data_dir": str(cfg.data_dir) if cfg.data_dir else None,
        "clip_model": cfg.clip_model,
        "sealion_vl": getattr(sealion_vl, "__version__", "0.1.0"),
    }

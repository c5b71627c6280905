"""``eval run`` end to end on a tiny real checkpoint and fixture datasets in the public
schemas: outputs, resume without regenerating, SIGKILL then rerun giving byte-identical
results, error items, and the same numbers through our own server as from the engine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sealion_vl.errors import EvalDataError
from sealion_vl.eval.runner import SEAHELM_SEEDS, EvalRunConfig, run_eval
from tests.fixtures.eval_data import write_fixture_datasets

OUTPUTS = [
    "results.json",
    "results_stderr.json",
    "headline.json",
    "diagnostics.json",
    "items.jsonl",
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_fixture_datasets(tmp_path_factory.mktemp("eval-data"), n=8)


def _cfg(out: Path, data_dir: Path, **kw) -> EvalRunConfig:
    base = dict(model="tiny", tasks=["cvqa"], out=out, data_dir=data_dir, langs=["id", "ms"])
    base.update(kw)
    return EvalRunConfig(**base)


class Counting:
    """Wraps a ChatModel to count submitted requests (everything else passes through)."""

    def __init__(self, model) -> None:
        self.model, self.n = model, 0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def submit(self, *a, **kw):
        self.n += 1
        return self.model.submit(*a, **kw)


def test_run_writes_seahelm_shaped_outputs_and_resumes_without_regenerating(
    tmp_path, data_dir, chat_model
):
    model = Counting(chat_model("gemma3"))
    cfg = _cfg(tmp_path / "out", data_dir, runs=2, limit=5)
    result = run_eval(cfg, chat_model=model, progress=False)
    assert model.n == 2 * 2 * 5  # runs x languages x items
    out = tmp_path / "out"
    for name in OUTPUTS + ["config.json", "runs/25008113/results.json"]:
        assert (out / name).is_file(), name
    assert set(result) == {"id", "ms", "total"}
    cvqa = result["id"]["vision"]["cvqa"]
    assert {"accuracy", "normalized_accuracy", "macro_f1", "null_count"} <= set(cvqa)
    runs = [json.loads((out / f"runs/{s}/results.json").read_text()) for s in SEAHELM_SEEDS[:2]]
    mean = sum(r["id"]["vision"]["cvqa"]["accuracy"] for r in runs) / 2
    assert cvqa["accuracy"] == pytest.approx(mean)
    rows = [json.loads(x) for x in (out / "items.jsonl").read_text().splitlines()]
    assert len(rows) == 20
    assert {r["run"] for r in rows} == set(SEAHELM_SEEDS[:2])
    assert all(r["gold"] in "ABCD" and isinstance(r["response"], str) for r in rows)
    cfg_saved = json.loads((out / "config.json").read_text())
    assert cfg_saved["seeds"] == SEAHELM_SEEDS[:2] and cfg_saved["tasks"] == {"cvqa": ["id", "ms"]}
    assert "api_key" not in json.dumps(cfg_saved)
    before = {n: (out / n).read_bytes() for n in OUTPUTS}

    again = Counting(chat_model("gemma3"))
    run_eval(cfg, chat_model=again, progress=False)
    assert again.n == 0  # everything came from the store
    assert {n: (out / n).read_bytes() for n in OUTPUTS} == before

    more = Counting(chat_model("gemma3"))  # a larger --limit generates only the new items
    run_eval(_cfg(out, data_dir, runs=2, limit=7), chat_model=more, progress=False)
    assert more.n == 2 * 2 * 2


def test_a_broken_item_is_an_error_item_not_a_crashed_run(tmp_path, data_dir, chat_model):
    model = chat_model("gemma3")

    class Breaks(Counting):
        def submit(self, messages, **kw):
            self.n += 1
            if self.n == 2:
                from sealion_vl.errors import ContextLengthError

                raise ContextLengthError("prompt of 9999 tokens does not fit")
            return self.model.submit(messages, **kw)

    run_eval(
        _cfg(tmp_path, data_dir, runs=1, limit=3, langs=["id"]),
        chat_model=Breaks(model),
        progress=False,
    )
    rows = [json.loads(x) for x in (tmp_path / "items.jsonl").read_text().splitlines()]
    errors = [r for r in rows if r["error"]]
    assert len(errors) == 1 and errors[0]["error"].startswith("ContextLengthError")
    assert errors[0]["response"] is None and errors[0]["extracted"] == "null"
    diag = json.loads((tmp_path / "diagnostics.json").read_text())
    assert diag["cvqa"]["id"]["errors"] == 1


def test_hidden_labels_are_refused_before_any_generation(tmp_path, chat_model):
    data = write_fixture_datasets(tmp_path / "data", n=6, hidden_labels=True)
    model = Counting(chat_model("gemma3"))
    with pytest.raises(EvalDataError, match="cvqa") as e:
        run_eval(_cfg(tmp_path / "out", data, runs=1), chat_model=model, progress=False)
    assert "-1" in str(e.value) or "label" in str(e.value).lower()
    assert model.n == 0 and not (tmp_path / "out" / "results.json").exists()


def _cli(out: Path, data_dir: Path, ckpt: Path) -> list[str]:
    return [
        sys.executable, "-m", "sealion_vl.cli", "eval", "run", "--model", str(ckpt),
        "--tasks", "cvqa", "--langs", "id,ms,tl", "--runs", "2", "--limit", "8",
        "--data-dir", str(data_dir), "--out", str(out), "--no-progress",
    ]  # fmt: skip


def test_sigkill_then_rerun_gives_byte_identical_results(tmp_path, data_dir, checkpoint):
    ckpt = checkpoint("gemma3")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path.cwd())}
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(_cli(whole, data_dir, ckpt), env=env, check=True, capture_output=True)

    proc = subprocess.Popen(_cli(killed, data_dir, ckpt), env=env, stderr=subprocess.PIPE)
    store = killed / "store.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if store.exists() and len(store.read_bytes().splitlines()) >= 10:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(store.read_bytes().splitlines())
    assert 10 <= done_before < 48 and not (killed / "results.json").exists()

    subprocess.run(_cli(killed, data_dir, ckpt), env=env, check=True, capture_output=True)
    lines = [json.loads(x) for x in store.read_text().splitlines()]
    assert len(lines) == 48 == len({x["key"] for x in lines})  # nothing generated twice
    for name in OUTPUTS + ["runs/25008113/results.json", "runs/42008474/diagnostics.json"]:
        assert (killed / name).read_bytes() == (whole / name).read_bytes(), name


def test_our_server_as_endpoint_gives_the_local_engines_numbers(tmp_path, data_dir, checkpoint):
    """The same checkpoint through `sealion-vl serve` (real HTTP on loopback) and in-process."""
    import sealion_vl
    from tests.serve.conftest import start

    model = sealion_vl.load(checkpoint("gemma3"))
    server = start(model, key="k")
    try:
        kw = dict(runs=2, limit=4, langs=["id"])
        url = server.url + "/v1"
        with pytest.raises(EvalDataError, match="does not serve model 'tiny'.*gemma3"):
            run_eval(_cfg(tmp_path / "x", data_dir, endpoint=url, api_key="k"), progress=False)
        with pytest.raises(EvalDataError, match="refused the API key"):
            run_eval(_cfg(tmp_path / "y", data_dir, endpoint=url, api_key="no"), progress=False)
        remote = _cfg(
            tmp_path / "remote", data_dir, endpoint=url, api_key="k", model=model.name, **kw
        )
        run_eval(remote, progress=False)
    finally:
        server.stop()
    run_eval(_cfg(tmp_path / "local", data_dir, **kw), chat_model=model, progress=False)
    for name in ["results.json", "items.jsonl"]:
        assert (tmp_path / "remote" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    saved = json.loads((tmp_path / "remote" / "config.json").read_text())
    assert saved["endpoint"].startswith(server.url) and "k" not in saved.values()


def test_groups_expand_to_seahelms_default_vision_languages():
    from sealion_vl.eval.runner import expand_tasks

    got = {t.name: langs for t, langs in expand_tasks(["vision"])}
    assert got["cvqa"] == ["id", "ta", "tl", "zh", "ms"]  # not jv/su: SEA-HELM's group
    assert got["marvl"] == ["id", "ta"] and "mmstar" not in got and "sea_ifeval" not in got
    seahelm = {t.name: langs for t, langs in expand_tasks(["seahelm", "cvqa"])}
    assert seahelm["sea_ifeval"] is None and len(seahelm) == len(got) + 1
    nano = [t.name for t, _ in expand_tasks(["nano"])]
    assert sorted(nano) == sorted(
        ["nano_vqa", "nano_mcq", "nano_lookup", "nano_marvl", "nano_caption", "nano_toolcall"]
    )
    general = [t.name for t, _ in expand_tasks(["nano_general"])]
    assert sorted(general) == [f"nano_general_{k}" for k in ("caption", "lookup", "mcq", "vqa")]

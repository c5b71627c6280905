"""``eval score``: SEA-HELM's numbers for replies made elsewhere, checked against independent
computations (scikit-learn on labels we chose), and bad replies files refused by line."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from sklearn.metrics import balanced_accuracy_score
from typer.testing import CliRunner

from sealion_vl.cli import app
from sealion_vl.errors import EvalDataError
from sealion_vl.eval.score import score_replies
from sealion_vl.eval.task import load_task
from tests.fixtures.eval_data import write_fixture_datasets
from tests.fixtures.tiny_clip import build_tiny_clip


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_fixture_datasets(tmp_path_factory.mktemp("score-data"), n=10)


def _plain(doc: dict, task) -> dict:
    return {k: v for k, v in doc.items() if k not in task.spec.image_columns}


def _mcq_lines(task_name: str, lang: str, data_dir: Path, wrong_every=3):
    """Replies: right after the tag, wrong after the tag every 3rd, unreadable every 5th."""
    task = load_task(task_name)
    items = task.items(lang, data_dir=data_dir)
    docs = task.load_docs(lang, data_dir=data_dir)
    lines, golds, preds = [], [], []
    for i, (doc, it) in enumerate(zip(docs, items, strict=True)):
        if i % 5 == 4:
            resp, pred = "I cannot tell from this picture.", "null"
        elif i % wrong_every == 0:
            pred = next(lab for lab in it.labels if lab != it.gold)
            resp = f"{it.answer_tag} {pred}"
        else:
            pred, resp = it.gold, f"**{it.answer_tag}** {it.gold}"
        lines.append({"task": task_name, "lang": lang, "doc": _plain(doc, task), "response": resp})
        golds.append(it.gold)
        preds.append(pred)
    return lines, golds, preds


def _write(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines))
    return path


def _normalized(acc: float, k: int) -> float:
    return max((acc / 100 - 1 / k) / (1 - 1 / k), 0) * 100


def test_scores_equal_independent_computation_and_nest_like_seahelm(tmp_path, data_dir):
    lines, expect = [], {}
    for task, lang in [("cvqa", "id"), ("marvl", "zh"), ("world_cuisine_task1", "id"),
                       ("world_cuisine_task2", "id")]:  # fmt: skip
        ls, golds, preds = _mcq_lines(task, lang, data_dir)
        lines += ls
        acc = balanced_accuracy_score(golds, preds) * 100
        expect[(task, lang)] = (acc, _normalized(acc, len(set(golds))), preds)
    result = score_replies(_write(tmp_path / "r.jsonl", lines), tmp_path / "out")
    for (task, lang), (acc, norm, _) in expect.items():
        got = result[lang]["vision"][task]
        assert got["accuracy"] == pytest.approx(acc)
        assert got["normalized_accuracy"] == pytest.approx(norm)
    wc = [expect[(t, "id")][1] for t in ("world_cuisine_task1", "world_cuisine_task2")]
    vision_id = result["id"]["vision"]
    assert vision_id["world_cuisine"] == pytest.approx(sum(wc) / 2)  # macro-average group
    assert vision_id["total"] == pytest.approx((expect[("cvqa", "id")][1] + sum(wc) / 2) / 2)
    assert result["id"]["total"] == pytest.approx(vision_id["total"])
    assert result["total"] == pytest.approx((result["id"]["total"] + result["zh"]["total"]) / 2)
    rows = [json.loads(x) for x in (tmp_path / "out/items.jsonl").read_text().splitlines()]
    assert len(rows) == len(lines)
    cvqa = [r for r in rows if r["task"] == "cvqa"]
    golds = [r["gold"] for r in cvqa]
    # SEA-HELM quirk: only labels some gold of the run uses can be extracted
    want = [p if p in golds else "null" for p in expect[("cvqa", "id")][2]]
    assert [r["extracted"] for r in cvqa] == want
    assert all(set(r) >= {"task", "lang", "id", "extracted", "gold", "score"} for r in rows)
    saved = json.loads((tmp_path / "out/results.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert json.loads((tmp_path / "out/headline.json").read_text())["cvqa"] == "normalized_accuracy"


def test_worldcuisines_gold_is_the_order_the_model_was_shown(tmp_path, data_dir):
    task = load_task("world_cuisine_task1")
    doc = _plain(task.load_docs("en", data_dir=data_dir)[0], task)
    shown = dict(
        doc, options=list(reversed(doc["options"])), mcq_answer_index=4 - doc["mcq_answer_index"]
    )
    gold = "ABCDE"[shown["mcq_answer_index"]]
    line = {"task": task.name, "lang": "en", "doc": shown, "response": f"Answer: {gold}"}
    score_replies(_write(tmp_path / "r.jsonl", [line]), tmp_path / "out")
    row = json.loads((tmp_path / "out/items.jsonl").read_text())
    assert row["gold"] == gold and row["extracted"] == gold and row["score"] == 1


def test_ifeval_and_xm3600_through_score(tmp_path, data_dir):
    clip = build_tiny_clip(tmp_path / "clip")
    ife = load_task("sea_ifeval")
    lines = []
    for doc in ife.load_docs("id", data_dir=data_dir):
        lines.append({"task": "sea_ifeval", "lang": "id", "doc": doc, "response": None})
    xm = load_task("xm3600")
    for doc in xm.load_docs("id", data_dir=data_dir)[:4]:
        img = "data:image/jpeg;base64," + base64.b64encode(doc["image"]).decode()
        resp = f"Keterangan: {doc['captions'][0]}"
        lines.append(
            {"task": "xm3600", "lang": "id", "doc": {**doc, "image": img}, "response": resp}
        )
    result = score_replies(
        _write(tmp_path / "r.jsonl", lines), tmp_path / "out", clip_model=str(clip)
    )
    assert result["id"]["instruction-following"]["sea_ifeval"]["overall_lang_normalized_acc"] == 0
    xm_metrics = result["id"]["vision"]["xm3600"]
    assert 0 <= xm_metrics["normalized_refclipscore"] <= 100


def test_bad_lines_are_refused_naming_the_line(tmp_path, data_dir):
    ls, _, _ = _mcq_lines("cvqa", "id", data_dir)
    cases = {
        "not json": ("{oops\n", "r.jsonl:1: not JSON"),
        "missing": (
            json.dumps({"task": "cvqa", "lang": "id", "doc": {}}) + "\n",
            "missing response",
        ),
        "task": (json.dumps({**ls[0], "task": "nope"}) + "\n", "nope"),
        "lang": (json.dumps({**ls[0], "lang": "xx"}) + "\n", "no language 'xx'"),
        "doc": (json.dumps({**ls[0], "doc": {"ID": "1"}}) + "\n", "r.jsonl: .*Rows: 1"),
    }
    for name, (text, needle) in cases.items():
        p = tmp_path / name / "r.jsonl"
        p.parent.mkdir()
        p.write_text(text)
        with pytest.raises(EvalDataError, match=needle.replace("(", r"\(")):
            score_replies(p, tmp_path / name / "out")
        assert not (tmp_path / name / "out" / "results.json").exists()


def test_hidden_cvqa_labels_are_refused_naming_the_rows(tmp_path):
    data = write_fixture_datasets(tmp_path / "data", n=6, hidden_labels=True)
    task = load_task("cvqa")
    docs = task.load_docs("id", data_dir=data)
    lines = [
        {"task": "cvqa", "lang": "id", "doc": _plain(d, task), "response": "Jawaban: D"}
        for d in docs
    ]
    with pytest.raises(EvalDataError) as e:
        score_replies(_write(tmp_path / "r.jsonl", lines), tmp_path / "out")
    hidden = [d["ID"] for d in docs if d["Label"] == -1]
    assert hidden and all(h in str(e.value) for h in hidden)
    assert not (tmp_path / "out").exists()


def test_cli_score_and_report(tmp_path, data_dir):
    ls, _, _ = _mcq_lines("cvqa", "id", data_dir)
    replies = _write(tmp_path / "model-a.jsonl", ls)
    r = CliRunner().invoke(app, ["eval", "score", str(replies), "--out", str(tmp_path / "a")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(
        app, ["eval", "report", str(tmp_path / "a"), "--out", str(tmp_path / "r.html")]
    )
    assert r.exit_code == 0, r.output
    assert "cvqa" in (tmp_path / "r.html").read_text()
    r = CliRunner().invoke(
        app, ["eval", "score", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "b")]
    )
    assert r.exit_code == 2 and "does not exist" in " ".join(r.output.split())


def test_rows_without_an_id_column_get_a_stable_id_from_their_content(data_dir):
    task = load_task("sea_ifeval")
    docs = [
        {k: v for k, v in d.items() if k != "id"} for d in task.load_docs("id", data_dir=data_dir)
    ]
    ids = [task.item(d, "id").id for d in docs]
    assert all(i.startswith("row-") for i in ids) and len(set(ids)) == len(ids)
    assert ids == [task.item(d, "id").id for d in docs]


def test_cli_tasks_lists_every_shipped_task_with_its_group_languages():
    r = CliRunner().invoke(app, ["eval", "tasks", "--json"])
    assert r.exit_code == 0, r.output
    rows = {x["name"]: x for x in json.loads(r.output)}
    assert {"cvqa", "marvl", "xm3600", "sea_ifeval", "mmstar", "nano_mcq"} <= set(rows)
    assert rows["cvqa"]["default_group"] == ["id", "ta", "tl", "zh", "ms"]
    assert rows["sea_ifeval"]["metric"] == "overall_lang_normalized_acc"

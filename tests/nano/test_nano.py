"""nano: the smoke recipe end to end, and real checks on the shipped weights."""

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

import sealion_vl
from sealion_vl.nano.evaluate import (
    far_above_chance,
    mcq_letter,
    norm,
    score_item,
    summary,
    tool_call,
)

SHIPPED = Path(str(resources.files("sealion_vl"))) / "nano" / "checkpoint"
REPO = Path(__file__).resolve().parents[2]


def test_answer_reading_rules():
    assert mcq_letter("Jawapan: B", "Jawapan:") == "B"
    assert mcq_letter("jawapan :** c", "Jawapan:") == "C"
    assert mcq_letter("D.", "Jawapan:") == "D"
    assert mcq_letter("Saya rasa B", "Jawapan:") is None
    assert mcq_letter("Merah\nJawapan: B", "Jawapan:") == "B"  # nano names the option first
    lookup = {"task": "lookup", "tag": "Answer:", "letter": "C", "answer": "Blue\nAnswer: C"}
    assert score_item(lookup, "Blue\nAnswer: C") and not score_item(lookup, "Blue\nAnswer: A")
    assert norm(" Merah.\nextra") == "merah" and norm("ဗီယက်နမ်။") == "ဗီယက်နမ်"
    call = tool_call('```tool_code\nget_weather(city="Hanoi")\n```')
    assert call == ("get_weather", {"city": "Hanoi"})
    meta = {
        "task": "marvl",
        "label": False,
        "true_word": "Benar",
        "false_word": "Salah",
        "answer": "Salah",
    }
    assert score_item(meta, "Salah.") and not score_item(meta, "Benar")
    assert not score_item(meta, "Mungkin")
    # nano writes the facts it compared, then the verdict on the last line
    assert score_item(meta, "Laos\nSalah") and not score_item(meta, "Salah\nBenar")
    # "far above chance": at least halfway from chance to perfect
    assert far_above_chance(75.0, 50.0) and not far_above_chance(74.9, 50.0)
    assert far_above_chance(55.0, 10.0) and not far_above_chance(30.0, 10.0)


def test_smoke_recipe_runs_end_to_end(tmp_path):
    from sealion_vl.nano.build import SMOKE, build_nano

    result = build_nano(tmp_path, SMOKE, progress=False, log=lambda m: None)
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "README.md",
        "eval.json",
        "recipe.resolved.yaml",
    ):
        assert (tmp_path / name).is_file(), name
    assert set(result["final"]["tasks"]) >= {"mcq", "marvl", "toolcall"}  # vqa: random questions
    assert set(result["warmup"]["tasks"]) == {"lookup"}
    assert list(result["train_seconds"]) == ["nano-warmup", "nano-general", "nano-cpt", "nano-sft"]
    assert set(result["final"]["by_kind"]) == {"mcq", "marvl"}
    for bucket, kinds in result["final"]["by_kind"].items():  # MCQ / MARVL split up, nothing lost
        task = result["final"]["tasks"][bucket]
        for key in ("n", "correct"):
            assert sum(c[key] for c in kinds.values()) == sum(c[key] for c in task.values())
    card = (tmp_path / "README.md").read_text()
    assert "sealion-vl nano build OUT" in card and "not** a SEA-LION release" in card
    m = sealion_vl.load(tmp_path)
    assert m.adapter.name == "gemma3" and m.chat("Hi", max_new_tokens=2).completion_tokens


def test_eval_names_a_folder_that_is_not_a_heldout_split(tmp_path):
    from typer.testing import CliRunner

    from sealion_vl.cli import app

    res = CliRunner().invoke(app, ["nano", "eval", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "no sft.jsonl" in res.output


def test_build_is_deterministic(tmp_path):
    # The card's numbers are reproducible only if the same command gives the same weights:
    # same data, tokenizer, initialisation, batches and updates, bit for bit.
    import hashlib

    from sealion_vl.nano.build import SMOKE, build_nano

    results, digests = [], []
    for name in ("a", "b"):
        results.append(build_nano(tmp_path / name, SMOKE, progress=False, log=lambda m: None))
        digests.append(
            hashlib.sha256((tmp_path / name / "model.safetensors").read_bytes()).digest()
        )
    assert digests[0] == digests[1]
    assert results[0]["final"] == results[1]["final"]
    assert results[0]["general"] == results[1]["general"]


needs_shipped = pytest.mark.skipif(
    not (SHIPPED / "config.json").exists(), reason="nano checkpoint not built into the package"
)


@needs_shipped
def test_shipped_nano_is_small_and_loads_like_the_model_cards_say():
    from transformers import pipeline

    size = sum(f.stat().st_size for f in SHIPPED.iterdir())
    assert size <= 25 * 2**20
    m = sealion_vl.load("nano")
    image = str(REPO / "examples" / "vietnam-flag.png")
    msgs = [
        {
            "role": "user",
            "content": [
                {"type": "image", "url": image},
                {"type": "text", "text": "Ini bendera negara mana?"},
            ],
        }
    ]
    pipe = pipeline("image-text-to-text", model=str(SHIPPED))
    out = pipe(text=msgs, max_new_tokens=8, generate_kwargs={"do_sample": False})
    assert out[0]["generated_text"][-1]["content"] == m.chat(msgs, max_new_tokens=8).text


def test_card_lists_weak_tasks_with_their_numbers_or_says_none(tmp_path):
    import copy

    from sealion_vl.nano.card import write_card

    result = json.loads((SHIPPED / "eval.json").read_text())
    weak = copy.deepcopy(result)
    for cell in weak["final"]["tasks"]["shape"].values():
        cell["correct"], cell["accuracy"] = 0, 0.0
    write_card(tmp_path / "weak.md", weak)
    text = (tmp_path / "weak.md").read_text()
    verdict = text.split("**Not yet**: ")[1].split("\n")[0]
    assert verdict.startswith("shape (0 vs chance 33)") and "learned partly" in verdict
    strong = copy.deepcopy(result)
    for task in strong["final"]["tasks"].values():
        for cell in task.values():
            cell["correct"], cell["accuracy"] = cell["n"], 100.0
    write_card(tmp_path / "strong.md", strong)
    text = (tmp_path / "strong.md").read_text()
    assert text.split("**Not yet**: ")[1].split("\n")[0] == "none."


@needs_shipped
def test_shipped_card_is_its_eval_json_rendered(tmp_path):
    # the card's prose and numbers come only from eval.json: no hand edits to drift apart
    from sealion_vl.nano.card import write_card
    from sealion_vl.nano.demos.card import SAVED, apply_saved

    result = json.loads((SHIPPED / "eval.json").read_text())
    write_card(tmp_path / "README.md", result)
    apply_saved(tmp_path / "README.md", SHIPPED / SAVED)  # the demonstrations' saved blocks
    card = (tmp_path / "README.md").read_text()
    assert card == (SHIPPED / "README.md").read_text()
    for build in result.get("other_builds", []):  # every timed build of these weights
        minutes = sum(build["train_seconds"].values()) / 60
        assert f"built at {build['commit']}" in card
        assert f"{minutes:.1f} min of training" in card


@needs_shipped
def test_shipped_nano_reaches_its_card_accuracy(tmp_path):
    from sealion_vl.nano.evaluate import evaluate
    from sealion_vl.nano.synth import generate

    card = json.loads((SHIPPED / "eval.json").read_text())
    plan = card["plan"]
    generate(tmp_path, part="sea", split="heldout", n=plan["n_heldout"], seed=plan["seed"])
    got = summary(evaluate(sealion_vl.load("nano"), tmp_path, batch_size=32))
    want = summary(card["final"])
    for task, row in want.items():  # the card's numbers are what the weights really do
        assert got[task]["n"] == row["n"]
        assert abs(got[task]["accuracy"] - row["accuracy"]) <= 1.0, (task, got[task], row)
    # nano really sees: recognising flags, fruits and colours (and calling the weather tool
    # for the flag's capital) is far above chance in all languages together; whatever else
    # the card lists as far above chance must hold too
    card_text = (SHIPPED / "README.md").read_text()
    claimed = {t for t, row in want.items() if far_above_chance(row["accuracy"], row["chance"])}
    assert {"flag", "fruit", "colour", "toolcall"} <= claimed
    for task in claimed:
        assert far_above_chance(got[task]["accuracy"], got[task]["chance"]), (task, got[task])
        assert task in card_text.split("**Far above chance**")[1].split("**Not yet**")[0]


@needs_shipped
def test_readme_main_command_answers_correctly():
    readme = (REPO / "README.md").read_text().split("```bash", 1)[1].split("```", 1)[0]
    main = [line for line in readme.splitlines() if line.startswith("sealion-vl chat")][0]
    cmd = main.split("#", 1)[0].strip()
    assert "--model" not in cmd  # nano is the default
    res = subprocess.run(
        [sys.executable, "-m", "sealion_vl.cli", *_split(cmd)[1:]],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().rstrip(".") == "Vietnam"


def _split(cmd: str) -> list[str]:
    import shlex

    return shlex.split(cmd)

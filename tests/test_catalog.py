import json

from typer.testing import CliRunner

from sealion_vl import catalog
from sealion_vl.cli import app
from sealion_vl.families import ADAPTERS, get_adapter


def test_catalog_holds_the_five_sealion_checkpoints():
    sealion = {e.id: e for e in catalog.list_models(sealion_only=True)}
    expected = {
        "aisingapore/Gemma-SEA-LION-v4-4B-VL": "gemma3",
        "aisingapore/Gemma-SEA-LION-v4-27B-VL": "gemma3",
        "aisingapore/Gemma-SEA-LION-v4.5-E2B-IT": "gemma4",
        "aisingapore/Qwen-SEA-LION-v4-4B-VL": "qwen3_vl",
        "aisingapore/Qwen-SEA-LION-v4-8B-VL": "qwen3_vl",
    }
    for hf_id, family in expected.items():
        assert sealion[hf_id].family == family
    # the Qwen cards load their processor from the base repo
    assert sealion["aisingapore/Qwen-SEA-LION-v4-8B-VL"].processor_from.startswith("Qwen/")
    assert "audio" in sealion["aisingapore/Gemma-SEA-LION-v4.5-E2B-IT"].modalities
    assert sealion["aisingapore/Qwen-SEA-LION-v4-4B-VL"].context == 262144


def test_every_base_model_is_in_the_catalog_and_families_match_adapters():
    ids = {e.id for e in catalog.catalog()}
    for e in catalog.catalog():
        assert e.family in ADAPTERS
        assert e.architecture in get_adapter(e.family).vlm_architectures
        if e.base:
            assert e.base in ids, f"{e.id}: base {e.base} missing from the catalog"


def test_find_by_short_name_and_id_case_insensitively():
    assert catalog.find("GEMMA-4B-VL").id == "aisingapore/Gemma-SEA-LION-v4-4B-VL"
    assert catalog.find("aisingapore/qwen-sea-lion-v4-8b-vl").short == "qwen-8b-vl"
    assert catalog.find("no-such-model") is None


def test_models_command_prints_table_and_json():
    runner = CliRunner()
    res = runner.invoke(app, ["models", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert {r["short"] for r in rows} >= {"gemma-4b-vl", "gemma4-e2b", "qwen-8b-vl"}
    res = runner.invoke(app, ["models", "--sealion"], env={"COLUMNS": "250"})
    assert res.exit_code == 0
    assert "aisingapore/Gemma-SEA-LION-v4-4B-VL" in res.output
    assert "google/gemma-3-4b-it" not in res.output

"""The sealion-vl command as a user runs it (a real subprocess for the interactive session)."""

import json
import os
import subprocess
import sys

from typer.testing import CliRunner

from sealion_vl.cli import app


def test_chat_one_shot_json(checkpoint, media_dir):
    res = CliRunner().invoke(
        app,
        [
            "chat",
            "--model",
            str(checkpoint("gemma3")),
            "--image",
            str(media_dir / "a.png"),
            "--image",
            str(media_dir / "b.jpg"),
            "--max-new-tokens",
            "4",
            "--temperature",
            "0",
            "--json",
            "Apa ini?",
        ],
    )
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout.strip().splitlines()[-1])
    assert payload["usage"]["completion_tokens"] == 4
    assert set(payload["timings"]) == {"prefill_s", "total_s", "tokens_per_s"}
    assert isinstance(payload["answer"], str)


def test_chat_errors_are_one_line_and_exit_2(tmp_path):
    res = CliRunner().invoke(app, ["chat", "--model", str(tmp_path / "missing"), "hi"])
    assert res.exit_code == 2
    assert "no checkpoint folder" in res.output


def test_missing_image_file_fails_before_loading_the_model(tmp_path):
    res = CliRunner().invoke(
        app,
        [
            "chat",
            "--model",
            str(tmp_path / "not-loaded"),
            "--image",
            str(tmp_path / "nope.png"),
            "hi",
        ],
    )
    assert res.exit_code == 2 and "--image" in res.output and "nope.png" in res.output


def test_bad_sampling_flags_fail_before_loading_the_model(tmp_path):
    # a model path that does not exist: the flags must be refused first, naming each one
    args = ["chat", "--model", str(tmp_path / "not-loaded"), "--temperature", "-1"]
    res = CliRunner().invoke(app, [*args, "--top-p", "2", "hi"], env={"COLUMNS": "200"})
    assert res.exit_code == 2
    assert "--temperature" in res.output and "--top-p" in res.output
    assert "Traceback" not in res.output and "not-loaded" not in res.output


def test_help_explains_every_flag():
    res = CliRunner().invoke(app, ["chat", "--help"], env={"COLUMNS": "200"})
    for flag in (
        "--model",
        "--image",
        "--video",
        "--audio",
        "--system",
        "--max-new-tokens",
        "--temperature",
        "--top-p",
        "--top-k",
        "--repetition-penalty",
        "--seed",
        "--stop",
        "--reasoning",
        "--device",
        "--dtype",
        "--json",
    ):
        assert flag in res.output


def test_interactive_session_attach_reset_and_eof(checkpoint, media_dir):
    script = (
        "\n".join(
            [
                f"/image {media_dir / 'a.png'}",
                "Apa ini?",
                "/image /no/such/file.png",
                "And now?",
                "/reset",
                "Hello again",
            ]
        )
        + "\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sealion_vl.cli",
            "chat",
            "--model",
            str(checkpoint("qwen3_vl")),
            "--max-new-tokens",
            "3",
            "--temperature",
            "0",
        ],
        input=script,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "attached" in proc.stderr and "no such image file" in proc.stderr
    assert "conversation cleared" in proc.stderr
    assert len(proc.stdout.splitlines()) == 3  # three replies, one line each


def test_chat_tools_and_json_schema_flags(checkpoint, tmp_path):
    import jsonschema

    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string", "maxLength": 6}},
                    "required": ["city"],
                },
            },
        }
    ]
    (tmp_path / "tools.json").write_text(json.dumps(tools))
    schema = {
        "type": "object",
        "properties": {"lang": {"enum": ["id", "ms", "th"]}, "n": {"type": "integer"}},
        "required": ["lang"],
        "additionalProperties": False,
    }
    (tmp_path / "answer.json").write_text(json.dumps(schema))
    model = ["--model", str(checkpoint("qwen3_vl")), "--max-new-tokens", "150"]
    res = CliRunner().invoke(
        app,
        ["chat", *model, "--tools", str(tmp_path / "tools.json"), "--tool-choice", "required"]
        + ["--json", "Cuaca di Jakarta?"],
    )
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout.strip().splitlines()[-1])
    assert payload["finish_reason"] == "tool_calls"
    assert payload["tool_calls"][0]["function"]["name"] == "get_weather"
    res = CliRunner().invoke(
        app, ["chat", *model, "--json-schema", str(tmp_path / "answer.json"), "Bahasa?"]
    )
    assert res.exit_code == 0, res.output
    jsonschema.validate(json.loads(res.stdout.strip().splitlines()[-1]), schema)
    bad = CliRunner().invoke(app, ["chat", *model, "--json-schema", str(tmp_path / "no.json"), "x"])
    said = " ".join(bad.output.split())  # the console wraps long lines
    assert bad.exit_code == 2 and "--json-schema" in said and "no such file" in said
    (tmp_path / "broken.json").write_text("{nope")
    bad = CliRunner().invoke(app, ["chat", *model, "--tools", str(tmp_path / "broken.json"), "x"])
    assert bad.exit_code == 2 and "not valid JSON" in " ".join(bad.output.split())

"""The vLLM / SGLang hand-off: the command for every catalog model, the tensor-parallel rule,
the shipped Gemma 3 tool template (read back by our own parser) and the engine check.

Nothing here needs vLLM or SGLang: commands are compared flag by flag, the template is
rendered by jinja2 and by transformers' own chat-template path (what vLLM uses), and the
launcher is exercised against a stand-in ``vllm`` package on a real interpreter.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import jinja2
import pytest

import sealion_vl
from sealion_vl.catalog import catalog
from sealion_vl.errors import CheckpointNotFoundError
from sealion_vl.serve.engines import (
    EngineUnavailableError,
    check_engine,
    command_for_config,
    external_command,
    model_spec,
    run_external,
    template_path,
    tensor_parallel_size,
    visible_gpus,
)

PARSER = {"hermes": "hermes", "gemma4-native": "gemma4", "gemma3-pythonic": "pythonic"}
TEMPLATE = template_path()


def _value(argv: list[str], flag: str) -> str:
    assert argv.count(flag) == 1, f"{flag} appears {argv.count(flag)} times in {argv}"
    return argv[argv.index(flag) + 1]


def _values(argv: list[str], flag: str) -> list[str]:
    i = argv.index(flag) + 1
    out = []
    while i < len(argv) and not argv[i].startswith("--"):
        out.append(argv[i])
        i += 1
    return out


LIMITS = dict(
    host="0.0.0.0",
    port=9100,
    api_key="sk-test",
    max_queue=12,
    allowed_media_domains=["images.example.org", "cdn.example.org"],
    max_images=5,
    max_videos=1,
    gpus=8,
    gpu_memory_gb=80,
)


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
@pytest.mark.parametrize("entry", catalog(), ids=lambda e: e.short)
def test_command_for_every_catalog_model(entry, engine):
    argv = external_command(engine, entry.short, python="/envs/x/bin/python", **LIMITS)
    assert argv[:3] == [
        "/envs/x/bin/python",
        "-m",
        "vllm.entrypoints.openai.api_server" if engine == "vllm" else "sglang.launch_server",
    ]
    path = _value(argv, "--model" if engine == "vllm" else "--model-path")
    if entry.local_path:  # nano ships inside the package: the engine gets its folder
        assert Path(path).is_dir() and (Path(path) / "config.json").is_file()
    else:
        assert path == entry.id
    assert _value(argv, "--host") == "0.0.0.0" and _value(argv, "--port") == "9100"
    assert _value(argv, "--api-key") == "sk-test"
    assert _values(argv, "--allowed-media-domains") == LIMITS["allowed_media_domains"]
    limits = json.loads(
        _value(argv, "--limit-mm-per-prompt" if engine == "vllm" else "--limit-mm-data-per-request")
    )
    assert limits["image"] == 5
    assert ("video" in limits) == ("video" in entry.modalities)
    assert ("audio" in limits) == ("audio" in entry.modalities)
    tp = tensor_parallel_size(entry.params_total_b or entry.params_b, 8, 80)
    parser = PARSER.get(entry.tool_format)
    reasoning = {"gemma4": "gemma4", "qwen3_vl": "qwen3"}[entry.family] if entry.reasoning else None
    if engine == "vllm":
        assert _values(argv, "--served-model-name") == list(dict.fromkeys([entry.id, entry.short]))
        assert _value(argv, "--max-model-len") == str(entry.context)
        assert _value(argv, "--tensor-parallel-size") == str(tp)
        assert _value(argv, "--max-num-queued-reqs") == "12"
        assert ("--enable-auto-tool-choice" in argv) == (parser is not None)
    else:
        assert _value(argv, "--served-model-name") == entry.id
        assert _value(argv, "--context-length") == str(entry.context)
        assert _value(argv, "--tp") == str(tp)
        assert _value(argv, "--max-queued-requests") == "12"
        assert "--enable-multimodal" in argv
    if parser is None:  # nano's tool_code fences: no engine parser, no tool flags
        assert "--tool-call-parser" not in argv
    else:
        assert _value(argv, "--tool-call-parser") == parser
    if reasoning is None:
        assert "--reasoning-parser" not in argv
    else:
        assert _value(argv, "--reasoning-parser") == reasoning
    if entry.tool_format == "gemma3-pythonic":  # vLLM has no Gemma 3 parser: our template
        assert _value(argv, "--chat-template") == str(TEMPLATE) and TEMPLATE.is_file()
    else:
        assert "--chat-template" not in argv


def test_exact_commands_one_per_family():
    common = dict(python="py", gpus=4, gpu_memory_gb=24, max_queue=64, api_key="k")
    assert external_command("vllm", "qwen-8b-vl", **common) == [
        "py", "-m", "vllm.entrypoints.openai.api_server",
        "--model", "aisingapore/Qwen-SEA-LION-v4-8B-VL",
        "--served-model-name", "aisingapore/Qwen-SEA-LION-v4-8B-VL", "qwen-8b-vl",
        "--host", "127.0.0.1", "--port", "8000",
        "--max-model-len", "262144", "--tensor-parallel-size", "2",
        "--limit-mm-per-prompt", '{"image":16,"video":2}',
        "--enable-auto-tool-choice", "--tool-call-parser", "hermes",
        "--max-num-queued-reqs", "64",
        "--api-key", "k",
    ]  # fmt: skip
    assert external_command("vllm", "gemma4-e2b", **common, extra=["--max-model-len", "8192"]) == [
        "py", "-m", "vllm.entrypoints.openai.api_server",
        "--model", "aisingapore/Gemma-SEA-LION-v4.5-E2B-IT",
        "--served-model-name", "aisingapore/Gemma-SEA-LION-v4.5-E2B-IT", "gemma4-e2b",
        "--host", "127.0.0.1", "--port", "8000",
        "--max-model-len", "131072", "--tensor-parallel-size", "1",
        "--limit-mm-per-prompt", '{"image":16,"video":2,"audio":4}',
        "--enable-auto-tool-choice", "--tool-call-parser", "gemma4",
        "--reasoning-parser", "gemma4",
        "--max-num-queued-reqs", "64",
        "--api-key", "k",
        "--max-model-len", "8192",  # extra flags come last, so they win
    ]  # fmt: skip
    assert external_command("sglang", "gemma-27b-vl", **common) == [
        "py", "-m", "sglang.launch_server",
        "--model-path", "aisingapore/Gemma-SEA-LION-v4-27B-VL",
        "--served-model-name", "aisingapore/Gemma-SEA-LION-v4-27B-VL",
        "--host", "127.0.0.1", "--port", "8000",
        "--context-length", "131072", "--tp", "4",
        "--enable-multimodal", "--limit-mm-data-per-request", '{"image":16}',
        "--tool-call-parser", "pythonic",
        "--max-queued-requests", "64",
        "--chat-template", str(TEMPLATE),
        "--api-key", "k",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "params_b, gpus, memory_gb, tp",
    [
        (4.3, 8, 80, 1),  # 8.6 GB of weights fit in half of one 80 GB GPU
        (27.4, 8, 80, 2),  # 54.8 GB > 40: two GPUs
        (27.4, 8, 24, 8),  # 54.8 / 12 = 4.6 -> 5 -> next power of two 8
        (27.4, 6, 24, 4),  # ... capped at the largest power of two <= 6 GPUs
        (27.4, 1, 24, 1),  # one GPU: 1 (the engine will say it does not fit)
        (8.8, 0, 24, 2),  # no GPU visible: the command is for another host, no cap
        (0.003, 2, 16, 1),
    ],
)
def test_tensor_parallel_rule(params_b, gpus, memory_gb, tp):
    assert tensor_parallel_size(params_b, gpus, memory_gb) == tp


def test_tensor_parallel_given_and_checked():
    argv = external_command("vllm", "gemma-27b-vl", gpus=8, tensor_parallel=4)
    assert _value(argv, "--tensor-parallel-size") == "4"
    with pytest.raises(ValueError, match="tensor_parallel=4 needs that many GPUs; 2 visible"):
        external_command("vllm", "gemma-27b-vl", gpus=2, tensor_parallel=4)
    with pytest.raises(ValueError, match="must be >= 1"):
        external_command("sglang", "gemma-27b-vl", gpus=2, tensor_parallel=0)


def test_visible_gpus_from_nvidia_smi(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert visible_gpus() == (0, None)  # no nvidia-smi
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\nprintf '0, 81559\\n1, 24576\\n2, 81559\\n'\n")
    smi.chmod(0o755)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    count, memory = visible_gpus()
    assert count == 3 and memory == pytest.approx(25.77, abs=0.01)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,2")
    count, memory = visible_gpus()
    assert count == 2 and memory == pytest.approx(85.52, abs=0.01)
    # detected GPUs feed the rule: 27B on two 85 GB GPUs -> 2
    assert _value(external_command("vllm", "gemma-27b-it"), "--tensor-parallel-size") == "2"


def test_container_form_mounts_what_lives_here():
    argv = external_command(
        "vllm", "nano", image="vllm/vllm-openai:v0.33.0", host="127.0.0.1", port=8123, gpus=1
    )
    i = argv.index("vllm/vllm-openai:v0.33.0")
    docker, rest = argv[:i], argv[i + 1 :]
    assert docker[:3] == ["docker", "run", "--rm"]
    assert _value(docker, "-p") == "127.0.0.1:8123:8123"  # published on loopback only
    mounts = [docker[j + 1] for j, a in enumerate(docker) if a == "-v"]
    assert any(m.endswith("/nano/checkpoint:/model:ro") for m in mounts)
    assert rest[0] == "/model" and _value(rest, "--host") == "0.0.0.0"
    argv = external_command("sglang", "gemma-4b-vl", image="lmsysorg/sglang:v0.5.23", gpus=1)
    assert "--chat-template" in argv
    assert _value(argv, "--chat-template") == "/sealion-templates/gemma3_tool_pythonic.jinja"
    assert argv[argv.index("lmsysorg/sglang:v0.5.23") + 1 : argv.index("--model-path")] == [
        "python3",
        "-m",
        "sglang.launch_server",
    ]


def test_same_limits_as_our_server_config():
    config = SimpleNamespace(
        host="127.0.0.1",
        port=8000,
        api_key="key",
        max_queue=8,
        allowed_media_domains=["a.example"],
        allowed_media_dir=Path("/srv/media"),
        max_images_per_request=3,
        max_videos_per_request=1,
        max_audios_per_request=2,
    )
    argv = command_for_config("vllm", "gemma4-e2b", config, gpus=1)
    assert _value(argv, "--max-num-queued-reqs") == "8"
    assert json.loads(_value(argv, "--limit-mm-per-prompt")) == {"image": 3, "video": 1, "audio": 2}
    assert _value(argv, "--allowed-local-media-path") == "/srv/media"
    assert _value(argv, "--api-key") == "key"
    with pytest.raises(ValueError, match="SGLang has no local-media allow-list"):
        command_for_config("sglang", "gemma4-e2b", config, gpus=1)


def test_checkpoint_folder_and_unknown_model(checkpoint):
    folder = checkpoint("gemma4")
    spec = model_spec(str(folder))
    assert spec.family == "gemma4" and spec.reasoning and spec.path == str(folder)
    argv = external_command("vllm", str(folder), gpus=1)
    assert _value(argv, "--tool-call-parser") == "gemma4"
    assert _value(argv, "--reasoning-parser") == "gemma4"
    with pytest.raises(CheckpointNotFoundError, match="neither a catalog model"):
        external_command("vllm", "no-such-model", gpus=1)
    with pytest.raises(ValueError, match="--engine 'tgi' is not one of: vllm, sglang"):
        external_command("tgi", "nano", gpus=1)  # type: ignore[arg-type]


# --- the Gemma 3 tool chat template --------------------------------------------------------

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Cuaca hari ini",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city"],
            },
        },
    }
]
CALLS = [
    {
        "id": "call_1",
        "type": "function",
        "function": {
            "name": "get_weather",
            "arguments": {"city": "Jakarta", "days": 3, "metric": True, "note": None},
        },
    },
    {
        "id": "call_2",
        "type": "function",
        "function": {"name": "get_time", "arguments": {"tz": "Asia/Bangkok", "l": [1, "ไทย"]}},
    },
]
CONVERSATION = [
    {"role": "system", "content": "Jawab singkat."},
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Cuaca di sini?"}]},
    {"role": "assistant", "content": None, "tool_calls": CALLS},
    {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 31}'},
    {"role": "tool", "tool_call_id": "call_2", "content": "10:00"},
    {"role": "user", "content": "Terima kasih. Dan besok?"},
]


def _render(messages, tools=None, add_generation_prompt=True) -> str:
    env = jinja2.Environment()
    env.policies["json.dumps_kwargs"] = {"sort_keys": False}  # as transformers' tojson
    template = env.from_string(TEMPLATE.read_text(encoding="utf-8"))
    return template.render(
        messages=messages,
        tools=tools,
        bos_token="<bos>",
        add_generation_prompt=add_generation_prompt,
    )


def _turns(prompt: str) -> list[tuple[str, str]]:
    return re.findall(r"<start_of_turn>(user|model)\n(.*?)<end_of_turn>\n", prompt, re.S)


def test_template_renders_tools_calls_and_results():
    prompt = _render(CONVERSATION, TOOLS)
    assert prompt.startswith("<bos><start_of_turn>user\nJawab singkat.\n\nYou can call")
    assert prompt.endswith("<start_of_turn>model\n")
    turns = _turns(prompt)
    assert [r for r, _ in turns] == ["user", "model", "user"]  # tool results merged: alternates
    first, calls, results = (t for _, t in turns)
    specs = [json.loads(x) for x in first.split("Functions:\n")[1].split("\n\n")[0].splitlines()]
    assert specs == [TOOLS[0]["function"]]
    assert first.endswith("<start_of_image>Cuaca di sini?")
    assert calls == (
        "[get_weather(city='Jakarta', days=3, metric=True, note=None), "
        "get_time(tz='Asia/Bangkok', l=[1, 'ไทย'])]"
    )
    assert results == (
        '<tool_response>\n{"temp": 31}\n</tool_response>\n\n'
        "<tool_response>\n10:00\n</tool_response>\n\nTerima kasih. Dan besok?"
    )
    # no tools, no system: exactly the plain Gemma 3 turns
    plain = _render([{"role": "user", "content": "Halo"}])
    assert plain == "<bos><start_of_turn>user\nHalo<end_of_turn>\n<start_of_turn>model\n"


def _call(c: dict) -> tuple[str, dict]:
    return c["function"]["name"], json.loads(c["function"]["arguments"])


def test_template_calls_are_read_back_by_our_parser():
    prompt = _render(CONVERSATION, TOOLS)
    # the call list a model writes after that prompt, as the instruction asks
    example = re.search(r"for example (\[.*?\)\])", prompt).group(1)
    asked = sealion_vl.parse_reply(example, family="gemma3")
    assert asked.content == ""
    assert [_call(c) for c in asked.tool_calls] == [
        ("get_weather", {"city": "Jakarta"}),
        ("get_time", {"timezone": "Asia/Bangkok"}),
    ]
    # and the history's calls, rendered by the template, parse back to what was sent
    written = _turns(prompt)[1][1]
    back = sealion_vl.parse_reply(written, family="gemma3").tool_calls
    assert [_call(c) for c in back] == [
        (c["function"]["name"], c["function"]["arguments"]) for c in CALLS
    ]


def test_template_through_transformers_apply_chat_template(checkpoint):
    # vLLM renders --chat-template with transformers' sandboxed jinja (its own tojson, no
    # HTML escaping); the tiny Gemma 3 tokenizer holds the real special tokens
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(checkpoint("gemma3"))
    text = tok.apply_chat_template(
        CONVERSATION,
        tools=TOOLS,
        chat_template=TEMPLATE.read_text(encoding="utf-8"),
        tokenize=False,
        add_generation_prompt=True,
    )
    assert text == _render(CONVERSATION, TOOLS).replace("<bos>", tok.bos_token)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    for special in ("<start_of_turn>", "<end_of_turn>", "<start_of_image>"):
        assert tok.convert_tokens_to_ids(special) in ids
    # an assistant turn first (a resumed history) still opens with the user prefix turn
    text = tok.apply_chat_template(
        [{"role": "assistant", "content": "Halo!"}, {"role": "user", "content": "Hai"}],
        tools=TOOLS,
        chat_template=TEMPLATE.read_text(encoding="utf-8"),
        tokenize=False,
    )
    assert [r for r, _ in _turns(text)] == ["user", "model", "user"]


# --- the engine check and the launcher ------------------------------------------------------


def test_missing_engine_python_is_a_clear_error(tmp_path):
    with pytest.raises(EngineUnavailableError, match="cannot be run") as err:
        check_engine("vllm", str(tmp_path / "no-python"))
    assert "python -m venv ~/.venvs/vllm" in str(err.value) and "--engine-python" in str(err.value)
    with pytest.raises(EngineUnavailableError, match="cannot import sglang") as err:
        check_engine("sglang", sys.executable)  # our own env has no sglang
    assert "sglang[all]==0.5.23" in str(err.value) and "lmsysorg/sglang" in str(err.value)
    argv = external_command("vllm", "nano", python=sys.executable, gpus=1)
    with pytest.raises(EngineUnavailableError, match="cannot import vllm"):
        run_external(argv, engine="vllm")


def test_run_external_starts_the_engine(tmp_path, monkeypatch):
    # a stand-in vllm package in a real interpreter: the launcher runs it with our argv
    module = tmp_path / "vllm" / "entrypoints" / "openai"
    module.mkdir(parents=True)
    (tmp_path / "vllm" / "__init__.py").write_text("__version__ = '0.33.0'\n")
    for d in (tmp_path / "vllm" / "entrypoints", module):
        (d / "__init__.py").write_text("")
    out = tmp_path / "argv.json"
    (module / "api_server.py").write_text(
        f"import json, sys\njson.dump(sys.argv[1:], open({str(out)!r}, 'w'))\nsys.exit(3)\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    assert check_engine("vllm", sys.executable) == "0.33.0"
    argv = external_command("vllm", "qwen-4b-vl", python=sys.executable, gpus=1, api_key="k")
    assert run_external(argv, engine="vllm") == 3
    assert json.loads(out.read_text()) == argv[3:]


def test_serve_engine_flag_prints_or_refuses(tmp_path):
    from typer.testing import CliRunner

    from sealion_vl.cli import app

    env = {"COLUMNS": "400"}
    args = ["serve", "--model", "qwen-8b-vl", "--engine", "vllm", "--dry-run"]
    res = CliRunner().invoke(app, [*args, "--api-key", "s3cret", "--max-queue", "7"], env=env)
    said = " ".join(res.output.split())
    assert res.exit_code == 0, res.output
    assert "--tool-call-parser hermes" in said and "--max-num-queued-reqs 7" in said
    assert "s3cret" not in said  # the key is not echoed
    res = CliRunner().invoke(app, ["serve", "--engine", "tgi", "--dry-run"], env=env)
    assert res.exit_code == 2 and "--engine" in res.output
    missing = str(tmp_path / "no-python")
    res = CliRunner().invoke(
        app, ["serve", "--model", "gemma4-e2b", "--engine", "vllm", "--engine-python", missing]
    )
    assert res.exit_code == 2 and "venv" in " ".join(res.output.split())

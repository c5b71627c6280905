"""Tools, structured output and reasoning over HTTP, for every family, with the openai client.

The tiny random checkpoints write garbage when free, so each valid call or JSON reply below
is the engine's grammar at work; reasoning is scripted with a forward hook on the output
head (the real model then emits chosen tokens, which go through the server's decoding,
parsing and streaming like any reply).
"""

from __future__ import annotations

import json

import jsonschema
import pytest

from tests.conftest import FAMILIES
from tests.fixtures.scripted import ASK, CALLED, TOOLS, Script
from tests.serve.conftest import client, data_uri, start

SPECS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 12},
        "score": {"type": "integer", "minimum": 0, "maximum": 9},
    },
    "required": ["city", "score"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module", params=FAMILIES)
def family_server(request, serve_model):
    m = serve_model(request.param)
    s = start(m)
    yield request.param, s, m
    s.stop()


def _assemble(chunks) -> tuple[dict[int, dict], str, str, str | None]:
    """Tool calls, content and reasoning assembled from stream chunks, as a client would."""
    calls: dict[int, dict] = {}
    content, reasoning, finish = "", "", None
    for ch in chunks:
        if not ch.choices:
            continue
        d = ch.choices[0].delta
        content += d.content or ""
        reasoning += getattr(d, "reasoning_content", None) or ""
        for tc in d.tool_calls or []:
            call = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
            call["id"] = tc.id or call["id"]
            call["name"] += (tc.function.name or "") if tc.function else ""
            call["arguments"] += (tc.function.arguments or "") if tc.function else ""
        finish = ch.choices[0].finish_reason or finish
    return calls, content, reasoning, finish


@pytest.mark.parametrize("choice", ["required", "convert"])
def test_forced_tool_calls_whole_and_streamed(family_server, choice):
    family, s, _ = family_server
    c = client(s)
    tool_choice = (
        choice if choice == "required" else {"type": "function", "function": {"name": choice}}
    )
    kw = dict(model=family, messages=ASK, tools=TOOLS, tool_choice=tool_choice, max_tokens=80)
    r = c.chat.completions.create(temperature=0, **kw)
    ch = r.choices[0]
    assert ch.finish_reason == "tool_calls", ch
    (call,) = ch.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    name = call.function.name
    assert name in SPECS and (choice == "required" or name == choice)
    args = json.loads(call.function.arguments)
    jsonschema.validate(args, SPECS[name])
    assert r.usage.completion_tokens > 0
    calls, content, _, finish = _assemble(
        c.chat.completions.create(temperature=0, stream=True, **kw)
    )
    assert finish == "tool_calls" and content == ""
    assert [(v["name"], json.loads(v["arguments"])) for v in calls.values()] == [(name, args)]
    assert calls[0]["id"].startswith("call_")


def test_tool_results_go_back_through_tool_messages(family_server):
    family, s, m = family_server
    c = client(s)
    conv = CALLED
    r = c.chat.completions.create(
        model=family, messages=conv, tools=TOOLS, max_tokens=4, temperature=0
    )
    assert r.usage.prompt_tokens == m.count_tokens(conv, tools=TOOLS)
    assert r.usage.prompt_tokens > m.count_tokens(ASK, tools=TOOLS)
    none = c.chat.completions.create(
        model=family, messages=ASK, tools=TOOLS, tool_choice="none", max_tokens=4, temperature=0
    )
    assert none.choices[0].message.tool_calls is None
    assert none.usage.prompt_tokens == m.count_tokens(ASK)  # no tools in the prompt


def test_json_schema_replies_validate(family_server, media_dir):
    family, s, _ = family_server
    c = client(s)
    rf = {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA}}
    conv = [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": data_uri(media_dir / "a.png")}},
                {"type": "text", "text": "Describe it as JSON."},
            ],
        }
    ]
    r = c.chat.completions.create(
        model=family, messages=conv, response_format=rf, max_tokens=120, temperature=0
    )
    jsonschema.validate(json.loads(r.choices[0].message.content), SCHEMA)
    _, content, _, finish = _assemble(
        c.chat.completions.create(
            model=family,
            messages=conv,
            response_format=rf,
            max_tokens=120,
            temperature=0,
            stream=True,
        )
    )
    assert content == r.choices[0].message.content and finish == "stop"


REPLIES = {
    "gemma4": ("<|channel>thought\nPerlu cek cuaca.<channel|>Panas, 31 darjah.", "<turn|>"),
    "qwen3_vl": ("<think>\nPerlu cek cuaca.\n</think>\n\nPanas, 31 darjah.", "<|im_end|>"),
}


@pytest.mark.parametrize("how", ["enable_thinking", "reasoning_effort"])
def test_reasoning_content_never_leaks_into_content(family_server, how):
    family, s, m = family_server
    if family not in REPLIES:
        pytest.skip(f"{family} has no reasoning markup")
    text, end = REPLIES[family]
    ids = m.tokenizer(text, add_special_tokens=False)["input_ids"]
    ids.append(m.tokenizer.convert_tokens_to_ids(end))
    extra = (
        {"extra_body": {"chat_template_kwargs": {"enable_thinking": True}}}
        if how == "enable_thinking"
        else {"reasoning_effort": "high"}
    )
    c = client(s)
    kw = dict(model=family, messages=ASK, max_tokens=len(ids) + 5, **extra)
    with Script(m.model, ids):
        r = c.chat.completions.create(**kw)
    msg = r.choices[0].message.model_dump()
    assert msg["reasoning_content"].strip() == "Perlu cek cuaca."
    assert msg["content"].strip() == "Panas, 31 darjah." and "Perlu" not in msg["content"]
    assert r.choices[0].finish_reason == "stop"
    with Script(m.model, ids):
        chunks = list(c.chat.completions.create(stream=True, **kw))
    _, content, reasoning, finish = _assemble(chunks)
    assert reasoning == msg["reasoning_content"] and content == msg["content"]
    assert finish == "stop"
    for ch in chunks:  # no chunk carries both, and no markup is ever sent
        if ch.choices:
            d = ch.choices[0].delta.model_dump()
            assert not (d.get("content") and d.get("reasoning_content"))
            assert "<" not in (d.get("content") or "") + (d.get("reasoning_content") or "")


PARALLEL = {
    "gemma3": (
        '```tool_code\nget_weather(city="Jakarta", days=3)\nconvert(currency="SGD")\n```',
        "<end_of_turn>",
    ),
    "qwen3_vl": (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Jakarta", "days": 3}}\n'
        '</tool_call>\n<tool_call>\n{"name": "convert", "arguments": {"currency": "SGD"}}\n'
        "</tool_call>",
        "<|im_end|>",
    ),
    "gemma4": (
        '<|tool_call>call:get_weather{city:<|"|>Jakarta<|"|>,days:3}<tool_call|>'
        '<|tool_call>call:convert{currency:<|"|>SGD<|"|>}<tool_call|>',
        "<turn|>",
    ),
}
MALFORMED = {
    "gemma3": "```tool_code\nget_weather(city=\n```",
    "qwen3_vl": '<tool_call>\n{"name": "get_weather", "arguments": {"city": \n</tool_call>',
    "gemma4": "<|tool_call>call:get_weather{city:<tool_call|>",
}


def _scripted(m, text: str, end: str) -> list[int]:
    ids = m.tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids + [m.tokenizer.convert_tokens_to_ids(end)]


def test_parallel_calls_whole_and_streamed(family_server):
    family, s, m = family_server
    ids = _scripted(m, *PARALLEL[family])
    c = client(s)
    kw = dict(model=family, messages=ASK, tools=TOOLS, max_tokens=len(ids) + 5)
    with Script(m.model, ids):
        r = c.chat.completions.create(**kw)
    calls = r.choices[0].message.tool_calls
    assert r.choices[0].finish_reason == "tool_calls"
    want = [("get_weather", {"city": "Jakarta", "days": 3}), ("convert", {"currency": "SGD"})]
    assert [(t.function.name, json.loads(t.function.arguments)) for t in calls] == want
    assert len({t.id for t in calls}) == 2
    with Script(m.model, ids):
        streamed, content, _, finish = _assemble(c.chat.completions.create(stream=True, **kw))
    assert sorted(streamed) == [0, 1] and finish == "tool_calls"
    assert [(v["name"], json.loads(v["arguments"])) for v in streamed.values()] == want


def test_malformed_calls_come_back_as_content(family_server):
    family, s, m = family_server
    ids = _scripted(m, MALFORMED[family], PARALLEL[family][1])
    c = client(s)
    with Script(m.model, ids):
        r = c.chat.completions.create(
            model=family, messages=ASK, tools=TOOLS, max_tokens=len(ids) + 5
        )
    ch = r.choices[0]
    assert ch.message.tool_calls is None and ch.finish_reason == "stop"
    assert "get_weather" in ch.message.content

"""Tools, structured output and reasoning through the engine's public API, on all families.

The tiny random checkpoints write garbage when free, so every valid JSON reply or tool call
below is the grammar's doing, and every parsed call is the family parser reading what the
grammar forced: the writer, the constraint and the reader agree. Reasoning and free tool
calls are scripted (:class:`tests.fixtures.scripted.Script`): the real model is made to emit
a chosen token sequence, which then goes through the engine's decoding, parsing and streaming.
"""

from __future__ import annotations

import json

import jsonschema
import pytest
import torch

from sealion_vl.errors import StructuredOutputError
from tests.conftest import FAMILIES
from tests.fixtures.scripted import ASK, CALLED, TOOLS, Script, script_ids

SCHEMAS = [
    {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 12},
            "geo": {
                "type": "object",
                "properties": {
                    "lat": {"type": "integer", "minimum": -90, "maximum": 90},
                    "lon": {"type": "integer", "minimum": -180, "maximum": 180},
                },
                "required": ["lat", "lon"],
                "additionalProperties": False,
            },
        },
        "required": ["city", "geo"],
        "additionalProperties": False,
    },
    {
        "type": "object",
        "properties": {
            "tags": {
                "type": "array",
                "items": {"type": "integer", "minimum": 0, "maximum": 99},
                "minItems": 2,
                "maxItems": 4,
            }
        },
        "required": ["tags"],
        "additionalProperties": False,
    },
    {
        "type": "object",
        "properties": {"lang": {"enum": ["id", "ms", "th", "vi", "tl"]}},
        "required": ["lang"],
        "additionalProperties": False,
    },
    {
        "type": "object",
        "properties": {
            "count": {"type": "integer", "minimum": 1, "maximum": 9},
            "score": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "required": ["count", "score"],
        "additionalProperties": False,
    },
    {
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": "^[A-Z]{2}-[0-9]{3}$"}},
        "required": ["code"],
        "additionalProperties": False,
    },
    {
        "type": "object",
        "properties": {
            "ok": {"type": "boolean"},
            "items": {
                "type": "array",
                "maxItems": 2,
                "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string", "maxLength": 8}},
                    "required": ["name"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["ok", "items"],
        "additionalProperties": False,
    },
]


def _rf(schema):
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}


@pytest.mark.parametrize("family", FAMILIES)
def test_replies_validate_against_six_schemas_decoded_together(chat_model, family):
    m = chat_model(family)
    futures = [
        m.submit(ASK, response_format=_rf(s), max_new_tokens=160, temperature=0) for s in SCHEMAS
    ]
    results = [f.result(timeout=300) for f in futures]
    for schema, r in zip(SCHEMAS, results, strict=True):
        jsonschema.validate(json.loads(r.text), schema)
        assert r.finish_reason == "stop"
    # (json_object is tested in test_structured.py: "any object" cannot bound a random
    # model's key length, so it needs a prompt the tiny model closes the object on)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("choice", ["required", "convert"])
def test_forced_tool_calls_parse_and_validate(chat_model, family, choice):
    m = chat_model(family)
    tool_choice = (
        choice
        if choice == "required"
        else {
            "type": "function",
            "function": {"name": choice},
        }
    )
    r = m.chat(ASK, tools=TOOLS, tool_choice=tool_choice, max_new_tokens=80, temperature=0)
    assert r.finish_reason == "tool_calls" and len(r.tool_calls) == 1
    call = r.tool_calls[0]
    assert call["type"] == "function" and call["id"].startswith("call_")
    spec = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
    name = call["function"]["name"]
    assert name in spec and (choice == "required" or name == choice)
    jsonschema.validate(json.loads(call["function"]["arguments"]), spec[name])
    # streamed: the same call arrives as a tool-call delta, never as content
    deltas = list(
        m.stream(ASK, tools=TOOLS, tool_choice=tool_choice, max_new_tokens=80, temperature=0)
    )
    calls = [d for d in deltas if type(d).__name__ == "ToolCallDelta"]
    assert [(d.name, json.loads(d.arguments_delta)) for d in calls] == [
        (name, json.loads(call["function"]["arguments"]))
    ]


@pytest.mark.parametrize("family", FAMILIES)
def test_tool_results_go_back_and_none_renders_no_tools(chat_model, family):
    m = chat_model(family)
    conv = CALLED + [{"role": "user", "content": "Terima kasih. Dan besok?"}]
    prompt = m.render(conv, tools=TOOLS)
    assert "temp_c" in prompt and "Jakarta" in prompt and "get_weather" in prompt
    r = m.chat(conv, tools=TOOLS, max_new_tokens=5, temperature=0)
    assert r.completion_tokens >= 1
    bare = m.render(ASK, tools=None)
    assert "get_weather" not in bare
    r = m.chat(ASK, tools=TOOLS, tool_choice="none", max_new_tokens=5, temperature=0)
    assert r.tool_calls == [] and r.prompt_tokens == m.count_tokens(ASK)


def test_bad_response_format_is_refused_before_queueing(chat_model):
    m = chat_model("gemma3")
    with pytest.raises(StructuredOutputError, match="response_format"):
        m.submit(ASK, response_format={"type": "xml"})
    with pytest.raises(StructuredOutputError, match="schema"):
        m.submit(ASK, response_format={"type": "json_schema", "json_schema": {"name": "x"}})


SCRIPTS = {
    "gemma4": (
        "<|channel>thought\nPerlu cek cuaca.<channel|>"
        '<|tool_call>call:get_weather{city:<|"|>Jakarta<|"|>,days:3}<tool_call|>',
        "<turn|>",
    ),
    "qwen3_vl": (
        '<think>\nPerlu cek cuaca.\n</think>\n\n<tool_call>\n{"name": "get_weather", '
        '"arguments": {"city": "Jakarta", "days": 3}}\n</tool_call>',
        "<|im_end|>",
    ),
}


@pytest.mark.parametrize("family", sorted(SCRIPTS))
def test_reasoning_and_calls_never_reach_the_content(chat_model, family):
    m = chat_model(family)
    text, end = SCRIPTS[family]
    ids = script_ids(m.tokenizer, text, end)
    with Script(m.model, ids):
        r = m.chat(ASK, tools=TOOLS, reasoning=True, max_new_tokens=len(ids) + 5)
    assert r.reasoning.strip() == "Perlu cek cuaca."
    assert r.text == "" and r.finish_reason == "tool_calls"
    assert json.loads(r.tool_calls[0]["function"]["arguments"]) == {"city": "Jakarta", "days": 3}
    with Script(m.model, ids):
        deltas = list(m.stream(ASK, tools=TOOLS, reasoning=True, max_new_tokens=len(ids) + 5))
    kinds = [type(d).__name__ for d in deltas]
    assert "ContentDelta" not in kinds and "ReasoningDelta" in kinds and "ToolCallDelta" in kinds
    reasoning = "".join(d.text for d in deltas if type(d).__name__ == "ReasoningDelta")
    assert reasoning == r.reasoning
    # without tools offered, call markup is ordinary content but reasoning is still split off
    with Script(m.model, ids):
        plain = m.chat(ASK, reasoning=True, max_new_tokens=len(ids) + 5)
    assert plain.tool_calls == [] and "get_weather" in plain.text
    assert plain.reasoning == r.reasoning and "Perlu" not in plain.text


def test_gemma4_thinking_switch_reaches_the_prompt(chat_model):
    m = chat_model("gemma4")
    assert "<|think|>" in m.render(ASK, reasoning=True)
    assert "<|think|>" not in m.render(ASK, reasoning=False)


def test_scripted_reply_is_the_real_model_path(chat_model):
    # the hook really drives generation: without it the reply differs
    m = chat_model("gemma4")
    ids = script_ids(m.tokenizer, "Halo dunia", "<turn|>")
    with Script(m.model, ids):
        r = m.chat(ASK, max_new_tokens=10)
    assert r.text == "Halo dunia" and r.finish_reason == "stop"
    assert m.chat(ASK, max_new_tokens=10, temperature=0).text != "Halo dunia"
    assert torch.is_grad_enabled()

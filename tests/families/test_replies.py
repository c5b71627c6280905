"""Replies split into content, reasoning and tool calls, in each family's real format (facts.md §2),
whole and streamed; malformed markup stays content and nothing is ever evaluated."""

from __future__ import annotations

import ast
import builtins
import json
import random
import re
import subprocess
import sys

import pytest

import sealion_vl
from sealion_vl.errors import UnsupportedModelError
from sealion_vl.families import (
    ContentDelta,
    ParsedReply,
    ReasoningDelta,
    ToolCallDelta,
    assemble,
    get_adapter,
    parse_reply,
)

THAI = "กรุงเทพมหานคร"
VIET = "Thành phố Hồ Chí Minh"


def calls(reply: ParsedReply) -> list[tuple[str, dict]]:
    return [
        (c["function"]["name"], json.loads(c["function"]["arguments"])) for c in reply.tool_calls
    ]


# ----------------------------------------------------------------------------- Gemma 3


def test_gemma3_pythonic_list_opening_the_reply():
    r = parse_reply("[get_weather(city='Jakarta'), get_time(tz=\"Asia/Bangkok\")]", family="gemma3")
    assert calls(r) == [("get_weather", {"city": "Jakarta"}), ("get_time", {"tz": "Asia/Bangkok"})]
    assert r.content == "" and r.reasoning is None


def test_gemma3_list_after_whitespace_then_text_and_nested_literals():
    text = (
        "\n  [book(city='" + VIET + "', nights=-2, rate=1.5e3, ok=True, note=None, "
        "tags=['a', ('b', 1)], opts={'x': {'y': [1, 2]}}, js=true, nil=null)]\nDone."
    )
    r = parse_reply(text, family="gemma3")
    assert calls(r) == [
        (
            "book",
            {
                "city": VIET,
                "nights": -2,
                "rate": 1500.0,
                "ok": True,
                "note": None,
                "tags": ["a", ["b", 1]],
                "opts": {"x": {"y": [1, 2]}},
                "js": True,
                "nil": None,
            },
        )
    ]
    assert r.content == "Done."


def test_gemma3_tool_code_fences_one_or_several_calls_text_outside_is_content():
    text = (
        'Sebentar.\n```tool_code\nget_time(timezone="Asia/Singapore")\n```\n'
        "lalu\n```tool_code\nprint(a.b(x=1))\nc(t='" + THAI + "')\n```"
    )
    r = parse_reply(text, family="gemma3")
    assert calls(r) == [
        ("get_time", {"timezone": "Asia/Singapore"}),
        ("a.b", {"x": 1}),
        ("c", {"t": THAI}),
    ]
    assert r.content == "Sebentar.\nlalu"


@pytest.mark.parametrize(
    "text",
    [
        "[1, 2] is a list",
        "[]",
        "[Note](http://example.com) read it",
        "[f('positional')]",
        "[f(a=1), 2]",
        "[f(a=1]",
        "[f(a='unterminated)]",
        "[f(**{'a': 1})]",
        "[f(a=b)]",
        "[f(a=1+1)]",
        "[f(a=lambda: 1)]",
        "[f(a=f'{x}')]",
        "[f(a={1: 'int key'})]",
        "[f(a=b'bytes')]",
        "[f(a=1e999)]",
        "[f(a=open('x').read())]",
        "[f()(a=1)]",
        "[__import__('os').system('echo hi')]",
        "[f(a=__import__('os'))]",
        "```tool_code\nimport os\n```",
        "```tool_code\nx = f(a=1)\n```",
        "```tool_code\nf(a=1)\n",
        "```tool_code\n__import__('os').system('id')\n```",
        "```tool_codex\nf(a=1)\n```",
        "```python\nf(a=1)\n```",
        "a ``` b `` c ` d",
        "[" * 500 + "f(a=1)" + "]" * 500,
    ],
)
def test_gemma3_malformed_or_unsafe_calls_stay_content(text):
    r = parse_reply(text, family="gemma3")
    assert (r.content, r.tool_calls, r.reasoning) == (text, [], None)


def test_nothing_is_ever_evaluated(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("eval/exec called")

    real_compile = builtins.compile

    def ast_only(source, filename, mode, flags=0, *a, **k):
        # ast.parse compiles to a syntax tree only; anything else would make runnable code
        assert flags & ast.PyCF_ONLY_AST, "compiled to code"
        return real_compile(source, filename, mode, flags, *a, **k)

    monkeypatch.setattr(builtins, "eval", refuse)
    monkeypatch.setattr(builtins, "exec", refuse)
    monkeypatch.setattr(builtins, "compile", ast_only)
    bait = "__import__('builtins').setattr(__import__('builtins'), 'PWNED', 1)"
    for text in (f"[f(a={bait})]", f"```tool_code\n{bait}\n```", f"[{bait}]"):
        assert parse_reply(text, family="gemma3").tool_calls == []
    assert not hasattr(builtins, "PWNED")


# ----------------------------------------------------------------------------- Qwen3-VL


def test_qwen_reasoning_then_content():
    r = parse_reply("<think>\nJakarta is in Indonesia.\n</think>\n\nJakarta.", family="qwen3_vl")
    assert (r.reasoning, r.content, r.tool_calls) == ("Jakarta is in Indonesia.", "Jakarta.", [])


def test_qwen_reply_starting_inside_thinking():
    text = "The prompt opened it.\n</think>\n\nAnswer."
    for r in (
        parse_reply(text, family="qwen3_vl"),
        parse_reply(text, family="qwen3_vl", reasoning_open=True),
    ):
        assert (r.reasoning, r.content) == ("The prompt opened it.", "Answer.")
    assert get_adapter("qwen3_vl").prompt_opens_reasoning("<|im_start|>assistant\n<think>\n")
    assert not get_adapter("qwen3_vl").prompt_opens_reasoning("<think>\n\n</think>\n\n")


def test_qwen_unfinished_thinking_is_reasoning():
    r = parse_reply("<think>\nStill thinking", family="qwen3_vl")
    assert (r.reasoning, r.content) == ("Still thinking", "")


def test_qwen_several_hermes_calls_with_text_before():
    text = (
        "Let me check.\n<tool_call>\n"
        + json.dumps({"name": "get_weather", "arguments": {"city": THAI, "days": [1, 2]}})
        + "\n</tool_call>\n<tool_call>\n"
        + json.dumps({"name": "get_time", "arguments": json.dumps({"tz": "Asia/Ho_Chi_Minh"})})
        + "\n</tool_call>"
    )
    r = parse_reply(text, family="qwen3_vl")
    assert calls(r) == [
        ("get_weather", {"city": THAI, "days": [1, 2]}),
        ("get_time", {"tz": "Asia/Ho_Chi_Minh"}),
    ]
    assert r.content == "Let me check." and r.reasoning is None


@pytest.mark.parametrize(
    "text",
    [
        "<tool_call>\n{not json}\n</tool_call>",
        '<tool_call>\n{"arguments": {}}\n</tool_call>',
        '<tool_call>\n{"name": "f", "arguments": [1]}\n</tool_call>',
        '<tool_call>\n{"name": "f", "arguments": {"x": NaN}}\n</tool_call>',
        '<tool_call>\n["f"]\n</tool_call>',
        '<tool_call>\n{"name": "f", "arguments": {}}',
        "a <tool b </tool_call>",
        "<thi",
    ],
)
def test_qwen_malformed_calls_stay_content(text):
    r = parse_reply(text, family="qwen3_vl", reasoning_open=False)
    assert (r.content, r.tool_calls) == (text, [])


# ----------------------------------------------------------------------------- Gemma 4


def test_gemma4_reasoning_and_native_calls_with_every_value_type():
    text = (
        "<|channel>thought\nNeed the weather.<channel|>"
        '<|tool_call>call:get_weather{key:<|"|>text, with: {braces} and "quotes"<|"|>,n:42,'
        'x:-1.5e2,flag:true,off:false,none:null,xs:[1,2],obj:{a:<|"|>b<|"|>,deep:[{c:[]}]},'
        'city:<|"|>' + VIET + '<|"|>}<tool_call|>'
        '<|tool_call>call:get_time{ tz : "Asia/Bangkok" , }<tool_call|>'
    )
    r = parse_reply(text, family="gemma4")
    assert r.reasoning == "Need the weather." and r.content == ""
    assert calls(r) == [
        (
            "get_weather",
            {
                "key": 'text, with: {braces} and "quotes"',
                "n": 42,
                "x": -150.0,
                "flag": True,
                "off": False,
                "none": None,
                "xs": [1, 2],
                "obj": {"a": "b", "deep": [{"c": []}]},
                "city": VIET,
            },
        ),
        ("get_time", {"tz": "Asia/Bangkok"}),
    ]


def test_gemma4_content_after_thought_and_call_ending_an_unclosed_thought():
    r = parse_reply("<|channel>thought\nPlan.<channel|>Xin chào!", family="gemma4")
    assert (r.reasoning, r.content) == ("Plan.", "Xin chào!")
    r = parse_reply("<|channel>thought\nhm<|tool_call>call:f{}<tool_call|>", family="gemma4")
    assert (r.reasoning, r.content, calls(r)) == ("hm", "", [("f", {})])


@pytest.mark.parametrize(
    "text",
    [
        "<|tool_call>call:f{city:Jakarta}<tool_call|>",
        "<|tool_call>f{a:1}<tool_call|>",
        "<|tool_call>call:f{a:1<tool_call|>",
        "<|tool_call>call:f{a:1}}<tool_call|>",
        "<|tool_call>call:f{a:[1,2}<tool_call|>",
        '<|tool_call>call:f{a:<|"|>open}<tool_call|>',
        "<|tool_call>call:f(a=1)<tool_call|>",
        "<|tool_call>call:f{a:1e999}<tool_call|>",
        "<|tool_call>call:f{a:1}",
        "<|chan and <|tool",
    ],
)
def test_gemma4_malformed_calls_stay_content(text):
    r = parse_reply(text, family="gemma4", reasoning_open=False)
    assert (r.content, r.tool_calls) == (text, [])


# ----------------------------------------------------------------------------- shared


def test_without_tools_call_markup_stays_content_and_reasoning_still_splits():
    cases = {
        "gemma3": ("", "[f(a=1)] and\n```tool_code\ng(b=2)\n```"),
        "qwen3_vl": ("<think>\nhm\n</think>\n\n", '<tool_call>\n{"name": "f"}\n</tool_call>'),
        "gemma4": ("<|channel>thought\nhm<channel|>", "<|tool_call>call:f{a:1}<tool_call|>"),
    }
    for family, (think, body) in cases.items():
        r = parse_reply(think + body, family=family, tools=False)
        assert (r.content, r.tool_calls) == (body, [])
        assert r.reasoning == ("hm" if think else None)
        assert parse_reply(think + body, family=family).tool_calls  # read by default


@pytest.mark.parametrize("family", ["gemma3", "qwen3_vl", "gemma4"])
def test_plain_replies_come_back_unchanged(family):
    for text in ("", "  Hello\n", "Jawapan: B", "Câu trả lời của tôi là có. ", "x < y > z"):
        r = parse_reply(text, family=family)
        assert (r.content, r.reasoning, r.tool_calls) == (text, None, [])


def test_tool_call_ids_and_shape():
    text = '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>'
    a = parse_reply(text, family="qwen3_vl")
    b = parse_reply(text, family="qwen3_vl")
    call = a.tool_calls[0]
    assert re.fullmatch(r"call_[0-9a-f]{24}", call["id"])
    assert a.tool_calls[0]["id"] != b.tool_calls[0]["id"]  # random without a seed
    assert call["type"] == "function" and call["function"] == {"name": "f", "arguments": '{"a": 1}'}
    seeded = [parse_reply(text, family="qwen3_vl", id_seed="req-1").tool_calls for _ in range(2)]
    assert seeded[0] == seeded[1]


def test_public_api_is_lazy_and_needs_no_torch():
    code = (
        "import sys, sealion_vl\n"
        "r = sealion_vl.parse_reply('[f(a=1)]', family='gemma3')\n"
        "assert isinstance(r, sealion_vl.ParsedReply) and r.tool_calls\n"
        "assert 'torch' not in sys.modules, 'parsing imported torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert sealion_vl.parse_reply is parse_reply
    with pytest.raises(UnsupportedModelError, match="llama"):
        parse_reply("x", family="llama")


ROUND_TRIP = [
    [{"name": "get_weather", "arguments": {"city": THAI}}],
    [
        {"name": "a", "arguments": {}},
        {
            "name": "b",
            "arguments": {
                "s": "quote ' \" back\\slash\nnewline {x: [y]}",
                "n": -3,
                "f": 0.25,
                "t": True,
                "z": None,
                "l": [1, "two", [3.5, False]],
                "d": {"inner key": {"v": VIET}, "type": "string"},
            },
        },
    ],
    [
        {
            "id": "call_x",
            "type": "function",
            "function": {"name": "c", "arguments": json.dumps({"k": [{"a": 1}, {}]})},
        }
    ],
]


@pytest.mark.parametrize("family", ["gemma3", "qwen3_vl", "gemma4"])
@pytest.mark.parametrize("batch", ROUND_TRIP)
def test_format_tool_calls_round_trips_through_parse_reply(family, batch):
    adapter = get_adapter(family)
    text = adapter.format_tool_calls(batch)
    want = []
    for c in batch:
        fn = c.get("function", c)
        args = fn["arguments"]
        want.append((fn["name"], json.loads(args) if isinstance(args, str) else args))
    r = adapter.parse_reply(text)
    assert (calls(r), r.content) == (want, "")
    # and streamed, one character at a time
    stream = adapter.reply_stream()
    deltas = [d for ch in text for d in stream.feed(ch)] + stream.finish()
    assert calls(assemble(deltas)) == want


def test_exact_written_formats():
    batch = [{"name": "get_time", "arguments": {"tz": "Asia/Singapore", "fmt": 24}}]
    assert get_adapter("gemma3").format_tool_calls(batch) == (
        '```tool_code\nget_time(tz="Asia/Singapore", fmt=24)\n```'
    )
    assert get_adapter("qwen3_vl").format_tool_calls(batch + batch) == (
        '<tool_call>\n{"name": "get_time", "arguments": {"tz": "Asia/Singapore", "fmt": 24}}\n'
        "</tool_call>\n"
        '<tool_call>\n{"name": "get_time", "arguments": {"tz": "Asia/Singapore", "fmt": 24}}\n'
        "</tool_call>"
    )
    assert get_adapter("gemma4").format_tool_calls(batch) == (
        '<|tool_call>call:get_time{fmt:24,tz:<|"|>Asia/Singapore<|"|>}<tool_call|>'
    )


# ----------------------------------------------------------------------------- streaming


def stream_chunks(family: str, chunks: list[str], **kw) -> list:
    stream = get_adapter(family).reply_stream(**kw)
    out = [d for c in chunks for d in stream.feed(c)]
    return out + stream.finish()


def test_partial_markup_is_held_back_then_released_when_it_cannot_be_markup():
    cases = [
        ("qwen3_vl", ["Hi <tool_"], ["call>"], "Hi"),
        ("qwen3_vl", ["Hi <tool_"], ["box"], "Hi <tool_box"),
        ("qwen3_vl", ["<thi"], ["s"], "<this"),
        ("gemma4", ["A <|chan"], ["nel>thought\n"], "A"),
        ("gemma4", ["A <|tool_c"], ["at"], "A <|tool_cat"),
        ("gemma3", ["[get_w"], ["eather(city='x')]"], ""),
        ("gemma3", ["[get_w"], [" is not a call"], "[get_w is not a call"),
        ("gemma3", ["So ``"], ["`python"], "So ```python"),
        ("gemma3", ["So ```tool"], ["_code\n"], "So"),
    ]
    for family, first, second, visible in cases:
        stream = get_adapter(family).reply_stream()
        before = [d for c in first for d in stream.feed(c)]
        shown = "".join(d.text for d in before if isinstance(d, ContentDelta))
        assert shown == first[0][: len(shown)] and shown.rstrip() == shown
        assert not any(m in shown for m in ("<tool_", "<|chan", "<|tool_c", "[", "``", "<thi"))
        after = before + [d for c in second for d in stream.feed(c)]
        got = "".join(d.text for d in after if isinstance(d, ContentDelta))
        assert got.rstrip() == visible.rstrip(), (family, first, second, got)


def test_delta_types_and_order():
    text = (
        "<think>\nplan\n</think>\n\nOK.\n"
        '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>'
    )
    deltas = stream_chunks("qwen3_vl", [text[:9], text[9:30], text[30:]], id_seed=7)
    kinds = [type(d) for d in deltas]
    kinds = [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] is not k]
    assert kinds == [ReasoningDelta, ContentDelta, ToolCallDelta]
    call = deltas[-1]
    assert (call.index, call.name, call.arguments_delta) == (0, "f", '{"a": 1}')
    assert call.id == parse_reply(text, family="qwen3_vl", id_seed=7).tool_calls[0]["id"]
    stream = get_adapter("qwen3_vl").reply_stream()
    stream.feed(text)
    stream.finish()
    assert stream.finish() == [] and stream.result().content == "OK."
    with pytest.raises(RuntimeError):
        stream.feed("more")


def _texts(family: str, rng: random.Random, n: int) -> list[str]:
    """Random replies mixing content, reasoning, calls, malformed markup and whitespace."""
    adapter = get_adapter(family)
    words = ["Hello", THAI, VIET, " ", "\n", "\n\n", "a < b", "[x]", "`", "<", "|", "{", "1"]
    args = [{}, {"city": THAI}, {"n": 1, "xs": [1, {"k": None}]}, {"s": "q'\"\\"}]
    bad = {
        "gemma3": ["[f(1)]", "```tool_code\nx=1\n```", "```tool_code\nf(", "```py\nf()\n```"],
        "qwen3_vl": ["<tool_call>\n{x}\n</tool_call>", "<tool_call>", "</tool_call>", "<tool"],
        "gemma4": ["<|tool_call>call:f{a:b}<tool_call|>", "<|tool_call>call:", "<|", "<channel|>"],
    }[family]
    opens = {
        "gemma3": [""],
        "qwen3_vl": ["", "<think>\nI think.\n</think>\n\n", "<think>open", "\n<think>x</think>"],
        "gemma4": ["", "<|channel>thought\nHmm.<channel|>", "<|channel>thought\nopen"],
    }[family]
    out = []
    for _ in range(n):
        pieces = [rng.choice(opens)]
        if family == "gemma3" and rng.random() < 0.3:
            pieces.append(rng.choice(["", " ", "\n"]) + "[f(a=1), g(b='x')]")
        for _ in range(rng.randint(0, 8)):
            r = rng.random()
            if r < 0.5:
                pieces.append(rng.choice(words))
            elif r < 0.75:
                picked = [{"name": "f", "arguments": rng.choice(args)}] * rng.randint(1, 2)
                pieces.append(adapter.format_tool_calls(picked))
            elif r < 0.9:
                pieces.append(rng.choice(bad))
            elif family == "gemma4":
                pieces.append(rng.choice(opens))
            else:
                pieces.append(rng.choice(words))
        out.append("".join(pieces))
    return out


def _check_split(family: str, text: str, cuts: list[int], tools: bool = True) -> None:
    want = parse_reply(text, family=family, tools=tools, reasoning_open=False, id_seed=1)
    chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    deltas = stream_chunks(family, chunks, tools=tools, id_seed=1)
    got = assemble(deltas)
    assert got.content == want.content, (text, chunks)
    assert got.reasoning == want.reasoning, (text, chunks)
    assert got.tool_calls == want.tool_calls, (text, chunks)
    for d in deltas:  # each delta is one piece: no empty text, whole calls
        assert not isinstance(d, ContentDelta | ReasoningDelta) or d.text
        assert not isinstance(d, ToolCallDelta) or (d.id and d.name)


@pytest.mark.parametrize("family", ["gemma3", "qwen3_vl", "gemma4"])
def test_streaming_equals_batch_for_every_split(family):
    rng = random.Random(f"splits-{family}")
    texts = _texts(family, rng, 60)
    assert any(parse_reply(t, family=family).tool_calls for t in texts)
    for text in texts:
        _check_split(family, text, list(range(1, len(text))))  # one character at a time
        for _ in range(8):
            k = rng.randint(0, min(6, max(len(text) - 1, 0)))
            cuts = sorted(rng.sample(range(1, len(text)), k)) if k else []
            _check_split(family, text, cuts)
            _check_split(family, text, cuts, tools=False)


def test_streaming_a_reply_that_starts_inside_reasoning():
    for family, text in [
        ("qwen3_vl", 'still thinking\n</think>\n\nAnswer <tool_call>\n{"name": "f"}\n</tool_call>'),
        ("gemma4", "thought\nstill thinking<channel|>Answer"),
    ]:
        want = parse_reply(text, family=family, reasoning_open=True)
        assert want.reasoning == "still thinking" and want.content == "Answer"
        for cuts in ([], list(range(1, len(text)))):
            chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
            got = assemble(stream_chunks(family, chunks, reasoning_open=True))
            assert (got.content, got.reasoning) == (want.content, want.reasoning)

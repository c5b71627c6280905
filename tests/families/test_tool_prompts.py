"""Tools, tool calls and tool results in the prompt: adapter.prepare + each family's fallback
template render the real formats of facts.md §2; tool-free prompts are unchanged."""

from __future__ import annotations

import pytest

from sealion_vl.families import ADAPTERS, get_adapter
from sealion_vl.messages import Message, Part, parse_conversation, to_template_messages
from sealion_vl.nano.tokenizer import SPECIALS
from tests.fixtures.tiny import build_tokenizer

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": "City name"}},
                "required": ["city"],
            },
        },
    }
]
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "กรุงเทพ"}'},
}
CONV = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Bangkok?"},
    {"role": "assistant", "content": None, "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 31}'},
    {"role": "assistant", "content": "31 degrees."},
    {"role": "user", "content": "Thanks"},
]

_tokenizers: dict = {}


def render(family: str, conv, tools=TOOLS, reasoning=None, generation=True) -> str:
    if family not in _tokenizers:
        _tokenizers[family] = build_tokenizer(family)
    adapter = get_adapter(family)
    messages = to_template_messages(adapter.prepare(parse_conversation(conv), tools=tools))
    return _tokenizers[family].apply_chat_template(
        messages,
        tools=tools if adapter.tools_in_template else None,
        tokenize=False,
        add_generation_prompt=generation,
        **adapter.template_kwargs(reasoning),
    )


QWEN_TOOLS = (
    "<|im_start|>system\nBe brief.\n\n# Tools\n\nYou may call one or more functions to assist "
    "with the user query.\n\nYou are provided with function signatures within <tools></tools> "
    'XML tags:\n<tools>\n{"type": "function", "function": {"name": "get_weather", "description": '
    '"Current weather", "parameters": {"type": "object", "properties": {"city": {"type": '
    '"string", "description": "City name"}}, "required": ["city"]}}}\n</tools>\n\nFor each '
    "function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
)


def test_qwen_renders_hermes_tools_calls_and_responses():
    assert render("qwen3_vl", CONV) == (
        QWEN_TOOLS + "<|im_start|>user\nWeather in Bangkok?<|im_end|>\n"
        "<|im_start|>assistant\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city": "กรุงเทพ"}}\n</tool_call><|im_end|>\n'
        '<|im_start|>user\n<tool_response>\n{"temp": 31}\n</tool_response><|im_end|>\n'
        "<|im_start|>assistant\n31 degrees.<|im_end|>\n"
        "<|im_start|>user\nThanks<|im_end|>\n<|im_start|>assistant\n"
    )


def test_qwen_several_calls_and_results_share_turns():
    conv = [
        {"role": "user", "content": "Two cities"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [CALL, CALL]},
        {"role": "tool", "content": "A"},
        {"role": "tool", "content": "B"},
    ]
    assert render("qwen3_vl", conv, tools=None) == (
        "<|im_start|>user\nTwo cities<|im_end|>\n<|im_start|>assistant\nChecking.\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city": "กรุงเทพ"}}\n</tool_call>\n<tool_call>\n'
        '{"name": "get_weather", "arguments": {"city": "กรุงเทพ"}}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\n<tool_response>\nA\n</tool_response>\n<tool_response>\nB\n"
        "</tool_response><|im_end|>\n<|im_start|>assistant\n"
    )
    # tools but no system message: the tools make the system turn
    assert render("qwen3_vl", conv[:1]).startswith(
        "<|im_start|>system\n# Tools\n\nYou may call one or more functions"
    )


GEMMA4_DECL = (
    '<|tool>declaration:get_weather{description:<|"|>Current weather<|"|>,parameters:'
    '{properties:{city:{description:<|"|>City name<|"|>,type:<|"|>STRING<|"|>}},'
    'required:[<|"|>city<|"|>],type:<|"|>OBJECT<|"|>}}<tool|>'
)


def test_gemma4_renders_native_declarations_calls_and_responses_in_the_model_turn():
    assert render("gemma4", CONV) == (
        "<bos><|turn>system\nBe brief." + GEMMA4_DECL + "<turn|>\n"
        "<|turn>user\nWeather in Bangkok?<turn|>\n"
        '<|turn>model\n<|tool_call>call:get_weather{city:<|"|>กรุงเทพ<|"|>}<tool_call|>'
        '<|tool_response>response:get_weather{value:<|"|>{"temp": 31}<|"|>}<tool_response|>'
        "31 degrees.<turn|>\n<|turn>user\nThanks<turn|>\n<|turn>model\n"
    )


def test_gemma4_after_a_tool_result_the_model_turn_stays_open():
    conv = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "", "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "31"},
    ]
    assert render("gemma4", conv, reasoning=True) == (
        "<bos><|turn>system\n<|think|>" + GEMMA4_DECL + "<turn|>\n"
        "<|turn>user\nWeather?<turn|>\n"
        '<|turn>model\n<|tool_call>call:get_weather{city:<|"|>กรุงเทพ<|"|>}<tool_call|>'
        '<|tool_response>response:get_weather{value:<|"|>31<|"|>}<tool_response|>'
    )
    # without a generation prompt the turn is closed
    assert render("gemma4", conv, tools=None, generation=False).endswith(
        "<tool_response|><turn|>\n"
    )


def test_gemma3_writes_tools_calls_and_results_as_text():
    out = render("gemma3", CONV)
    head, rest = out.split("Weather in Bangkok?<end_of_turn>\n", 1)
    assert head.startswith("<bos><start_of_turn>user\nBe brief.\n\nYou can call the functions")
    assert '"name": "get_weather"' in head and "```tool_code" in head
    assert rest == (
        '<start_of_turn>model\n```tool_code\nget_weather(city="กรุงเทพ")\n```<end_of_turn>\n'
        '<start_of_turn>user\n<tool_response>\n{"temp": 31}\n</tool_response><end_of_turn>\n'
        "<start_of_turn>model\n31 degrees.<end_of_turn>\n"
        "<start_of_turn>user\nThanks<end_of_turn>\n<start_of_turn>model\n"
    )


def test_gemma3_merges_tool_results_with_the_next_user_turn_and_keeps_call_text():
    conv = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [CALL]},
        {"role": "tool", "content": "31"},
        {"role": "tool", "content": "32"},
        {"role": "user", "content": "And?"},
    ]
    assert render("gemma3", conv, tools=None) == (
        "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nChecking.\n"
        '```tool_code\nget_weather(city="กรุงเทพ")\n```<end_of_turn>\n<start_of_turn>user\n'
        "<tool_response>\n31\n</tool_response>\n\n<tool_response>\n32\n</tool_response>\n\n"
        "And?<end_of_turn>\n<start_of_turn>model\n"
    )


@pytest.mark.parametrize("family", sorted(ADAPTERS))
def test_a_tool_round_trip_renders_and_the_reply_parses(family):
    """Tool call + result render for every family, and the template's call text is what
    format_tool_calls writes (what the model emits) and parse_reply reads back."""
    adapter = get_adapter(family)
    out = render(family, CONV)
    written = adapter.format_tool_calls([CALL])
    assert written in out
    assert adapter.parse_reply(written).tool_calls[0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city": "กรุงเทพ"}',
    }


@pytest.mark.parametrize("family", sorted(ADAPTERS))
def test_tool_free_prompts_do_not_change_with_tools_none(family):
    conv = [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}]
    assert render(family, conv, tools=None) == render(family, conv, tools=[])
    assert "tool" not in render(family, conv, tools=None)


def test_prepare_names_tool_turns_and_keeps_the_old_signature():
    conv = parse_conversation(
        [
            {"role": "user", "content": "x"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "a", "function": {"name": "f", "arguments": {}}},
                    {"id": "b", "function": {"name": "g", "arguments": {}}},
                ],
            },
            {"role": "tool", "tool_call_id": "b", "content": "1"},
            {"role": "tool", "content": "2"},
        ]
    )
    named = get_adapter("qwen3_vl").prepare(conv)
    assert [m.name for m in named[2:]] == ["g", "f"]  # by id, then the call left unanswered
    assert conv[2].name is None  # input untouched
    assert get_adapter("gemma4").prepare([Message("user", [Part.of_text("x")])])[0].text == "x"


def test_special_and_markup_tokens_live_in_the_adapters():
    assert {name: a.special_tokens for name, a in ADAPTERS.items()} == SPECIALS
    for family, adapter in ADAPTERS.items():
        tok = build_tokenizer(family) if family not in _tokenizers else _tokenizers[family]
        specials = set(tok.all_special_tokens) | set(tok.added_tokens_encoder)
        assert set(adapter.markup_tokens) <= specials, family
    assert get_adapter("gemma3").markup_tokens == ()
    assert '<|"|>' in get_adapter("gemma4").markup_tokens


@pytest.mark.parametrize("family", sorted(ADAPTERS))
def test_processors_render_tool_turns_with_images(checkpoint, family):
    """The engine's path: a checkpoint's processor (media parts, tool turns as strings)."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(checkpoint(family))
    adapter = get_adapter(family)
    conv = [
        {
            "role": "user",
            "content": [{"type": "image", "path": "x.png"}, {"type": "text", "text": "?"}],
        },
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "31"},
    ]
    messages = to_template_messages(adapter.prepare(parse_conversation(conv), tools=TOOLS))
    out = processor.apply_chat_template(
        messages,
        tools=TOOLS if adapter.tools_in_template else None,
        tokenize=False,
        add_generation_prompt=True,
    )
    assert adapter.format_tool_calls([CALL]) in out and adapter.media_tokens["image"] in out
    assert "31" in out.rsplit(adapter.format_tool_calls([CALL]), 1)[1]

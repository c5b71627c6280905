import pytest

from sealion_vl.errors import MessageFormatError
from sealion_vl.messages import parse_conversation, parse_tools, to_template_messages


def test_openai_and_hf_styles_give_the_same_internal_form():
    openai = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Compare"},
                {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        },
    ]
    hf = [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Compare"},
                {"type": "image", "url": "https://x/a.png"},
                {"type": "image", "url": "data:image/png;base64,AAAA"},
            ],
        },
    ]
    a, b = parse_conversation(openai), parse_conversation(hf)
    assert to_template_messages(a) == to_template_messages(b)
    assert [p.source for p in a[1].media("image")] == [p.source for p in b[1].media("image")]
    assert a[1].parts[1].options == {"detail": "low"}


def test_hf_sources_path_and_object_and_audio_parts():
    conv = parse_conversation(
        [
            {
                "role": "user",
                "content": [
                    {"type": "image", "path": "/tmp/x.png"},
                    {"type": "video", "url": "/tmp/v.mp4"},
                    {"type": "input_audio", "input_audio": {"data": "UklGR", "format": "wav"}},
                ],
            }
        ]
    )
    kinds = [p.type for p in conv[0].parts]
    assert kinds == ["image", "video", "audio"]
    assert conv[0].parts[2].options["openai"] is True


def test_plain_string_is_one_user_turn_and_developer_is_system():
    assert parse_conversation("hello")[0].role == "user"
    assert parse_conversation([{"role": "developer", "content": "x"}])[0].role == "system"


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ([], "non-empty"),
        ([{"role": "wizard", "content": "x"}], "role"),
        ([{"role": "user", "content": 42}], "content"),
        ([{"role": "user", "content": [{"type": "hologram"}]}], "hologram"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}], "image_url"),
        ([{"role": "user", "content": [{"type": "image"}]}], "image part needs"),
        (["not a dict"], "message 0"),
        (
            [{"role": "user", "content": "x", "tool_calls": [{"function": {"name": "f"}}]}],
            "message 0: only assistant",
        ),
        ([{"role": "assistant", "content": None, "tool_calls": {"name": "f"}}], "must be a list"),
        ([{"role": "assistant", "content": None, "tool_calls": ["f"]}], "tool call 0"),
        (
            [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [{}]}],
            "message 1 tool call 0: needs a function 'name'",
        ),
        (
            [{"role": "assistant", "tool_calls": [{"name": "f", "arguments": "{oops"}]}],
            "not valid JSON",
        ),
        (
            [{"role": "assistant", "tool_calls": [{"name": "f", "arguments": "[1]"}]}],
            "must be a JSON object",
        ),
        ([{"role": "assistant", "tool_calls": [{"name": "f", "arguments": 3}]}], "arguments"),
        ([{"role": "assistant", "tool_calls": [{"id": 7, "name": "f"}]}], "'id' must be"),
        ([{"role": "user", "content": "x", "tool_call_id": "c1"}], "tool_call_id"),
        ([{"role": "tool", "content": "x", "tool_call_id": 5}], "tool_call_id"),
        ([{"role": "tool", "content": "x", "name": ["f"]}], "'name' must be a string"),
    ],
)
def test_bad_messages_name_the_problem(bad, words):
    with pytest.raises(MessageFormatError, match=words):
        parse_conversation(bad)


def test_tool_calls_and_tool_turns_are_kept_and_normalised():
    conv = parse_conversation(
        [
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Huế"}'},
                    },
                    {"name": "get_time", "arguments": {"tz": "Asia/Bangkok"}},  # HF bare form
                    {"function": {"name": "ping", "arguments": ""}},
                ],
            },
            {"role": "tool", "tool_call_id": "call_a", "name": "get_weather", "content": "31"},
        ]
    )
    calls = conv[1].tool_calls
    assert conv[1].parts == [] and [c["type"] for c in calls] == ["function"] * 3
    assert calls[0] == {
        "id": "call_a",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Huế"}'},
    }
    assert calls[1]["function"]["arguments"] == '{"tz": "Asia/Bangkok"}'  # dict → JSON string
    assert calls[2]["function"]["arguments"] == "{}"
    assert calls[1]["id"].startswith("call_") and len(calls[1]["id"]) == 29
    assert (conv[2].tool_call_id, conv[2].name) == ("call_a", "get_weather")

    tm = to_template_messages(conv)
    assert tm[1] == {
        "role": "assistant",
        "content": [],
        "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Huế"}}},
            {
                "type": "function",
                "function": {"name": "get_time", "arguments": {"tz": "Asia/Bangkok"}},
            },
            {"type": "function", "function": {"name": "ping", "arguments": {}}},
        ],
    }
    assert tm[2] == {
        "role": "tool",
        "content": "31",
        "tool_call_id": "call_a",
        "name": "get_weather",
    }
    assert tm[0] == {"role": "user", "content": [{"type": "text", "text": "Weather?"}]}


def test_parse_tools_wraps_bare_functions_and_names_bad_ones():
    fn = {"name": "f", "description": "d", "parameters": {"type": "object", "properties": {}}}
    assert parse_tools([fn]) == parse_tools([{"type": "function", "function": fn}])
    assert parse_tools([fn])[0] == {"type": "function", "function": fn}
    assert parse_tools(None) == []
    for bad, words in [
        ({"name": "f"}, "must be a list"),
        ([{"type": "code_interpreter"}], "tool 0: only type 'function'"),
        ([fn, {"description": "no name"}], "tool 1"),
        ([{"name": "f", "parameters": "x"}], "parameters"),
    ]:
        with pytest.raises(MessageFormatError, match=words):
            parse_tools(bad)

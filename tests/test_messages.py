import pytest

from sealion_vl.errors import MessageFormatError
from sealion_vl.messages import parse_conversation, to_template_messages


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
    ],
)
def test_bad_messages_name_the_problem(bad, words):
    with pytest.raises(MessageFormatError, match=words):
        parse_conversation(bad)

"""Each family renders the real turn format of its backbone (facts.md §2)."""

import pytest

CONV = [
    {"role": "system", "content": "Be brief."},
    {
        "role": "user",
        "content": [{"type": "image", "path": "x.png"}, {"type": "text", "text": "What?"}],
    },
    {"role": "assistant", "content": "A cat."},
    {"role": "user", "content": "And?"},
]

EXPECTED = {
    "gemma3": (
        "<bos><start_of_turn>user\nBe brief.\n\n<start_of_image>What?<end_of_turn>\n"
        "<start_of_turn>model\nA cat.<end_of_turn>\n"
        "<start_of_turn>user\nAnd?<end_of_turn>\n<start_of_turn>model\n"
    ),
    "qwen3_vl": (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What?<|im_end|>\n"
        "<|im_start|>assistant\nA cat.<|im_end|>\n"
        "<|im_start|>user\nAnd?<|im_end|>\n<|im_start|>assistant\n"
    ),
    "gemma4": (
        "<bos><|turn>system\nBe brief.<turn|>\n<|turn>user\n<|image|>What?<turn|>\n"
        "<|turn>model\nA cat.<turn|>\n<|turn>user\nAnd?<turn|>\n<|turn>model\n"
    ),
}


@pytest.mark.parametrize("family", sorted(EXPECTED))
def test_multi_turn_with_system_and_image_renders_the_family_format(chat_model, family):
    assert chat_model(family).render(CONV) == EXPECTED[family]


def test_gemma3_merges_same_role_turns_and_late_system_text(chat_model):
    conv = [
        {"role": "user", "content": "First."},
        {"role": "user", "content": "Second."},
        {"role": "system", "content": "Answer in Malay."},
    ]
    assert chat_model("gemma3").render(conv) == (
        "<bos><start_of_turn>user\nAnswer in Malay.\n\nFirst.\n\nSecond.<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_gemma4_thinking_flag_goes_at_the_top_of_the_system_turn(chat_model):
    m = chat_model("gemma4")
    assert m.render(CONV, reasoning=True).startswith("<bos><|turn>system\n<|think|>Be brief.")
    assert m.render([{"role": "user", "content": "Hi"}], reasoning=True) == (
        "<bos><|turn>system\n<|think|><turn|>\n<|turn>user\nHi<turn|>\n<|turn>model\n"
    )
    assert "<|think|>" not in m.render(CONV)


def test_stop_tokens_are_in_generation_eos(chat_model):
    for family, needed in [
        ("gemma3", "<end_of_turn>"),
        ("qwen3_vl", "<|im_end|>"),
        ("gemma4", "<turn|>"),
    ]:
        m = chat_model(family)
        assert m.tokenizer.convert_tokens_to_ids(needed) in m.model.generation_config.eos_token_id

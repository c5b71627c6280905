"""chat / chat_batch / stream on the three families, checked against transformers itself."""

import pytest
import torch

import sealion_vl
from tests.conftest import FAMILIES

N = 8  # new tokens per reply: enough to catch divergence, quick on CPU


def _scenarios(media_dir):
    a, b = str(media_dir / "a.png"), str(media_dir / "b.jpg")
    return {
        "no_image": [{"role": "user", "content": "Apa khabar?"}],
        "single_image": [
            {
                "role": "user",
                "content": [{"type": "image", "path": a}, {"type": "text", "text": "Apa ini?"}],
            }
        ],
        "two_images": [
            {
                "role": "user",
                "content": [
                    {"type": "image", "path": a},
                    {"type": "image", "path": b},
                    {"type": "text", "text": "Compare them."},
                ],
            }
        ],
        "system_prompt": [
            {"role": "system", "content": [{"type": "text", "text": "Answer in Thai."}]},
            {
                "role": "user",
                "content": [{"type": "image", "path": a}, {"type": "text", "text": "What colour?"}],
            },
        ],
        "multi_turn": [
            {
                "role": "user",
                "content": [{"type": "image", "path": a}, {"type": "text", "text": "What is it?"}],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "A flag."}]},
            {
                "role": "user",
                "content": [
                    {"type": "image", "path": b},
                    {"type": "text", "text": "And this one?"},
                ],
            },
        ],
    }


def _reference(m, conv) -> list[int]:
    """Greedy ids straight from transformers: the processor's own template + generate,
    up to (not including) the first end-of-turn token."""
    inputs = m.processor.apply_chat_template(
        conv, tokenize=True, return_dict=True, return_tensors="pt", add_generation_prompt=True
    )
    with torch.inference_mode():
        out = m.model.generate(**inputs, max_new_tokens=N, do_sample=False)
    ids = out[0, inputs["input_ids"].shape[1] :].tolist()
    return next((ids[:i] for i, t in enumerate(ids) if t in m._stop_ids), ids)


def _content(deltas) -> str:
    return "".join(d.text for d in deltas if type(d).__name__ == "ContentDelta")


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    "scenario", ["no_image", "single_image", "two_images", "system_prompt", "multi_turn"]
)
def test_chat_matches_transformers_greedy(chat_model, media_dir, family, scenario):
    m = chat_model(family)
    conv = _scenarios(media_dir)[scenario]
    result = m.chat(conv, max_new_tokens=N, temperature=0)
    assert result.token_ids == _reference(m, conv)
    assert result.completion_tokens == N or result.finish_reason == "stop"
    n_images = sum(
        p.get("type") == "image"
        for t in conv
        if isinstance(t["content"], list)
        for p in t["content"]
    )
    # the prompt grew by the image soft tokens: it must be longer than its text alone
    assert result.prompt_tokens > len(m.tokenizer(m.render(conv))["input_ids"]) - 1 or not n_images


@pytest.mark.parametrize("family", FAMILIES)
def test_batch_with_0_1_2_images_equals_one_at_a_time(chat_model, media_dir, family):
    m = chat_model(family)
    s = _scenarios(media_dir)
    convs = [s["no_image"], s["single_image"], s["two_images"]]
    batch = m.chat_batch(convs, max_new_tokens=N, temperature=0)
    single = [m.chat(c, max_new_tokens=N, temperature=0) for c in convs]
    assert [r.text for r in batch] == [r.text for r in single]
    assert [r.prompt_tokens for r in batch] == [r.prompt_tokens for r in single]
    assert len({r.prompt_tokens for r in batch}) == 3  # really different lengths, padded


@pytest.mark.parametrize("family", FAMILIES)
def test_stream_concatenates_to_chat(chat_model, media_dir, family):
    m = chat_model(family)
    pieces = []
    for conv in _scenarios(media_dir).values():
        deltas = list(m.stream(conv, max_new_tokens=N, temperature=0))
        assert _content(deltas) == m.chat(conv, max_new_tokens=N, temperature=0).text
        pieces.append(len(deltas))
    assert max(pieces) > 1  # it really streams, not one chunk at the end


@pytest.mark.parametrize("family", FAMILIES)
def test_model_card_pipeline_snippet_gives_the_same_text(checkpoint, chat_model, media_dir, family):
    from transformers import pipeline

    pipe = pipeline("image-text-to-text", model=str(checkpoint(family)))
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "You are a helpful assistant."}]},
        {
            "role": "user",
            "content": [
                {"type": "image", "url": str(media_dir / "a.png")},
                {"type": "text", "text": "What animal is on the candy?"},
            ],
        },
    ]
    out = pipe(text=messages, max_new_tokens=N, generate_kwargs={"do_sample": False})
    m = chat_model(family)
    ids = m.chat(messages, max_new_tokens=N, temperature=0).token_ids
    assert out[0]["generated_text"][-1]["content"] == m.tokenizer.decode(
        ids, skip_special_tokens=True
    )


def test_stop_strings_seed_and_generation_config_defaults(chat_model):
    m = chat_model("qwen3_vl")
    conv = [{"role": "user", "content": "Hello"}]
    full = m.chat(conv, max_new_tokens=12, temperature=0).text
    stop = full[3:6]
    cut = m.chat(conv, max_new_tokens=12, temperature=0, stop=[stop])
    assert cut.text == full[: full.index(stop)] and cut.finish_reason == "stop"
    assert _content(m.stream(conv, max_new_tokens=12, temperature=0, stop=[stop])) == cut.text
    a = m.chat(conv, max_new_tokens=12, temperature=1.5, seed=7).text
    b = m.chat(conv, max_new_tokens=12, temperature=1.5, seed=7).text
    assert a == b
    # no max_new_tokens given: the checkpoint's generation_config decides
    m.model.generation_config.max_new_tokens = 5
    try:
        assert m.chat(conv, temperature=0).completion_tokens == 5
    finally:
        m.model.generation_config.max_new_tokens = None


def test_chat_leaves_the_models_generation_config_alone(checkpoint):
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(checkpoint("gemma3"))
    before = model.generation_config.to_dict()
    m = sealion_vl.load(checkpoint("gemma3"))
    m.model = model
    m.chat("Hello", max_new_tokens=3, temperature=0)
    assert model.generation_config.to_dict() == before
    # ...while generate() still stops on the family's turn end as well as the config's eos
    assert m.adapter.stop_tokens and all(
        m.tokenizer.convert_tokens_to_ids(t) in m._stop_ids for t in m.adapter.stop_tokens
    )


def test_finish_reason_stop_when_the_model_ends_its_turn(chat_model):
    m = chat_model("gemma3")
    conv = [{"role": "user", "content": "Hello"}]
    first = m.chat(conv, max_new_tokens=4, temperature=0).token_ids[0]
    eos = m.tokenizer.convert_tokens_to_ids("<end_of_turn>")
    # bias the output head so <end_of_turn> wins at step two: the reply must end there
    head = m.model.get_output_embeddings()
    saved = head.weight.data.clone()
    try:
        head.weight.data[eos] = head.weight.data[first] * 1.0001
        r = m.chat(conv, max_new_tokens=6, temperature=0)
    finally:
        head.weight.data.copy_(saved)
    assert r.finish_reason == "stop" and r.completion_tokens < 6


@pytest.mark.parametrize("family", FAMILIES)
def test_incremental_decoder_gives_the_full_decode_at_every_step(chat_model, family):
    # stream() decodes a short window per token; the text must be what one full decode of
    # all ids gives (less a trailing half character), for each family's real tokenizer, on
    # scripts whose characters span several bytes and tokens.
    from sealion_vl.runtime.generation import IncrementalDecoder

    tok = chat_model(family).tokenizer
    text = "Ini bendera Malaysia. ธงชาติไทย မြန်မာ கொடி 🇻🇳 emoji 🦁, spaces  and\nlines."
    ids = tok(text, add_special_tokens=False)["input_ids"]
    calls: list[int] = []

    def decode(part: list[int]) -> str:
        calls.append(len(part))
        return tok.decode(part, skip_special_tokens=True)

    dec = IncrementalDecoder(decode)
    for k, i in enumerate(ids, start=1):
        got = dec.add(i)
        want = tok.decode(ids[:k], skip_special_tokens=True)
        assert want.startswith(got) and "\ufffd" not in got
        assert got == want or want.endswith("\ufffd")  # only half a character is held back
    assert dec.full() == dec.text == tok.decode(ids, skip_special_tokens=True)
    assert max(calls) < len(ids)  # windows, not the whole reply each time

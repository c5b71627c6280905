"""The request engine: continuous batching, per-request settings, cancellation, deadlines,
the vision cache and concurrent callers, on the three real architectures."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import torch

import sealion_vl
from sealion_vl.errors import ContextLengthError
from tests.conftest import FAMILIES

LONG = " ".join(["Apa yang ada di dalam gambar ini?"] * 12)


def _convs(media_dir):
    a, b = str(media_dir / "a.png"), str(media_dir / "b.jpg")

    def user(*parts):
        return [{"role": "user", "content": list(parts)}]

    img = lambda p: {"type": "image", "path": p}  # noqa: E731
    txt = lambda t: {"type": "text", "text": t}  # noqa: E731
    # (conversation, max_new_tokens): 0, 1 and 2 images, short and long prompts and replies
    return [
        (user(txt(LONG)), 40),
        (user(img(a), txt("Apa ini?")), 12),
        (user(img(a), img(b), txt("Compare them.")), 30),
        (user(txt("Hi")), 3),
        (user(img(b), txt(LONG)), 20),
    ]


def _hf_ids(m, conv, n) -> list[int]:
    """Greedy ids straight from transformers' generate (the processor's own template)."""
    inputs = m.processor.apply_chat_template(
        conv, tokenize=True, return_dict=True, return_tensors="pt", add_generation_prompt=True
    )
    with torch.inference_mode():
        out = m.model.generate(**inputs, max_new_tokens=n, do_sample=False)
    ids = out[0, inputs["input_ids"].shape[1] :].tolist()
    stops = m._stop_ids
    return next((ids[:i] for i, t in enumerate(ids) if t in stops), ids)


@pytest.mark.parametrize("family", FAMILIES)
def test_staggered_arrivals_give_one_at_a_time_results(chat_model, media_dir, family):
    m = chat_model(family)
    convs = _convs(media_dir)
    solo = [m.chat(c, max_new_tokens=n, temperature=0) for c, n in convs]
    for (c, n), r in zip(convs, solo, strict=True):
        assert r.token_ids == _hf_ids(m, c, n)  # solo is itself transformers' greedy output
    steps = m.scheduler.steps
    futures = []
    for i, (c, n) in enumerate(convs):  # each joins while the earlier ones are decoding
        futures.append(m.submit(c, max_new_tokens=n, temperature=0))
        time.sleep(0.03 * i)
    together = [f.result(timeout=120) for f in futures]
    assert [r.token_ids for r in together] == [r.token_ids for r in solo]
    assert [r.prompt_tokens for r in together] == [r.prompt_tokens for r in solo]
    # shared steps: fewer decode steps than the replies' lengths added up
    assert m.scheduler.steps - steps < sum(r.completion_tokens for r in solo)


def test_past_the_sliding_window_matches_transformers(chat_model):
    m = chat_model("gemma3")  # its sliding window is 64 positions
    conv = [{"role": "user", "content": LONG}]
    r = m.chat(conv, max_new_tokens=90, temperature=0)
    assert r.prompt_tokens + r.completion_tokens > 2 * 64
    assert r.token_ids == _hf_ids(m, conv, 90)


def test_each_request_keeps_its_own_settings_in_one_batch(chat_model):
    m = chat_model("qwen3_vl")
    conv = [{"role": "user", "content": "Hello there"}]
    greedy = m.chat(conv, max_new_tokens=10, temperature=0)
    sampled = m.chat(conv, max_new_tokens=10, temperature=1.3, top_p=0.9, top_k=50, seed=11)
    stop = greedy.text[2:4]
    futures = [
        m.submit(conv, max_new_tokens=10, temperature=1.3, top_p=0.9, top_k=50, seed=11),
        m.submit(conv, max_new_tokens=10, temperature=0),
        m.submit(conv, max_new_tokens=10, temperature=0, stop=[stop]),
        m.submit(conv, max_new_tokens=4, temperature=0, repetition_penalty=1.5),
    ]
    got = [f.result(timeout=60) for f in futures]
    assert got[0].token_ids == sampled.token_ids  # its own seeded generator
    assert got[1].token_ids == greedy.token_ids
    assert got[2].text == greedy.text[: greedy.text.index(stop)] and got[2].finish_reason == "stop"
    assert got[3].completion_tokens <= 4
    alone = m.chat(conv, max_new_tokens=4, temperature=0, repetition_penalty=1.5)
    assert got[3].token_ids == alone.token_ids


def test_context_check_counts_new_tokens_and_refuses_only_that_request(chat_model):
    m = chat_model("gemma3")
    conv = [{"role": "user", "content": "Hello"}]
    n = m.count_tokens(conv)
    saved = m.context_length
    m.context_length = n + 10
    try:
        ok = m.submit(conv, max_new_tokens=10, temperature=0)
        with pytest.raises(ContextLengthError) as e:
            m.submit(conv, max_new_tokens=11, temperature=0)
        assert str(n) in str(e.value) and "11" in str(e.value)
        assert ok.result(timeout=60).completion_tokens <= 10
        # no max_new_tokens: the checkpoint's default is capped at the room left
        assert m.chat(conv, temperature=0).completion_tokens <= 10
    finally:
        m.context_length = saved


def test_a_paused_stream_does_not_hold_other_callers(chat_model):
    m = chat_model("gemma3")
    conv = [{"role": "user", "content": "Hello"}]
    stream = m.stream(conv, max_new_tokens=60, temperature=0)
    first = next(stream)  # the consumer now stops reading
    assert first is not None
    other = m.submit([{"role": "user", "content": "Apa khabar?"}], max_new_tokens=8, temperature=0)
    assert other.result(timeout=60).completion_tokens >= 1
    stream.close()  # closing the generator cancels its request


def test_cancel_and_deadline_end_a_request_early(chat_model):
    m = chat_model("gemma4")
    conv = [{"role": "user", "content": LONG}]
    f = m.submit(conv, max_new_tokens=400, temperature=0, ignore_eos=True)
    while m.scheduler.load["running"] == 0 and not f.done():
        time.sleep(0.005)
    f.cancel()
    r = f.result(timeout=60)
    assert r.finish_reason == "cancelled" and r.completion_tokens < 400
    late = m.chat(conv, max_new_tokens=400, temperature=0, timeout_s=0.05, ignore_eos=True)
    assert late.finish_reason == "timeout" and late.completion_tokens < 400


def test_one_broken_request_fails_alone(chat_model, media_dir, monkeypatch):
    m = chat_model("gemma3")
    real = m.scheduler.hooks
    broken = {"key": None}

    class Hooks(type(real)):
        def encode_many(self, model, items):
            if any(self.key(it) == broken["key"] for it in items):
                raise RuntimeError("vision tower exploded")
            return super().encode_many(model, items)

    hooks = Hooks()
    bad = [{"role": "user", "content": [{"type": "image", "path": str(media_dir / "b.jpg")}]}]
    broken["key"] = hooks.key(hooks.split(m.encoder.encode(bad))[0])
    m.vision_cache.clear()
    monkeypatch.setattr(m.scheduler, "hooks", hooks)
    fine = [{"role": "user", "content": [{"type": "image", "path": str(media_dir / "a.png")}]}]
    good = m.submit([{"role": "user", "content": LONG}], max_new_tokens=20, temperature=0)
    with pytest.raises(RuntimeError, match="exploded"):
        m.chat(bad, max_new_tokens=5)
    # joining in the same step as a broken image: the batch encode fails, each request's own
    # prefill then encodes alone, and only the broken one fails
    both = [m.submit(bad, max_new_tokens=3), m.submit(fine, max_new_tokens=3)]
    with pytest.raises(RuntimeError, match="exploded"):
        both[0].result(timeout=60)
    assert both[1].result(timeout=60).completion_tokens >= 1
    assert good.result(timeout=60).completion_tokens >= 1
    assert m.chat("Hi", max_new_tokens=2).completion_tokens >= 1  # still serving


@pytest.mark.parametrize("family", FAMILIES)
def test_vision_cache_serves_the_next_turn_with_identical_replies(
    checkpoint, chat_model, media_dir, family
):
    m = chat_model(family)
    uncached = sealion_vl.load(checkpoint(family), vision_cache_mb=0)
    a = str(media_dir / "a.png")
    turn1 = [
        {
            "role": "user",
            "content": [{"type": "image", "path": a}, {"type": "text", "text": "What is it?"}],
        }
    ]
    m.vision_cache.clear()
    before = m.vision_cache.stats()
    r1 = m.chat(turn1, max_new_tokens=6, temperature=0)
    turn2 = turn1 + [
        {"role": "assistant", "content": r1.text or "ok"},
        {"role": "user", "content": "And its colour?"},
    ]
    r2 = m.chat(turn2, max_new_tokens=6, temperature=0)
    after = m.vision_cache.stats()
    assert after["misses"] - before["misses"] == 1 and after["hits"] - before["hits"] == 1
    assert r2.token_ids == uncached.chat(turn2, max_new_tokens=6, temperature=0).token_ids
    assert r1.token_ids == uncached.chat(turn1, max_new_tokens=6, temperature=0).token_ids
    assert uncached.vision_cache.stats()["entries"] == 0


def test_many_threads_and_asyncio_share_one_model(chat_model):
    m = chat_model("qwen3_vl")
    prompts = [f"Question number {i}" for i in range(6)]
    solo = {p: m.chat(p, max_new_tokens=6, temperature=0).token_ids for p in prompts}
    got: dict = {}

    def worker(p):
        got[p] = m.chat(p, max_new_tokens=6, temperature=0).token_ids

    threads = [threading.Thread(target=worker, args=(p,)) for p in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert got == solo

    async def main():
        results = await asyncio.gather(
            *(m.achat(p, max_new_tokens=6, temperature=0) for p in prompts)
        )
        pieces = [d async for d in m.astream(prompts[0], max_new_tokens=6, temperature=0)]
        return results, pieces

    results, pieces = asyncio.run(main())
    assert [r.token_ids for r in results] == [solo[p] for p in prompts]
    text = "".join(d.text for d in pieces if type(d).__name__ == "ContentDelta")
    assert text == m.chat(prompts[0], max_new_tokens=6, temperature=0).text


def test_logprobs_follow_the_chosen_tokens(chat_model):
    m = chat_model("gemma3")
    r = m.chat("Hello", max_new_tokens=5, temperature=0, logprobs=True, top_logprobs=3)
    assert len(r.logprobs) == len(r.token_ids) or len(r.logprobs) == r.completion_tokens
    for entry, tid in zip(r.logprobs, r.token_ids, strict=False):
        top = entry["top_logprobs"]
        assert len(top) == 3 and top[0]["logprob"] >= top[-1]["logprob"]
        # greedy: the chosen token is the likeliest one
        assert entry["logprob"] == pytest.approx(top[0]["logprob"])
        assert entry["token"] == m.tokenizer.decode([tid], skip_special_tokens=False)
        assert entry["logprob"] <= 0
    assert m.chat("Hello", max_new_tokens=2).logprobs is None
    with pytest.raises(ValueError, match="top_logprobs"):
        m.submit("Hello", logprobs=True, top_logprobs=99)


def test_extreme_settings_never_crash_sampling(chat_model):
    m = chat_model("qwen3_vl")
    for kw in (
        {"temperature": 1e-30},
        {"temperature": 1.0, "repetition_penalty": 1e-30},
        {"temperature": 1e30},
        {"temperature": 0.7, "top_p": 1e-9, "top_k": 1},
    ):
        r = m.chat("Hello hello hello", max_new_tokens=4, seed=1, **kw)
        assert r.completion_tokens >= 1, kw


def test_a_conversation_the_template_refuses_is_a_message_error(chat_model):
    from sealion_vl.errors import MessageFormatError

    m = chat_model("gemma3")  # strict alternation; the adapter merges what it can
    with pytest.raises(MessageFormatError, match="chat template"):
        m.chat([{"role": "assistant", "content": "I speak first."}], max_new_tokens=2)


@pytest.mark.parametrize("family", FAMILIES)
def test_images_of_requests_joining_together_share_one_vision_call(
    chat_model, media_dir, family, monkeypatch
):
    m = chat_model(family)
    a, b = str(media_dir / "a.png"), str(media_dir / "b.jpg")

    def ask(*paths):
        parts = [{"type": "image", "path": p} for p in paths]
        return [{"role": "user", "content": [*parts, {"type": "text", "text": "Apa ini?"}]}]

    convs = [ask(a), ask(b), ask(a, b)]
    solo = []
    for c in convs:
        m.vision_cache.clear()
        solo.append(m.chat(c, max_new_tokens=6, temperature=0).token_ids)
    calls: list[int] = []
    real = m.scheduler.hooks

    class Counting(type(real)):
        def encode_many(self, model, items):
            calls.append(len(items))
            return super().encode_many(model, items)

    monkeypatch.setattr(m.scheduler, "hooks", Counting())
    m.vision_cache.clear()
    with m.scheduler._cv:  # hold the step loop so all three join at the same step boundary
        futures = [m.submit(c, max_new_tokens=6, temperature=0) for c in convs]
    got = [f.result(timeout=120).token_ids for f in futures]
    assert calls == [2]  # a and b once each, for all three requests, in one call
    assert got == solo  # bit-for-bit the features each image gets alone

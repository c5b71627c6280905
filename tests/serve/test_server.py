"""The server's happy paths, driven with the official openai client against real uvicorn."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest

from tests.serve.conftest import KEY, client, data_uri, healthy, image_turn, post, start


@pytest.fixture(scope="module")
def server(serve_model):
    s = start(serve_model("gemma3"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def png(media_dir):
    return data_uri(media_dir / "a.png")


def test_chat_with_an_image_returns_text_and_usage(server, png):
    c = client(server)
    r = c.chat.completions.create(
        model="gemma3", messages=image_turn(png), max_tokens=6, temperature=0
    )
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    assert r.model == "gemma3" and len(r.choices) == 1
    choice = r.choices[0]
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    u = r.usage
    assert u.completion_tokens <= 6 and u.prompt_tokens > 10  # the image's tokens count
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    # the same request again is the same reply (greedy), with the image cached
    again = c.chat.completions.create(
        model="gemma3", messages=image_turn(png), max_tokens=6, temperature=0
    )
    assert again.choices[0].message.content == choice.message.content


def test_stream_deltas_add_up_to_the_reply_and_usage_comes_last(server, png):
    c = client(server)
    whole = c.chat.completions.create(
        model="gemma3", messages=image_turn(png), max_tokens=8, temperature=0
    )
    chunks = list(
        c.chat.completions.create(
            model="gemma3",
            messages=image_turn(png),
            max_tokens=8,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == whole.choices[0].message.content
    finals = [ch.choices[0].finish_reason for ch in chunks if ch.choices]
    assert finals[-1] == whole.choices[0].finish_reason and set(finals[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.model_dump() == whole.usage.model_dump()
    # without include_usage no usage chunk; the raw stream ends with [DONE]
    with httpx.stream(
        "POST",
        server.url + "/v1/chat/completions",
        json={"messages": image_turn(png), "max_tokens": 3, "stream": True},
        headers={"Authorization": f"Bearer {KEY}"},
    ) as raw:
        lines = [line for line in raw.iter_lines() if line]
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert lines[-1] == "data: [DONE]"
    assert all('"usage"' not in line for line in lines)


def test_n_choices_stop_and_seed(server):
    c = client(server)
    ask = [{"role": "user", "content": "Ceritakan tentang Singapura."}]
    r = c.chat.completions.create(
        model="gemma3", messages=ask, n=2, max_tokens=12, temperature=1.0, seed=7
    )
    assert [ch.index for ch in r.choices] == [0, 1]
    assert r.choices[0].message.content != r.choices[1].message.content
    one = c.chat.completions.create(model="gemma3", messages=ask, max_tokens=1)
    assert r.usage.prompt_tokens == one.usage.prompt_tokens  # the prompt counts once
    assert 2 <= r.usage.completion_tokens <= 24  # both choices' tokens
    again = c.chat.completions.create(
        model="gemma3", messages=ask, n=2, max_tokens=12, temperature=1.0, seed=7
    )
    assert [ch.message.content for ch in again.choices] == [
        ch.message.content for ch in r.choices
    ]  # seeded sampling reproduces, choice by choice
    second = c.chat.completions.create(
        model="gemma3", messages=ask, max_tokens=12, temperature=1.0, seed=8
    )
    assert second.choices[0].message.content == r.choices[1].message.content  # seed + i
    # stop: the reply ends before the stop string, which is never sent
    free = c.chat.completions.create(model="gemma3", messages=ask, max_tokens=12, temperature=0)
    text = free.choices[0].message.content
    stop = text[3:5]
    assert stop and stop not in text[:3]
    cut = c.chat.completions.create(
        model="gemma3", messages=ask, max_tokens=12, temperature=0, stop=[stop]
    )
    assert cut.choices[0].message.content == text[: text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"
    streamed = c.chat.completions.create(
        model="gemma3", messages=ask, max_tokens=12, temperature=0, stop=stop, stream=True
    )
    assert (
        "".join(ch.choices[0].delta.content or "" for ch in streamed if ch.choices)
        == (text[: text.index(stop)])
    )


def test_n_streams_every_choice(server):
    c = client(server)
    chunks = list(
        c.chat.completions.create(
            model="gemma3",
            messages=[{"role": "user", "content": "Halo"}],
            n=3,
            max_tokens=4,
            temperature=1.0,
            seed=3,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    ends = {ch.choices[0].index: ch.choices[0].finish_reason for ch in chunks if ch.choices}
    assert set(ends) == {0, 1, 2} and all(ends.values())
    assert chunks[-1].usage.completion_tokens == 12  # 3 x 4, none stopped early on random weights


def test_max_tokens_is_capped_at_the_context_left(server, serve_model):
    r = post(server, {"messages": [{"role": "user", "content": "x"}], "max_tokens": 1e9})
    assert r.status_code == 200, r.text
    u = r.json()["usage"]
    assert u["prompt_tokens"] + u["completion_tokens"] <= serve_model("gemma3").context_length
    r = post(
        server,
        {"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 3},
    )
    assert r.json()["usage"]["completion_tokens"] <= 3


def test_models_health_and_page(server):
    models = client(server).models.list()
    assert [m.id for m in models.data] == ["gemma3"]
    assert httpx.get(server.url + "/health").json()["status"] == "ok"  # no key needed
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and "<html" in page.text.lower() or "<!doctype" in page.text
    one = httpx.get(server.url + "/v1/models/gemma3", headers={"Authorization": f"Bearer {KEY}"})
    assert one.json()["id"] == "gemma3"


def test_metrics_count_requests_tokens_and_latency(server):
    c = client(server)
    c.chat.completions.create(
        model="gemma3", messages=[{"role": "user", "content": "Hai"}], max_tokens=3
    )
    post(server, {"messages": "not a list"})
    text = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {KEY}"}).text

    def value(name: str) -> float:
        m = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.M)
        assert m, name
        return float(m.group(1))

    assert value('sealion_vl_requests_total{status="200"}') >= 1
    assert value('sealion_vl_requests_total{status="400"}') >= 1
    assert value("sealion_vl_prompt_tokens_total") > 0
    assert value("sealion_vl_completion_tokens_total") >= 3
    assert value("sealion_vl_time_to_first_token_seconds_count") >= 1
    assert value("sealion_vl_request_latency_seconds_count") >= 1
    for gauge in ("sealion_vl_queue_waiting", "sealion_vl_batch_running", "sealion_vl_in_flight"):
        assert value(gauge) == 0


def test_api_key_on_every_route_but_health(server):
    for path in ("/v1/models", "/metrics"):
        r = httpx.get(server.url + path)
        assert r.status_code == 401 and "missing API key" in r.json()["error"]["message"]
        r = httpx.get(server.url + path, headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    r = post(server, {"messages": [{"role": "user", "content": "x"}]}, key="wrong")
    assert r.status_code == 401
    import openai

    with pytest.raises(openai.AuthenticationError):
        client(server, key="wrong").models.list()
    assert healthy(server)


def test_concurrent_requests_share_the_batch(server):
    """Several clients at once: all answered, and greedy replies equal one-at-a-time ones."""
    import concurrent.futures

    c = client(server)
    prompts = [f"Soalan nombor {i}" for i in range(6)]

    def ask(p):
        return c.chat.completions.create(
            model="gemma3",
            messages=[{"role": "user", "content": p}],
            max_tokens=10,
            temperature=0,
        )

    t = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        together = list(pool.map(ask, prompts))
    assert time.perf_counter() - t < 60
    alone = [ask(p) for p in prompts[:2]]
    assert [r.choices[0].message.content for r in together[:2]] == [
        r.choices[0].message.content for r in alone
    ]
    body = json.loads(together[0].model_dump_json())
    assert body["usage"]["completion_tokens"] >= 1


def test_logprobs(server):
    c = client(server)
    kw = dict(model="gemma3", messages=[{"role": "user", "content": "Hai"}], max_tokens=4)
    r = c.chat.completions.create(logprobs=True, top_logprobs=2, temperature=0, **kw)
    entries = r.choices[0].logprobs.content
    assert len(entries) == r.usage.completion_tokens
    for e in entries:
        assert e.logprob <= 0 and isinstance(e.token, str) and len(e.top_logprobs) == 2
        assert e.top_logprobs[0].logprob >= e.top_logprobs[1].logprob
        assert e.logprob == pytest.approx(e.top_logprobs[0].logprob)  # greedy: the top token
    chunks = list(c.chat.completions.create(logprobs=True, temperature=0, stream=True, **kw))
    last = [ch for ch in chunks if ch.choices and ch.choices[0].finish_reason][0]
    assert [e.token for e in last.choices[0].logprobs.content] == [e.token for e in entries]
    assert c.chat.completions.create(**kw).choices[0].logprobs is None


def test_cors_is_off_by_default_and_on_when_asked(server, serve_model):
    origin = {"Origin": "http://page.example", "Access-Control-Request-Method": "POST"}
    r = httpx.options(server.url + "/v1/chat/completions", headers=origin)
    assert "access-control-allow-origin" not in r.headers
    s = start(serve_model("gemma3"), cors_origins=["http://page.example"])
    try:
        r = httpx.options(
            s.url + "/v1/chat/completions",
            headers={**origin, "Access-Control-Request-Headers": "authorization,content-type"},
        )
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "http://page.example"
        r = httpx.get(
            s.url + "/v1/models",
            headers={"Origin": "http://page.example", "Authorization": f"Bearer {KEY}"},
        )
        assert r.headers["access-control-allow-origin"] == "http://page.example"
    finally:
        s.stop()


def test_a_genuine_bug_is_a_logged_500_in_the_error_shape(server, serve_model, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(serve_model("gemma3"), "submit", broken)
    r = post(server, {"messages": [{"role": "user", "content": "Hai"}]})
    assert r.status_code == 500
    assert r.json()["error"]["type"] == "server_error" and "bug" in r.json()["error"]["message"]
    assert "simulated bug" in caplog.text  # logged with its traceback
    text = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
    assert 'sealion_vl_requests_total{status="500"} 1.0' in text
    assert server.state.in_flight == 0


def test_concurrent_streams_decode_in_one_batch(server, serve_model):
    """Four clients at once are four rows of the same running batch."""
    import concurrent.futures

    from tests.serve.helpers import never_ending, wait_for

    m = serve_model("gemma3")
    body = {"messages": [{"role": "user", "content": "Hai"}], "max_tokens": 300, "stream": True}
    seen = []

    def one(_):
        with _stream_client.stream(
            "POST",
            server.url + "/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=60,
        ) as r:
            for _ in r.iter_lines():
                if m.scheduler.load["running"] == 4:
                    seen.append(True)
                if seen:
                    return  # leaving cancels this one

    with never_ending(m), concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(4)))
    assert seen
    assert wait_for(lambda: m.scheduler.load == {"waiting": 0, "running": 0}, 5)


_stream_client = httpx.Client()

"""The bad-input battery: every case is a real request to a real server, answered with a 4xx
(or 503 + Retry-After) in OpenAI's error shape that names the problem; never a 5xx; and the
server stays healthy after each."""

from __future__ import annotations

import concurrent.futures
import re
import resource
import time

import httpx
import pytest

from tests.serve.conftest import KEY, data_uri, healthy, image_turn, post, start
from tests.serve.helpers import (
    cancelled_count,
    never_ending,
    png_bytes,
    png_header,
    raw_request,
    reply_of,
    wait_for,
)

ASK = [{"role": "user", "content": "Halo"}]


@pytest.fixture(scope="module")
def server(serve_model):
    s = start(serve_model("gemma3"), max_body_bytes=2**20, max_images_per_request=16)
    yield s
    s.stop()


def _case(body, status, code, pattern, param=None):
    return (body, status, code, pattern, param)


def _img(uri):
    return image_turn(uri)


CASES = {
    "messages as a string": _case(
        {"messages": "hello"}, 400, "invalid_value", r"messages: Input should be a valid list"
    ),
    "no messages": _case({"model": "gemma3"}, 400, "invalid_value", r"messages: required"),
    "empty messages": _case({"messages": []}, 400, "invalid_value", r"messages: .*at least 1"),
    "temperature a word": _case(
        {"messages": ASK, "temperature": "hot"}, 400, "invalid_value", r"temperature", "temperature"
    ),
    "role unknown": _case(
        {"messages": [{"role": "wizard", "content": "x"}]},
        400,
        "invalid_value",
        r"messages\.0\.role",
        "messages.0.role",
    ),
    "content a number": _case(
        {"messages": [{"role": "user", "content": 42}]}, 400, "invalid_value", r"messages\.0"
    ),
    "part without its url": _case(
        {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
        400,
        "invalid_messages",
        r"image_url part needs",
    ),
    "unknown part type": _case(
        {"messages": [{"role": "user", "content": [{"type": "hologram"}]}]},
        400,
        "invalid_messages",
        r"unknown content type 'hologram'",
    ),
    "max_tokens -5": _case(
        {"messages": ASK, "max_tokens": -5}, 400, "invalid_value", r"max_tokens", "max_tokens"
    ),
    "n too large": _case({"messages": ASK, "n": 9}, 400, "invalid_value", r"\bn: ", "n"),
    "tools not a list": _case(
        {"messages": ASK, "tools": "get_weather"}, 400, "invalid_value", r"tools", "tools"
    ),
    "tool_choice unknown": _case(
        {"messages": ASK, "tool_choice": "sometimes"}, 400, "invalid_value", r"tool_choice"
    ),
    "response_format xml": _case(
        {"messages": ASK, "response_format": {"type": "xml"}},
        400,
        "invalid_structured_output",
        r"response_format",
    ),
    "presence_penalty": _case(
        {"messages": ASK, "presence_penalty": 1.0},
        400,
        "invalid_value",
        r"presence_penalty is not supported",
    ),
    "seed out of range": _case(
        {"messages": ASK, "seed": 2**70}, 400, "invalid_value", r"seed", "seed"
    ),
    "body a list": _case([1, 2], 400, "invalid_value", r"valid dictionary"),
    "malformed JSON": _case(b'{"messages": [', 400, "invalid_json", r"not valid JSON"),
    "empty body": _case(b"", 400, None, r"."),
    "unknown model": _case(
        {"model": "gpt-9", "messages": ASK}, 404, "model_not_found", r"'gpt-9' is not served"
    ),
    "invalid base64": _case(
        {"messages": _img("data:image/png;base64,@@@not-base64@@@")},
        400,
        "invalid_media",
        r"base64",
    ),
    "truncated PNG": _case(
        {"messages": _img(data_uri(png_bytes()[:300]))},
        400,
        "invalid_media",
        r"corrupt or truncated|cannot|could not",
    ),
    "non-image bytes": _case(
        {"messages": _img(data_uri(b"%PDF-1.4 definitely not a picture" * 20))},
        400,
        "invalid_media",
        r"image",
    ),
    "file:///etc/passwd": _case(
        {"messages": _img("file:///etc/passwd")}, 400, "invalid_media", r"local files"
    ),
    "a local path": _case({"messages": _img("/etc/passwd")}, 400, "invalid_media", r"local files"),
    "a local path, HF style": _case(
        {"messages": [{"role": "user", "content": [{"type": "image", "path": "/etc/hosts"}]}]},
        400,
        "invalid_media",
        r"local files",
    ),
    "10^9 pixels in the header": _case(
        {"messages": _img(data_uri(png_header(40_000, 25_000)))},
        400,
        "invalid_media",
        r"pixels",
    ),
    "50 images": _case(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "data:,x"}}] * 50
                    + [{"type": "text", "text": "Semua ini?"}],
                }
            ]
        },
        400,
        "too_many_media",
        r"50 image parts.*at most 16",
        "messages",
    ),
    "3 videos": _case(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "video_url", "video_url": {"url": "data:,x"}}] * 3,
                }
            ]
        },
        400,
        "too_many_media",
        r"3 video parts.*at most 2",
        "messages",
    ),
    "top_logprobs without logprobs": _case(
        {"messages": ASK, "top_logprobs": 3}, 400, "invalid_value", r"needs logprobs"
    ),
    "unsupported scheme": _case(
        {"messages": _img("gopher://example.com/x.png")}, 400, "invalid_media", r"gopher"
    ),
    "video part on a model without video": _case(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "video_url", "video_url": {"url": "data:,x"}}],
                }
            ]
        },
        400,
        None,
        r"video",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_battery(server, name):
    body, status, code, pattern, param = CASES[name]
    r = post(server, body)
    assert r.status_code == status, (name, r.status_code, r.text)
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert re.search(pattern, err["message"]), err["message"]
    if code is not None:
        assert err["code"] == code
    if param is not None:
        assert err["param"] == param
    assert err["type"] in ("invalid_request_error", "not_found_error")
    assert healthy(server)


def test_max_tokens_1e9_is_capped_not_refused(server, serve_model):
    """The reply may use all the context the prompt leaves, and no more."""
    m = serve_model("gemma3")
    words, step = 0, 512
    while step:  # the most words that leave at least 20 positions
        if m.context_length - m.count_tokens("kata " * (words + step)) >= 20:
            words += step
        else:
            step //= 2
    text = "kata " * words
    long = [{"role": "user", "content": text}]
    room = m.context_length - m.count_tokens(long)
    assert 0 < room < 80
    with never_ending(m):
        r = post(server, {"messages": long, "max_tokens": 1e9, "temperature": 0})
    assert r.status_code == 200, r.text
    u = r.json()["usage"]
    assert u["completion_tokens"] == room and r.json()["choices"][0]["finish_reason"] == "length"
    assert u["prompt_tokens"] + u["completion_tokens"] == m.context_length


def test_a_200_megapixel_bomb_is_refused_from_its_header(server):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB, this process (the server)
    r = post(server, {"messages": _img(data_uri(png_header(20_000, 10_000)))})
    assert r.status_code == 400 and "pixels" in r.json()["error"]["message"], r.text
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown < 100 * 1024, f"peak memory grew {grown} KiB"  # decoding would take 600 MB
    assert healthy(server)


def test_a_56_mb_body_gets_413_before_it_is_read(server):
    # only the headers are sent: the answer comes without waiting for the 56 MB
    sock = raw_request(
        server.port,
        {
            "Authorization": f"Bearer {KEY}",
            "Content-Type": "application/json",
            "Content-Length": str(56 * 2**20),
        },
    )
    t = time.perf_counter()
    status, data = reply_of(sock)
    sock.close()
    assert status == 413 and time.perf_counter() - t < 5
    assert b"at most 1,048,576" in data

    # a chunked body without a length is counted while it arrives
    def chunks():
        for _ in range(40):
            yield b" " * 65536

    r = httpx.post(
        server.url + "/v1/chat/completions",
        content=chunks(),
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    assert healthy(server)


def test_64_concurrent_requests_against_a_queue_of_8(serve_model):
    s = start(serve_model("gemma3"), max_queue=8)
    try:

        def one(i):
            return post(
                s, {"messages": [{"role": "user", "content": f"Soalan {i}"}], "max_tokens": 4}
            )

        with concurrent.futures.ThreadPoolExecutor(64) as pool:
            replies = list(pool.map(one, range(64)))
        codes = [r.status_code for r in replies]
        assert set(codes) <= {200, 503} and codes.count(200) >= 8 and 503 in codes, codes
        for r in replies:
            if r.status_code == 503:
                assert r.headers["Retry-After"] == "1"
                assert r.json()["error"]["code"] == "server_busy"
        assert healthy(s)
        assert s.state.in_flight == 0
        ok = post(s, {"messages": ASK, "max_tokens": 2})
        assert ok.status_code == 200
    finally:
        s.stop()


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_disconnect_cancels_its_generation(server, serve_model, stream):
    m = serve_model("gemma3")
    before = cancelled_count(server)
    body = {"messages": ASK, "max_tokens": 1800, "temperature": 0, "stream": stream}
    with never_ending(m):
        if stream:
            with httpx.stream(
                "POST",
                server.url + "/v1/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {KEY}"},
                timeout=30,
            ) as r:
                lines = r.iter_lines()
                assert next(lines).startswith("data: ")
                assert wait_for(lambda: m.scheduler.load["running"] == 1)
        else:
            raw = httpx.Request("POST", "http://x", json=body).content
            sock = raw_request(
                server.port,
                {
                    "Authorization": f"Bearer {KEY}",
                    "Content-Type": "application/json",
                    "Content-Length": str(len(raw)),
                },
                raw,
            )
            assert wait_for(lambda: m.scheduler.load["running"] == 1)
            sock.close()
        t = time.perf_counter()
        assert wait_for(lambda: m.scheduler.load == {"waiting": 0, "running": 0}, 5)
        stopped = time.perf_counter() - t
    assert stopped < 2, f"generation ran on {stopped:.1f} s after the client left"
    assert wait_for(lambda: cancelled_count(server) == before + 1, 5)
    assert wait_for(lambda: server.state.in_flight == 0, 5)
    assert healthy(server)


# ------------------------------------------------------------------ media URLs

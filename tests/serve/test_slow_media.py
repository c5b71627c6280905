"""Media URLs against loopback helper hosts: refused by the guard by default; with the guard
opened for loopback (its own server and model), a host that never answers, one that never
stops, and a client that leaves mid-fetch; the server keeps serving throughout."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import re
import time

import httpx
import pytest

from tests.serve.conftest import KEY, healthy, image_turn, post, start
from tests.serve.helpers import (
    Endless,
    Silent,
    cancelled_count,
    never_ending,
    png_bytes,
    raw_request,
    wait_for,
)

ASK = [{"role": "user", "content": "Halo"}]


@pytest.fixture(scope="module")
def guarded(serve_model):
    s = start(serve_model("gemma3"))
    yield s
    s.stop()


def test_a_loopback_url_is_refused(guarded):
    server = guarded
    silent = Silent()
    try:
        r = post(server, {"messages": image_turn(f"http://127.0.0.1:{silent.port}/x.png")})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "invalid_media"
        assert re.search(r"private|loopback|not allowed|public", r.json()["error"]["message"])
        assert silent.held == []  # never even connected
    finally:
        silent.close()
    assert healthy(server)


@pytest.fixture(scope="module")
def loopback_ok(checkpoint):
    """A server (on a model of its own) whose media guard lets loopback URLs through, so
    loopback helper servers can play slow or endless hosts; fetch deadline 1.5 s."""
    import sealion_vl
    from sealion_vl.serve import ServeConfig

    m = sealion_vl.load(checkpoint("gemma3"))
    limits = dataclasses.replace(
        ServeConfig(media_fetch_timeout_s=1.5).media_limits(), allow_private_hosts=True
    )
    s = start(m, media_limits=limits)
    yield s, m
    s.stop()


@pytest.mark.parametrize("stream", [False, True])
def test_leaving_during_a_media_fetch_cancels_at_once(loopback_ok, stream):
    s, m = loopback_ok
    slow = Endless(delay=1.0, body=png_bytes())  # answers a valid image after 1 s
    before = cancelled_count(s)
    try:
        raw = httpx.Request(
            "POST",
            "http://x",
            json={
                "messages": image_turn(f"http://127.0.0.1:{slow.port}/x.png"),
                "stream": stream,
                "max_tokens": 1000,
            },
        ).content
        with never_ending(m):
            sock = raw_request(
                s.port,
                {
                    "Authorization": f"Bearer {KEY}",
                    "Content-Type": "application/json",
                    "Content-Length": str(len(raw)),
                },
                raw,
            )
            assert wait_for(lambda: slow.requests, 5)  # the fetch is in progress
            sock.close()
            # the image arrives after the client left: its generation is cancelled at once
            assert wait_for(lambda: cancelled_count(s) == before + 1, 5)
            assert wait_for(lambda: m.scheduler.load == {"waiting": 0, "running": 0}, 2)
        assert wait_for(lambda: s.state.in_flight == 0, 2)
        assert healthy(s)
    finally:
        slow.close()


def test_a_url_that_never_answers_times_out_while_others_are_served(loopback_ok):
    s, _ = loopback_ok
    silent = Silent()
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            t = time.perf_counter()
            hanging = pool.submit(
                post, s, {"messages": image_turn(f"http://127.0.0.1:{silent.port}/x.png")}
            )
            assert wait_for(lambda: silent.held, 5)  # the fetch is in progress
            for _ in range(3):  # meanwhile: health and a whole other request
                h = httpx.get(s.url + "/health", timeout=1)
                assert h.status_code == 200
            other = post(s, {"messages": ASK, "max_tokens": 2}, timeout=5)
            assert other.status_code == 200
            assert not hanging.done()
            r = hanging.result(timeout=10)
            took = time.perf_counter() - t
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_media"
        assert re.search(r"did not finish within 1.5 s", r.json()["error"]["message"]), r.json()
        assert took < 1.5 + 2
        assert healthy(s)
        # a body that never ends is cut off (byte cap or deadline), memory bounded
        endless = Endless()
        try:
            t = time.perf_counter()
            r = post(s, {"messages": image_turn(f"http://127.0.0.1:{endless.port}/x.png")})
            assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_media"
            assert re.search(r"did not finish|larger than|bytes", r.json()["error"]["message"])
            assert time.perf_counter() - t < 1.5 + 2
        finally:
            endless.close()
        assert healthy(s)
    finally:
        silent.close()

"""Where replies come from: an OpenAI-compatible endpoint (a real loopback HTTP server that
misbehaves on purpose) and a local ChatModel (a tiny real checkpoint)."""

from __future__ import annotations

import base64
import io
import threading
import time

from fastapi import FastAPI
from fastapi import Request as HttpRequest
from fastapi.responses import JSONResponse
from PIL import Image

from sealion_vl.eval.backends import EndpointBackend, LocalBackend, Request
from tests.serve.conftest import Server


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def _req(key: str, text: str = "Apa ini?", images=()) -> Request:
    content = [{"type": "text", "text": text}] + [{"type": "image", "image": b} for b in images]
    return Request(key, [{"role": "user", "content": content}], 8, 25008113, {"temperature": 0})


class Flaky:
    """An OpenAI-shaped server: 429 then 503 for each new prompt, then an answer; a prompt
    saying ``BAD`` gets 400; one saying ``DOWN`` always 500. Counts requests in flight."""

    def __init__(self) -> None:
        self.app = FastAPI()
        self.seen: dict[str, int] = {}
        self.bodies: list[dict] = []
        self.inflight = 0
        self.max_inflight = 0
        self.lock = threading.Lock()
        self.app.post("/v1/chat/completions")(self.complete)

    async def complete(self, request: HttpRequest):
        import asyncio

        body = await request.json()
        text = body["messages"][0]["content"][0]["text"]
        with self.lock:
            self.bodies.append(body)
            n = self.seen[text] = self.seen.get(text, 0) + 1
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            await asyncio.sleep(0.02)
            if "BAD" in text:
                return JSONResponse({"error": {"message": "bad"}}, status_code=400)
            if "DOWN" in text or n == 2:
                return JSONResponse({"error": {"message": "busy"}}, status_code=503)
            if n == 1:
                return JSONResponse({}, status_code=429, headers={"Retry-After": "0"})
            return {
                "choices": [
                    {
                        "message": {"role": "assistant", "content": f"echo {text}"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"completion_tokens": 2},
            }
        finally:
            with self.lock:
                self.inflight -= 1


def test_endpoint_retries_429_and_5xx_then_records_errors_without_raising():
    flaky = Flaky()
    server = Server(flaky.app)
    try:
        backend = EndpointBackend(
            server.url + "/v1", "sea", api_key="k", concurrency=3, max_retries=3, backoff_s=0.01
        )
        reqs = [_req(f"k{i}", f"q{i}", images=[_png()]) for i in range(6)]
        reqs += [_req("bad", "BAD"), _req("down", "DOWN")]
        got: dict = {}
        t0 = time.perf_counter()
        usage_of: dict = {}

        def done(r, text, err, usage):
            got[r.key] = (text, err)
            usage_of[r.key] = usage

        backend.run(reqs, done)
        assert time.perf_counter() - t0 < 30
    finally:
        server.stop()
    for i in range(6):
        assert got[f"k{i}"] == (f"echo q{i}", None)
        assert flaky.seen[f"q{i}"] == 3  # 429, 503, then the answer
    assert got["bad"][0] is None and "HTTP 400" in got["bad"][1]
    assert flaky.seen["BAD"] == 1  # a client error is not retried
    assert got["down"][0] is None and "gave up after 4 attempts" in got["down"][1]
    assert usage_of["down"].get("transient") and not usage_of["bad"].get("transient")
    assert flaky.max_inflight <= 3
    body = next(b for b in flaky.bodies if b["messages"][0]["content"][0]["text"] == "q0")
    assert body["model"] == "sea" and body["seed"] == 25008113 and body["max_tokens"] == 8
    part = body["messages"][0]["content"][1]
    assert part["type"] == "image_url"
    assert part["image_url"]["url"].startswith("data:image/png;base64,")
    assert base64.b64decode(part["image_url"]["url"].split(",", 1)[1]) == _png()


def test_local_backend_records_a_broken_image_as_an_error_and_answers_the_rest(chat_model):
    model = chat_model("gemma3")
    reqs = [_req("ok1", images=[_png()]), _req("broken", images=[b"not an image"]), _req("ok2")]
    got: dict = {}
    LocalBackend(model, window=2).run(
        reqs, lambda r, text, err, usage: got.__setitem__(r.key, (text, err, usage))
    )
    assert set(got) == {"ok1", "broken", "ok2"}
    assert got["broken"][0] is None and got["broken"][1].startswith("MediaError")
    for key in ("ok1", "ok2"):
        text, err, usage = got[key]
        assert err is None and isinstance(text, str)
        assert usage["finish_reason"] in ("stop", "length")
    # greedy: the same as asking the engine directly
    assert got["ok2"][0] == model.chat(reqs[2].messages, max_new_tokens=8, temperature=0).text

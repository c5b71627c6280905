"""The OpenAI-compatible HTTP server on the request engine.

Routes: ``POST /v1/chat/completions`` (SSE streaming or not), ``GET /v1/models``,
``GET /health`` (no key, never waits on the model), ``GET /metrics`` (Prometheus text) and
``GET /`` (the web chat page).

Concurrency: every request is encoded (templates, media fetching and decoding) in a worker
thread of the server's own pool, never on the event loop, then decoded by the engine's
scheduler together with the others. The server admits at most ``max_queue`` generations at
once (encoding, waiting or running) and answers 503 + ``Retry-After`` beyond that. A client
that goes away (streaming or not) has its generations cancelled at the next decode step.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.resources
import json
import logging
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import ValidationError
from starlette.background import BackgroundTask

from sealion_vl import __version__
from sealion_vl.errors import SealionError
from sealion_vl.media import MediaLimits
from sealion_vl.serve import protocol
from sealion_vl.serve.config import ServeConfig
from sealion_vl.serve.errors import APIError, error_body, install, sealion_error
from sealion_vl.serve.guard import Guard
from sealion_vl.serve.metrics import Metrics
from sealion_vl.serve.stream import DeltaReader, delta_json

log = logging.getLogger("sealion_vl.serve")

_MEDIA_KINDS = {
    "image_url": "image",
    "image": "image",
    "video_url": "video",
    "video": "video",
    "input_audio": "audio",
    "audio": "audio",
}

_PLACEHOLDER = """<!doctype html><meta charset="utf-8"><title>sealion-vl</title>
<h1>sealion-vl</h1><p>The OpenAI-compatible API is at <code>/v1/chat/completions</code>;
models at <code>/v1/models</code>. (The web chat page is not installed in this build.)</p>"""


class _Server:
    """Per-app state: the model, settings, worker pool, admission count and metrics."""

    def __init__(self, model, config: ServeConfig) -> None:
        self.model = model
        self.config = config
        self.served = config.served_model_name or model.name
        self.names = {self.served, model.name}
        self.in_flight = 0
        self.pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(4, min(config.max_queue, 64)), thread_name_prefix="sealion-vl-encode"
        )
        self.metrics = Metrics(model, lambda: self.in_flight)

    # ------------------------------------------------------------ admission
    def admit(self, body: protocol.ChatCompletionRequest) -> None:
        """Refuse before any work (unknown model, too many media parts, full queue), else
        count the request's generations in flight until :meth:`submit` hands them over."""
        if body.model is not None and body.model not in self.names:
            raise APIError(
                404,
                f"model {body.model!r} is not served here; this server has {self.served!r} "
                "(see GET /v1/models)",
                "model",
                "model_not_found",
            )
        counts = {"image": 0, "video": 0, "audio": 0}
        for msg in body.messages:
            if isinstance(msg.content, list):
                for part in msg.content:
                    kind = _MEDIA_KINDS.get(part.get("type")) if isinstance(part, dict) else None
                    if kind:
                        counts[kind] += 1
        cfg = self.config
        for kind, cap in (
            ("image", cfg.max_images_per_request),
            ("video", cfg.max_videos_per_request),
            ("audio", cfg.max_audios_per_request),
        ):
            if counts[kind] > cap:
                raise APIError(
                    400,
                    f"the request holds {counts[kind]} {kind} parts; this server takes at most "
                    f"{cap} per request (--max-{kind}s-per-request)",
                    "messages",
                    "too_many_media",
                )
        if body.n > cfg.max_queue:
            raise APIError(400, f"n={body.n} exceeds the server's queue ({cfg.max_queue})", "n")
        if self.in_flight + body.n > cfg.max_queue:
            raise APIError(
                503,
                f"the server is busy ({self.in_flight} generations in flight, max_queue "
                f"{cfg.max_queue}); retry shortly",
                None,
                "server_busy",
                headers={"Retry-After": "1"},
            )
        self.in_flight += body.n  # admitted now, in this loop step: no await in between

    # ------------------------------------------------------------ submitting
    async def submit(self, body: protocol.ChatCompletionRequest, listener=None) -> list:
        """Encode and queue ``body.n`` admitted generations in the pool; returns their
        ChatFutures (each leaves the in-flight count when it ends)."""
        messages = [m.model_dump(exclude_none=True) for m in body.messages]
        kw = body.engine_kwargs(self.config.request_timeout_s)
        loop = asyncio.get_running_loop()
        n = body.n
        try:
            futs = await loop.run_in_executor(
                self.pool, self._submit_all, messages, kw, n, body.seed, listener
            )
        except BaseException:
            self.in_flight -= n
            raise

        def release(_f) -> None:
            loop.call_soon_threadsafe(self._release)

        for f in futs:
            f.future.add_done_callback(release)
        return futs

    def _release(self) -> None:
        self.in_flight -= 1

    def _submit_all(self, messages, kw: dict, n: int, seed, listener) -> list:
        """Runs in a pool thread: the engine encodes here (media fetch included)."""
        futs: list = []
        try:
            for i in range(n):
                args = dict(kw)
                if seed is not None:
                    args["seed"] = _wrap_seed(seed + i)
                fut = self.model.submit(messages, **args)
                if listener is not None:
                    fut.listen(lambda ev, i=i: listener(i, ev))
                futs.append(fut)
        except BaseException as e:
            for f in futs:
                f.cancel()
            raise _request_error(e, kw) from e
        return futs


def _wrap_seed(seed: int) -> int:
    lo = protocol.SEED_MIN
    return (seed - lo) % 2**64 + lo


def _request_error(e: BaseException, kw: dict) -> BaseException:
    """What a failed submit means for the client (the engine raises in the caller's thread)."""
    if isinstance(e, (SealionError, APIError)):
        return e
    if isinstance(e, ValidationError):
        bad = {str(err["loc"][0]) for err in e.errors() if err.get("loc")}
        if bad & {"logprobs", "top_logprobs"}:
            return APIError(
                400, "logprobs are not available from this engine", "logprobs", "unsupported"
            )
        return e
    if isinstance(e, TypeError) and "logprobs" in kw and "logprobs" in str(e):
        return APIError(
            400, "logprobs are not available from this engine", "logprobs", "unsupported"
        )
    if _is_template_error(e):  # the family's template refused the conversation's shape
        return APIError(400, f"the conversation cannot be formatted: {e}"[:500], "messages")
    if isinstance(e, (ValueError, TypeError, KeyError, IndexError)):
        # Raised while encoding this request's own input (template, processor): its fault,
        # not the server's; the traceback is logged in case it is ours after all.
        log.warning("request refused while encoding", exc_info=e)
        return APIError(
            400, f"could not encode the request: {type(e).__name__}: {e}"[:500], None, "bad_input"
        )
    return e


def _is_template_error(e: BaseException) -> bool:
    try:
        from jinja2 import TemplateError
    except ImportError:  # pragma: no cover
        return False
    return isinstance(e, TemplateError)


async def _wait(cf: concurrent.futures.Future) -> Any:
    """Await a concurrent future without ever cancelling it (the engine owns its state)."""
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()

    def done(f) -> None:
        def settle() -> None:
            if waiter.done():
                return
            if f.exception() is not None:
                waiter.set_exception(f.exception())
            else:
                waiter.set_result(f.result())

        loop.call_soon_threadsafe(settle)

    cf.add_done_callback(done)
    return await waiter


async def _disconnected(request: Request) -> None:
    """Returns when the client has gone away (the body was already read)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def create_app(
    model, config: ServeConfig | None = None, *, media_limits: MediaLimits | None = None
) -> FastAPI:
    """The FastAPI app serving ``model`` (a :class:`~sealion_vl.ChatModel`).

    Args:
        model: the loaded model; its media limits are replaced by the server's.
        config: server settings (defaults: :class:`ServeConfig`).
        media_limits: overrides ``config.media_limits()`` (tests, embedding with a custom
            :class:`~sealion_vl.media.AddressPolicy`).

    Returns:
        The app; run it with uvicorn (``sealion_vl.serve.serve`` does).
    """
    config = config or ServeConfig()
    model.media_limits = media_limits or config.media_limits()
    srv = _Server(model, config)

    app = FastAPI(
        title="sealion-vl",
        version=__version__,
        description="OpenAI-compatible chat completions for SEA-LION vision-language models.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.server = srv
    install(app)
    m = srv.metrics

    @app.get("/health")
    async def health() -> dict:
        """Liveness: answers at once, whatever the model is doing (no API key needed)."""
        return {
            "status": "ok",
            "model": srv.served,
            "in_flight": srv.in_flight,
            **model.scheduler.load,
        }

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus text: requests by status, queue, batch, tokens, TTFT and latency."""
        return Response(m.text(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def models() -> dict:
        """The served model, OpenAI style."""
        return {"object": "list", "data": [_model_card(srv)]}

    @app.get("/v1/models/{model_id:path}")
    async def model_info(model_id: str) -> dict:
        if model_id not in srv.names:
            raise APIError(
                404, f"model {model_id!r} is not served here", "model", "model_not_found"
            )
        return _model_card(srv)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(_web_page())

    @app.post("/v1/chat/completions")
    async def chat_completions(body: protocol.ChatCompletionRequest, request: Request):
        """Chat completions (OpenAI's request and response shapes; SSE when ``stream``)."""
        t0 = time.perf_counter()
        srv.admit(body)
        if body.stream:
            return await _stream(srv, body, request, t0)
        return await _complete(srv, body, request, t0)

    app.add_middleware(
        Guard,
        api_key=config.api_key,
        max_body_bytes=config.max_body_bytes,
        on_status=lambda status: m.requests.labels(str(status)).inc(),
    )
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=config.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    return app


def _model_card(srv: _Server) -> dict:
    return {
        "id": srv.served,
        "object": "model",
        "created": 0,
        "owned_by": "sealion-vl",
        "family": srv.model.adapter.name,
        "context_length": srv.model.context_length,
    }


def _web_page() -> str:
    try:
        page = importlib.resources.files("sealion_vl.serve").joinpath("web/index.html")
        return page.read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        return _PLACEHOLDER


def _observe(srv: _Server, results: list, t0: float, ttft: float | None) -> None:
    m = srv.metrics
    if results:
        m.prompt_tokens.inc(results[0].prompt_tokens)
        m.completion_tokens.inc(sum(r.completion_tokens for r in results))
    if ttft is not None:
        m.ttft.observe(ttft)
    m.latency.observe(time.perf_counter() - t0)


async def _complete(srv: _Server, body, request: Request, t0: float):
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        submitted = asyncio.ensure_future(srv.submit(body))
        await asyncio.wait({submitted, gone}, return_when=asyncio.FIRST_COMPLETED)
        if not submitted.done():  # client left while its media were being fetched
            futs = await submitted
            return _abandon(srv, futs)
        futs = submitted.result()
        t_queued = time.perf_counter()
        waiting = asyncio.ensure_future(asyncio.gather(*(_wait(f.future) for f in futs)))
        await asyncio.wait({waiting, gone}, return_when=asyncio.FIRST_COMPLETED)
        if not waiting.done():
            waiting.add_done_callback(lambda w: w.exception())  # consumed: no stray warning
            return _abandon(srv, futs)
        try:
            results = waiting.result()
        except SealionError as e:
            code, param = sealion_error(e)
            raise APIError(400, str(e), param, code) from e
    finally:
        gone.cancel()
    prefill = results[0].timings.get("prefill_s") if results else None
    ttft = t_queued - t0 + prefill if prefill is not None else None
    _observe(srv, results, t0, ttft)
    return JSONResponse(protocol.completion(protocol.completion_id(), srv.served, results))


def _abandon(srv: _Server, futs: list) -> Response:
    for f in futs:
        f.cancel()
    srv.metrics.cancelled.inc(len(futs))
    return Response(status_code=499)


async def _stream(srv: _Server, body, request: Request, t0: float):
    loop = asyncio.get_running_loop()
    events: asyncio.Queue = asyncio.Queue()

    def listener(i: int, ev: tuple) -> None:  # scheduler thread: never blocks
        if ev[0] == "text":
            loop.call_soon_threadsafe(events.put_nowait, (i, "text", ev[1]))

    gone = asyncio.ensure_future(_disconnected(request))
    try:
        submitted = asyncio.ensure_future(srv.submit(body, listener))
        await asyncio.wait({submitted, gone}, return_when=asyncio.FIRST_COMPLETED)
        futs = await submitted
        if gone.done():  # client left while its media were being fetched
            return _abandon(srv, futs)
    finally:
        gone.cancel()
    tools = bool(body.tools) and body.tool_choice != "none"
    readers = [DeltaReader(srv.model, f, tools) for f in futs]
    for i, f in enumerate(futs):

        def finished(cf, i=i) -> None:
            loop.call_soon_threadsafe(events.put_nowait, (i, "end", cf))

        f.future.add_done_callback(finished)
    cid, created, name = protocol.completion_id(), int(time.time()), srv.served
    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def sse(obj: dict) -> str:
        return "data: " + json.dumps(obj, ensure_ascii=False) + "\n\n"

    async def gen():
        results, ttft, pending = [], None, len(futs)
        try:
            for i in range(len(futs)):
                yield sse(
                    protocol.chunk(cid, name, created, i, {"role": "assistant", "content": ""})
                )
            while pending:
                i, kind, payload = await events.get()
                if kind == "text":
                    if ttft is None:
                        ttft = time.perf_counter() - t0
                    deltas = readers[i].text(payload)
                    for d in deltas:
                        yield sse(protocol.chunk(cid, name, created, i, delta_json(d)))
                    continue
                pending -= 1
                try:
                    result = payload.result()
                except Exception as e:  # the generation failed after the headers went out
                    if isinstance(e, SealionError):
                        code, _ = sealion_error(e)
                        err = error_body(400, str(e), None, code)
                    else:
                        log.error("generation failed", exc_info=e)
                        err = error_body(500, f"generation failed ({type(e).__name__})")
                    yield sse(err)
                    continue
                results.append(result)
                for d in readers[i].finish(result.raw_text):
                    yield sse(protocol.chunk(cid, name, created, i, delta_json(d)))
                lp = getattr(result, "logprobs", None)
                yield sse(
                    protocol.chunk(cid, name, created, i, {}, result.finish_reason, logprobs=lp)
                )
            if include_usage and results:
                yield sse(
                    protocol.chunk(
                        cid,
                        name,
                        created,
                        usage_=protocol.usage(
                            results[0].prompt_tokens, sum(r.completion_tokens for r in results)
                        ),
                    )
                )
            yield "data: [DONE]\n\n"
            _observe(srv, results, t0, ttft)
        finally:
            cancel_open()

    def cancel_open() -> None:
        """Stop what still runs; also called after the response, in case the client left
        before the generator started (its ``finally`` would then never run)."""
        open_ = [f for f in futs if not f.done() and not f.cancel_event.is_set()]
        for f in open_:
            f.cancel()
        if open_:
            srv.metrics.cancelled.inc(len(open_))

    return StreamingResponse(
        gen(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
        background=BackgroundTask(cancel_open),
    )

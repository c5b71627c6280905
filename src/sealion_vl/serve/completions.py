"""The chat-completion exchanges: one JSON reply, or an SSE stream of chunks.

A client that goes away (streaming or not, even while its media are still being fetched) has
its generations cancelled at the next decode step.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import time
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from sealion_vl.errors import SealionError
from sealion_vl.runtime.futures import DeltaDecoder
from sealion_vl.serve import protocol
from sealion_vl.serve.admission import Server, post_to
from sealion_vl.serve.errors import APIError, error_body, sealion_error
from sealion_vl.serve.stream import delta_json

log = logging.getLogger("sealion_vl.serve")


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

        post_to(loop, settle)

    cf.add_done_callback(done)
    return await waiter


async def _disconnected(request: Request) -> None:
    """Returns when the client has gone away (the body was already read)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def _observe(srv: Server, results: list, t0: float, ttft: float | None) -> None:
    m = srv.metrics
    if results:
        m.prompt_tokens.inc(results[0].prompt_tokens)
        m.completion_tokens.inc(sum(r.completion_tokens for r in results))
    if ttft is not None:
        m.ttft.observe(ttft)
    m.latency.observe(time.perf_counter() - t0)


async def complete(srv: Server, body, request: Request, t0: float):
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


def _abandon(srv: Server, futs: list) -> Response:
    for f in futs:
        f.cancel()
    srv.metrics.cancelled.inc(len(futs))
    return Response(status_code=499)


async def stream(srv: Server, body, request: Request, t0: float):
    loop = asyncio.get_running_loop()
    events: asyncio.Queue = asyncio.Queue()

    def listener(i: int, ev: tuple) -> None:  # scheduler thread: never blocks
        if ev[0] == "text":
            post_to(loop, events.put_nowait, (i, "text", ev[1]))

    gone = asyncio.ensure_future(_disconnected(request))
    try:
        submitted = asyncio.ensure_future(srv.submit(body, listener))
        await asyncio.wait({submitted, gone}, return_when=asyncio.FIRST_COMPLETED)
        futs = await submitted
        if gone.done():  # client left while its media were being fetched
            return _abandon(srv, futs)
    finally:
        gone.cancel()
    readers = [DeltaDecoder(srv.model.adapter, f) for f in futs]
    for i, f in enumerate(futs):

        def finished(cf, i=i) -> None:
            post_to(loop, events.put_nowait, (i, "end", cf))

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

"""Admission and submission: what the server lets in, and how it hands work to the engine.

Every request is encoded (templates, media fetching and decoding) in a worker thread of the
server's own pool, never on the event loop. At most ``max_queue`` generations are admitted at
once (encoding, waiting or running); beyond that the answer is 503 + ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging

from pydantic import ValidationError

from sealion_vl.errors import SealionError
from sealion_vl.serve import protocol
from sealion_vl.serve.config import ServeConfig
from sealion_vl.serve.errors import APIError
from sealion_vl.serve.metrics import Metrics

log = logging.getLogger("sealion_vl.serve")

_MEDIA_KINDS = {
    "image_url": "image",
    "image": "image",
    "video_url": "video",
    "video": "video",
    "input_audio": "audio",
    "audio": "audio",
}


def post_to(loop: asyncio.AbstractEventLoop, fn, *args) -> None:
    """Run ``fn(*args)`` on ``loop`` from another thread (the scheduler's): never raises,
    since a raising listener would fail every request of the scheduler's batch; a loop
    already closed (the server stopped) has no one left to tell."""
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:
        pass


class Server:
    """One app's state: the model, settings, encoding pool, admission count and metrics."""

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
            post_to(loop, self._release)

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

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

import importlib.resources
import time

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from sealion_vl import __version__
from sealion_vl.media import MediaLimits
from sealion_vl.serve import protocol
from sealion_vl.serve.admission import Server
from sealion_vl.serve.completions import complete, stream
from sealion_vl.serve.config import ServeConfig
from sealion_vl.serve.errors import APIError, install
from sealion_vl.serve.guard import Guard

_PLACEHOLDER = """<!doctype html><meta charset="utf-8"><title>sealion-vl</title>
<h1>sealion-vl</h1><p>The OpenAI-compatible API is at <code>/v1/chat/completions</code>;
models at <code>/v1/models</code>. (The web chat page is not installed in this build.)</p>"""


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
    srv = Server(model, config)

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
            return await stream(srv, body, request, t0)
        return await complete(srv, body, request, t0)

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


def _model_card(srv: Server) -> dict:
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

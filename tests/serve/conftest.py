"""A real uvicorn server on a free loopback port, in a background thread, per test module."""

from __future__ import annotations

import base64
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn

KEY = "test-key"


class Server:
    """Runs ``app`` on 127.0.0.1:<free port> until ``stop()``."""

    def __init__(self, app) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        cfg = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = app

    @property
    def state(self):
        return self.app.state.server

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def start(model, key: str | None = KEY, media_limits=None, **config) -> Server:
    from sealion_vl.serve import ServeConfig, create_app

    cfg = ServeConfig(api_key=key, **config)
    return Server(create_app(model, cfg, media_limits=media_limits))


def client(server: Server, key: str = KEY, **kw):
    import openai

    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, **kw)


_http = httpx.Client(limits=httpx.Limits(max_connections=128, max_keepalive_connections=0))


def post(server: Server, body, key: str | None = KEY, **kw) -> httpx.Response:
    """POST a chat completion (a dict as JSON, bytes/str as they are) and return the reply."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    headers.update(kw.pop("headers", {}))
    kw.setdefault("timeout", 60)
    if isinstance(body, (bytes, str)):
        return _http.post(
            server.url + "/v1/chat/completions",
            content=body,
            headers={"Content-Type": "application/json", **headers},
            **kw,
        )
    return httpx.post(server.url + "/v1/chat/completions", json=body, headers=headers, **kw)


def data_uri(path: Path | bytes, mime: str = "image/png") -> str:
    raw = path if isinstance(path, bytes) else Path(path).read_bytes()
    return f"data:{mime};base64," + base64.b64encode(raw).decode()


def image_turn(uri: str, text: str = "Apa ini?") -> list[dict]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": uri}},
                {"type": "text", "text": text},
            ],
        }
    ]


def healthy(server: Server) -> bool:
    r = httpx.get(server.url + "/health", timeout=5)
    return r.status_code == 200 and r.json()["status"] == "ok"


_loaded: dict = {}


@pytest.fixture(scope="session")
def serve_model(checkpoint):
    """serve_model(kind) -> a ChatModel of its own (servers change its media limits)."""
    import sealion_vl

    def get(kind: str):
        if kind not in _loaded:
            _loaded[kind] = sealion_vl.load(checkpoint(kind))
        return _loaded[kind]

    return get

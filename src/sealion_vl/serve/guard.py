"""The ASGI layer in front of every route: status metrics, the API key, the body cap.

Written as raw ASGI (not Starlette's BaseHTTPMiddleware) so it can refuse a request before
reading its body, count bytes of a chunked body as they arrive, and leave the
``http.disconnect`` message for the routes that cancel generation on it.
"""

from __future__ import annotations

import hmac

from sealion_vl.serve.errors import error_bytes

#: Routes anyone may call: liveness probes, and the static page that asks for the key.
OPEN_PATHS = frozenset({"/health", "/"})


class Guard:
    """Wraps the app: counts responses by status, checks the key, caps the body.

    Args:
        app: the ASGI app behind the guard.
        api_key: required as ``Authorization: Bearer KEY`` (None: no key).
        max_body_bytes: larger bodies get 413 (from Content-Length, before reading; or
            while reading one sent without a length).
        on_status: called with each response's status code (metrics).
    """

    def __init__(self, app, api_key: str | None, max_body_bytes: int, on_status) -> None:
        self.app = app
        self.key = f"Bearer {api_key}".encode() if api_key else None
        self.max_body = max_body_bytes
        self.on_status = on_status

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = False

        async def counted_send(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                self.on_status(message["status"])
            await send(message)

        try:
            await self._guarded(scope, receive, counted_send)
        except Exception:
            if not started:  # the 500 that Starlette's outermost handler will send
                self.on_status(500)
            raise

    async def _guarded(self, scope, receive, counted_send) -> None:
        headers = dict(scope.get("headers") or [])
        if self.key is not None and scope["path"] not in OPEN_PATHS:
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, self.key):
                what = "wrong API key" if given else "missing API key"
                await _refuse(
                    counted_send,
                    401,
                    f"{what}: send the header 'Authorization: Bearer <key>'",
                    "invalid_api_key",
                    [(b"www-authenticate", b"Bearer")],
                )
                return
        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await _refuse(counted_send, 400, "Content-Length is not a number", "bad_header")
                return
            if declared > self.max_body:
                await _refuse(counted_send, 413, self._too_big(declared), "body_too_large")
                return
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, counted_send)
            return
        body, more, size = [], True, 0
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _refuse(
                    counted_send, 413, self._too_big(size, partial=True), "body_too_large"
                )
                return
            body.append(chunk)
            more = message.get("more_body", False)
        replay = {"type": "http.request", "body": b"".join(body), "more_body": False}

        async def replay_receive():
            nonlocal replay
            if replay is not None:
                message, replay = replay, None
                return message
            return await receive()  # after the body: waits for http.disconnect

        await self.app(scope, replay_receive, counted_send)

    def _too_big(self, size: int, partial: bool = False) -> str:
        got = f"more than {self.max_body:,}" if partial else f"{size:,}"
        return (
            f"request body is {got} bytes; this server takes at most {self.max_body:,} "
            "(--max-body-bytes). Send images as URLs or smaller files."
        )


async def _refuse(send, status: int, message: str, code: str, headers=None) -> None:
    body = error_bytes(status, message, None, code)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

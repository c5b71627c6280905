"""Helpers shared by the serve tests: crafted images, raw HTTP, scripted and endless replies,
loopback hosts that never answer or never stop."""

from __future__ import annotations

import contextlib
import io
import re
import socket
import struct
import threading
import time
import zlib

import httpx
from PIL import Image

from tests.serve.conftest import KEY


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels (with no real pixel data)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def png_bytes(size=(48, 40)) -> bytes:
    buf = io.BytesIO()
    Image.effect_noise(size, 64).convert("RGB").save(buf, "PNG")
    return buf.getvalue()


def raw_request(port: int, headers: dict[str, str], body: bytes = b"") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    s.sendall(head.encode() + body)
    return s


def reply_of(sock: socket.socket) -> tuple[int, bytes]:
    """Status code and body of the HTTP reply on ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < content_length(data):
        more = sock.recv(65536)
        if not more:
            break
        data += more
    return int(data.split(b" ", 2)[1]), data.split(b"\r\n\r\n", 1)[1]


def content_length(data: bytes) -> int:
    m = re.search(rb"content-length: (\d+)", data, re.I)
    return int(m.group(1)) if m else 0


@contextlib.contextmanager
def never_ending(model):
    """The real model, with its end-of-turn tokens forbidden: replies run to max_tokens."""
    eos = model.model.generation_config.eos_token_id
    eos = eos if isinstance(eos, list) else [eos]
    eos += [model.tokenizer.convert_tokens_to_ids(t) for t in model.adapter.stop_tokens]

    def hook(module, args, out):
        out = out.clone()
        out[..., [i for i in eos if isinstance(i, int) and i >= 0]] = float("-inf")
        return out

    handle = model.model.get_output_embeddings().register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def wait_for(pred, timeout=10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


def cancelled_count(server) -> float:
    text = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
    return float(re.search(r"^sealion_vl_cancelled_total (\S+)$", text, re.M).group(1))


class Silent:
    """A loopback TCP server that accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.sock.accept()
                self.held.append(conn)

    def close(self) -> None:
        for c in self.held:
            c.close()
        self.sock.close()


class Endless:
    """A loopback HTTP server: an image response that never ends, or ``body`` after
    ``delay`` seconds."""

    def __init__(self, delay: float = 0.0, body: bytes | None = None) -> None:
        import http.server

        owner = self
        self.requests = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                time.sleep(delay)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                if body is not None:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(OSError):
                    if body is not None:
                        self.wfile.write(body)
                        return
                    while True:
                        self.wfile.write(b"\0" * 65536)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

"""http(s) downloads with the SSRF guard: one DNS lookup per hop, connections pinned to it.

Under the guard (``MediaLimits.allow_private_hosts=False``) each hop's host is turned into
addresses exactly once: IP literals in any spelling (``2130706433``, ``0x7f.1``, ``127.1``,
``[::ffff:127.0.0.1]`` ...) by :func:`~sealion_vl.media.common.parse_ip_host`, names by
``limits.address_policy.resolve``. Every address must pass ``address_policy.is_public``, and
then the connection goes to those addresses and nowhere else: httpx keeps the real URL (so the
Host header, TLS SNI and certificate check all use the host name) but its connections come from
:class:`_PinnedBackend`, a network backend that refuses any host it was not given addresses for
and never calls a resolver. A DNS answer that changes between the check and the connection
(rebinding) therefore changes nothing.

The same backend enforces the deadline: every socket read, write and handshake gets at most the
time left until ``timeout_s`` runs out, so a server that trickles bytes (in the headers or the
body) is cut off at the deadline, not one read later.

Without the guard (local use) the same transport connects by name through the system resolver,
with the same deadline; only when proxy environment variables are set does httpx's own
transport take over (honouring them), with the deadline then checked between body chunks.

We wrote the backend by hand because neither httpx nor httpcore has a "connect to this address"
option short of replacing the resolver.
"""

from __future__ import annotations

import contextlib
import functools
import ssl
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import certifi
import httpcore
import httpx

from sealion_vl.errors import MediaError
from sealion_vl.media.common import (
    MediaLimits,
    host_matches,
    media_error,
    parse_ip_host,
    redact_url,
    too_big,
)

_USER_AGENT = "sealion-vl-media/1"
_HEADERS = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}


# --------------------------------------------------------------------------- pinned transport


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read, write and handshake ends by the fetch's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self._inner = inner
        self._deadline = deadline

    def _left(self, timeout: float | None, error: type[Exception]) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise error("the fetch deadline has passed")
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        left = self._left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self._inner.start_tls(ssl_context, server_hostname, left), self._deadline
        )

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects ``(host, port)`` only to the addresses pinned for it; never resolves names
    (except ``unguarded``, for local use, where unpinned names go to the system resolver)."""

    def __init__(self, deadline: float, connect_timeout: float, unguarded: bool = False) -> None:
        self.pins: dict[tuple[str, int], list[str]] = {}
        self._unguarded = unguarded
        self._deadline = deadline
        self._connect_timeout = connect_timeout
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        addresses = self.pins.get((host, port))
        if not addresses and self._unguarded:
            addresses = [host]  # local use: the system resolver, as any client would
        if not addresses:  # cannot happen through fetch_url; refuse rather than resolve
            raise httpcore.ConnectError(f"no checked address for {host}:{port}")
        error: Exception | None = None
        for address in addresses:  # every one of them passed the check
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise httpcore.ConnectTimeout("the fetch deadline has passed")
            try:
                stream = self._inner.connect_tcp(
                    address,
                    port,
                    timeout=min(self._connect_timeout, left),
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
                continue
            return _DeadlineStream(stream, self._deadline)
        assert error is not None
        raise error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not used for media")


@contextlib.contextmanager
def _httpx_errors() -> Iterator[None]:
    """httpcore's exceptions as httpx's, so callers handle one family."""
    try:
        yield
    except httpcore.ConnectTimeout as exc:
        raise httpx.ConnectTimeout(str(exc) or "connect timeout") from exc
    except httpcore.TimeoutException as exc:
        raise httpx.TimeoutException(str(exc) or type(exc).__name__) from exc
    except (
        httpcore.NetworkError,
        httpcore.ProtocolError,
        httpcore.UnsupportedProtocol,
        httpcore.ProxyError,
    ) as exc:
        raise httpx.TransportError(str(exc) or type(exc).__name__) from exc


class _Body(httpx.SyncByteStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        with _httpx_errors():
            yield from self._stream

    def close(self) -> None:
        if hasattr(self._stream, "close"):
            self._stream.close()


class _PinnedTransport(httpx.BaseTransport):
    """An httpx transport over an httpcore pool whose connections come from the pinned backend."""

    def __init__(self, backend: _PinnedBackend, ssl_context: ssl.SSLContext) -> None:
        # No keep-alive: every hop opens a connection to the addresses checked for that hop.
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context, network_backend=backend, max_keepalive_connections=0
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_errors():
            response = self._pool.handle_request(core_request)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_Body(response.stream),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()


@functools.lru_cache(maxsize=8)
def _ssl_context(extra_ca_file: str | None) -> ssl.SSLContext:
    """Verifying TLS context (certifi's roots plus ``extra_ca_file``); built once, since
    loading the roots costs tens of milliseconds per fetch."""
    context = ssl.create_default_context(cafile=certifi.where())
    if extra_ca_file:
        context.load_verify_locations(cafile=extra_ca_file)
    return context


# --------------------------------------------------------------------------- checks per hop


def _check_hop(
    url: str, limits: MediaLimits, backend: _PinnedBackend | None, src: str, kind: str
) -> httpx.URL:
    """Validate one hop's URL; under the guard, resolve it once and pin the checked addresses."""
    shown = redact_url(url)
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise media_error(kind, src, f"invalid URL {shown!r} ({exc})") from exc
    if parsed.scheme not in ("http", "https"):
        raise media_error(
            kind,
            src,
            f"refusing the {parsed.scheme or 'missing'!r} URL scheme at {shown!r}",
            "Only http and https URLs can be fetched.",
        )
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise media_error(kind, src, f"the URL {shown!r} has no host")
    allowed = limits.allowed_domains
    if allowed and not (host_matches(host, allowed) or host_matches(parsed.host, allowed)):
        raise media_error(
            kind,
            src,
            f"host {host!r} is not in the allowed media domains",
            "Fetch media only from the allowed domains, or send it inline.",
        )
    if backend is None or limits.allow_private_hosts:
        return parsed
    policy = limits.address_policy
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        literal = parse_ip_host(host)
    except ValueError as exc:
        raise media_error(kind, src, f"refusing host {host!r} ({exc})") from exc
    if literal is not None:
        addresses = [str(literal)]
    elif "%" in host or not host.replace("-", "").replace(".", "").replace("_", "").isalnum():
        raise media_error(kind, src, f"refusing host {host!r}: not a valid host name")
    else:
        try:
            addresses = [str(a) for a in policy.resolve(host, port)]
        except (OSError, UnicodeError, ValueError) as exc:
            raise media_error(kind, src, f"cannot resolve host {host!r}") from exc
        if not addresses:
            raise media_error(kind, src, f"cannot resolve host {host!r}")
    for address in addresses:
        if not policy.is_public(address):
            what = "is" if literal is not None else "resolves to"
            raise media_error(
                kind,
                src,
                f"host {host!r} {what} non-public address {address}",
                "Only media on the public internet can be fetched here.",
            )
    backend.pins[(host, port)] = addresses
    return parsed


# --------------------------------------------------------------------------- fetching


def _env_proxies() -> bool:
    """Whether proxy environment variables are set (only honoured without the guard)."""
    proxies = urllib.request.getproxies()
    return any(scheme in proxies for scheme in ("http", "https", "all"))


def fetch_url(url: str, limits: MediaLimits, kind: str) -> bytes:
    """Download an http(s) URL under ``limits`` (see :func:`sealion_vl.media.fetch_bytes`)."""
    deadline = time.monotonic() + limits.timeout_s
    timed_out = media_error(
        kind,
        url,
        f"the download did not finish within {limits.timeout_s:g} s",
        "Check the URL, use a faster host, or send the media inline.",
    )
    guarded = not limits.allow_private_hosts
    timeout = httpx.Timeout(limits.timeout_s, connect=limits.connect_timeout_s)
    backend: _PinnedBackend | None = None
    if guarded or not _env_proxies():
        backend = _PinnedBackend(deadline, limits.connect_timeout_s, unguarded=not guarded)
        client = httpx.Client(
            transport=_PinnedTransport(backend, _ssl_context(limits.extra_ca_file)),
            follow_redirects=False,
            trust_env=False,  # a proxy would hide the real destination from the guard
            headers=_HEADERS,
            timeout=timeout,
        )
    else:  # local use behind a proxy: httpx's own transport honours the proxy variables
        verify: ssl.SSLContext | bool = (
            _ssl_context(limits.extra_ca_file) if limits.extra_ca_file else True
        )
        client = httpx.Client(
            verify=verify, follow_redirects=False, headers=_HEADERS, timeout=timeout
        )
    current = url
    with client:
        for _hop in range(limits.max_redirects + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise timed_out
            hop_url = _check_hop(current, limits, backend, url, kind)
            hop_timeout = httpx.Timeout(remaining, connect=min(limits.connect_timeout_s, remaining))
            try:
                request = client.build_request("GET", hop_url, timeout=hop_timeout)
                response = client.send(request, stream=True)
                try:
                    if response.is_redirect:
                        current = str(hop_url.join(response.headers["location"]))
                        continue
                    if not response.is_success:
                        raise media_error(
                            kind,
                            url,
                            f"the server answered HTTP {response.status_code}",
                            "Check that the URL is right and publicly reachable.",
                        )
                    return _read_body(response, limits, deadline, kind, url, timed_out)
                finally:
                    response.close()
            except MediaError:
                raise
            except httpx.ConnectTimeout as exc:
                if time.monotonic() >= deadline:
                    raise timed_out from exc
                raise media_error(
                    kind,
                    url,
                    f"could not connect to {hop_url.host!r} within {limits.connect_timeout_s:g} s",
                    "Check the URL, or send the media inline.",
                ) from exc
            except httpx.TimeoutException as exc:
                raise timed_out from exc
            except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:
                raise media_error(
                    kind, url, f"the download failed ({exc})", "Check the URL."
                ) from exc
    raise media_error(
        kind,
        url,
        f"more than {limits.max_redirects} redirects",
        "Use the final URL directly, or raise MediaLimits.max_redirects.",
    )


def _read_body(
    response: httpx.Response,
    limits: MediaLimits,
    deadline: float,
    kind: str,
    url: str,
    timed_out: MediaError,
) -> bytes:
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        # We ask for identity. Decoding gzip (let alone "gzip, gzip") would let a few kilobytes
        # expand to gigabytes before the byte cap could see them.
        raise media_error(
            kind,
            url,
            f"the server sent compressed data (Content-Encoding: {encoding})",
            "Serve the file without HTTP compression, or send the media inline.",
        )
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.max_bytes:
        raise too_big(kind, url, f"the declared {int(declared):,} bytes", limits)
    chunks: list[bytes] = []
    total = 0
    for chunk in response.iter_raw():
        total += len(chunk)
        if total > limits.max_bytes:
            raise too_big(kind, url, "the response", limits)
        if time.monotonic() > deadline:
            raise timed_out
        chunks.append(chunk)
    return b"".join(chunks)

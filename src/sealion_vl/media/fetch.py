"""Reading encoded media sources: bytes, local files, data URIs and http(s) with the SSRF guard.

:func:`fetch_bytes` is public through :mod:`sealion_vl.media`. The SSRF guard resolves and
judges addresses with ``limits.address_policy`` (:class:`~sealion_vl.media.AddressPolicy`),
so a caller or a test changes what the guard sees by passing its own policy.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
import time
import urllib.parse
import urllib.request
from pathlib import Path

import httpx

from sealion_vl.errors import MediaError
from sealion_vl.media.common import URL_SCHEME, MediaLimits, media_error, redact_url, too_big

_USER_AGENT = "sealion-vl-media/1"


# --------------------------------------------------------------------------- reading sources


def read_source(src: object, limits: MediaLimits, kind: str) -> bytes:
    """Turn any encoded source into bytes, applying the byte cap and the local-file policy."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        if len(src) > limits.max_bytes:
            raise too_big(kind, src, f"{len(src):,} bytes", limits)
        return bytes(src)
    if isinstance(src, os.PathLike):
        return _read_file(Path(os.fspath(src)), src, limits, kind)
    if isinstance(src, str):
        if src[:5].lower() == "data:":
            return _decode_data_uri(src, limits, kind)
        match = URL_SCHEME.match(src)
        scheme = match.group(1).lower() if match else ""
        if scheme in ("http", "https"):
            return _fetch(src, limits, kind)
        if scheme == "file":
            return _read_file(_file_url_path(src, kind), src, limits, kind)
        if scheme:
            raise media_error(
                kind,
                src,
                f"the URL scheme {scheme!r} is not supported",
                "Use an http(s) URL, a data: URI, or (where allowed) a local path.",
            )
        return _read_file(Path(os.path.expanduser(src)), src, limits, kind)
    hint = (
        " For an OpenAI input_audio part, call audio_from_openai(part) first."
        if kind == "audio" and isinstance(src, dict)
        else ""
    )
    raise media_error(
        kind,
        src,
        f"unsupported source type {type(src).__name__}",
        "Pass a path, bytes, a data: URI or an http(s) URL." + hint,
    )


def _file_url_path(url: str, kind: str) -> Path:
    parts = urllib.parse.urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise media_error(
            kind, url, "file:// URLs must name a local file", "Use file:///absolute/path."
        )
    return Path(urllib.request.url2pathname(parts.path))


def _read_file(path: Path, src: object, limits: MediaLimits, kind: str) -> bytes:
    if not limits.allow_local_files:
        raise media_error(
            kind,
            src,
            "local files are not allowed here",
            "Send the media inline (data: URI / base64) or as an http(s) URL.",
        )
    fix = f"Check the path (relative paths start at {os.getcwd()!r})."
    if isinstance(src, str) and len(src) > 64 and re.fullmatch(r"[A-Za-z0-9+/=\s]+", src[:200]):
        fix += " If this is base64 data, send it as a data URI: data:<mime>;base64,<data>."
    try:
        # stat first: opening a FIFO would block, and /dev/zero would never end.
        mode = path.stat().st_mode
        if stat.S_ISREG(mode):
            with path.open("rb") as fh:
                data = fh.read(limits.max_bytes + 1)
    except FileNotFoundError as exc:
        raise media_error(kind, src, "no such file", fix) from exc
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise media_error(
            kind, src, f"cannot read the file ({getattr(exc, 'strerror', None) or exc})", fix
        ) from exc
    if not stat.S_ISREG(mode):
        raise media_error(kind, src, "not a regular file", "Pass the path of a media file.")
    if len(data) > limits.max_bytes:
        raise too_big(kind, src, "the file", limits)
    return data


def b64decode(text: str, kind: str, src: object) -> bytes:
    """Lenient base64: ignores whitespace, accepts the URL-safe alphabet and missing padding."""
    text = "".join(text.split())
    if "%" in text:  # some clients percent-encode +, / and = inside data URIs
        text = urllib.parse.unquote(text)
    text = text.translate(str.maketrans("-_", "+/"))
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise media_error(kind, src, "the base64 data is invalid", "Check the encoding.") from exc


def _decode_data_uri(uri: str, limits: MediaLimits, kind: str) -> bytes:
    header, comma, payload = uri.partition(",")
    if not comma:
        raise media_error(
            kind, uri, "malformed data URI (no comma)", "Use data:<mime>;base64,<data>."
        )
    if header.lower().endswith(";base64"):
        # Refuse from the length alone, before decoding anything.
        if len(payload) // 4 * 3 > limits.max_bytes + 3:
            raise too_big(kind, uri, f"about {len(payload) // 4 * 3:,} bytes", limits)
        data = b64decode(payload, kind, uri)
    else:
        data = urllib.parse.unquote_to_bytes(payload)
    if len(data) > limits.max_bytes:
        raise too_big(kind, uri, f"{len(data):,} bytes", limits)
    return data


# --------------------------------------------------------------------------- http(s)


def _prepare_request(
    client: httpx.Client, url: str, limits: MediaLimits, remaining: float, src: str, kind: str
) -> tuple[httpx.Request, httpx.URL]:
    """Validate one hop's URL and build its request (pinned to a checked IP under the guard)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise media_error(kind, src, f"invalid URL {redact_url(url)!r}") from exc
    if parsed.scheme not in ("http", "https"):
        raise media_error(
            kind,
            src,
            f"refusing the {parsed.scheme or 'missing'!r} URL scheme at {redact_url(url)!r}",
            "Only http and https URLs can be fetched.",
        )
    if not parsed.host:
        raise media_error(kind, src, f"the URL {redact_url(url)!r} has no host")
    target, headers, extensions = parsed, {}, {}
    if not limits.allow_private_hosts:
        policy = limits.address_policy
        host = parsed.raw_host.decode("ascii")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            addresses = policy.resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise media_error(kind, src, f"cannot resolve host {host!r}") from exc
        if not addresses:
            raise media_error(kind, src, f"cannot resolve host {host!r}")
        for address in addresses:
            if not policy.is_public(address):
                raise media_error(
                    kind,
                    src,
                    f"host {host!r} resolves to non-public address {address}",
                    "Only media on the public internet can be fetched here.",
                )
        # Connect to the address we checked, not to whatever a second DNS lookup returns
        # (DNS rebinding); Host header and TLS SNI/certificate still use the real name.
        target = parsed.copy_with(host=addresses[0])
        headers["Host"] = parsed.netloc.decode("ascii")
        if parsed.scheme == "https":
            extensions["sni_hostname"] = host
    request = client.build_request(
        "GET", target, headers=headers, extensions=extensions, timeout=httpx.Timeout(remaining)
    )
    return request, parsed


def fetch_bytes(url: str, limits: MediaLimits | None = None) -> bytes:
    """Download ``url`` (http or https only) under ``limits``; the loaders' one network path.

    Redirects are followed by hand so every hop gets the scheme check and, when
    ``allow_private_hosts`` is False, the SSRF check. The byte cap is enforced while streaming
    (a server that lies about or omits Content-Length is cut off at the cap), and
    ``timeout_s`` bounds the whole exchange, not each read. Environment proxies are ignored
    under the SSRF guard, since the guard must see the real destination.
    """
    return _fetch(url, limits or MediaLimits(), "media")


def _fetch(url: str, limits: MediaLimits, kind: str) -> bytes:
    deadline = time.monotonic() + limits.timeout_s
    timed_out = media_error(
        kind,
        url,
        f"the download did not finish within {limits.timeout_s:g} s",
        "Check the URL, use a faster host, or send the media inline.",
    )
    current = url
    with httpx.Client(
        follow_redirects=False,
        trust_env=limits.allow_private_hosts,
        headers={"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"},
    ) as client:
        for _hop in range(limits.max_redirects + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise timed_out
            request, hop_url = _prepare_request(client, current, limits, remaining, url, kind)
            try:
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
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.max_bytes:
        raise too_big(kind, url, f"the declared {int(declared):,} bytes", limits)
    chunks: list[bytes] = []
    total = 0
    for chunk in response.iter_bytes():
        total += len(chunk)
        if total > limits.max_bytes:
            raise too_big(kind, url, "the response", limits)
        if time.monotonic() > deadline:
            raise timed_out
        chunks.append(chunk)
    return b"".join(chunks)

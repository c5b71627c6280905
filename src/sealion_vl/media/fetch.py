"""Reading encoded media sources: bytes, local files, data URIs, and http(s) through
:mod:`~sealion_vl.media.http` (the SSRF guard).

:func:`fetch_bytes` is public through :mod:`sealion_vl.media`. Local reads follow
``MediaLimits.allow_local_files`` / ``allowed_local_dir``: with a directory set, a path is
judged by its real location (symlinks and ``..`` resolved) before anything is opened, and the
opened file is checked again, so a symlink or a swapped directory cannot lead outside.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
import urllib.parse
import urllib.request
from pathlib import Path

from sealion_vl.errors import MediaError
from sealion_vl.media.common import URL_SCHEME, MediaLimits, media_error, too_big
from sealion_vl.media.http import fetch_url

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
            return fetch_url(src, limits, kind)
        if scheme == "file":
            return _read_file(_file_url_path(src, kind), src, limits, kind)
        if scheme:
            raise media_error(
                kind,
                src,
                f"the URL scheme {scheme!r} is not supported",
                "Use an http(s) URL, a data: URI, or (where allowed) a local path.",
            )
        return _read_file(Path(src), src, limits, kind)
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
    confined = limits.allowed_local_dir is not None
    if not (limits.allow_local_files or confined):
        raise media_error(
            kind,
            src,
            "local files are not allowed here",
            "Send the media inline (data: URI / base64) or as an http(s) URL.",
        )
    if confined:
        path = _confine(path, src, limits, kind)
        fix = "Pass the path of a file inside the allowed media directory."
    else:
        path = path.expanduser()
        fix = f"Check the path (relative paths start at {os.getcwd()!r})."
    if isinstance(src, str) and len(src) > 64 and re.fullmatch(r"[A-Za-z0-9+/=\s]+", src[:200]):
        fix += " If this is base64 data, send it as a data URI: data:<mime>;base64,<data>."
    try:
        # stat before opening: opening a FIFO would block, a device may act on open, and
        # /dev/zero would never end. The fd is checked again after opening (the path may have
        # changed in between), and under a confining directory the last component must not be
        # a symlink by then (O_NOFOLLOW).
        if not stat.S_ISREG(path.stat().st_mode):
            raise media_error(kind, src, "not a regular file", "Pass the path of a media file.")
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)
        if confined:
            flags |= getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(path, flags)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise media_error(kind, src, "not a regular file", "Pass the path of a media file.")
            if confined:
                _check_opened_inside(fd, src, limits, kind)
            with os.fdopen(os.dup(fd), "rb") as fh:
                data = fh.read(limits.max_bytes + 1)
        finally:
            os.close(fd)
    except MediaError:
        raise
    except FileNotFoundError as exc:
        raise media_error(kind, src, "no such file", fix) from exc
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise media_error(
            kind, src, f"cannot read the file ({getattr(exc, 'strerror', None) or exc})", fix
        ) from exc
    if len(data) > limits.max_bytes:
        raise too_big(kind, src, "the file", limits)
    return data


def _allowed_root(src: object, limits: MediaLimits, kind: str) -> str:
    root = os.path.realpath(limits.allowed_local_dir or "")
    if not os.path.isdir(root):
        raise media_error(
            kind,
            src,
            "the allowed media directory does not exist",
            "Ask the operator to fix MediaLimits.allowed_local_dir (--allowed-media-dir).",
        )
    return root


def _inside(root: str, path: str) -> bool:
    return os.path.commonpath([root, path]) == root


def _confine(path: Path, src: object, limits: MediaLimits, kind: str) -> Path:
    """The real path of ``path`` (relative to the allowed directory), refused if outside it.

    Judged on the real path (symlinks and ``..`` resolved) before anything is opened, so the
    answer for a path outside is the same whether or not it exists.
    """
    root = _allowed_root(src, limits, kind)
    try:
        real = os.path.realpath(os.path.join(root, path))  # an absolute path replaces root
    except (OSError, ValueError) as exc:
        raise media_error(kind, src, "invalid path") from exc
    if not _inside(root, real):
        raise media_error(
            kind,
            src,
            "the path is outside the allowed media directory (after resolving symlinks and ..)",
            "Pass the path of a file inside the allowed media directory.",
        )
    return Path(real)


def _check_opened_inside(fd: int, src: object, limits: MediaLimits, kind: str) -> None:
    """Where the OS says what an fd points at (Linux /proc), check the opened file itself:
    a directory swapped for a symlink after :func:`_confine` cannot lead outside."""
    try:
        opened = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return
    if not _inside(_allowed_root(src, limits, kind), opened):
        raise media_error(
            kind,
            src,
            "the path is outside the allowed media directory (after resolving symlinks and ..)",
            "Pass the path of a file inside the allowed media directory.",
        )


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


def fetch_bytes(url: str, limits: MediaLimits | None = None) -> bytes:
    """Download ``url`` (http or https only) under ``limits``; the loaders' one network path.

    Redirects are followed by hand so every hop gets the scheme and ``allowed_domains`` checks
    and, when ``allow_private_hosts`` is False, the SSRF check (one lookup, every address
    judged, the connection pinned to them). The byte cap is enforced while streaming (a server
    that lies about or omits Content-Length is cut off at the cap; HTTP compression is refused
    rather than inflated), ``connect_timeout_s`` bounds each connection and ``timeout_s`` the
    whole exchange, not each read. Environment proxies are ignored under the SSRF guard, since
    the guard must see the real destination.

    Raises:
        MediaError: for every refusal or failure, naming the (redacted) URL and the reason.
    """
    return fetch_url(url, limits or MediaLimits(), "media")

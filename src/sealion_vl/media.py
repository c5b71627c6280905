"""Load images, video and audio from anything a user, a chat request or a dataset row can hold.

This is the one media loader of the toolkit (chat, server, training data). Keeping it single
means a picture becomes the same pixels everywhere (we follow ``transformers.image_utils.
load_image``: EXIF orientation, then a plain ``convert("RGB")``), and the server's safety limits
(byte and pixel caps, timeouts, the SSRF guard, no local files) cannot be skipped by a code path
that happened to open files its own way.

Every failure is a :class:`~sealion_vl.errors.MediaError` whose message names the input (shortened,
so a 5 MB data URI does not end up in a log line) and says what to do about it. Raw PIL, PyAV or
httpx exceptions never escape; they are chained as ``__cause__`` for debugging.

Decoders only ever see bytes already held in memory (never a path or URL), so container formats
that reference other files or URLs (HLS playlists, ffconcat lists) cannot make FFmpeg open
anything on its own.
"""

from __future__ import annotations

import base64
import binascii
import io
import ipaddress
import os
import re
import socket
import stat
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
from PIL import Image, ImageOps

from sealion_vl.errors import MediaError

__all__ = [
    "MediaLimits",
    "Video",
    "audio_from_openai",
    "fetch_bytes",
    "load_audio",
    "load_image",
    "load_video",
]

#: What the loaders accept as an encoded source (besides their own decoded types).
Source = str | os.PathLike[str] | bytes | bytearray | memoryview

_USER_AGENT = "sealion-vl-media/1"
# Slack for audio length checks: resamplers can add a few samples, and a clip of exactly
# max_audio_seconds must not be refused for that.
_AUDIO_SLACK_S = 0.01
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True)
class MediaLimits:
    """Caps applied to every media input; the defaults suit local use, the server tightens them.

    Attributes:
        max_bytes: Cap on the encoded size of any read, fetched or inlined media.
        max_pixels: Image (and video frame) pixel cap, checked from the header before decoding,
            so a tiny file claiming 20000x20000 pixels (a decompression bomb) costs nothing.
        timeout_s: Deadline for a whole http(s) fetch, redirects and body included, so a server
            trickling one byte at a time cannot hold a worker.
        max_redirects: Redirects followed (manually, to re-check every hop).
        allow_local_files: Plain paths and ``file://`` URLs. The server passes False: a remote
            client must not be able to read the server's disk.
        allow_private_hosts: False turns on the SSRF guard: hosts resolving to any private,
            loopback, link-local, reserved or multicast address are refused, on every hop.
        max_video_frames: Most frames :func:`load_video` will sample.
        max_audio_seconds: Longest clip :func:`load_audio` accepts.
    """

    max_bytes: int = 20 * 2**20
    max_pixels: int = 50_000_000
    timeout_s: float = 10.0
    max_redirects: int = 3
    allow_local_files: bool = True
    allow_private_hosts: bool = True
    max_video_frames: int = 32
    max_audio_seconds: float = 60.0


@dataclass
class Video:
    """Frames sampled from a video, plus what a processor needs to time-stamp them.

    Attributes:
        frames: ``uint8`` array of shape ``(T, H, W, 3)``, RGB.
        fps: Frame rate of the *source* video (not of the sampled frames).
        duration_s: Duration of the source video in seconds.
        frame_indices: Index in the source video of each sampled frame.
        total_frames: Number of frames in the source video.
    """

    frames: np.ndarray
    fps: float
    duration_s: float
    frame_indices: list[int]
    total_frames: int

    def metadata(self) -> dict[str, Any]:
        """Return the fields of ``transformers.video_utils.VideoMetadata``.

        Video processors use them to place timestamps, so passing
        ``VideoMetadata(**video.metadata())`` keeps the model's sense of time right.
        """
        return {
            "total_num_frames": self.total_frames,
            "fps": self.fps,
            "width": int(self.frames.shape[2]),
            "height": int(self.frames.shape[1]),
            "duration": self.duration_s,
            "video_backend": "pyav",
            "frames_indices": list(self.frame_indices),
        }

    @classmethod
    def from_frames(cls, frames: np.ndarray | list[Image.Image], fps: float) -> Video:
        """Wrap already-decoded frames (array ``(T, H, W, 3)`` or PIL images) as a whole video.

        Decoded frames carry no frame rate, and processors need one, hence the ``fps`` argument.
        """
        if isinstance(frames, np.ndarray):
            array = frames
        else:
            try:
                array = np.stack([np.asarray(f.convert("RGB")) for f in frames])
            except (AttributeError, TypeError, ValueError) as exc:
                raise MediaError(
                    f"Cannot use video frames {_describe(frames)}: expected a (T, H, W, 3) uint8 "
                    "array or a non-empty list of same-sized PIL images."
                ) from exc
        if array.ndim != 4 or array.shape[-1] != 3 or array.shape[0] == 0:
            raise MediaError(
                f"Cannot use video frames {_describe(array)}: expected shape (T, H, W, 3) "
                "with T >= 1."
            )
        if array.dtype != np.uint8:
            raise MediaError(
                f"Cannot use video frames {_describe(array)}: expected dtype uint8 (0-255 RGB)."
            )
        if not fps > 0:
            raise MediaError(f"Cannot use video frames {_describe(array)}: fps must be > 0.")
        count = int(array.shape[0])
        return cls(array, float(fps), count / float(fps), list(range(count)), count)


# --------------------------------------------------------------------------- messages


def _describe(src: object) -> str:
    """Short, log-safe description of an input: no megabytes of base64, no URL secrets."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        more = "..." if len(src) > 40 else ""
        return f"<{len(src)} bytes: {bytes(src[:40])!r}{more}>"
    if isinstance(src, os.PathLike):
        return repr(os.fspath(src))
    if isinstance(src, str):
        if _URL_SCHEME.match(src):
            return repr(_redact_url(src))
        if src[:5].lower() == "data:" or len(src) > 200:
            return f"{src[:40]!r}... ({len(src)} chars)"
        return repr(src)
    if isinstance(src, Image.Image):
        return f"<PIL image {src.mode} {src.width}x{src.height}>"
    if isinstance(src, np.ndarray):
        return f"<array shape={src.shape} dtype={src.dtype}>"
    if isinstance(src, Video):
        return f"<Video {len(src.frame_indices)} frames>"
    return f"<{type(src).__name__}>"


def _redact_url(url: str) -> str:
    """Drop credentials and query strings (signed URLs carry tokens there) from a URL."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url[:80]
    netloc = parts.netloc.rpartition("@")[2]
    shown = f"{parts.scheme}://{netloc}{parts.path}{'?...' if parts.query else ''}"
    return shown if len(shown) <= 120 else shown[:117] + "..."


def _error(kind: str, src: object, problem: str, fix: str = "") -> MediaError:
    return MediaError(
        f"Cannot load {kind} {_describe(src)}: {problem}." + (f" {fix}" if fix else "")
    )


def _too_big(kind: str, src: object, size: str, limits: MediaLimits) -> MediaError:
    return _error(
        kind,
        src,
        f"{size} is over the {limits.max_bytes:,}-byte limit",
        "Send a smaller or more compressed file, or raise MediaLimits.max_bytes.",
    )


# --------------------------------------------------------------------------- reading sources


def _read_source(src: object, limits: MediaLimits, kind: str) -> bytes:
    """Turn any encoded source into bytes, applying the byte cap and the local-file policy."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        if len(src) > limits.max_bytes:
            raise _too_big(kind, src, f"{len(src):,} bytes", limits)
        return bytes(src)
    if isinstance(src, os.PathLike):
        return _read_file(Path(os.fspath(src)), src, limits, kind)
    if isinstance(src, str):
        if src[:5].lower() == "data:":
            return _decode_data_uri(src, limits, kind)
        match = _URL_SCHEME.match(src)
        scheme = match.group(1).lower() if match else ""
        if scheme in ("http", "https"):
            return _fetch(src, limits, kind)
        if scheme == "file":
            return _read_file(_file_url_path(src, kind), src, limits, kind)
        if scheme:
            raise _error(
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
    raise _error(
        kind,
        src,
        f"unsupported source type {type(src).__name__}",
        "Pass a path, bytes, a data: URI or an http(s) URL." + hint,
    )


def _file_url_path(url: str, kind: str) -> Path:
    parts = urllib.parse.urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise _error(kind, url, "file:// URLs must name a local file", "Use file:///absolute/path.")
    return Path(urllib.request.url2pathname(parts.path))


def _read_file(path: Path, src: object, limits: MediaLimits, kind: str) -> bytes:
    if not limits.allow_local_files:
        raise _error(
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
        raise _error(kind, src, "no such file", fix) from exc
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise _error(
            kind, src, f"cannot read the file ({getattr(exc, 'strerror', None) or exc})", fix
        ) from exc
    if not stat.S_ISREG(mode):
        raise _error(kind, src, "not a regular file", "Pass the path of a media file.")
    if len(data) > limits.max_bytes:
        raise _too_big(kind, src, "the file", limits)
    return data


def _b64decode(text: str, kind: str, src: object) -> bytes:
    """Lenient base64: ignores whitespace, accepts the URL-safe alphabet and missing padding."""
    text = "".join(text.split())
    if "%" in text:  # some clients percent-encode +, / and = inside data URIs
        text = urllib.parse.unquote(text)
    text = text.translate(str.maketrans("-_", "+/"))
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _error(kind, src, "the base64 data is invalid", "Check the encoding.") from exc


def _decode_data_uri(uri: str, limits: MediaLimits, kind: str) -> bytes:
    header, comma, payload = uri.partition(",")
    if not comma:
        raise _error(kind, uri, "malformed data URI (no comma)", "Use data:<mime>;base64,<data>.")
    if header.lower().endswith(";base64"):
        # Refuse from the length alone, before decoding anything.
        if len(payload) // 4 * 3 > limits.max_bytes + 3:
            raise _too_big(kind, uri, f"about {len(payload) // 4 * 3:,} bytes", limits)
        data = _b64decode(payload, kind, uri)
    else:
        data = urllib.parse.unquote_to_bytes(payload)
    if len(data) > limits.max_bytes:
        raise _too_big(kind, uri, f"{len(data):,} bytes", limits)
    return data


# --------------------------------------------------------------------------- http(s)


def _resolve(host: str, port: int) -> list[str]:
    """All addresses ``host`` resolves to (a seam for tests)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _is_public_ip(address: str) -> bool:
    """True only for globally routable unicast addresses, including IPv4 embedded in IPv6."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        # ::ffff:10.0.0.1, 6to4, Teredo and NAT64 all reach an IPv4 host: judge that host too.
        embedded = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
        if ip in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        candidates += [e for e in embedded if e is not None]
    return all(
        c.is_global and not (c.is_multicast or c.is_reserved or c.is_private or c.is_loopback)
        for c in candidates
    )


def _prepare_request(
    client: httpx.Client, url: str, limits: MediaLimits, remaining: float, src: str, kind: str
) -> tuple[httpx.Request, httpx.URL]:
    """Validate one hop's URL and build its request (pinned to a checked IP under the guard)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise _error(kind, src, f"invalid URL {_redact_url(url)!r}") from exc
    if parsed.scheme not in ("http", "https"):
        raise _error(
            kind,
            src,
            f"refusing the {parsed.scheme or 'missing'!r} URL scheme at {_redact_url(url)!r}",
            "Only http and https URLs can be fetched.",
        )
    if not parsed.host:
        raise _error(kind, src, f"the URL {_redact_url(url)!r} has no host")
    target, headers, extensions = parsed, {}, {}
    if not limits.allow_private_hosts:
        host = parsed.raw_host.decode("ascii")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            addresses = _resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise _error(kind, src, f"cannot resolve host {host!r}") from exc
        if not addresses:
            raise _error(kind, src, f"cannot resolve host {host!r}")
        for address in addresses:
            if not _is_public_ip(address):
                raise _error(
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
    timed_out = _error(
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
                        raise _error(
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
                raise _error(kind, url, f"the download failed ({exc})", "Check the URL.") from exc
    raise _error(
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
        raise _too_big(kind, url, f"the declared {int(declared):,} bytes", limits)
    chunks: list[bytes] = []
    total = 0
    for chunk in response.iter_bytes():
        total += len(chunk)
        if total > limits.max_bytes:
            raise _too_big(kind, url, "the response", limits)
        if time.monotonic() > deadline:
            raise timed_out
        chunks.append(chunk)
    return b"".join(chunks)


# --------------------------------------------------------------------------- images


def _check_pixels(size: tuple[int, int], kind: str, src: object, limits: MediaLimits) -> None:
    width, height = size
    if width * height > limits.max_pixels:
        raise _error(
            kind,
            src,
            f"{width}x{height} = {width * height:,} pixels is over the {limits.max_pixels:,} limit",
            "Downscale it first, or raise MediaLimits.max_pixels.",
        )


def load_image(src: Image.Image | Source, limits: MediaLimits | None = None) -> Image.Image:
    """Load an image as a fully decoded RGB ``PIL.Image``.

    ``src`` may be a PIL image, bytes, a path (``str`` or ``os.PathLike``), a ``file://`` URL,
    a ``data:`` URI or an http(s) URL. EXIF orientation is applied and the image converted
    with a plain ``convert("RGB")`` (alpha dropped, not composited), exactly as
    ``transformers.image_utils.load_image`` does, so pixels match the transformers pipeline.
    The pixel cap is checked from the header, before any pixel is decoded.
    """
    limits = limits or MediaLimits()
    if isinstance(src, Image.Image):
        return _finish_image(src, src, limits)
    data = _read_source(src, limits, "image")
    try:
        # PIL warns above its own MAX_IMAGE_PIXELS; we do not silence that with
        # warnings.catch_warnings, which is not thread-safe (the server decodes in threads).
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise _error("image", src, f"too many pixels ({exc})", "Downscale it first.") from exc
    except Exception as exc:  # PIL raises many types for unreadable data
        raise _error(
            "image",
            src,
            "not a recognised image",
            "Send a PNG, JPEG, WebP, GIF, BMP or TIFF file.",
        ) from exc
    if image.format == "EPS":  # decoding EPS runs Ghostscript on untrusted input
        raise _error("image", src, "EPS images are not accepted", "Convert it to PNG.")
    return _finish_image(image, src, limits)


def _finish_image(image: Image.Image, src: object, limits: MediaLimits) -> Image.Image:
    """Check the header size, then decode, orient and convert (as transformers does)."""
    _check_pixels(image.size, "image", src, limits)
    try:
        image.load()
        return ImageOps.exif_transpose(image).convert("RGB")
    except Exception as exc:
        raise _error(
            "image",
            src,
            f"the image data is corrupt or truncated ({exc})",
            "Re-export or re-download the file.",
        ) from exc


# --------------------------------------------------------------------------- video


def _even_indices(total: int, count: int) -> list[int]:
    """``count`` evenly spaced indices into ``total`` frames: the centre of equal segments.

    Centres rather than segment starts: they skip the often black first frame and never repeat
    an index; with ``count >= total`` every frame is taken.
    """
    if count >= total:
        return list(range(total))
    return [int((i + 0.5) * total / count) for i in range(count)]


def load_video(
    src: Video | Source, limits: MediaLimits | None = None, num_frames: int | None = None
) -> Video:
    """Decode a video with PyAV and sample up to ``num_frames`` evenly spaced RGB frames.

    ``src`` may be a path, bytes, a ``file://`` URL, a ``data:`` URI, an http(s) URL, or a
    :class:`Video`, returned as is. Decoded frames have no frame rate, so they are not
    accepted bare: wrap them with :meth:`Video.from_frames`. ``num_frames`` defaults to, and
    may not exceed, ``limits.max_video_frames``.
    """
    limits = limits or MediaLimits()
    if isinstance(src, Video):
        return src
    if isinstance(src, (np.ndarray, list, tuple)):
        raise _error(
            "video",
            src,
            "decoded frames carry no frame rate",
            "Wrap them with Video.from_frames(frames, fps=...).",
        )
    wanted = limits.max_video_frames if num_frames is None else num_frames
    if not 1 <= wanted <= limits.max_video_frames:
        raise _error(
            "video",
            src,
            f"num_frames={wanted} is outside 1..{limits.max_video_frames}",
            "Ask for fewer frames, or raise MediaLimits.max_video_frames.",
        )
    data = _read_source(src, limits, "video")
    try:
        return _decode_video(data, wanted, limits, src)
    except MediaError:
        raise
    except Exception as exc:  # av.FFmpegError and friends
        raise _error(
            "video",
            src,
            f"the video could not be decoded ({exc})",
            "Send a common format such as MP4 (H.264) or WebM.",
        ) from exc


def _decode_video(data: bytes, wanted: int, limits: MediaLimits, src: object) -> Video:
    with av.open(io.BytesIO(data)) as container:
        if not container.streams.video:
            raise _error("video", src, "it contains no video stream")
        stream = container.streams.video[0]
        _check_pixels(
            (stream.codec_context.width, stream.codec_context.height), "video", src, limits
        )
        duration = None
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        rate = stream.average_rate or stream.guessed_rate
        declared = stream.frames
    # The header's frame count is usually right and saves a pass; when it is missing or
    # wrong, count the frames by decoding once, then sample from the true count.
    total = declared
    indices = _even_indices(total, wanted) if total > 0 else []
    frames = _grab_frames(data, indices, limits, src)[0] if indices else []
    if not indices or len(frames) != len(indices):
        total = _grab_frames(data, [], limits, src)[1]
        if total == 0:
            raise _error("video", src, "it contains no decodable frames")
        indices = _even_indices(total, wanted)
        frames = _grab_frames(data, indices, limits, src)[0]
    fps = float(rate) if rate else (total / duration if duration else 0.0)
    if fps <= 0:
        raise _error("video", src, "its frame rate cannot be determined", "Re-encode it.")
    return Video(
        frames=np.stack(frames),
        fps=fps,
        duration_s=duration if duration else total / fps,
        frame_indices=indices,
        total_frames=total,
    )


def _grab_frames(
    data: bytes, indices: list[int], limits: MediaLimits, src: object
) -> tuple[list[np.ndarray], int]:
    """Decode, keeping the frames at ``indices``; stop after the last one (or count all)."""
    keep = set(indices)
    last = max(indices) if indices else None
    frames: list[np.ndarray] = []
    seen = 0
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for seen, frame in enumerate(container.decode(stream), start=1):
            index = seen - 1
            if index in keep:
                _check_pixels((frame.width, frame.height), "video", src, limits)
                frames.append(frame.to_ndarray(format="rgb24"))
            if index == last:
                break
    return frames, seen


# --------------------------------------------------------------------------- audio


def audio_from_openai(part: dict[str, Any]) -> bytes:
    """Encoded audio bytes from an OpenAI ``input_audio`` part, ready for :func:`load_audio`.

    Accepts the inner object ``{"data": <base64>, "format": "wav"}`` or the whole content part
    ``{"type": "input_audio", "input_audio": {...}}``. The format is not needed: FFmpeg
    recognises the container from the bytes. Size limits apply in :func:`load_audio`.
    """
    inner = part.get("input_audio", part) if isinstance(part, dict) else None
    data = inner.get("data") if isinstance(inner, dict) else None
    if not isinstance(data, str) or not data:
        raise MediaError(
            f"Cannot load audio {_describe(part)}: not an OpenAI input_audio part. "
            'Expected {"data": "<base64>", "format": "wav"}.'
        )
    if data[:5].lower() == "data:":  # some clients send a data URI instead of bare base64
        data = data.partition(",")[2]
    return _b64decode(data, "audio", data)


def load_audio(
    src: Source | np.ndarray | tuple[np.ndarray, int],
    limits: MediaLimits | None = None,
    sampling_rate: int = 16000,
) -> np.ndarray:
    """Load audio as mono ``float32`` in [-1, 1] at ``sampling_rate`` (what speech encoders take).

    ``src`` may be a path, bytes, a ``file://`` URL, a ``data:`` URI or an http(s) URL (any
    container FFmpeg reads: wav, flac, mp3, ogg, m4a, the audio track of a video...), a numpy
    array taken to be at ``sampling_rate`` already, or an ``(array, rate)`` tuple, which is
    resampled. Channels are averaged (like librosa), resampling uses PyAV's swresample.
    Clips longer than ``limits.max_audio_seconds`` are refused, not truncated: silently
    dropping the end of what a user said would be worse than an error.
    """
    limits = limits or MediaLimits()
    if sampling_rate <= 0:
        raise _error("audio", src, f"sampling_rate={sampling_rate} must be positive")
    if isinstance(src, tuple):
        if len(src) != 2 or not isinstance(src[0], np.ndarray):
            raise _error("audio", src, "expected a tuple (array, sampling_rate)")
        try:
            rate = int(src[1])
        except (TypeError, ValueError) as exc:
            raise _error("audio", src, "the sampling rate is not a number") from exc
        if rate <= 0:
            raise _error("audio", src, f"sampling rate {rate} must be positive")
        samples = _to_mono_float(src[0], src)
        _check_duration(len(samples) / rate, src, limits)
        samples = _resample(samples, rate, sampling_rate, src)
    elif isinstance(src, np.ndarray):
        samples = _to_mono_float(src, src)
    else:
        data = _read_source(src, limits, "audio")
        try:
            samples = _decode_audio(data, sampling_rate, limits, src)
        except MediaError:
            raise
        except Exception as exc:  # av.FFmpegError and friends
            raise _error(
                "audio",
                src,
                f"the audio could not be decoded ({exc})",
                "Send a common format such as WAV, FLAC, MP3 or Ogg.",
            ) from exc
    _check_duration(len(samples) / sampling_rate, src, limits)
    return np.clip(samples, -1.0, 1.0).astype(np.float32, copy=False)


def _check_duration(seconds: float, src: object, limits: MediaLimits) -> None:
    if seconds > limits.max_audio_seconds + _AUDIO_SLACK_S:
        raise _error(
            "audio",
            src,
            f"{seconds:.1f} s is longer than the {limits.max_audio_seconds:g} s limit",
            "Trim or split the clip, or raise MediaLimits.max_audio_seconds.",
        )


def _to_mono_float(array: np.ndarray, src: object) -> np.ndarray:
    """Float32 mono from an int or float array; 2-D input is averaged over its channel axis."""
    if array.ndim == 2:
        # (channels, samples) or (samples, channels): channels is the short axis.
        array = array.mean(axis=0 if array.shape[0] <= array.shape[1] else 1, dtype=np.float64)
    elif array.ndim != 1:
        raise _error("audio", src, "expected a 1-D array, or 2-D with a channel axis")
    if array.dtype.kind == "f":
        out = array.astype(np.float32)
    elif array.dtype.kind == "i":
        out = (array / float(2 ** (8 * array.dtype.itemsize - 1))).astype(np.float32)
    elif array.dtype.kind == "u":
        half = float(2 ** (8 * array.dtype.itemsize - 1))
        out = ((array - half) / half).astype(np.float32)
    else:
        raise _error("audio", src, f"unsupported sample dtype {array.dtype}")
    if not np.isfinite(out).all():
        raise _error("audio", src, "the samples contain NaN or infinity")
    return out


def _resample(samples: np.ndarray, rate: int, target: int, src: object) -> np.ndarray:
    """Resample mono float32 ``samples`` from ``rate`` to ``target`` with swresample."""
    if rate == target or samples.size == 0:
        return samples
    try:
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples)[None, :], format="flt", layout="mono"
        )
        frame.sample_rate = rate
        resampler = av.AudioResampler(format="flt", layout="mono", rate=target)
        out = resampler.resample(frame) + resampler.resample(None)
    except Exception as exc:
        raise _error("audio", src, f"resampling from {rate} Hz failed ({exc})") from exc
    if not out:
        return np.zeros(0, np.float32)
    return np.concatenate([f.to_ndarray().reshape(-1) for f in out])


def _decode_audio(data: bytes, rate: int, limits: MediaLimits, src: object) -> np.ndarray:
    with av.open(io.BytesIO(data)) as container:
        if not container.streams.audio:
            raise _error("audio", src, "it contains no audio stream")
        stream = container.streams.audio[0]
        # Keep the source channels (planar float) and average them ourselves: swresample's
        # own downmix weights channels by 1/sqrt(2), which would clip loud stereo.
        resampler = av.AudioResampler(format="fltp", rate=rate)
        cap = int((limits.max_audio_seconds + _AUDIO_SLACK_S) * rate)
        parts: list[np.ndarray] = []
        count = 0
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                parts.append(out.to_ndarray().mean(axis=0, dtype=np.float32))
                count += parts[-1].size
            if count > cap:  # stop decoding a 3-hour file as soon as it is too long
                _check_duration(count / rate, src, limits)
        for out in resampler.resample(None):
            parts.append(out.to_ndarray().mean(axis=0, dtype=np.float32))
    if not parts:
        raise _error("audio", src, "it contains no decodable audio")
    return np.concatenate(parts)

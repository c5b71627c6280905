"""Shared pieces of :mod:`sealion_vl.media`: the limits, the SSRF address policy, :class:`Video`,
log-safe messages.

Callers outside the package import the public names from :mod:`sealion_vl.media`; the helpers
here (``describe``, ``media_error`` ...) are for the package's own modules.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from sealion_vl.errors import MediaError

#: What the loaders accept as an encoded source (besides their own decoded types).
Source = str | os.PathLike[str] | bytes | bytearray | memoryview

URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Cloud metadata services (AWS, AWS IPv6, Alibaba); the first two are also link-local or
# private, named here so no change to the generic rules can let them through.
_METADATA = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("fd00:ec2::254"),
    ipaddress.ip_address("100.100.100.200"),
}
# One label of an inet_aton-style IPv4 literal: decimal, 0-prefixed octal, or 0x hex.
_NUMBER = re.compile(r"0[xX][0-9A-Fa-f]*|[0-9]+")


# --------------------------------------------------------------------------- SSRF address policy


def resolve_host(host: str, port: int) -> list[str]:
    """All addresses ``host`` resolves to (the system resolver)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def is_public_ip(address: str) -> bool:
    """True only for globally routable unicast addresses, including IPv4 embedded in IPv6.

    Refused: loopback, private, link-local, site-local, multicast, unspecified, reserved,
    carrier-grade NAT (100.64/10), documentation ranges, the cloud metadata addresses, any
    address with an IPv6 zone id, and IPv6 forms that reach such an IPv4 host (IPv4-mapped and
    -compatible, 6to4, Teredo, NAT64).
    """
    if "%" in address:  # a zone id only means something on a local link
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        # ::ffff:10.0.0.1, 6to4, Teredo and NAT64 all reach an IPv4 host: judge that host too.
        embedded = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
        if ip in _NAT64 or int(ip) >> 32 == 0:  # NAT64, or IPv4-compatible ::a.b.c.d
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        candidates += [e for e in embedded if e is not None]
    return all(
        c.is_global
        and c not in _METADATA
        and not (c.is_multicast or c.is_reserved or c.is_private or c.is_loopback)
        and not (isinstance(c, ipaddress.IPv6Address) and c.is_site_local)
        for c in candidates
    )


def parse_ip_host(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a URL host names when it is an IP literal in any spelling, else None.

    Resolvers and browsers read more than dotted quads: ``2130706433``, ``0x7f.1``, ``0177.0.0.1``
    and ``127.1`` are all 127.0.0.1 (inet_aton rules), and a trailing dot is allowed. The guard
    judges the address these spellings mean instead of handing them to a resolver.

    Raises:
        ValueError: the host looks numeric (its last label is a number, as in the WHATWG URL
            rules) but is no valid address, or it carries an IPv6 zone id.
    """
    if ":" in host:
        if "%" in host:
            raise ValueError("IPv6 zone ids are not allowed")
        return ipaddress.IPv6Address(host.strip("[]"))
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    if not _NUMBER.fullmatch(labels[-1]):
        return None
    if len(labels) > 4 or not all(_NUMBER.fullmatch(label) for label in labels):
        raise ValueError(f"{host!r} looks like an IPv4 address but is not a valid one")
    values = [_ipv4_number(label) for label in labels]
    last_bits = 8 * (5 - len(values))
    if any(v > 255 for v in values[:-1]) or values[-1] >= 1 << last_bits:
        raise ValueError(f"{host!r} is out of range for an IPv4 address")
    number = 0
    for value in values[:-1]:
        number = number << 8 | value
    return ipaddress.IPv4Address(number << last_bits | values[-1])


def _ipv4_number(label: str) -> int:
    if label[:2].lower() == "0x":
        return int(label[2:] or "0", 16)
    if len(label) > 1 and label.startswith("0"):
        return int(label, 8)
    return int(label)


def host_matches(host: str, patterns: tuple[str, ...]) -> bool:
    """Whether ``host`` is one of ``patterns``: exact names, or ``*.suffix`` for any subdomain
    (not the bare suffix itself). Case and one trailing dot are ignored."""
    host = host.lower().rstrip(".")
    for pattern in patterns:
        pattern = pattern.lower().rstrip(".")
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern:
            return True
    return False


@dataclass(frozen=True)
class AddressPolicy:
    """How the SSRF guard resolves a host and judges each address (used when
    ``MediaLimits.allow_private_hosts`` is False).

    The defaults are the safe ones; tests (or a deployment with its own resolver) pass their
    own functions instead, e.g. ``AddressPolicy(resolve=lambda host, port: ["10.0.0.1"])``.

    Attributes:
        resolve: ``(host, port) -> [address, ...]``; every address returned must pass
            ``is_public``, and the fetch connects to the first one (no second DNS lookup).
            May raise ``OSError`` or ``UnicodeError`` for a host that does not resolve.
        is_public: ``address -> bool``; False refuses the fetch.
    """

    resolve: Callable[[str, int], list[str]] = resolve_host
    is_public: Callable[[str], bool] = is_public_ip


@dataclass(frozen=True)
class MediaLimits:
    """Caps applied to every media input; the defaults suit local use (``sealion-vl chat``),
    :meth:`for_server` gives the ones for a server exposed to untrusted clients.

    Attributes:
        max_bytes: Cap on the encoded size of any read, fetched or inlined media; a download
            is cut off at the cap while streaming.
        max_pixels: Image (and video frame) pixel cap, checked from the header before decoding,
            so a tiny file claiming 20000x20000 pixels (a decompression bomb) costs nothing.
        timeout_s: Deadline for a whole http(s) fetch, redirects and body included, so a server
            trickling one byte at a time cannot hold a worker.
        connect_timeout_s: Cap on opening each connection (TCP and TLS handshake), within
            ``timeout_s``.
        max_redirects: Redirects followed (manually, to re-check every hop).
        allow_local_files: Plain paths and ``file://`` URLs. The server passes False: a remote
            client must not be able to read the server's disk.
        allowed_local_dir: When set, local paths and ``file://`` URLs are read only from inside
            this directory (after resolving symlinks and ``..``; relative paths start there),
            even if ``allow_local_files`` is False. This is ``--allowed-media-dir``.
        allow_private_hosts: False turns on the SSRF guard: every hop's host is resolved once,
            every address must pass ``address_policy.is_public`` (no loopback, private,
            link-local, multicast, reserved, CGNAT or metadata address, in any spelling) and
            the connection goes to exactly those checked addresses.
        allowed_domains: When non-empty, only these hosts are fetched, on every hop: exact
            names, or ``*.example.com`` for any subdomain of example.com (not example.com
            itself). Like vLLM's ``--allowed-media-domains`` this is an allow-list of names,
            not a trust grant: the SSRF guard still applies to them unless
            ``allow_private_hosts`` is True, so a listed name that resolves (or is rebound) to a
            private address is still refused. A string is read as a comma-separated list.
        max_video_frames: Most frames :func:`load_video` will sample.
        max_video_seconds: Longest video :func:`load_video` accepts (None: no cap), checked
            from the container's metadata before any frame is decoded, and again while
            decoding when the metadata does not say.
        max_audio_seconds: Longest clip :func:`load_audio` accepts.
        address_policy: How the SSRF guard resolves hosts and judges addresses
            (:class:`AddressPolicy`; the defaults are the system resolver and
            :func:`is_public_ip`).
        extra_ca_file: A PEM bundle of extra certificate authorities trusted for https media
            (an internal CA); certificates are always verified against the URL's host name.
    """

    max_bytes: int = 20 * 2**20
    max_pixels: int = 50_000_000
    timeout_s: float = 10.0
    connect_timeout_s: float = 5.0
    max_redirects: int = 3
    allow_local_files: bool = True
    allowed_local_dir: str | None = None
    allow_private_hosts: bool = True
    allowed_domains: tuple[str, ...] = ()
    max_video_frames: int = 32
    max_video_seconds: float | None = None
    max_audio_seconds: float = 60.0
    address_policy: AddressPolicy = field(default_factory=AddressPolicy)
    extra_ca_file: str | None = None

    def __post_init__(self) -> None:
        domains = self.allowed_domains or ()
        if isinstance(domains, str):
            domains = domains.replace(",", " ").split()
        object.__setattr__(self, "allowed_domains", tuple(d.strip() for d in domains if d))
        if self.allowed_local_dir is not None:
            object.__setattr__(self, "allowed_local_dir", os.fspath(self.allowed_local_dir))

    @classmethod
    def for_server(cls, **overrides: Any) -> MediaLimits:
        """Limits for a server that untrusted clients can reach; ``overrides`` replace fields.

        No local files (pass ``allowed_local_dir`` to serve one directory), the SSRF guard on,
        a 10 s deadline per fetch (3 s to connect), at most 3 redirects, 20 MB per input,
        33.2 million pixels (an 8K frame), 32 video frames and 120 s of video, 60 s of audio.

        Example:
            ``MediaLimits.for_server(allowed_domains=("*.example.com",), timeout_s=5)``
        """
        settings: dict[str, Any] = {
            "max_bytes": 20 * 2**20,
            "max_pixels": 7680 * 4320,
            "timeout_s": 10.0,
            "connect_timeout_s": 3.0,
            "max_redirects": 3,
            "allow_local_files": False,
            "allow_private_hosts": False,
            "max_video_frames": 32,
            "max_video_seconds": 120.0,
            "max_audio_seconds": 60.0,
        }
        settings.update(overrides)
        return cls(**settings)


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
                    f"Cannot use video frames {describe(frames)}: expected a (T, H, W, 3) uint8 "
                    "array or a non-empty list of same-sized PIL images."
                ) from exc
        if array.ndim != 4 or array.shape[-1] != 3 or array.shape[0] == 0:
            raise MediaError(
                f"Cannot use video frames {describe(array)}: expected shape (T, H, W, 3) "
                "with T >= 1."
            )
        if array.dtype != np.uint8:
            raise MediaError(
                f"Cannot use video frames {describe(array)}: expected dtype uint8 (0-255 RGB)."
            )
        if not fps > 0:
            raise MediaError(f"Cannot use video frames {describe(array)}: fps must be > 0.")
        count = int(array.shape[0])
        return cls(array, float(fps), count / float(fps), list(range(count)), count)


# --------------------------------------------------------------------------- messages


def describe(src: object) -> str:
    """Short, log-safe description of an input: no megabytes of base64, no URL secrets."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        more = "..." if len(src) > 40 else ""
        return f"<{len(src)} bytes: {bytes(src[:40])!r}{more}>"
    if isinstance(src, os.PathLike):
        return repr(os.fspath(src))
    if isinstance(src, str):
        if URL_SCHEME.match(src):
            return repr(redact_url(src))
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


def redact_url(url: str) -> str:
    """Drop credentials and query strings (signed URLs carry tokens there) from a URL."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url[:80]
    netloc = parts.netloc.rpartition("@")[2]
    shown = f"{parts.scheme}://{netloc}{parts.path}{'?...' if parts.query else ''}"
    return shown if len(shown) <= 120 else shown[:117] + "..."


def media_error(kind: str, src: object, problem: str, fix: str = "") -> MediaError:
    return MediaError(
        f"Cannot load {kind} {describe(src)}: {problem}." + (f" {fix}" if fix else "")
    )


def too_big(kind: str, src: object, size: str, limits: MediaLimits) -> MediaError:
    return media_error(
        kind,
        src,
        f"{size} is over the {limits.max_bytes:,}-byte limit",
        "Send a smaller or more compressed file, or raise MediaLimits.max_bytes.",
    )


def check_pixels(size: tuple[int, int], kind: str, src: object, limits: MediaLimits) -> None:
    width, height = size
    if width * height > limits.max_pixels:
        raise media_error(
            kind,
            src,
            f"{width}x{height} = {width * height:,} pixels is over the {limits.max_pixels:,} limit",
            "Downscale it first, or raise MediaLimits.max_pixels.",
        )

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

The implementation is split by job: :mod:`sealion_vl.media_common` (limits, :class:`Video`,
messages), :mod:`sealion_vl.media_fetch` (reading sources, data URIs, http(s) and the SSRF
guard) and :mod:`sealion_vl.media_av` (video and audio); images live here. Import from this
module: it is the public one, and the SSRF seams ``_resolve`` / ``_is_public_ip`` are looked
up here at call time.
"""

from __future__ import annotations

import io

from PIL import Image, ImageOps

from sealion_vl.media_av import audio_from_openai, load_audio, load_video
from sealion_vl.media_common import MediaLimits, Source, Video, _check_pixels, _error
from sealion_vl.media_fetch import _is_public_ip as _is_public_ip
from sealion_vl.media_fetch import _read_source, fetch_bytes
from sealion_vl.media_fetch import _resolve as _resolve

__all__ = [
    "MediaLimits",
    "Video",
    "audio_from_openai",
    "fetch_bytes",
    "load_audio",
    "load_image",
    "load_video",
]

# --------------------------------------------------------------------------- images


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

"""Image loading: EXIF orientation, then a plain ``convert("RGB")``, as transformers does.

Import :func:`load_image` from :mod:`sealion_vl.media`.
"""

from __future__ import annotations

import io

from PIL import Image, ImageOps

from sealion_vl.media.common import MediaLimits, Source, check_pixels, media_error
from sealion_vl.media.fetch import read_source


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
    data = read_source(src, limits, "image")
    try:
        # PIL warns above its own MAX_IMAGE_PIXELS; we do not silence that with
        # warnings.catch_warnings, which is not thread-safe (the server decodes in threads).
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise media_error("image", src, f"too many pixels ({exc})", "Downscale it first.") from exc
    except Exception as exc:  # PIL raises many types for unreadable data
        raise media_error(
            "image",
            src,
            "not a recognised image",
            "Send a PNG, JPEG, WebP, GIF, BMP or TIFF file.",
        ) from exc
    if image.format == "EPS":  # decoding EPS runs Ghostscript on untrusted input
        raise media_error("image", src, "EPS images are not accepted", "Convert it to PNG.")
    return _finish_image(image, src, limits)


def _finish_image(image: Image.Image, src: object, limits: MediaLimits) -> Image.Image:
    """Check the header size, then decode, orient and convert (as transformers does)."""
    check_pixels(image.size, "image", src, limits)
    try:
        image.load()
        return ImageOps.exif_transpose(image).convert("RGB")
    except Exception as exc:
        raise media_error(
            "image",
            src,
            f"the image data is corrupt or truncated ({exc})",
            "Re-export or re-download the file.",
        ) from exc

"""Decompression bombs refused from the header (PNG, GIF, TIFF, WebP) and duration caps for video,
each checked before any pixel or frame is decoded."""

from __future__ import annotations

import io
import struct
import time
import tracemalloc
import zlib

import av
import numpy as np
import pytest
from PIL import Image, ImageFile

from sealion_vl.errors import MediaError
from sealion_vl.media import MediaLimits, load_image, load_video
from tests.test_media import make_mp4

# --------------------------------------------------------------------------- bombs


def _saved(mode: str, fmt: str, **kw) -> bytearray:
    buf = io.BytesIO()
    Image.new(mode, (2, 2)).save(buf, fmt, **kw)
    return bytearray(buf.getvalue())


def png_bomb(width: int, height: int) -> bytes:
    """A real 1x1 PNG whose IHDR claims width x height: the pixel data for the claim is missing,
    so any attempt to decode would fail as truncated rather than say "pixels"."""
    data = bytearray(_saved("L", "PNG"))
    ihdr = bytearray(data[12:29])
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


def gif_bomb(width: int, height: int) -> bytes:
    data = _saved("P", "GIF")
    data[6:10] = struct.pack("<HH", width, height)  # logical screen
    start = data.index(b"\x2c", 13)  # first image descriptor
    data[start + 5 : start + 9] = struct.pack("<HH", width, height)
    return bytes(data)


def tiff_bomb(width: int, height: int) -> bytes:
    data = _saved("L", "TIFF")
    ifd = struct.unpack("<I", data[4:8])[0]
    for k in range(struct.unpack("<H", data[ifd : ifd + 2])[0]):
        entry = ifd + 2 + 12 * k
        tag = struct.unpack("<H", data[entry : entry + 2])[0]
        if tag in (256, 257):  # ImageWidth, ImageLength as LONG
            value = width if tag == 256 else height
            data[entry + 2 : entry + 12] = struct.pack("<HII", 4, 1, value)
    return bytes(data)


def webp_bomb(width: int, height: int) -> bytes:
    data = _saved("RGB", "WEBP", lossless=True)
    assert data[12:16] == b"VP8L"
    bits = struct.unpack("<I", data[21:25])[0] & ~0x0FFFFFFF
    data[21:25] = struct.pack("<I", bits | (width - 1) | (height - 1) << 14)
    return bytes(data)


BOMBS = [
    ("png", png_bomb, 40_000, 25_000),  # 10^9 pixels
    ("png", png_bomb, 20_000, 10_000),  # 200 megapixels (beyond PIL's own guard)
    ("png", png_bomb, 8_000, 8_000),  # 64 MP: under PIL's guard, over ours
    ("gif", gif_bomb, 65_535, 65_535),
    ("gif", gif_bomb, 8_000, 8_000),
    ("tiff", tiff_bomb, 100_000, 100_000),
    ("tiff", tiff_bomb, 8_000, 8_000),
    ("webp", webp_bomb, 16_384, 16_384),
    ("webp", webp_bomb, 8_000, 8_000),
]


@pytest.mark.parametrize(("fmt", "make", "width", "height"), BOMBS)
@pytest.mark.parametrize(
    "limits", [MediaLimits(), MediaLimits.for_server()], ids=["local", "server"]
)
def test_bombs_are_refused_from_the_header(
    monkeypatch: pytest.MonkeyPatch, fmt: str, make, width: int, height: int, limits: MediaLimits
) -> None:
    bomb = make(width, height)
    assert len(bomb) < 400
    if width * height < Image.MAX_IMAGE_PIXELS:  # the crafted header says what we claim
        assert Image.open(io.BytesIO(bomb)).size == (width, height)
    decoded: list[object] = []
    real_load = ImageFile.ImageFile.load

    def spy(self):  # type: ignore[no-untyped-def]
        decoded.append(self)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(MediaError, match="pixels") as info:
            load_image(bomb, limits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 1
    assert peak < 8 * 2**20  # nothing near width x height bytes was allocated
    assert decoded == []
    assert "Cannot load image <" in str(info.value)


def test_server_pixel_cap_is_an_8k_frame() -> None:
    limits = MediaLimits.for_server()
    with pytest.raises(
        MediaError, match=r"7681x4320 = 33,181,920 pixels is over the 33,177,600 limit"
    ):
        load_image(png_bomb(7681, 4320), limits)
    small = io.BytesIO()
    Image.new("RGB", (64, 64)).save(small, "PNG")
    assert load_image(small.getvalue(), limits).size == (64, 64)


# --------------------------------------------------------------------------- video seconds


def _encode(fmt: str, n_frames: int = 20, fps: int = 10) -> bytes:
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = 64, 48
        stream.pix_fmt = "yuv420p"
        for i in range(n_frames):
            pixels = np.full((48, 64, 3), 8 * i % 256, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()


def test_video_seconds_checked_from_the_header_before_decoding() -> None:
    mp4 = bytearray(make_mp4())  # 20 frames at 10 fps: 2 s
    assert load_video(bytes(mp4), MediaLimits(max_video_seconds=2.0)).total_frames == 20
    # Wipe the coded frames: only the header (moov) still makes sense. The refusal must come
    # from the header, since decoding would fail.
    start = mp4.index(b"mdat") + 4
    size = struct.unpack(">I", mp4[start - 8 : start - 4])[0]
    mp4[start : start - 8 + size] = b"\xff" * (size - 8)
    with pytest.raises(MediaError, match=r"2\.0 s is longer than the 1\.5 s limit"):
        load_video(bytes(mp4), MediaLimits(max_video_seconds=1.5))
    with pytest.raises(MediaError, match="decod"):
        load_video(bytes(mp4))


@pytest.mark.parametrize("fmt", ["matroska", "mpegts"])
def test_video_seconds_for_other_containers(fmt: str) -> None:
    data = _encode(fmt)
    assert load_video(data, MediaLimits(max_video_seconds=3)).frames.shape[0] == 20
    with pytest.raises(MediaError, match="longer than the 1 s limit"):
        load_video(data, MediaLimits(max_video_seconds=1))


def test_video_without_any_timing_is_judged_by_frame_count() -> None:
    raw = _encode("h264" if "libx264" in av.codecs_available else "m4v", n_frames=30)
    video = load_video(raw)  # no duration anywhere: FFmpeg assumes 25 fps
    seconds = video.total_frames / video.fps
    assert seconds > 0.5
    with pytest.raises(MediaError, match="longer than the 0.5 s limit"):
        load_video(raw, MediaLimits(max_video_seconds=0.5))


def test_server_caps_video_seconds() -> None:
    assert MediaLimits.for_server().max_video_seconds == 120.0
    assert MediaLimits().max_video_seconds is None  # local use: as before, no cap

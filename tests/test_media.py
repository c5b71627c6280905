"""Tests for sealion_vl.media: every source kind, every limit, every failure is a MediaError.

No network: remote sources are served by a real HTTP server on 127.0.0.1 in a thread.
"""

from __future__ import annotations

import base64
import io
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from PIL import Image, ImageFile

from sealion_vl.errors import MediaError, SealionError
from sealion_vl.media import (
    AddressPolicy,
    MediaLimits,
    Video,
    audio_from_openai,
    fetch_bytes,
    load_audio,
    load_image,
    load_video,
)

# --------------------------------------------------------------------------- fixtures / helpers


def png_bytes(mode: str = "RGB", size: tuple[int, int] = (32, 16), color: object = None) -> bytes:
    image = Image.new(mode, size, color if color is not None else (200, 30, 60))
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def sine(seconds: float, rate: int, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def wav_bytes(samples: np.ndarray, rate: int, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format=fmt)
    return buf.getvalue()


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.argmax(spectrum) * rate / len(samples))


def make_mp4(n_frames: int = 20, fps: int = 10, size: tuple[int, int] = (64, 48)) -> bytes:
    """Frame i is solid grey level 12*i, so a decoded frame tells which index it was."""
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(n_frames):
            pixels = np.full((size[1], size[0], 3), 12 * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()


@pytest.fixture(scope="module")
def mp4() -> bytes:
    return make_mp4()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # clients hang up on purpose
        pass


@pytest.fixture(scope="module")
def server(mp4: bytes) -> Iterator[str]:
    """Loopback server with the routes the fetch tests need; yields its base URL."""
    image = png_bytes()
    wav = wav_bytes(sine(1.0, 44100), 44100)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _send(self, status: int, body: bytes = b"", **headers: str) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key.replace("_", "-"), value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            port = self.server.server_address[1]
            if path == "/image.png":
                self._send(200, image, Content_Type="image/png")
            elif path == "/video.mp4":
                self._send(200, mp4, Content_Type="video/mp4")
            elif path == "/audio.wav":
                self._send(200, wav, Content_Type="audio/wav")
            elif path == "/text":
                self._send(200, b"hello, not an image", Content_Type="text/plain")
            elif path == "/missing":
                self._send(404, b"nope")
            elif path == "/redirect":
                self._send(302, Location="/image.png")
            elif path.startswith("/chain/"):
                left = int(path.rsplit("/", 1)[1])
                self._send(302, Location=f"/chain/{left - 1}" if left else "/image.png")
            elif path == "/redirect-file":
                self._send(302, Location="file:///etc/passwd")
            elif path == "/redirect-private":
                self._send(302, Location=f"http://127.0.0.2:{port}/image.png")
            elif path == "/huge":
                self._send(200, b"\0" * (2 * 2**20))
            elif path == "/endless":  # no Content-Length: only a streaming cap stops it
                self.send_response(200)
                self.end_headers()
                try:
                    for _ in range(64 * 16):
                        self.wfile.write(b"\0" * 2**16)
                except OSError:
                    pass
            elif path == "/slow":
                time.sleep(3)
                self._send(200, image)
            elif path == "/trickle":  # each read is quick, the whole body is not
                self.send_response(200)
                self.send_header("Content-Length", "100")
                self.end_headers()
                try:
                    for _ in range(100):
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        time.sleep(0.05)
                except OSError:
                    pass
            else:
                self._send(404)

    httpd = _Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


# --------------------------------------------------------------------------- errors


def test_media_error_is_a_sealion_and_value_error() -> None:
    assert issubclass(MediaError, SealionError)
    assert issubclass(MediaError, ValueError)


# --------------------------------------------------------------------------- image sources


def test_image_from_every_source_kind(tmp_path: Path, server: str) -> None:
    data = png_bytes()
    path = tmp_path / "a b.png"  # a space, to exercise file:// quoting
    path.write_bytes(data)
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    sources = [
        Image.open(io.BytesIO(data)),
        data,
        bytearray(data),
        path,
        str(path),
        path.as_uri(),
        data_uri(data),
        f"{server}/image.png",
        f"{server}/redirect",
    ]
    for src in sources:
        image = load_image(src)
        assert (image.mode, image.size) == ("RGB", (32, 16)), src
        np.testing.assert_array_equal(np.asarray(image), expected)


def test_image_is_fully_loaded(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(png_bytes())
    image = load_image(path)
    path.unlink()  # nothing may still be read lazily from the file
    assert image.getpixel((0, 0)) == (200, 30, 60)


def test_exif_orientation_is_applied() -> None:
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    Image.new("RGB", (40, 20), (10, 120, 240)).save(buf, "JPEG", exif=exif)
    assert Image.open(io.BytesIO(buf.getvalue())).size == (40, 20)
    assert load_image(buf.getvalue()).size == (20, 40)


@pytest.mark.parametrize(
    ("mode", "color", "fmt"),
    [
        ("RGBA", (10, 20, 30, 0), "PNG"),
        ("P", 7, "PNG"),
        ("L", 99, "PNG"),
        ("LA", (99, 5), "PNG"),
        ("CMYK", (0, 255, 0, 0), "JPEG"),
        ("I;16", 300, "PNG"),
    ],
)
def test_modes_convert_to_rgb_like_plain_convert(mode: str, color: object, fmt: str) -> None:
    buf = io.BytesIO()
    Image.new(mode, (8, 8), color).save(buf, fmt)
    image = load_image(buf.getvalue())
    assert image.mode == "RGB"
    # Same pixels as transformers.image_utils.load_image (exif_transpose + convert("RGB")).
    reference = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    np.testing.assert_array_equal(np.asarray(image), np.asarray(reference))


def test_pil_image_input_is_converted_not_mutated() -> None:
    original = Image.new("RGBA", (4, 4), (1, 2, 3, 4))
    image = load_image(original)
    assert image.mode == "RGB"
    assert original.mode == "RGBA"


# --------------------------------------------------------------------------- image failures


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny valid-looking PNG whose IHDR claims width x height (a decompression bomb)."""
    data = bytearray(png_bytes("L", (1, 1), 0))
    ihdr = bytearray(data[12:29])  # b"IHDR" + 13 bytes of fields
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


@pytest.mark.parametrize(("width", "height"), [(8000, 8000), (20000, 20000)])
def test_decompression_bomb_refused_before_decoding(
    monkeypatch: pytest.MonkeyPatch, width: int, height: int
) -> None:
    decoded: list[object] = []
    real_load = ImageFile.ImageFile.load

    def spy(self):  # type: ignore[no-untyped-def]
        decoded.append(self)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    bomb = _png_claiming(width, height)
    assert len(bomb) < 100
    with pytest.raises(MediaError, match="pixels"):
        load_image(bomb)
    assert decoded == []


def test_pixel_cap_is_configurable() -> None:
    with pytest.raises(MediaError, match=r"32x16 = 512 pixels.*max_pixels"):
        load_image(png_bytes(), MediaLimits(max_pixels=100))
    with pytest.raises(MediaError, match="pixels"):
        load_image(Image.new("RGB", (32, 16)), MediaLimits(max_pixels=100))


def test_corrupt_and_non_image_bytes(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.effect_noise((64, 64), 50).convert("RGB").save(buf, "JPEG")
    truncated = buf.getvalue()[: len(buf.getvalue()) // 2]
    with pytest.raises(MediaError, match="corrupt or truncated"):
        load_image(truncated)
    with pytest.raises(MediaError, match="not a recognised image"):
        load_image(b"definitely not an image")
    text = tmp_path / "notes.png"
    text.write_text("hello")
    with pytest.raises(MediaError, match=r"notes\.png"):
        load_image(text)


def test_missing_file_names_the_path() -> None:
    with pytest.raises(MediaError, match=r"'/no/such/file.png': no such file"):
        load_image("/no/such/file.png")


def test_raw_base64_gets_a_data_uri_hint() -> None:
    raw = base64.b64encode(png_bytes()).decode()
    with pytest.raises(MediaError, match="data URI"):
        load_image(raw)


def test_byte_cap_for_bytes_files_and_data_uris(tmp_path: Path) -> None:
    limits = MediaLimits(max_bytes=1000)
    big = png_bytes("RGB", (300, 300), None) + b"\0" * 2000
    path = tmp_path / "big.png"
    path.write_bytes(big)
    for src in (big, path, data_uri(big)):
        with pytest.raises(MediaError, match="1,000-byte limit"):
            load_image(src, limits)


def test_messages_shorten_big_inputs() -> None:
    junk = b"\x01" * 2**20
    for src in (junk, data_uri(junk)):
        with pytest.raises(MediaError) as info:
            load_image(src)
        message = str(info.value)
        assert len(message) < 300, message
        assert ("1048576 bytes" in message) or (f"{len(src)} chars" in message)


def test_bad_data_uris() -> None:
    with pytest.raises(MediaError, match="no comma"):
        load_image("data:image/png;base64")
    with pytest.raises(MediaError, match="base64"):
        load_image("data:image/png;base64,@@@not-base64@@@")


def test_lenient_data_uris() -> None:
    data = png_bytes()
    encoded = base64.b64encode(data).decode()
    wrapped = "\n".join(encoded[i : i + 60] for i in range(0, len(encoded), 60))
    assert load_image(f"data:image/png;base64,{wrapped}").size == (32, 16)
    assert load_image(f"data:image/png;base64,{encoded.rstrip('=')}").size == (32, 16)
    assert load_image(f"data:image/png;base64,{base64.urlsafe_b64encode(data).decode()}")
    from urllib.parse import quote_from_bytes

    assert load_image(f"data:image/png,{quote_from_bytes(data)}").size == (32, 16)


def test_local_files_refused_when_not_allowed(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(png_bytes())
    limits = MediaLimits(allow_local_files=False)
    for src in (path, str(path), path.as_uri()):
        with pytest.raises(MediaError, match="local files are not allowed"):
            load_image(src, limits)
    assert load_image(data_uri(png_bytes()), limits).size == (32, 16)


def test_unsupported_schemes_and_types() -> None:
    for src in ("ftp://example.com/a.png", "gopher://example.com/x"):
        with pytest.raises(MediaError, match="scheme"):
            load_image(src)
    with pytest.raises(MediaError, match="file:// URLs must name a local file"):
        load_image("file://otherhost/etc/passwd")
    with pytest.raises(MediaError, match="unsupported source type"):
        load_image(12345)  # type: ignore[arg-type]


def test_non_regular_files_refused(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="not a regular file"):
        load_image(tmp_path)


# --------------------------------------------------------------------------- http


def test_fetch_bytes_and_redirect_chain(server: str) -> None:
    assert fetch_bytes(f"{server}/image.png") == png_bytes()
    assert fetch_bytes(f"{server}/chain/3", MediaLimits(max_redirects=4)) == png_bytes()
    with pytest.raises(MediaError, match="more than 3 redirects"):
        fetch_bytes(f"{server}/chain/3")
    with pytest.raises(MediaError, match="redirects"):
        fetch_bytes(f"{server}/redirect", MediaLimits(max_redirects=0))


def test_http_errors(server: str) -> None:
    with pytest.raises(MediaError, match="HTTP 404"):
        load_image(f"{server}/missing")
    with pytest.raises(MediaError, match="not a recognised image"):
        load_image(f"{server}/text")
    with pytest.raises(MediaError, match="download failed"):
        load_image("http://127.0.0.1:1/nothing-listens-here.png")


def test_redirect_to_file_scheme_refused(server: str) -> None:
    with pytest.raises(MediaError, match="refusing the 'file' URL scheme"):
        load_image(f"{server}/redirect-file")


def test_http_byte_cap_declared_and_streamed(server: str) -> None:
    limits = MediaLimits(max_bytes=2**20)
    with pytest.raises(MediaError, match="declared"):
        fetch_bytes(f"{server}/huge", limits)
    with pytest.raises(MediaError, match="the response is over"):
        fetch_bytes(f"{server}/endless", limits)


def test_http_timeout_is_for_the_whole_request(server: str) -> None:
    limits = MediaLimits(timeout_s=0.5)
    for route in ("/slow", "/trickle"):
        started = time.monotonic()
        with pytest.raises(MediaError, match=r"within 0.5 s"):
            load_image(f"{server}{route}", limits)
        assert time.monotonic() - started < 2.5


def test_ssrf_guard_refuses_loopback(server: str) -> None:
    guarded = MediaLimits(allow_private_hosts=False)
    with pytest.raises(MediaError, match=r"non-public address 127\.0\.0\.1"):
        load_image(f"{server}/image.png", guarded)
    port = server.rsplit(":", 1)[1]
    with pytest.raises(MediaError, match="non-public address"):
        load_image(f"http://localhost:{port}/image.png", guarded)
    assert load_image(f"{server}/image.png", MediaLimits(allow_private_hosts=True))


def test_ssrf_guard_rechecks_every_redirect_hop(server: str) -> None:
    # Pretend 127.0.0.1 is public: the first hop passes the guard (and is fetched through the
    # pinned-address path), the redirect to 127.0.0.2 must still be refused.
    policy = AddressPolicy(is_public=lambda address: address == "127.0.0.1")
    guarded = MediaLimits(allow_private_hosts=False, address_policy=policy)
    assert load_image(f"{server}/image.png", guarded).size == (32, 16)
    with pytest.raises(MediaError, match=r"non-public address 127\.0\.0\.2"):
        load_image(f"{server}/redirect-private", guarded)


def test_ssrf_guard_checks_every_resolved_address() -> None:
    policy = AddressPolicy(resolve=lambda host, port: ["93.184.216.34", "10.1.2.3"])
    guarded = MediaLimits(allow_private_hosts=False, address_policy=policy)
    with pytest.raises(MediaError, match=r"non-public address 10\.1\.2\.3"):
        fetch_bytes("https://mixed.example/a.png", guarded)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("64:ff9b::a00:1", False),
        ("2002:a00:1::", False),
        ("not-an-address", False),
    ],
)
def test_is_public_ip(address: str, public: bool) -> None:
    assert AddressPolicy().is_public(address) is public


def test_urls_are_redacted_in_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(MediaError) as info:
        load_image(
            "https://user:secret@127.0.0.1/a.png?token=hunter2",
            MediaLimits(allow_private_hosts=False),
        )
    assert "secret" not in str(info.value)
    assert "hunter2" not in str(info.value)


# --------------------------------------------------------------------------- video


def _level(frame: np.ndarray) -> int:
    return round(float(frame.mean()) / 12)


def test_video_sampling_and_metadata(tmp_path: Path, mp4: bytes) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(mp4)
    video = load_video(path, num_frames=5)
    assert video.frames.shape == (5, 48, 64, 3)
    assert video.frames.dtype == np.uint8
    assert video.frame_indices == [2, 6, 10, 14, 18]
    assert [_level(f) for f in video.frames] == video.frame_indices
    assert video.total_frames == 20
    assert video.fps == pytest.approx(10.0)
    assert video.duration_s == pytest.approx(2.0, abs=0.15)
    meta = video.metadata()
    # The fields of transformers.video_utils.VideoMetadata (transformers 5.x).
    assert set(meta) == {
        "total_num_frames",
        "fps",
        "width",
        "height",
        "duration",
        "video_backend",
        "frames_indices",
    }
    assert meta["total_num_frames"] == 20
    assert meta["frames_indices"] == [2, 6, 10, 14, 18]
    assert (meta["width"], meta["height"]) == (64, 48)


def test_video_default_frame_count_and_sources(tmp_path: Path, mp4: bytes, server: str) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(mp4)
    for src in (mp4, str(path), path.as_uri(), data_uri(mp4, "video/mp4"), f"{server}/video.mp4"):
        video = load_video(src)
        assert video.frames.shape[0] == 20  # fewer than max_video_frames: all of them
        assert video.frame_indices == list(range(20))
    assert load_video(mp4, MediaLimits(max_video_frames=4)).frame_indices == [2, 7, 12, 17]


def test_video_passthrough_and_from_frames() -> None:
    frames = np.zeros((3, 8, 8, 3), np.uint8)
    video = Video.from_frames(frames, fps=2.0)
    assert load_video(video) is video
    assert video.metadata()["duration"] == pytest.approx(1.5)
    pil = Video.from_frames([Image.new("L", (8, 4))] * 2, fps=1)
    assert pil.frames.shape == (2, 4, 8, 3)
    with pytest.raises(MediaError, match=r"Video\.from_frames"):
        load_video(frames)  # type: ignore[arg-type]
    with pytest.raises(MediaError, match="uint8"):
        Video.from_frames(frames.astype(np.float32), fps=1)


def test_video_failures(mp4: bytes) -> None:
    with pytest.raises(MediaError, match="could not be decoded"):
        load_video(b"\0\1\2 not a video" * 10)
    with pytest.raises(MediaError, match="num_frames=64"):
        load_video(mp4, num_frames=64)
    with pytest.raises(MediaError, match="pixels"):
        load_video(mp4, MediaLimits(max_pixels=1000))
    with pytest.raises(MediaError, match="no video stream"):
        load_video(wav_bytes(sine(0.1, 8000), 8000))


# --------------------------------------------------------------------------- audio


def _check_sine(samples: np.ndarray, rate: int = 16000, seconds: float = 1.0) -> None:
    assert samples.dtype == np.float32
    assert samples.ndim == 1
    assert abs(len(samples) - int(seconds * rate)) <= 1
    assert np.abs(samples).max() <= 1.0
    assert dominant_hz(samples, rate) == pytest.approx(440, abs=3)


def test_audio_wav_resampled_to_16k(tmp_path: Path, server: str) -> None:
    wav = wav_bytes(sine(1.0, 44100), 44100)
    path = tmp_path / "tone.wav"
    path.write_bytes(wav)
    for src in (path, str(path), wav, data_uri(wav, "audio/wav"), f"{server}/audio.wav"):
        _check_sine(load_audio(src))
    assert len(load_audio(wav, sampling_rate=8000)) == pytest.approx(8000, abs=1)


def test_audio_flac_and_ogg() -> None:
    _check_sine(load_audio(wav_bytes(sine(1.0, 22050), 22050, "FLAC")))
    # FFmpeg does not trim Vorbis' last block to the granule position: a few ms longer.
    samples = load_audio(wav_bytes(sine(1.0, 22050), 22050, "OGG"))
    assert abs(len(samples) - 16000) < 400
    assert dominant_hz(samples, 16000) == pytest.approx(440, abs=3)


def test_audio_mp3() -> None:
    if "libmp3lame" not in av.codecs_available:
        pytest.skip("no mp3 encoder in this FFmpeg")
    buf = io.BytesIO()
    rate = 44100
    with av.open(buf, "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(sine(1.0, rate)[None, :], format="flt", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    samples = load_audio(buf.getvalue())
    assert abs(len(samples) - 16000) < 1200  # mp3 adds encoder padding
    assert dominant_hz(samples, 16000) == pytest.approx(440, abs=3)


def test_audio_stereo_is_averaged() -> None:
    left = sine(1.0, 16000, amp=0.9)
    stereo = np.stack([left, left], axis=1)  # (samples, channels)
    samples = load_audio(wav_bytes(stereo, 16000))
    assert np.abs(samples).max() == pytest.approx(0.9, abs=0.01)  # mean, not a louder sum
    np.testing.assert_allclose(load_audio(stereo.T.copy()), left, atol=1e-6)


def test_audio_arrays_and_tuples() -> None:
    tone = sine(1.0, 16000)
    np.testing.assert_array_equal(load_audio(tone), tone)
    _check_sine(load_audio((sine(1.0, 48000), 48000)))
    int16 = (sine(1.0, 16000) * 32767).astype(np.int16)
    np.testing.assert_allclose(load_audio(int16), tone, atol=1e-4)
    assert np.abs(load_audio(np.full(10, 3.0))).max() == 1.0
    with pytest.raises(MediaError, match="NaN"):
        load_audio(np.array([0.0, np.nan]))


def test_audio_too_long_refused() -> None:
    limits = MediaLimits(max_audio_seconds=1.0)
    _check_sine(load_audio(wav_bytes(sine(1.0, 44100), 44100), limits))  # exactly at the limit
    for src in (wav_bytes(sine(2.0, 44100), 44100), (sine(2.0, 8000), 8000), sine(2.0, 16000)):
        with pytest.raises(MediaError, match=r"longer than the 1 s limit"):
            load_audio(src, limits)


def test_audio_failures() -> None:
    with pytest.raises(MediaError, match="could not be decoded"):
        load_audio(b"this is not audio at all" * 20)
    with pytest.raises(MediaError, match="audio_from_openai"):
        load_audio({"data": "AAAA", "format": "wav"})  # type: ignore[arg-type]
    with pytest.raises(MediaError, match="local files are not allowed"):
        load_audio("/tmp/x.wav", MediaLimits(allow_local_files=False))


def test_openai_input_audio() -> None:
    wav = wav_bytes(sine(1.0, 24000), 24000)
    encoded = base64.b64encode(wav).decode()
    inner = {"data": encoded, "format": "wav"}
    assert audio_from_openai(inner) == wav
    assert audio_from_openai({"type": "input_audio", "input_audio": inner}) == wav
    _check_sine(load_audio(audio_from_openai(inner)))
    with pytest.raises(MediaError, match="input_audio"):
        audio_from_openai({"format": "wav"})
    with pytest.raises(MediaError, match="base64"):
        audio_from_openai({"data": "***", "format": "wav"})

"""Video and audio decoding with PyAV: frame sampling, mono float audio, resampling.

Import the public names (:func:`load_video`, :func:`load_audio`, :func:`audio_from_openai`) from
:mod:`sealion_vl.media`.
"""

from __future__ import annotations

import io
from typing import Any

import av
import numpy as np

from sealion_vl.errors import MediaError
from sealion_vl.media.common import MediaLimits, Source, Video, check_pixels, describe, media_error
from sealion_vl.media.fetch import b64decode, read_source

# Slack for duration checks: resamplers can add a few samples, and a clip of exactly
# the limit must not be refused for rounding.
_DURATION_SLACK_S = 0.01


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
        raise media_error(
            "video",
            src,
            "decoded frames carry no frame rate",
            "Wrap them with Video.from_frames(frames, fps=...).",
        )
    wanted = limits.max_video_frames if num_frames is None else num_frames
    if not 1 <= wanted <= limits.max_video_frames:
        raise media_error(
            "video",
            src,
            f"num_frames={wanted} is outside 1..{limits.max_video_frames}",
            "Ask for fewer frames, or raise MediaLimits.max_video_frames.",
        )
    data = read_source(src, limits, "video")
    try:
        return _decode_video(data, wanted, limits, src)
    except MediaError:
        raise
    except Exception as exc:  # av.FFmpegError and friends
        raise media_error(
            "video",
            src,
            f"the video could not be decoded ({exc})",
            "Send a common format such as MP4 (H.264) or WebM.",
        ) from exc


def _decode_video(data: bytes, wanted: int, limits: MediaLimits, src: object) -> Video:
    with av.open(io.BytesIO(data)) as container:
        if not container.streams.video:
            raise media_error("video", src, "it contains no video stream")
        stream = container.streams.video[0]
        check_pixels(
            (stream.codec_context.width, stream.codec_context.height), "video", src, limits
        )
        duration = None
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        if duration is not None:  # from the header: refuse before decoding any frame
            _check_video_seconds(duration, src, limits)
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
            raise media_error("video", src, "it contains no decodable frames")
        indices = _even_indices(total, wanted)
        frames = _grab_frames(data, indices, limits, src)[0]
    fps = float(rate) if rate else (total / duration if duration else 0.0)
    if fps <= 0:
        raise media_error("video", src, "its frame rate cannot be determined", "Re-encode it.")
    if not duration:  # no timing anywhere in the file: judge by frames and frame rate
        _check_video_seconds(total / fps, src, limits)
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
        start = stream.start_time or 0
        for seen, frame in enumerate(container.decode(stream), start=1):
            index = seen - 1
            if frame.pts is not None and stream.time_base:  # for headers that gave no duration
                _check_video_seconds(float((frame.pts - start) * stream.time_base), src, limits)
            if index in keep:
                check_pixels((frame.width, frame.height), "video", src, limits)
                frames.append(frame.to_ndarray(format="rgb24"))
            if index == last:
                break
    return frames, seen


def _check_video_seconds(seconds: float, src: object, limits: MediaLimits) -> None:
    cap = limits.max_video_seconds
    if cap is not None and seconds > cap + _DURATION_SLACK_S:
        raise media_error(
            "video",
            src,
            f"{seconds:.1f} s is longer than the {cap:g} s limit",
            "Trim the video, or raise MediaLimits.max_video_seconds.",
        )


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
            f"Cannot load audio {describe(part)}: not an OpenAI input_audio part. "
            'Expected {"data": "<base64>", "format": "wav"}.'
        )
    if data[:5].lower() == "data:":  # some clients send a data URI instead of bare base64
        data = data.partition(",")[2]
    return b64decode(data, "audio", data)


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
        raise media_error("audio", src, f"sampling_rate={sampling_rate} must be positive")
    if isinstance(src, tuple):
        if len(src) != 2 or not isinstance(src[0], np.ndarray):
            raise media_error("audio", src, "expected a tuple (array, sampling_rate)")
        try:
            rate = int(src[1])
        except (TypeError, ValueError) as exc:
            raise media_error("audio", src, "the sampling rate is not a number") from exc
        if rate <= 0:
            raise media_error("audio", src, f"sampling rate {rate} must be positive")
        samples = _to_mono_float(src[0], src)
        _check_duration(len(samples) / rate, src, limits)
        samples = _resample(samples, rate, sampling_rate, src)
    elif isinstance(src, np.ndarray):
        samples = _to_mono_float(src, src)
    else:
        data = read_source(src, limits, "audio")
        try:
            samples = _decode_audio(data, sampling_rate, limits, src)
        except MediaError:
            raise
        except Exception as exc:  # av.FFmpegError and friends
            raise media_error(
                "audio",
                src,
                f"the audio could not be decoded ({exc})",
                "Send a common format such as WAV, FLAC, MP3 or Ogg.",
            ) from exc
    _check_duration(len(samples) / sampling_rate, src, limits)
    return np.clip(samples, -1.0, 1.0).astype(np.float32, copy=False)


def _check_duration(seconds: float, src: object, limits: MediaLimits) -> None:
    if seconds > limits.max_audio_seconds + _DURATION_SLACK_S:
        raise media_error(
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
        raise media_error("audio", src, "expected a 1-D array, or 2-D with a channel axis")
    if array.dtype.kind == "f":
        out = array.astype(np.float32)
    elif array.dtype.kind == "i":
        out = (array / float(2 ** (8 * array.dtype.itemsize - 1))).astype(np.float32)
    elif array.dtype.kind == "u":
        half = float(2 ** (8 * array.dtype.itemsize - 1))
        out = ((array - half) / half).astype(np.float32)
    else:
        raise media_error("audio", src, f"unsupported sample dtype {array.dtype}")
    if not np.isfinite(out).all():
        raise media_error("audio", src, "the samples contain NaN or infinity")
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
        raise media_error("audio", src, f"resampling from {rate} Hz failed ({exc})") from exc
    if not out:
        return np.zeros(0, np.float32)
    return np.concatenate([f.to_ndarray().reshape(-1) for f in out])


def _decode_audio(data: bytes, rate: int, limits: MediaLimits, src: object) -> np.ndarray:
    with av.open(io.BytesIO(data)) as container:
        if not container.streams.audio:
            raise media_error("audio", src, "it contains no audio stream")
        stream = container.streams.audio[0]
        # Keep the source channels (planar float) and average them ourselves: swresample's
        # own downmix weights channels by 1/sqrt(2), which would clip loud stereo.
        resampler = av.AudioResampler(format="fltp", rate=rate)
        cap = int((limits.max_audio_seconds + _DURATION_SLACK_S) * rate)
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
        raise media_error("audio", src, "it contains no decodable audio")
    return np.concatenate(parts)

"""The server's settings: one pydantic model that gives the CLI flags, their help and defaults.

``sealion-vl serve --help`` is generated from :class:`ServeConfig` by :func:`config_flags`
(the same idea as :func:`sealion_vl.cli_flags.generation_flags` for ``chat``), so a field
added here is a flag there with no other change. The defaults are the safe ones for a server
on the internet: loopback address, no local files, no private hosts, bounded queue and body.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

API_KEY_ENV = "SEALION_VL_API_KEY"


class ServeConfig(BaseModel):
    """Settings of ``sealion-vl serve`` (every field is a ``--flag`` of the same name)."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(
        "127.0.0.1",
        description="Address to listen on; 0.0.0.0 exposes the server (set --api-key then).",
    )
    port: int = Field(8000, ge=1, le=65535, description="TCP port.")
    api_key: str | None = Field(
        None,
        description=f"Bearer key required on every route but /health and the page at / "
        f"(default: ${API_KEY_ENV}; unset: no key).",
    )
    served_model_name: str | None = Field(
        None, description="Model id clients send and /v1/models lists (default: the model's name)."
    )
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N.")
    dtype: str = Field("auto", description="auto, bfloat16, float16 or float32.")
    max_body_bytes: int = Field(
        32 * 2**20, ge=1024, description="Largest request body in bytes; larger gets 413 unread."
    )
    max_images_per_request: int = Field(16, ge=0, description="Most images in one request.")
    max_videos_per_request: int = Field(2, ge=0, description="Most videos in one request.")
    max_audios_per_request: int = Field(4, ge=0, description="Most audio clips in one request.")
    max_image_pixels: int = Field(
        25_000_000, ge=1, description="Pixel cap per image, checked from the header."
    )
    max_media_bytes: int = Field(
        20 * 2**20, ge=1, description="Byte cap per image/video/audio (inline or fetched)."
    )
    max_audio_seconds: float = Field(60.0, gt=0, description="Longest audio clip accepted.")
    max_video_frames: int = Field(32, ge=1, description="Most frames sampled from a video.")
    max_video_seconds: float = Field(
        120.0, gt=0, description="Longest video accepted (where the media loader checks it)."
    )
    media_fetch_timeout_s: float = Field(
        10.0, gt=0, description="Deadline for fetching one media URL, redirects included."
    )
    allowed_media_domains: list[str] = Field(
        default_factory=list,
        description="Hosts media URLs may come from (repeat; default: any public host).",
    )
    allowed_media_dir: Path | None = Field(
        None, description="Folder whose files requests may name as media (default: none)."
    )
    max_queue: int = Field(
        64,
        ge=1,
        description="Most generations in flight (encoding, waiting, running); more get 503.",
    )
    max_batch: int = Field(32, ge=1, description="Most requests decoded together.")
    vision_cache_mb: float = Field(256, ge=0, description="Memory for cached image encodings.")
    request_timeout_s: float = Field(
        600.0, gt=0, description="Generation deadline per request (finish_reason 'timeout')."
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS (repeat; default: CORS off)."
    )
    log_level: str = Field("info", description="uvicorn log level: debug, info, warning, error.")

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        if v not in ("critical", "error", "warning", "info", "debug", "trace"):
            raise ValueError("log level must be debug, info, warning or error")
        return v

    @model_validator(mode="after")
    def _key_from_env(self) -> ServeConfig:
        if self.api_key is None and os.environ.get(API_KEY_ENV):
            self.api_key = os.environ[API_KEY_ENV]
        return self

    def media_limits(self):
        """The media caps the server gives its model: no local files, no private hosts.

        ``allowed_media_domains`` / ``allowed_media_dir`` are passed on when
        :class:`MediaLimits` has fields for them (names tried in order below).
        """
        from sealion_vl.media import MediaLimits  # lazy: `--help` must stay cheap

        names = {f.name for f in dataclasses.fields(MediaLimits)}
        kw: dict[str, Any] = dict(
            max_bytes=self.max_media_bytes,
            max_pixels=self.max_image_pixels,
            timeout_s=self.media_fetch_timeout_s,
            allow_local_files=False,
            allow_private_hosts=False,
            max_video_frames=self.max_video_frames,
            max_video_seconds=self.max_video_seconds,
            max_audio_seconds=self.max_audio_seconds,
        )
        for value, candidates in (
            (self.allowed_media_domains, ("allowed_domains", "allowed_media_domains")),
            (self.allowed_media_dir, ("allowed_local_dir", "local_media_dir", "allowed_media_dir")),
        ):
            if not value:
                continue
            value = str(value) if isinstance(value, Path) else value
            field = next((c for c in candidates if c in names), None)
            if field is None:
                raise ValueError(
                    f"this build's media loader cannot apply {candidates[-1]}; upgrade sealion-vl"
                )
            kw[field] = tuple(value) if isinstance(value, list) else value
        return MediaLimits(**{k: v for k, v in kw.items() if k in names})

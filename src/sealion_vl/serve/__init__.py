"""Serving: an OpenAI-compatible HTTP server on the request engine.

>>> from sealion_vl.serve import serve, ServeConfig
>>> serve("nano", ServeConfig(port=8000, api_key="secret"))   # blocks; Ctrl-C stops

``create_app(model, config)`` gives the FastAPI app for an already loaded model (tests,
embedding in another ASGI server).
"""

from __future__ import annotations

from typing import Any

from sealion_vl.serve.config import ServeConfig


def create_app(model, config: ServeConfig | None = None, **kwargs: Any):
    """The FastAPI app serving ``model``; see :func:`sealion_vl.serve.app.create_app`."""
    from sealion_vl.serve.app import create_app as _create

    return _create(model, config, **kwargs)


def serve(model: str = "nano", config: ServeConfig | None = None, **overrides: Any) -> None:
    """Load ``model`` and serve it until interrupted.

    Args:
        model: catalog short name, Hugging Face id or checkpoint folder.
        config: server settings; ``overrides`` (any :class:`ServeConfig` field) are laid
            over it and validated.

    Raises:
        pydantic.ValidationError: an override is not a valid setting.
        SealionError: the checkpoint cannot be found or loaded.
    """
    import uvicorn

    import sealion_vl

    base = config.model_dump(exclude_unset=True) if config else {}
    cfg = ServeConfig(**{**base, **overrides})
    limits = cfg.media_limits()
    m = sealion_vl.load(
        model,
        device=cfg.device,
        dtype=cfg.dtype,
        media_limits=limits,
        vision_cache_mb=cfg.vision_cache_mb,
        max_batch=cfg.max_batch,
    )
    app = create_app(m, cfg, media_limits=limits)
    host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    key = "required (Authorization: Bearer ...)" if cfg.api_key else "none (anyone may call)"
    print(f"sealion-vl: serving {m.name!r} ({m.adapter.name}) at http://{host}:{cfg.port}/v1")
    print(f"sealion-vl: API key {key}; web page at http://{host}:{cfg.port}/", flush=True)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level=cfg.log_level)


__all__ = ["ServeConfig", "create_app", "serve"]

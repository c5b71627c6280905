"""sealion-vl: run, serve, adapt and evaluate AI Singapore's SEA-LION vision-language models."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy: `sealion-vl models` and `--help` must not pay for importing torch/transformers.
    if name in ("load", "ChatModel", "ChatResult", "GenerationSettings"):
        from sealion_vl import runtime

        return getattr(runtime, name)
    if name in ("parse_reply", "ParsedReply"):  # no torch: replies parse anywhere
        from sealion_vl import families

        return getattr(families, name)
    raise AttributeError(f"module 'sealion_vl' has no attribute {name!r}")


__all__ = [
    "ChatModel",
    "ChatResult",
    "GenerationSettings",
    "ParsedReply",
    "__version__",
    "load",
    "parse_reply",
]

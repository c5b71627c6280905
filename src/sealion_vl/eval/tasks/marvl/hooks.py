"""MARVL hooks: SEA-HELM converts the zh hypothesis from traditional to simplified Chinese.

SEA-HELM quirk: only the hypothesis is converted (OpenCC ``t2s``); the label words and the
prompt are already simplified. Conversion is idempotent on simplified text, so a reply file's
doc (public schema, traditional) and a loaded row give the same prompt.
"""

from __future__ import annotations

from functools import lru_cache

from sealion_vl.errors import EvalDataError


@lru_cache(maxsize=4)
def _converter(config: str):
    try:
        import opencc
    except ImportError as exc:  # pragma: no cover - opencc is a pinned dependency
        raise EvalDataError("MARVL zh needs the `opencc` package (OpenCC t2s)") from exc
    return opencc.OpenCC(f"{config}.json")


def to_fields(task, doc: dict, lang: str) -> dict:
    """The hypothesis as SEA-HELM shows it (t2s for languages whose params say opencc)."""
    config = task.lang_spec(lang).params.get("opencc")
    hypothesis = doc.get("hypothesis")
    if config and isinstance(hypothesis, str):
        hypothesis = _converter(config).convert(hypothesis)
    return {"values": {"hypothesis": hypothesis}}

"""``sealion_vl.load``: a short name, a Hugging Face id or a folder in, a :class:`ChatModel` out."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
)

from sealion_vl import catalog
from sealion_vl.errors import CheckpointNotFoundError, SealionError, UnsupportedModelError
from sealion_vl.families import adapter_for_architecture
from sealion_vl.media import MediaLimits
from sealion_vl.runtime.engine import ChatModel

_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
_DTYPES = {
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "float32": torch.float32,
    "fp32": torch.float32,
}


def _hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("TRANSFORMERS_OFFLINE") == "1"


def resolve(name_or_path: str | os.PathLike) -> tuple[str, catalog.CatalogEntry | None]:
    """(what to pass to from_pretrained, its catalog entry if any).

    Order: an existing folder, a catalog short name or id, then anything shaped like a hub
    id. A path-looking string that does not exist is an error, never a hub lookup.
    """
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if path.is_dir():
        return str(path), None
    entry = catalog.find(text)
    if entry is not None:
        if entry.local_path:
            from importlib import resources

            folder = Path(str(resources.files("sealion_vl").joinpath(entry.local_path)))
            if not (folder / "config.json").is_file():
                raise CheckpointNotFoundError(
                    f"{entry.short!r} ships inside sealion-vl but {folder} holds no checkpoint; "
                    "reinstall the package, or rebuild it with `sealion-vl nano build OUT`"
                )
            return str(folder), entry
        return entry.id, entry
    looks_like_path = text.startswith((".", "/", "~")) or os.sep in text.replace("/", "", 1)
    if looks_like_path or path.exists() or not _HUB_ID.match(text):
        raise CheckpointNotFoundError(
            f"no checkpoint folder at {text!r}, and it is not a model name sealion-vl knows; "
            "pass an existing folder, a Hugging Face id (org/name), or a short name from "
            "`sealion-vl models`"
        )
    return text, None


def _load_config(source: str):
    if Path(source).is_dir() and not (Path(source) / "config.json").is_file():
        raise CheckpointNotFoundError(
            f"{source!r} is a folder but not a transformers checkpoint (no config.json); "
            "pass the folder that holds config.json and the weights"
        )
    try:
        return AutoConfig.from_pretrained(source)
    except ValueError as e:  # config.json with an unknown or missing model_type
        raise UnsupportedModelError(
            f"{source!r}: transformers cannot read its config ({e})"
        ) from None
    except OSError as e:
        if Path(source).is_dir():
            raise CheckpointNotFoundError(
                f"{source!r} is a folder but not a transformers checkpoint (no readable "
                f"config.json): {e}"
            ) from None
        if _hub_offline():
            raise CheckpointNotFoundError(
                f"{source!r} is not in the local Hugging Face cache and the hub is switched off "
                "(HF_HUB_OFFLINE=1). Download it where the hub is reachable "
                f"(`hf download {source}`) and pass the folder, or unset HF_HUB_OFFLINE"
            ) from None
        raise CheckpointNotFoundError(
            f"could not fetch {source!r} from the Hugging Face hub ({type(e).__name__}: {e}); "
            "check the id, your network, and HF_TOKEN for gated models, or pass a local folder"
        ) from None


def load_processor(source: str, entry=None, processor_from: str | None = None):
    """The checkpoint's processor, else the catalog's ``processor_from`` (the Qwen cards)."""
    candidates = [processor_from] if processor_from else [source]
    if entry is not None and entry.processor_from not in candidates:
        candidates.append(entry.processor_from)  # the Qwen cards load it from the base repo
    errors = []
    for cand in candidates:
        try:
            proc = AutoProcessor.from_pretrained(cand)
        except (OSError, ValueError, TypeError) as e:
            errors.append(f"{cand}: {type(e).__name__}: {e}")
            continue
        if hasattr(proc, "tokenizer"):
            return proc
        errors.append(f"{cand}: has a tokenizer but no multimodal processor")
    raise CheckpointNotFoundError(
        "could not load a processor for "
        + repr(source)
        + "; tried "
        + "; ".join(errors)
        + ". Pass processor_from='<repo or folder with preprocessor_config.json>'"
    )


def _device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@dataclass
class Loaded:
    """A checkpoint's parts, as :func:`load_parts` returns them.

    Attributes:
        model / processor / tokenizer: the transformers objects (processor None when text-only).
        adapter: the family adapter; multimodal: whether the architecture takes media.
        name: display name; context_length: positions the model holds.
    """

    model: object
    processor: object
    tokenizer: object
    adapter: object
    multimodal: bool
    name: str
    context_length: int


def load_parts(
    name_or_path: str | os.PathLike,
    device: str = "auto",
    dtype: str | torch.dtype = "auto",
    *,
    processor_from: str | None = None,
    attn_implementation: str | None = None,
    multimodal_only: bool = False,
) -> Loaded:
    """Resolve and load a checkpoint: the one loader behind chat, serving and training.

    Args:
        name_or_path: folder, catalog short name or Hugging Face id (see :func:`resolve`).
        device: ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda``, ``cuda:1``...
        dtype: ``auto`` (the checkpoint's), ``bfloat16``, ``float16`` or ``float32``.
        processor_from: load the processor from another repo/folder.
        attn_implementation: ``eager``, ``sdpa``... (None: transformers' default).
        multimodal_only: refuse text-only checkpoints (training).

    Raises:
        CheckpointNotFoundError, UnsupportedModelError, SealionError (a kernel that cannot
        load this model, naming ``attn_implementation``).
    """
    source, entry = resolve(name_or_path)
    config = _load_config(source)
    archs = getattr(config, "architectures", None) or []
    if not archs:
        raise UnsupportedModelError(f"{source!r}: config.json names no architecture")
    adapter, multimodal = adapter_for_architecture(archs[0])
    if multimodal_only and not multimodal:
        raise UnsupportedModelError(
            f"{name_or_path}: {archs[0]} is text-only; training supports the multimodal "
            "checkpoints only"
        )
    torch_dtype = _DTYPES.get(dtype, dtype) if isinstance(dtype, str) else dtype
    dev = _device(device)
    kwargs: dict = {"dtype": torch_dtype}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if device == "auto" and dev == "cuda":
        kwargs["device_map"] = "auto"
    cls = AutoModelForImageTextToText if multimodal else AutoModelForCausalLM
    try:
        model = cls.from_pretrained(source, **kwargs).eval()
    except (ValueError, ImportError) as e:
        if not attn_implementation:
            raise
        # e.g. Gemma 4's audio tower has no sdpa; flash-attn not installed
        raise SealionError(
            f"attn_implementation {attn_implementation!r} cannot load {name_or_path}: {e}"
        ) from e
    if "device_map" not in kwargs:
        model.to(dev)
    processor = load_processor(source, entry, processor_from) if multimodal else None
    tokenizer = (
        processor.tokenizer if processor is not None else AutoTokenizer.from_pretrained(source)
    )
    text_cfg = getattr(config, "text_config", config)
    context = entry.context if entry else getattr(text_cfg, "max_position_embeddings", 8192)
    name = entry.short if entry else Path(source).name or source
    return Loaded(model, processor, tokenizer, adapter, multimodal, name, int(context))


def load(
    name_or_path: str | os.PathLike,
    device: str = "auto",
    dtype: str | torch.dtype = "auto",
    *,
    processor_from: str | None = None,
    media_limits: MediaLimits | None = None,
    vision_cache_mb: float = 256,
    max_batch: int = 32,
) -> ChatModel:
    """Load a SEA-LION-VL checkpoint (or any Gemma 3 / Qwen3-VL / Gemma 4 one) for chat.

    Args:
        name_or_path: a local checkpoint folder, a catalog short name (``gemma-4b-vl``) or a
            Hugging Face id (used only where the hub is reachable or the cache has it).
        device: ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda``, ``cuda:1``...
        dtype: ``auto`` (the checkpoint's), ``bfloat16``, ``float16`` or ``float32``.
        processor_from: load the processor from another repo/folder (defaults to the
            checkpoint, then the catalog's ``processor_from``).
        media_limits: caps for images, video and audio given to this model.
        vision_cache_mb: memory for encoded images reused by later turns (0: off).
        max_batch: most requests the scheduler decodes together.

    Returns:
        A :class:`ChatModel`.

    Raises:
        CheckpointNotFoundError: missing folder, unknown name, or hub unreachable/offline.
        UnsupportedModelError: an architecture sealion-vl does not run.
    """
    p = load_parts(name_or_path, device, dtype, processor_from=processor_from)
    return ChatModel(
        p.model,
        p.processor,
        p.tokenizer,
        p.adapter,
        name=p.name,
        multimodal=p.multimodal,
        context_length=p.context_length,
        media_limits=media_limits,
        vision_cache_mb=vision_cache_mb,
        max_batch=max_batch,
    )

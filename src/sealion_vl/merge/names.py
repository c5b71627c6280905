"""Tensor names across checkpoint layouts, and which module group a tensor belongs to.

Checkpoints of one architecture come in two layouts: transformers 5 saves
``model.language_model.layers.0...``, ``model.vision_tower...``, ``model.multi_modal_projector...``
while older hub uploads hold ``language_model.model.layers.0...``, ``vision_tower...``,
``multi_modal_projector...`` (and Qwen2-VL-era ``model.layers...`` / ``visual...``).
transformers renames these at load time; a merge must match them across inputs itself, so
names are compared in one canonical (transformers 5) form and written back in the
reference model's own spelling.
"""

from __future__ import annotations

import re

# old-layout prefix -> transformers 5 prefix, first match wins
_RENAMES = (
    # SigLIP towers appear with and without their inner ``vision_model`` level
    ("model.vision_tower.vision_model.", "model.vision_tower."),
    ("vision_tower.vision_model.", "model.vision_tower."),
    ("language_model.model.", "model.language_model."),
    ("language_model.lm_head.", "lm_head."),
    ("language_model.", "model.language_model."),
    ("vision_tower.", "model.vision_tower."),
    ("multi_modal_projector.", "model.multi_modal_projector."),
    ("visual.", "model.visual."),
    ("audio_tower.", "model.audio_tower."),
    ("embed_vision.", "model.embed_vision."),
    ("embed_audio.", "model.embed_audio."),
    ("model.layers.", "model.language_model.layers."),
    ("model.embed_tokens.", "model.language_model.embed_tokens."),
    ("model.norm.", "model.language_model.norm."),
)
EMBED = "model.language_model.embed_tokens.weight"
LM_HEAD = "lm_head.weight"
_LAYER = re.compile(r"^(.*?\.(?:layers|blocks))\.(\d+)\.")


def canonical(name: str) -> str:
    """The transformers 5 spelling of a tensor name from either layout."""
    for old, new in _RENAMES:
        if name.startswith(old):
            return new + name[len(old) :]
    return name


def group_of(name: str, module_groups: dict[str, tuple[str, ...]]) -> str | None:
    """The adapter module group (vision / projector / language) of a canonical name."""
    best, best_len = None, -1
    for group, prefixes in module_groups.items():
        for p in prefixes:
            if name.startswith(p) and len(p) > best_len:  # the most specific prefix wins
                best, best_len = group, len(p)
    return best


def layer_positions(names: list[str]) -> dict[str, float]:
    """mergekit's gradient position ``t`` per tensor: layer i of a stack of n -> i/(n-1)
    (1 for a one-layer stack), 0 for tensors outside a layer stack."""
    stacks: dict[str, set[int]] = {}
    found = {}
    for n in names:
        m = _LAYER.match(n)
        if m:
            stacks.setdefault(m.group(1), set()).add(int(m.group(2)))
            found[n] = (m.group(1), int(m.group(2)))
    out = {}
    for n in names:
        if n not in found:
            out[n] = 0.0
            continue
        stack, i = found[n]
        count = max(stacks[stack]) + 1
        out[n] = i / (count - 1) if count > 1 else 1.0
    return out


def language_layers(names: list[str]) -> int:
    """How many decoder layers the language model has (from canonical names)."""
    idx = {
        int(m.group(2))
        for n in names
        if (m := _LAYER.match(n)) and m.group(1) == "model.language_model.layers"
    }
    return max(idx) + 1 if idx else 0

"""A freshly initialised Gemma 3-architecture VLM: nano's starting point.

Sizes are data: ``NANO`` is the shipped model (about 3M parameters, 64x64 images, 16 soft
tokens per image), ``SMOKE`` is the few-second version CI trains end to end.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class NanoSize:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    vision_hidden: int
    vision_layers: int
    vision_heads: int
    image_size: int = 64
    patch_size: int = 8
    image_tokens: int = 16  # a square; image_size/patch_size must be divisible by its root
    context: int = 1024
    vocab: int = 3072  # the synthetic corpus saturates at ~2740 (every word one token)
    mlp_ratio: int = 4
    sliding_window: int | None = None  # None: half the context
    projector_std: float = 0.02


NANO = NanoSize(
    hidden=192, layers=4, heads=4, kv_heads=2, vision_hidden=128, vision_layers=3, vision_heads=4
)
SMOKE = NanoSize(
    hidden=32,
    layers=2,
    heads=2,
    kv_heads=1,
    vision_hidden=32,
    vision_layers=1,
    vision_heads=2,
    vocab=512,
)
SIZES = {"nano": NANO, "smoke": SMOKE}


def init_checkpoint(out: Path, tokenizer, size: NanoSize, seed: int = 0) -> Path:
    """Write a randomly initialised Gemma3ForConditionalGeneration + processor to ``out``."""
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3ImageProcessor,
        Gemma3Processor,
    )

    tok = tokenizer
    layer_types = ["sliding_attention", "full_attention"] * (size.layers // 2) + (
        ["sliding_attention"] if size.layers % 2 else []
    )
    cfg = Gemma3Config(
        text_config=dict(
            vocab_size=len(tok),
            hidden_size=size.hidden,
            intermediate_size=size.mlp_ratio * size.hidden,
            num_hidden_layers=size.layers,
            num_attention_heads=size.heads,
            num_key_value_heads=size.kv_heads,
            head_dim=size.hidden // size.heads,
            max_position_embeddings=size.context,
            sliding_window=size.sliding_window or size.context // 2,
            layer_types=layer_types,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            tie_word_embeddings=False,
        ),
        vision_config=dict(
            hidden_size=size.vision_hidden,
            intermediate_size=2 * size.vision_hidden,
            num_hidden_layers=size.vision_layers,
            num_attention_heads=size.vision_heads,
            image_size=size.image_size,
            patch_size=size.patch_size,
        ),
        mm_tokens_per_image=size.image_tokens,
        image_token_id=tok.image_token_id,
        boi_token_id=tok.boi_token_id,
        eoi_token_id=tok.eoi_token_id,
        tie_word_embeddings=False,
    )
    cfg.text_config.tie_word_embeddings = False
    torch.manual_seed(seed)
    model = Gemma3ForConditionalGeneration(cfg)
    with torch.no_grad():  # transformers starts the projector at zero: the model would be blind
        model.model.multi_modal_projector.mm_input_projection_weight.normal_(
            0.0, size.projector_std
        )
    gen = model.generation_config
    gen.eos_token_id = [tok.convert_tokens_to_ids("<end_of_turn>"), tok.eos_token_id]
    gen.pad_token_id, gen.bos_token_id = tok.pad_token_id, tok.bos_token_id
    gen.do_sample, gen.max_new_tokens = False, 64
    processor = Gemma3Processor(
        image_processor=Gemma3ImageProcessor(
            size={"height": size.image_size, "width": size.image_size}
        ),
        tokenizer=tok,
        image_seq_length=size.image_tokens,
        chat_template=tok.chat_template,
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out

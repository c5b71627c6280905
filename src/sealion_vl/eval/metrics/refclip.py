"""RefCLIPScore for XM3600 captions, computed as SEA-HELM's OpenCLIP judge + metric do.

SEA-HELM (``OpenClipServing`` + ``RefClipScoreMetric``): the caption is the text after the
answer tag; images and texts are embedded with the multilingual open_clip model
``xlm-roberta-large-ViT-H-14`` (weights ``laion5B-s13B-b90k``, fp32, no "A photo depicts"
prefix); CLIP-S = 2.5 x max(cos(image, caption), 0); R = max over references of
cos(caption, reference), **not** clamped; RefCLIP-S = 2·CLIP-S·R / (CLIP-S + R) per image.
Reported: ``clipscore`` and ``refclipscore`` (plain means, fractions), ``normalized_clipscore``
and ``normalized_refclipscore`` (max(mean, 0) x 100; the latter is the task's headline metric)
and ``null_count`` (empty captions).

The model is behind :class:`ClipScorer` so tests (and machines without the 4 GB weights) can
use a Hugging Face CLIP checkpoint folder instead; such scores are not SEA-HELM's numbers.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

from sealion_vl.errors import EvalDataError
from sealion_vl.eval.types import Item, TaskScore

SEAHELM_MODEL = "xlm-roberta-large-ViT-H-14"
SEAHELM_PRETRAINED = "laion5B-s13B-b90k"
CLIP_WEIGHT = 2.5


class ClipScorer:
    """Embeds images and texts with one CLIP model, loaded on first use, in batches.

    Args:
        model: a folder holding a Hugging Face CLIP checkpoint (``CLIPModel`` +
            processor), or an open_clip model name (default: SEA-HELM's
            ``xlm-roberta-large-ViT-H-14``).
        pretrained: open_clip weights tag or file (default ``laion5B-s13B-b90k``); ignored
            for Hugging Face folders.
        device: torch device; default CUDA when available, else CPU.
        batch_size: images or texts per forward pass (SEA-HELM uses 64).
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        pretrained: str | None = None,
        device: str | None = None,
        batch_size: int = 64,
    ) -> None:
        self.model_ref = str(model) if model is not None else SEAHELM_MODEL
        self.pretrained = pretrained or SEAHELM_PRETRAINED
        self.device = device
        self.batch_size = max(1, int(batch_size))
        self.is_hf = Path(self.model_ref).is_dir()
        self._model = None

    @classmethod
    def resolve(cls, clip: ClipScorer | str | Path | None) -> ClipScorer:
        """A scorer from what ``score`` was given (an instance, a folder/name, or None)."""
        return clip if isinstance(clip, ClipScorer) else cls(clip)

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch

        if self.device is None:
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.is_hf:
            from transformers import CLIPModel, CLIPProcessor

            self._model = CLIPModel.from_pretrained(self.model_ref).to(self.device).eval()
            self._processor = CLIPProcessor.from_pretrained(self.model_ref)
            return
        try:
            import open_clip

            model, _, preprocess = open_clip.create_model_and_transforms(
                self.model_ref, pretrained=self.pretrained, precision="fp32", device=self.device
            )
        except Exception as err:  # missing weights offline, unknown name, ...
            raise EvalDataError(
                f"could not load open_clip model {self.model_ref!r} ({self.pretrained}): {err}. "
                "RefCLIPScore needs its weights (SEA-HELM's is "
                "laion/CLIP-ViT-H-14-frozen-xlm-roberta-large-laion5B-s13B-b90k); pass "
                "clip=<folder of a Hugging Face CLIP checkpoint> to use another model."
            ) from err
        self._model = model.eval()
        self._preprocess = preprocess
        self._tokenizer = open_clip.get_tokenizer(self.model_ref)

    @staticmethod
    def _features(out):
        # transformers 5 returns a ModelOutput whose pooler_output is the projected embedding.
        return out if hasattr(out, "shape") else out.pooler_output

    def embed_images(self, images: list[bytes]) -> np.ndarray:
        """Unnormalised image embeddings, one row per image (float32)."""
        import torch
        from PIL import Image

        self._load()
        rows = []
        for start in range(0, len(images), self.batch_size):
            pil = [
                Image.open(io.BytesIO(b)).convert("RGB")
                for b in images[start : start + self.batch_size]
            ]
            with torch.no_grad():
                if self.is_hf:
                    pix = self._processor(images=pil, return_tensors="pt")["pixel_values"]
                    out = self._model.get_image_features(pixel_values=pix.to(self.device))
                    out = self._features(out)
                else:
                    pix = torch.stack([self._preprocess(p) for p in pil]).to(self.device)
                    out = self._model.encode_image(pix)
            rows.append(out.float().cpu().numpy())
        return np.vstack(rows) if rows else np.zeros((0, 0), dtype=np.float32)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """Unnormalised text embeddings, one row per text (float32), truncated to the model's
        context as the model's own tokenizer does."""
        import torch

        self._load()
        rows = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            with torch.no_grad():
                if self.is_hf:
                    cfg = self._model.config.text_config
                    enc = self._processor.tokenizer(
                        batch,
                        padding=True,
                        truncation=True,
                        max_length=cfg.max_position_embeddings,
                        return_tensors="pt",
                    )
                    out = self._model.get_text_features(
                        input_ids=enc["input_ids"].to(self.device),
                        attention_mask=enc["attention_mask"].to(self.device),
                    )
                    out = self._features(out)
                else:
                    out = self._model.encode_text(self._tokenizer(batch).to(self.device))
            rows.append(out.float().cpu().numpy())
        return np.vstack(rows) if rows else np.zeros((0, 0), dtype=np.float32)


def extract_caption(response: str | None, answer_tag: str) -> str:
    """The caption SEA-HELM scores: text after the first answer tag to the end of that line.

    SEA-HELM quirks kept: the regex ``tag[\\s\\r\\n`*]*(.*)`` is case-sensitive (flags 0) and
    ``.`` stops at a newline; without the tag the whole reply is the caption; a failed request
    (None) is "".
    """
    text = "" if response is None else response
    try:
        match = re.search(answer_tag + r"[\s\r\n`*]*(.*)", text)
    except re.error:
        match = re.search(re.escape(answer_tag) + r"[\s\r\n`*]*(.*)", text)
    return (match.group(1) if match else text).strip()


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.sqrt(np.sum(x**2, axis=1, keepdims=True))


def refclip_parts(
    image_feats: np.ndarray, cand_feats: np.ndarray, ref_feats: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(CLIP-S, R, RefCLIP-S) per item from raw embeddings, SEA-HELM's formula.

    SEA-HELM quirks kept: R is not clamped at 0, so a negative R with a positive CLIP-S gives
    a negative (or, when CLIP-S + R < 0, a positive) harmonic "mean". Where CLIP-S + R == 0
    SEA-HELM divides by zero and crashes; we score 0 there.
    """
    img, cand = _unit(image_feats), _unit(cand_feats)
    clip_s = CLIP_WEIGHT * np.clip(np.sum(img * cand, axis=1), 0, None)
    ref_s = np.array([float(np.max(_unit(r) @ c)) for r, c in zip(ref_feats, cand, strict=True)])
    denom = clip_s + ref_s
    safe = np.where(denom == 0, 1.0, denom)
    refclip = np.where(denom == 0, 0.0, 2 * clip_s * ref_s / safe)
    return clip_s, ref_s, refclip


def _check(items: list[Item], responses: list, lang: str) -> None:
    task = items[0].task if items else "xm3600"
    if len(items) != len(responses):
        raise EvalDataError(
            f"{task} [{lang}]: {len(responses)} responses for {len(items)} items; they must "
            "pair one to one."
        )
    no_image = [it.id for it in items if not it.images]
    if no_image:
        raise EvalDataError(f"{task} [{lang}]: item(s) without an image: {', '.join(no_image)}")
    no_refs = [
        it.id
        for it in items
        if not isinstance(it.gold, (list, tuple))
        or not it.gold
        or not all(isinstance(c, str) for c in it.gold)
    ]
    if no_refs:
        raise EvalDataError(
            f"{task} [{lang}]: item(s) whose gold is not a non-empty list of reference "
            f"captions: {', '.join(no_refs)}"
        )


def score(
    items: list[Item],
    responses: list[str | None],
    *,
    lang: str,
    clip: ClipScorer | str | None = None,
) -> TaskScore:
    """RefCLIPScore of one XM3600 run in one language, with SEA-HELM's metric names.

    ``clip`` is a :class:`ClipScorer`, a Hugging Face CLIP folder / open_clip model name, or
    None for SEA-HELM's model. Per item: ``extracted`` caption, ``gold`` references,
    ``clip_s``, ``ref_s``, ``refclipscore`` and ``score`` (SEA-HELM's individual score,
    max(RefCLIP-S, 0) x 100).

    Raises:
        EvalDataError: an item has no image or no reference captions, or lengths differ.
    """
    _check(items, responses, lang)
    captions = [extract_caption(r, it.answer_tag) for it, r in zip(items, responses, strict=True)]
    null_count = sum(c == "" for c in captions)
    if not items:
        metrics = dict.fromkeys(
            ["clipscore", "refclipscore", "normalized_clipscore", "normalized_refclipscore"], 0.0
        )
        return TaskScore(metrics={**metrics, "null_count": 0}, per_item=[])

    scorer = ClipScorer.resolve(clip)
    image_feats = scorer.embed_images([it.images[0] for it in items])
    cand_feats = scorer.embed_texts(captions)
    flat = [c for it in items for c in it.gold]
    flat_feats = scorer.embed_texts(flat)
    ref_feats, pos = [], 0
    for it in items:
        ref_feats.append(flat_feats[pos : pos + len(it.gold)])
        pos += len(it.gold)

    clip_s, ref_s, refclip = refclip_parts(image_feats, cand_feats, ref_feats)
    clip_mean, refclip_mean = float(np.mean(clip_s)), float(np.mean(refclip))
    per_item = [
        {
            "id": it.id,
            "extracted": cap,
            "gold": list(it.gold),
            "clip_s": float(c),
            "ref_s": float(r),
            "refclipscore": float(f),
            "score": max(float(f), 0.0) * 100,
        }
        for it, cap, c, r, f in zip(items, captions, clip_s, ref_s, refclip, strict=True)
    ]
    metrics = {
        "clipscore": clip_mean,
        "refclipscore": refclip_mean,
        "normalized_clipscore": max(clip_mean, 0.0) * 100,
        "normalized_refclipscore": max(refclip_mean, 0.0) * 100,
        "null_count": int(null_count),
    }
    seahelm = (
        not scorer.is_hf
        and scorer.model_ref == SEAHELM_MODEL
        and scorer.pretrained == SEAHELM_PRETRAINED
    )
    diagnostics = {"clip_model": scorer.model_ref, "sea_helm_model": seahelm}
    return TaskScore(metrics=metrics, per_item=per_item, diagnostics=diagnostics)

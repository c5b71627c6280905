"""RefCLIPScore against a direct numpy formula on embeddings computed separately with the same
tiny, randomly initialised CLIP (built here, offline); caption extraction; chrF++."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from sacrebleu.metrics import CHRF
from transformers import (
    CLIPModel,
    CLIPProcessor,
)

from sealion_vl.errors import EvalDataError
from sealion_vl.eval.metrics import chrf, refclip
from sealion_vl.eval.types import Item
from tests.fixtures.tiny_clip import CORPUS, build_tiny_clip


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    """A tiny CLIPModel + CLIPProcessor saved to a folder; nothing downloaded."""
    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


def png(seed: int, size=(40, 36)) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def xm_items(n=5, tag="Caption:"):
    refs = [[CORPUS[i % 5], CORPUS[(i + 2) % 5]] for i in range(n)]
    refs[1] = [CORPUS[3]]  # a different number of references
    return [
        Item(
            task="xm3600",
            lang="en",
            id=f"img{i}",
            prompt="",
            images=[png(i)],
            gold=refs[i],
            answer_tag=tag,
        )
        for i in range(n)
    ]


RESPONSES = [
    "Caption: a red cat sits on a mat",
    "Caption:\n**a dog runs in the park**",
    "a big red flag",  # no tag: whole reply
    None,  # failed request: ""
    "Sure! Caption: kucing merah\nIt is a cat.",
]


def direct_embeddings(folder, images, texts):
    """Embeddings computed independently of sealion_vl, straight from transformers."""
    model = CLIPModel.from_pretrained(folder).eval()
    proc = CLIPProcessor.from_pretrained(folder)
    pil = [Image.open(io.BytesIO(b)).convert("RGB") for b in images]
    with torch.no_grad():
        img = model.get_image_features(**proc(images=pil, return_tensors="pt")).pooler_output
        enc = proc.tokenizer(
            texts, padding=True, truncation=True, max_length=12, return_tensors="pt"
        )
        txt = model.get_text_features(
            input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]
        ).pooler_output
    return img.numpy(), txt.numpy()


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_refclipscore_matches_direct_numpy_formula(clip_dir):
    its = xm_items()
    result = refclip.score(its, RESPONSES, lang="en", clip=str(clip_dir))
    captions = [
        "a red cat sits on a mat",
        "a dog runs in the park**",
        "a big red flag",
        "",
        "kucing merah",
    ]
    assert [p["extracted"] for p in result.per_item] == captions
    refs = [r for it in its for r in it.gold]
    img, txt = direct_embeddings(clip_dir, [it.images[0] for it in its], captions + refs)
    cand, ref = unit(txt[:5]), unit(txt[5:])
    clip_s = 2.5 * np.maximum((unit(img) * cand).sum(1), 0)
    bounds = np.cumsum([0] + [len(it.gold) for it in its])
    r = np.array([(ref[bounds[i] : bounds[i + 1]] @ cand[i]).max() for i in range(5)])
    f = 2 * clip_s * r / (clip_s + r)
    m = result.metrics
    assert m["clipscore"] == pytest.approx(clip_s.mean(), abs=1e-5)
    assert m["refclipscore"] == pytest.approx(f.mean(), abs=1e-5)
    assert m["normalized_refclipscore"] == pytest.approx(max(f.mean(), 0) * 100, abs=1e-3)
    assert m["normalized_clipscore"] == pytest.approx(clip_s.mean() * 100, abs=1e-3)
    assert m["null_count"] == 1
    assert [p["score"] for p in result.per_item] == pytest.approx(
        list(np.maximum(f, 0) * 100), abs=1e-3
    )
    assert result.per_item[0]["ref_s"] == pytest.approx(1.0, abs=1e-5)  # caption == a reference
    assert result.diagnostics["sea_helm_model"] is False


def test_batching_does_not_change_embeddings(clip_dir):
    its = xm_items()
    one = refclip.ClipScorer(clip_dir, batch_size=64)
    two = refclip.ClipScorer(clip_dir, batch_size=2)
    imgs = [it.images[0] for it in its]
    np.testing.assert_allclose(one.embed_images(imgs), two.embed_images(imgs), atol=1e-5)
    np.testing.assert_allclose(one.embed_texts(CORPUS), two.embed_texts(CORPUS), atol=1e-5)
    a = refclip.score(its, RESPONSES, lang="en", clip=one).metrics
    b = refclip.score(its, RESPONSES, lang="en", clip=two).metrics
    assert a == pytest.approx(b, rel=1e-5)


def test_embedding_is_batched_not_per_item(clip_dir):
    scorer = refclip.ClipScorer(clip_dir, batch_size=64)
    scorer._load()
    calls = {"image": 0, "text": 0}
    image_fn, text_fn = scorer._model.get_image_features, scorer._model.get_text_features

    def count_image(**kw):
        calls["image"] += 1
        return image_fn(**kw)

    def count_text(**kw):
        calls["text"] += 1
        return text_fn(**kw)

    scorer._model.get_image_features, scorer._model.get_text_features = count_image, count_text
    refclip.score(xm_items(), RESPONSES, lang="en", clip=scorer)
    assert calls == {"image": 1, "text": 2}  # all images; all captions; all references


def test_formula_quirks_on_synthetic_embeddings():
    img = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    cand = np.array([[1.0, 0.0], [0.6, 0.8], [1.0, 0.0]])
    refs = [np.array([[1.0, 0.0]]), np.array([[-1.0, 0.0], [0.0, -1.0]]), np.array([[1.0, 0.0]])]
    clip_s, r, f = refclip.refclip_parts(img, cand, refs)
    np.testing.assert_allclose(clip_s, [2.5, 1.5, 0.0])
    np.testing.assert_allclose(r, [1.0, -0.6, 1.0])  # R is not clamped at 0 (SEA-HELM)
    np.testing.assert_allclose(f, [2 * 2.5 / 3.5, 2 * 1.5 * -0.6 / 0.9, 0.0])
    # CLIP-S + R == 0: SEA-HELM divides by zero; we score 0
    _, _, z = refclip.refclip_parts(
        np.array([[0.0, 1.0]]), np.array([[1.0, 0.0]]), [np.array([[1.0, 0.0]])]
    )
    assert z[0] == 2 * 0 * 1 / 1


def test_caption_extraction_is_case_sensitive_and_line_bound():
    assert refclip.extract_caption("caption: x", "Caption:") == "caption: x"
    assert refclip.extract_caption("Caption: ` a cat `\nmore", "Caption:") == "a cat `"
    assert refclip.extract_caption("说明：一只猫", "说明：") == "一只猫"
    assert refclip.extract_caption(None, "Caption:") == ""


def test_items_without_image_or_references_are_refused(clip_dir):
    its = xm_items(3)
    its[1].images = []
    with pytest.raises(EvalDataError, match="img1"):
        refclip.score(its, ["x"] * 3, lang="en", clip=str(clip_dir))
    its = xm_items(3)
    its[2].gold = []
    with pytest.raises(EvalDataError, match="img2"):
        refclip.score(its, ["x"] * 3, lang="en", clip=str(clip_dir))
    assert refclip.score([], [], lang="en").metrics["normalized_refclipscore"] == 0.0


def test_default_scorer_is_seahelms_model_and_loads_lazily():
    scorer = refclip.ClipScorer.resolve(None)
    assert (scorer.model_ref, scorer.pretrained) == (
        "xlm-roberta-large-ViT-H-14",
        "laion5B-s13B-b90k",
    )
    assert scorer._model is None and not scorer.is_hf


def test_chrf_corpus_and_sentence_scores():
    its = xm_items()
    result = chrf.score(its, RESPONSES, lang="en")
    hyps = [p["extracted"] for p in result.per_item]
    metric = CHRF(word_order=2)
    width = max(len(it.gold) for it in its)
    streams = [[it.gold[i] if i < len(it.gold) else None for it in its] for i in range(width)]
    assert result.metrics["chrf++"] == pytest.approx(metric.corpus_score(hyps, streams).score)
    assert result.per_item[0]["score"] == pytest.approx(100.0)
    assert result.per_item[3]["score"] == 0.0
    with pytest.raises(EvalDataError, match="img0"):
        chrf.score([Item(task="x", lang="en", id="img0", prompt="", gold=None)], ["a"], lang="en")

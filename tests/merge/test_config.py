"""mergekit's own example configs, read unchanged, merge as mergekit defines them."""

from __future__ import annotations

import pytest
import torch
import yaml

from sealion_vl.merge import MergeError, load_config, merge
from tests.fixtures import tiny
from tests.merge.test_methods import close, topk_mask, weights

# mergekit's README / examples, with the hub ids swapped for our tiny checkpoints
SLERP = """
slices:
  - sources:
      - model: {a}
        layer_range: [0, 2]
      - model: {b}
        layer_range: [0, 2]
merge_method: slerp
base_model: {a}
parameters:
  t:
    - filter: self_attn
      value: [0, 0.5, 0.3, 0.7, 1]
    - filter: mlp
      value: [1, 0.5, 0.7, 0.3, 0]
    - value: 0.5 # fallback for rest of tensors
dtype: float16
"""

TIES = """
models:
  - model: {m1}
    parameters:
      density: [1, 0.7, 0.1] # density gradient
      weight: 1.0
  - model: {m2}
    parameters:
      density: 0.5
      weight: [0, 0.3, 0.7, 1] # weight gradient
  - model: {m3}
    parameters:
      density: 0.33
      weight:
        - filter: mlp
          value: 0.5
        - value: 0
merge_method: ties
base_model: {base}
parameters:
  normalize: true
  int8_mask: true
dtype: float16
"""

LINEAR = """
models:
  - model: {a}
    parameters:
      weight: 1.0
  - model: {b}
    parameters:
      weight: 0.3
  - model: {c}
    parameters:
      weight: 0.5
merge_method: linear
dtype: float16
"""


def _write(tmp_path, text: str, **paths) -> object:
    p = tmp_path / "merge.yaml"
    p.write_text(text.format(**{k: str(v) for k, v in paths.items()}))
    mk = pytest.importorskip("mergekit.config", reason="mergekit cross-check is optional")
    mk.MergeConfiguration.model_validate(yaml.safe_load(p.read_text()))  # valid for mergekit too
    return p


@pytest.fixture(scope="module")
def g3(parents, tiny_root):
    """gemma3 base, m1, m2 and a fourth seed (mergekit's TIES example merges three)."""
    extra = tiny_root / "merge-gemma3-3"
    if not (extra / ".complete").exists():
        extra.mkdir(parents=True, exist_ok=True)
        tiny.build_gemma3(extra, seed=3)
        (extra / ".complete").write_text("{}")
    return [*parents("gemma3"), extra]


def _key(W: dict, suffix: str) -> str:
    return next(n for n in W if n.endswith(suffix))


def test_mergekit_slerp_example_with_filters_and_gradients(g3, tmp_path):
    a, b = g3[0], g3[1]
    out = weights(merge(_write(tmp_path, SLERP, a=a, b=b), tmp_path / "o", progress=False))
    A, B = weights(a), weights(b)
    assert all(t.dtype == torch.float16 for t in out.values())
    # two language layers: layer 0 sits at gradient position 0, layer 1 at 1
    for layer, attn_t, mlp_t in ((0, 0.0, 1.0), (1, 1.0, 0.0)):
        q = _key(A, f"layers.{layer}.self_attn.q_proj.weight")
        up = _key(A, f"layers.{layer}.mlp.up_proj.weight")
        assert close(out[q].float(), (A, B)[int(attn_t)][q], 2e-3), q
        assert close(out[up].float(), (A, B)[int(mlp_t)][up], 2e-3), up
    emb = _key(A, "embed_tokens.weight")  # the 0.5 fallback: strictly between the parents
    assert not close(out[emb].float(), A[emb], 1e-3) and not close(out[emb].float(), B[emb], 1e-3)


def test_mergekit_slerp_layer_range_must_cover_the_model(g3, tmp_path):
    text = SLERP.replace("[0, 2]", "[0, 1]")
    with pytest.raises(MergeError, match=r"layer_range \[0, 1\].*2 layers"):
        merge(_write(tmp_path, text, a=g3[0], b=g3[1]), tmp_path / "o", progress=False)


def test_mergekit_ties_example_gradients_and_filters(g3, tmp_path):
    base, m1, m2, m3 = g3
    cfg = _write(tmp_path, TIES, base=base, m1=m1, m2=m2, m3=m3)
    out = weights(merge(cfg, tmp_path / "o", progress=False))
    # dtype: float16 casts the inputs before merging, as mergekit does
    B, X1, X2, X3 = ({k: v.half().float() for k, v in weights(p).items()} for p in g3)
    # layer 0 (t=0): m1 density 1 weight 1; m2 weight 0; m3 weight 0 outside mlp -> m1 itself
    q0 = _key(B, "layers.0.self_attn.q_proj.weight")
    assert close(out[q0].float(), X1[q0], 2e-3)
    # layer 1 mlp (t=1): m1 density 0.1 w 1; m2 density 0.5 w 1; m3 density 0.33 w 0.5
    n = _key(B, "layers.1.mlp.gate_proj.weight")
    ws, ds = (1.0, 1.0, 0.5), (0.1, 0.5, 0.33)
    kept, ties = [], torch.zeros_like(B[n], dtype=torch.bool)
    for X, w, d in zip((X1, X2, X3), ws, ds, strict=True):
        mask, tie = topk_mask(X[n] - B[n], d)
        kept.append(w * (X[n] - B[n]) * mask)
        ties |= tie
    sign = torch.where(sum(kept) >= 0, 1.0, -1.0)
    agree = [(torch.sign(k) == sign).float() for k in kept]
    div = sum(w * g for w, g in zip(ws, agree, strict=True))
    div[div == 0] = 1
    want = B[n] + sum(k * g for k, g in zip(kept, agree, strict=True)) / div
    assert close(out[n].float()[~ties], want[~ties], 2e-3)


def test_mergekit_linear_example(g3, tmp_path):
    a, b, c = g3[:3]
    out = weights(merge(_write(tmp_path, LINEAR, a=a, b=b, c=c), tmp_path / "o", progress=False))
    A, B, C = weights(a), weights(b), weights(c)
    for n in A:
        want = (1.0 * A[n] + 0.3 * B[n] + 0.5 * C[n]) / 1.8
        assert out[n].dtype == torch.float16
        assert close(out[n].float(), want.half().float(), 1e-3), n


@pytest.mark.parametrize(
    "change, message",
    [
        ({"merge_method": "della"}, "merge_method 'della' is not supported"),
        ({"parameters": {"desnity": 0.5}}, "unknown merge parameter 'desnity'"),
        ({"tokenizer_source": "union"}, "vocabulary merging"),
        ({"dtype": "int4"}, "dtype 'int4'"),
        ({"modules": {"text_decoder": {"models": [{"model": "x"}]}}}, "mergekit's per-arch"),
        ({"modules": {"vision": {"keep": "nobody"}}}, "'nobody' is not one of the merged"),
        ({"modules": {"vision": {"keep": "a", "merge_method": "linear"}}}, "not both"),
        ({"models": []}, "lists no checkpoints"),
    ],
)
def test_bad_configs_name_the_problem(change, message):
    cfg = {"merge_method": "linear", "models": [{"model": "a"}, {"model": "b"}], **change}
    with pytest.raises(MergeError, match=message):
        load_config(cfg)


def test_yaml_errors_name_the_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("merge_method: [unclosed\n")
    with pytest.raises(MergeError, match="bad.yaml is not valid YAML"):
        load_config(p)
    with pytest.raises(MergeError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_missing_required_parameter_names_model_and_tensor(g3, tmp_path):
    cfg = {"merge_method": "linear", "models": [{"model": str(g3[0])}, {"model": str(g3[1])}]}
    with pytest.raises(MergeError, match="missing required parameter 'weight'"):
        merge(cfg, tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists()
    assert not any(p.name.startswith(".o.partial") for p in tmp_path.iterdir())

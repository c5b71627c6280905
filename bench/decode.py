"""Greedy decode tokens/s of a Gemma-3-4B-shaped checkpoint on CPU, against the memory bound.

Launch (from the repo root)::

    python bench/decode.py                      # bfloat16, 32 new tokens, all cores
    python bench/decode.py --dtype float32      # refused unless it fits under --max-rss-gb
    python bench/decode.py --new-tokens 64 --threads 2 --repeats 3

What it does:

1. Builds, once, a randomly initialised checkpoint with the real gemma-3-4b-it shape
   (Gemma3ForConditionalGeneration, 4.30B parameters: 34-layer text model, hidden 2560,
   8 heads / 4 KV heads of 256, MLP 10240, vocab 262208, sliding window 1024 with 5 local :
   1 global layers, tied embeddings; SigLIP 896px / patch 14 / 27 layers / hidden 1152;
   256 soft tokens per image) into ``bench/.cache/gemma3-4b-shape/``. The model is created
   on the meta device and its weights are written shard by shard as random bfloat16 values,
   so building needs ~2 GB of RAM and no full-model init. The tokenizer is the small BPE
   from ``tests/fixtures/tiny.py`` (the model vocab stays 262208; sampled ids above the
   tokenizer's size decode to nothing, which does not matter for throughput).
2. Measures this machine's memory bandwidth in the same process: best of several
   ``dst.copy_(src)`` of a 1 GiB tensor, counting read + write bytes (2 x 1 GiB per copy).
   A read-only pass (``src.sum()``) and single-row matmuls in bf16 / fp32 on a
   layer-sized weight are printed too (what the kernels reach, and which dtype is faster).
3. Loads the checkpoint through the public API (``sealion_vl.load``), warms up with one
   short ``chat`` call, then times greedy ``chat`` calls of ``--new-tokens`` tokens. The
   decode rate is ``ChatResult.timings["tokens_per_s"]`` (prefill excluded).
4. Runs the same prompt through ``transformers``' ``model.generate`` on the same model object
   (the peer), timed the same way: (new tokens - 1) / (end - first-token time). Two floors
   are printed as well, to say where the time goes: a bare loop of ``model(...)`` calls with
   a DynamicCache and argmax (no generate()), and one 1-row ``F.linear`` over every weight a
   step reads, in the model's own tensors (the matmul kernels alone). Each engine runs
   ``--repeats`` times, interleaved; best and median are printed, the ratios use the best
   (the machine is shared and noisy; the bandwidth is a best-of too).
5. The bound: bytes read per generated token = every language-model weight a decode step
   touches (all decoder layers + final norm + the lm_head, which with tied embeddings is the
   262208 x 2560 embedding matrix, counted once) + one embedding row. The vision tower and
   the projector are not read while decoding text. KV-cache reads (~4 KiB per cached token
   per layer in bf16) are left out; at a ~60-token context they are ~0.1 % of the weights.
   bound tok/s = copy bandwidth / bytes per token.

The machine this was written on is a shared 2-vCPU VM: whenever another job takes a core, a
2-thread decode stalls and runs 3-6x slower. So each timed run also reports ``cpu-wait``
(Linux PSI: share of its wall time some task waited for a CPU; ~1 % when the machine is
quiet) and, before each run, the bench waits up to ``--quiet-wait`` seconds for the CPU
pressure to drop under 5 %. Trust rounds whose cpu-wait is a few percent. One run takes
4-9 minutes (the first one ~1 more to build the 8.6 GB checkpoint); ``--budget-s`` stops
starting new rounds after 420 s.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache" / "gemma3-4b-shape"
BUILD_VERSION = 1  # bump when the builder changes what it writes
SHARD_BYTES = 2 * 1024**3
TOKENIZER_VOCAB = 512
PROMPT = "Describe the weather in Singapore in one short paragraph."

TEXT_CONFIG = dict(
    vocab_size=262208,
    hidden_size=2560,
    intermediate_size=10240,
    num_hidden_layers=34,
    num_attention_heads=8,
    num_key_value_heads=4,
    head_dim=256,
    query_pre_attn_scalar=256,
    sliding_window=1024,
    max_position_embeddings=131072,
    rope_parameters={
        "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1_000_000.0},
        "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
    },
    tie_word_embeddings=True,
)
VISION_CONFIG = dict(
    hidden_size=1152,
    image_size=896,
    intermediate_size=4304,
    num_attention_heads=16,
    num_hidden_layers=27,
    patch_size=14,
    vision_use_head=False,
)
MM_TOKENS_PER_IMAGE = 256
DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}


# --------------------------------------------------------------------------- checkpoint
def _spec_hash() -> str:
    spec = {
        "v": BUILD_VERSION,
        "text": TEXT_CONFIG,
        "vision": VISION_CONFIG,
        "mm": MM_TOKENS_PER_IMAGE,
        "tok": TOKENIZER_VOCAB,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _tokenizer():
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from fixtures.tiny import build_tokenizer
    finally:
        sys.path.pop(0)
    return build_tokenizer("gemma3", vocab_size=TOKENIZER_VOCAB)


def _fill(name: str, module: torch.nn.Module, shape, gen: torch.Generator) -> torch.Tensor:
    """Random bf16 values with roughly the scale a trained model's tensor of that kind has."""
    t = torch.empty(shape, dtype=torch.bfloat16)
    kind = type(module).__name__
    if kind == "Gemma3RMSNorm":  # Gemma scales by (1 + weight): weights live near 0
        return t.normal_(0.0, 0.05, generator=gen)
    if kind == "LayerNorm" and name.endswith("weight"):
        return t.normal_(1.0, 0.05, generator=gen)
    if name.endswith("bias"):
        return t.normal_(0.0, 0.01, generator=gen)
    return t.normal_(0.0, 0.02, generator=gen)


def build_checkpoint(folder: Path) -> None:
    """Write config, random bf16 safetensors shards, tokenizer and processor into ``folder``."""
    from safetensors.torch import save_file
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3ImageProcessor,
        Gemma3Processor,
        GenerationConfig,
    )

    t0 = time.perf_counter()
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)

    tok = _tokenizer()
    ids = dict(pad=tok.pad_token_id, bos=tok.bos_token_id, eos=tok.eos_token_id)
    cfg = Gemma3Config(
        text_config=dict(
            TEXT_CONFIG, pad_token_id=ids["pad"], bos_token_id=ids["bos"], eos_token_id=ids["eos"]
        ),
        vision_config=VISION_CONFIG,
        mm_tokens_per_image=MM_TOKENS_PER_IMAGE,
        image_token_id=tok.image_token_id,
        boi_token_id=tok.boi_token_id,
        eoi_token_id=tok.eoi_token_id,
        tie_word_embeddings=True,
    )
    cfg.architectures = ["Gemma3ForConditionalGeneration"]
    cfg.dtype = "bfloat16"
    with torch.device("meta"):
        meta = Gemma3ForConditionalGeneration(cfg)
    owner = {}
    for mod_name, mod in meta.named_modules():
        for p_name, _ in mod.named_parameters(recurse=False):
            owner[f"{mod_name}.{p_name}" if mod_name else p_name] = mod
    params = dict(meta.named_parameters())  # tied lm_head.weight is listed once, as embed
    missing = set(meta.state_dict()) - set(params)
    assert missing <= set(getattr(meta, "_tied_weights_keys", None) or {}), missing

    gen = torch.Generator().manual_seed(0)
    shards: list[list[str]] = [[]]  # parameter names per shard, written as they fill up
    shard: dict[str, torch.Tensor] = {}
    size = total = 0

    def flush() -> None:
        save_file(shard, str(tmp / f"shard-{len(shards)}.tmp"), metadata={"format": "pt"})
        shard.clear()  # free the tensors as soon as they are on disk
        print(f"  wrote shard {len(shards)}  ({time.perf_counter() - t0:.0f}s)", flush=True)

    for name, p in params.items():
        t = _fill(name, owner[name], p.shape, gen)
        if size + t.nbytes > SHARD_BYTES and shard:
            flush()
            shards.append([])
            size = 0
        shard[name] = t
        shards[-1].append(name)
        size += t.nbytes
        total += t.nbytes
    flush()
    weight_map = {}
    for i, names in enumerate(shards, start=1):
        fname = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        os.rename(tmp / f"shard-{i}.tmp", tmp / fname)
        weight_map.update(dict.fromkeys(names, fname))
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (tmp / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    del meta

    cfg.save_pretrained(tmp)
    gcfg = GenerationConfig(
        bos_token_id=ids["bos"],
        pad_token_id=ids["pad"],
        eos_token_id=[ids["eos"], tok.convert_tokens_to_ids("<end_of_turn>")],
        do_sample=False,
    )
    gcfg.save_pretrained(tmp)
    image_processor = Gemma3ImageProcessor(size={"height": 896, "width": 896})
    processor = Gemma3Processor(
        image_processor=image_processor,
        tokenizer=tok,
        image_seq_length=MM_TOKENS_PER_IMAGE,
        chat_template=tok.chat_template,
    )
    processor.save_pretrained(tmp)
    shutil.rmtree(folder, ignore_errors=True)
    os.rename(tmp, folder)
    took = time.perf_counter() - t0
    # written last: its presence marks a complete checkpoint of this spec
    (folder / "bench_build.json").write_text(
        json.dumps({"spec": _spec_hash(), "params": total // 2, "seconds": round(took)}, indent=2)
    )
    print(f"  built {folder} in {took:.0f}s", flush=True)


def ensure_checkpoint(folder: Path, rebuild: bool) -> float:
    """Build the checkpoint unless a complete one of the same spec is cached; build seconds."""
    marker = folder / "bench_build.json"
    if not rebuild and marker.exists():
        if json.loads(marker.read_text()).get("spec") == _spec_hash():
            return 0.0
    print(f"building the random gemma-3-4b-shaped checkpoint in {folder} ...", flush=True)
    t0 = time.perf_counter()
    build_checkpoint(folder)
    gc.collect()
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- machine
def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure_bandwidth(gib: float = 1.0, repeats: int = 6) -> dict:
    """Copy bandwidth (read + write bytes / s) and read-only bandwidth, in GB/s (1e9)."""
    n = int(gib * 1024**3) // 4
    src = torch.empty(n, dtype=torch.float32).uniform_()
    dst = torch.empty_like(src).zero_()  # touch the pages before timing
    copy_s = _best(lambda: dst.copy_(src), repeats)
    read_s = _best(lambda: src.sum(), repeats)
    nbytes = src.nbytes
    return {
        "bytes": nbytes,
        "copy_GBps": 2 * nbytes / copy_s / 1e9,
        "read_GBps": nbytes / read_s / 1e9,
    }


def measure_gemv(repeats: int = 10) -> dict:
    """Weight bytes / s of a 1-row matmul on a (2 x 10240) x 2560 weight, per dtype.

    The dtypes take turns so that a noisy neighbour hits both alike; best of ``repeats``.
    """
    x32 = torch.randn(1, 1, 2560)
    cases = {}
    for name, dt in (("bfloat16", torch.bfloat16), ("float32", torch.float32)):
        cases[name] = (torch.empty(20480, 2560, dtype=dt).normal_(0, 0.02), x32.to(dt))
    best = dict.fromkeys(cases, float("inf"))
    for i in range(repeats + 2):
        for name, (w, x) in cases.items():
            t0 = time.perf_counter()
            torch.nn.functional.linear(x, w)
            if i >= 2:  # two warm-up turns
                best[name] = min(best[name], time.perf_counter() - t0)
    return {name: cases[name][0].nbytes / best[name] / 1e9 for name in cases}


class MachineProbe:
    """Copy / read bandwidth, the bf16-vs-fp32 1-row matmul rate and (once a model is loaded)
    the matmul-only pass, re-measured around every round; the best value of each is kept.

    Other tenants of the host come and go; the bound should be what the machine can do when
    they are quiet, just as the decode rates reported are the best round's.
    """

    def __init__(self) -> None:
        self.best: dict[str, float] = {}
        self.seen: dict[str, list[float]] = {}

    def _keep(self, key: str, value: float, higher_is_better: bool = True) -> None:
        self.seen.setdefault(key, []).append(value)
        old = self.best.get(key)
        better = old is None or (value > old if higher_is_better else value < old)
        if better:
            self.best[key] = value

    def measure(self, model=None) -> dict:
        bw = timed(measure_bandwidth)
        gemv = measure_gemv()
        now = {"copy_GBps": bw["copy_GBps"], "read_GBps": bw["read_GBps"], **gemv}
        for k, v in now.items():
            self._keep(k, v)
        if model is not None:
            now["matmul_s"] = matmul_pass(model, repeats=3)
            self._keep("matmul_s", now["matmul_s"], higher_is_better=False)
        now["cpu_wait"] = bw["cpu_wait"]
        return now

    def spread(self, key: str, fmt: str = "{:.1f}") -> str:
        vals = self.seen.get(key, [])
        return "-".join(fmt.format(v) for v in (min(vals), max(vals))) if vals else "n/a"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def mem_gb() -> tuple[float, float]:
    total = avail = 0.0
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, val = line.split(":", 1)
        if key == "MemTotal":
            total = int(val.split()[0]) / 1024**2
        elif key == "MemAvailable":
            avail = int(val.split()[0]) / 1024**2
    return total, avail


def cpu_wait_us() -> float:
    """Linux PSI: total microseconds some task waited for a CPU (0 where unavailable)."""
    try:
        for line in Path("/proc/pressure/cpu").read_text().splitlines():
            if line.startswith("some"):
                return float(line.rsplit("total=", 1)[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def cpu_pressure_10s() -> float:
    """PSI ``some avg10`` for the CPU: % of the last 10 s some task waited for a CPU."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return float(line.split("avg10=", 1)[1].split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0


def wait_quiet(limit_s: float, threshold: float = 5.0) -> float:
    """Sleep until the CPU pressure is under ``threshold`` % (at most ``limit_s``); seconds."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit_s and cpu_pressure_10s() >= threshold:
        time.sleep(2)
    return time.perf_counter() - t0


def timed(fn, *args) -> dict:
    """Run fn(*args) (returning a dict) and add the share of its wall time that some task on
    the machine was waiting for a CPU: with 2 threads on 2 cores, anything else that runs
    (another test suite, another bench) stalls our OpenMP team and the rate drops."""
    w0, t0 = cpu_wait_us(), time.perf_counter()
    out = fn(*args)
    out["cpu_wait"] = (cpu_wait_us() - w0) / 1e6 / (time.perf_counter() - t0)
    return out


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: KiB


# --------------------------------------------------------------------------- model side
def bytes_per_token(model) -> dict:
    """Bytes of weights one decode step reads (see the module docstring)."""
    lm = model.model.language_model
    layers = sum(p.numel() * p.element_size() for p in lm.layers.parameters())
    norm = sum(p.numel() * p.element_size() for p in lm.norm.parameters())
    head = model.get_output_embeddings().weight
    emb = lm.embed_tokens.weight
    tied = head.data_ptr() == emb.data_ptr()
    head_b = head.numel() * head.element_size()
    row = emb.shape[1] * emb.element_size()
    return {
        "layers": layers,
        "norm": norm,
        "lm_head": head_b,
        "embed_row": row,
        "tied": tied,
        "total": layers + norm + head_b + row,
    }


class StepClock:
    """A generate() streamer that stamps every put(); put #1 is the prompt, #2 the 1st token."""

    def __init__(self) -> None:
        self.stamps: list[float] = []
        self.tokens: list[int] = []

    def put(self, value) -> None:
        self.stamps.append(time.perf_counter())
        if len(self.stamps) > 1:
            self.tokens.extend(value.reshape(-1).tolist())

    def end(self) -> None:
        pass


def peer_inputs(cm):
    """The prompt tokenised by transformers' own processor (not through our engine)."""
    messages = [{"role": "user", "content": [{"type": "text", "text": PROMPT}]}]
    return cm.processor.apply_chat_template(
        messages,
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
    )


def run_transformers(cm, n_new: int) -> dict:
    """The peer: the same model object driven by transformers' own processor + generate()."""
    inputs = peer_inputs(cm)
    clock = StepClock()
    t0 = time.perf_counter()
    with torch.inference_mode():
        cm.model.generate(**inputs, do_sample=False, max_new_tokens=n_new, streamer=clock)
    t_end = time.perf_counter()
    n = len(clock.tokens)
    first = clock.stamps[1] if len(clock.stamps) > 1 else t_end
    steps = [b - a for a, b in zip(clock.stamps[1:], clock.stamps[2:], strict=False)]
    steps.sort()
    return {
        "prompt_tokens": int(inputs["input_ids"].shape[1]),
        "completion_tokens": n,
        "prefill_s": first - t0,
        "total_s": t_end - t0,
        "tokens_per_s": (n - 1) / (t_end - first) if n > 1 else 0.0,
        "median_step_s": steps[len(steps) // 2] if steps else 0.0,
        "token_ids": clock.tokens,
    }


def run_bare(cm, n_new: int) -> dict:
    """No generate(): prefill, then one forward per token with a DynamicCache and argmax.

    What is left when the generation loop's own bookkeeping is taken away.
    """
    from transformers import DynamicCache

    model = cm.model
    inputs = peer_inputs(cm)
    mask = inputs["attention_mask"]
    steps = []
    with torch.inference_mode():
        cache = DynamicCache(config=model.config.get_text_config())
        out = model(**inputs, past_key_values=cache, use_cache=True, logits_to_keep=1)
        tok = out.logits[:, -1].argmax(-1, keepdim=True)
        tokens = [int(tok)]
        for _ in range(n_new - 1):
            t0 = time.perf_counter()
            mask = torch.cat([mask, mask.new_ones(1, 1)], dim=1)
            out = model(
                input_ids=tok,
                attention_mask=mask,
                past_key_values=out.past_key_values,
                use_cache=True,
                logits_to_keep=1,
            )
            tok = out.logits[:, -1].argmax(-1, keepdim=True)
            tokens.append(int(tok))
            steps.append(time.perf_counter() - t0)
    steps.sort()
    return {
        "tokens_per_s": len(steps) / sum(steps),
        "median_step_s": steps[len(steps) // 2],
        "token_ids": tokens,
    }


def matmul_pass(model, repeats: int = 5) -> float:
    """Best seconds for one 1-row F.linear over every weight a decode step reads, nothing else.

    Same tensors in the same memory as the model uses, so this is what the matmul kernels
    allow on this machine: the floor under a decode step before any other op.
    """
    lm = model.model.language_model
    weights = [
        mod.weight
        for layer in lm.layers
        for mod in layer.modules()
        if isinstance(mod, torch.nn.Linear)
    ]
    weights.append(model.get_output_embeddings().weight)
    xs = {w.shape[1]: torch.randn(1, 1, w.shape[1], dtype=w.dtype) for w in weights}

    def one() -> None:
        for w in weights:
            torch.nn.functional.linear(xs[w.shape[1]], w)

    with torch.inference_mode():
        return _best(one, repeats)


def run_ours(cm, n_new: int) -> dict:
    r = cm.chat(PROMPT, max_new_tokens=n_new, temperature=0)
    return {
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "finish_reason": r.finish_reason,
        "prefill_s": r.timings["prefill_s"],
        "total_s": r.timings["total_s"],
        "tokens_per_s": r.timings["tokens_per_s"],
        "token_ids": r.token_ids,
    }


# --------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="bfloat16")
    ap.add_argument("--new-tokens", type=int, default=32, help="greedy tokens per timed call")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeats", type=int, default=4, help="timed calls per engine (best kept)")
    ap.add_argument("--max-rss-gb", type=float, default=18.0, help="refuse dtypes that won't fit")
    ap.add_argument(
        "--budget-s", type=float, default=420, help="start no new round after this many seconds"
    )
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=30,
        help="before each timed run, wait up to this many seconds for CPU pressure < 5%%",
    )
    ap.add_argument("--rebuild", action="store_true", help="rebuild the cached checkpoint")
    ap.add_argument("--checkpoint", type=Path, default=CACHE)
    args = ap.parse_args()
    if args.new_tokens < 2:
        ap.error("--new-tokens must be >= 2 (the decode rate needs two tokens)")

    torch.set_num_threads(args.threads)
    dtype = DTYPES[args.dtype]
    t_start = time.perf_counter()
    total_gb, avail_gb = mem_gb()
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs, {total_gb:.1f} GB RAM")
    print(f"torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}), ", end="")
    import transformers

    print(f"transformers {transformers.__version__}, threads={torch.get_num_threads()}")

    n_params = 4_300_079_472  # what the builder writes; checked against the model below
    need_gb = n_params * torch.empty(0, dtype=dtype).element_size() / 1e9 + 1.5
    if need_gb > args.max_rss_gb or need_gb > avail_gb:
        sys.exit(
            f"{args.dtype}: the model needs ~{need_gb:.1f} GB resident, over the "
            f"{min(args.max_rss_gb, avail_gb):.1f} GB allowed (--max-rss-gb / MemAvailable); "
            "not loading it (bfloat16 needs ~10 GB)"
        )

    build_s = ensure_checkpoint(args.checkpoint, args.rebuild)

    print("measuring memory bandwidth (1 GiB copy, best of 6; again after every round) ...")
    wait_quiet(args.quiet_wait)
    probe = MachineProbe()
    now = probe.measure()
    print(
        f"  copy {now['copy_GBps']:.1f} GB/s (read+write bytes), read-only "
        f"{now['read_GBps']:.1f} GB/s (cpu-wait {now['cpu_wait']:.0%}); 1-row matmul weight "
        f"rate: bf16 {now['bfloat16']:.1f} GB/s, fp32 {now['float32']:.1f} GB/s"
    )

    import sealion_vl

    t0 = time.perf_counter()
    cm = sealion_vl.load(args.checkpoint, device="cpu", dtype=args.dtype)
    load_s = time.perf_counter() - t0
    model = cm.model
    got_params = sum(p.numel() for p in model.parameters())
    assert got_params == n_params, got_params
    assert model.dtype == dtype, model.dtype
    bpt = bytes_per_token(model)
    print(f"loaded {cm!r} in {load_s:.1f}s, attention={model.config._attn_implementation}")

    t0 = time.perf_counter()
    warm = cm.chat(PROMPT, max_new_tokens=4, temperature=0)
    print(f"warm-up chat: {warm.completion_tokens} tokens in {time.perf_counter() - t0:.1f}s")

    wait_quiet(args.quiet_wait)
    now = probe.measure(model)
    print(
        f"matmul-only pass over the real weights: {now['matmul_s'] * 1e3:.0f} ms; "
        f"copy {now['copy_GBps']:.1f} GB/s",
        flush=True,
    )

    ours, peer, bare = [], [], []
    print("rounds (cpu-wait = share of the run some task waited for a CPU; >~5% = contended):")
    for i in range(args.repeats):
        waited = 0.0
        for runs, fn in ((ours, run_ours), (peer, run_transformers), (bare, run_bare)):
            waited += wait_quiet(args.quiet_wait)
            runs.append(timed(fn, cm, args.new_tokens))
        print(
            f"  round {i + 1}: ours {ours[-1]['tokens_per_s']:.3f} tok/s "
            f"({ours[-1]['completion_tokens']} tokens, prefill {ours[-1]['prefill_s']:.2f}s, "
            f"cpu-wait {ours[-1]['cpu_wait']:.0%}) | transformers "
            f"{peer[-1]['tokens_per_s']:.3f} ({peer[-1]['completion_tokens']} tokens, "
            f"cpu-wait {peer[-1]['cpu_wait']:.0%}) | bare loop {bare[-1]['tokens_per_s']:.3f} "
            f"(cpu-wait {bare[-1]['cpu_wait']:.0%}); waited {waited:.0f}s for a quiet CPU",
            flush=True,
        )
        now = probe.measure(model)
        ours[-1]["copy_after"] = now["copy_GBps"]
        print(
            f"           machine after it: copy {now['copy_GBps']:.1f} GB/s, matmul-only pass "
            f"{now['matmul_s'] * 1e3:.0f} ms (cpu-wait {now['cpu_wait']:.0%})",
            flush=True,
        )
        if time.perf_counter() - t_start > args.budget_s and i + 1 < args.repeats:
            print(f"  stopping after {i + 1} rounds: over the --budget-s of {args.budget_s:.0f}s")
            break

    notes = []
    for r in ours:
        if r["completion_tokens"] != args.new_tokens:
            notes.append(
                f"ours stopped early: {r['completion_tokens']} tokens ({r['finish_reason']})"
            )
    for r in peer:
        if r["completion_tokens"] != args.new_tokens:
            notes.append(f"transformers stopped early: {r['completion_tokens']} tokens")
    if ours[0]["token_ids"] != peer[0]["token_ids"][: len(ours[0]["token_ids"])]:
        notes.append("ours and transformers produced different greedy tokens")
    if bare[0]["token_ids"] != peer[0]["token_ids"]:
        notes.append("the bare loop and transformers produced different greedy tokens")
    if ours[0]["prompt_tokens"] != peer[0]["prompt_tokens"]:
        notes.append(
            f"prompt lengths differ: ours {ours[0]['prompt_tokens']}, "
            f"transformers {peer[0]['prompt_tokens']}"
        )
    distinct = len(set(ours[0]["token_ids"]))

    def best_med(runs: list[dict]) -> tuple[float, float]:
        rates = sorted(r["tokens_per_s"] for r in runs)
        return rates[-1], rates[len(rates) // 2]

    def wait_of_best(runs: list[dict]) -> str:
        return f"{max(runs, key=lambda r: r['tokens_per_s'])['cpu_wait']:.0%}"

    (b_ours, m_ours), (b_peer, m_peer), (b_bare, m_bare) = map(best_med, (ours, peer, bare))
    bw = gemv = probe.best  # best copy / read / per-dtype matmul rates seen in the run
    mm_s = probe.best["matmul_s"]
    bound = bw["copy_GBps"] * 1e9 / bpt["total"]
    mm_rate = 1 / mm_s
    wall = time.perf_counter() - t_start
    n_text = (bpt["layers"] + bpt["norm"] + bpt["lm_head"]) / model.dtype.itemsize

    rows = [
        ("dtype", args.dtype),
        ("params (all / read per token)", f"{got_params / 1e9:.3f} B / {n_text / 1e9:.3f} B"),
        (
            "bytes/token",
            f"{bpt['total'] / 1e9:.3f} GB (layers {bpt['layers'] / 1e9:.3f} + lm_head "
            f"{bpt['lm_head'] / 1e9:.3f}{' (tied)' if bpt['tied'] else ''} + norm + 1 embed row)",
        ),
        (
            "copy bandwidth",
            f"{bw['copy_GBps']:.1f} GB/s (read+write bytes, best of {len(probe.seen['copy_GBps'])}"
            f" probes, range {probe.spread('copy_GBps')}; read-only pass best "
            f"{bw['read_GBps']:.1f} GB/s)",
        ),
        (
            "dtype check: 1-row matmul, 20480x2560 weight",
            f"bf16 {gemv['bfloat16']:.1f} GB/s, fp32 {gemv['float32']:.1f} GB/s of weights "
            f"(fp32 would read 2x the bytes at {gemv['float32'] / gemv['bfloat16']:.2f}x the rate)",
        ),
        ("prompt tokens / new tokens", f"{ours[0]['prompt_tokens']} / {args.new_tokens}"),
        ("**bound tok/s** (copy bw / bytes)", f"{bound:.3f}"),
        (
            "matmul-only pass tok/s (real weights)",
            f"{mm_rate:.3f} ({bpt['total'] / mm_s / 1e9:.1f} GB/s; best pass {mm_s * 1e3:.0f} ms,"
            f" range {probe.spread('matmul_s', '{:.3f}')} s)",
        ),
        (
            "bare forward loop tok/s (best / median)",
            f"{b_bare:.3f} / {m_bare:.3f} (cpu-wait of best {wait_of_best(bare)})",
        ),
        (
            "transformers generate tok/s (best / median)",
            f"{b_peer:.3f} / {m_peer:.3f} (cpu-wait of best {wait_of_best(peer)})",
        ),
        (
            "**ours: sealion_vl chat tok/s** (best / median)",
            f"{b_ours:.3f} / {m_ours:.3f} (cpu-wait of best {wait_of_best(ours)})",
        ),
        ("**ratio ours / bound**", f"{b_ours / bound:.3f}"),
        (
            "ratio ours / bound, per round (bound from the copy probe right after the round)",
            ", ".join(
                f"{r['tokens_per_s'] * bpt['total'] / (r['copy_after'] * 1e9):.2f}" for r in ours
            ),
        ),
        ("ratio ours / transformers", f"{b_ours / b_peer:.3f}"),
        ("ratio transformers / bound", f"{b_peer / bound:.3f}"),
        ("ratio matmul-only / bound", f"{mm_rate / bound:.3f}"),
        (
            "median decode step, best round: transformers / bare loop",
            f"{min(r['median_step_s'] for r in peer) * 1e3:.0f} ms / "
            f"{min(r['median_step_s'] for r in bare) * 1e3:.0f} ms "
            f"(= {1 / min(r['median_step_s'] for r in peer):.3f} / "
            f"{1 / min(r['median_step_s'] for r in bare):.3f} tok/s; robust to short bursts)",
        ),
        ("ours prefill (best)", f"{min(r['prefill_s'] for r in ours):.2f} s"),
        ("peak RSS", f"{peak_rss_gb():.1f} GB"),
        ("checkpoint build / load", f"{build_s:.0f} s (0 = cached) / {load_s:.1f} s"),
        ("wall time of this run", f"{wall:.0f} s"),
    ]
    print()
    print("| metric | value |")
    print("|---|---|")
    for k, v in rows:
        print(f"| {k} | {v} |")
    print()
    print(f"distinct greedy tokens in {args.new_tokens}: {distinct}")
    for n in notes:
        print(f"NOTE: {n}")
    print(f"HEADLINE ratio ours/bound = {b_ours / bound:.3f} ({args.dtype})")


if __name__ == "__main__":
    main()

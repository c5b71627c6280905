"""Scale-out: start vLLM's or SGLang's OpenAI server for a model, with our server's limits.

When one machine (or one process) is not enough, ``sealion-vl serve --engine vllm|sglang``
hands the model to vLLM 0.33 or SGLang 0.5.23, which speak the same OpenAI API. Both pin
other transformers/torch versions than sealion-vl, so they run from their own environment:
``python`` is that environment's interpreter (``--engine-python``), or ``image`` a container
image (``vllm/vllm-openai:<tag>``, ``lmsysorg/sglang:<tag>``) started with ``docker run``.

What differs per model comes from the catalog (facts.md §4): the tool-call parser
(``hermes`` for Qwen3-VL, ``gemma4`` for Gemma 4, ``pythonic`` plus our Gemma 3 tool chat
template for Gemma 3, since vLLM has no Gemma 3 parser), the reasoning parser, the context
length and the size that sets the tensor-parallel degree. What is the same for every model
is the safety limits of our own server: API key, bounded queue, media per request and the
media-domain allow-list.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from sealion_vl.errors import CheckpointNotFoundError, SealionError

EngineName = Literal["vllm", "sglang"]
ENGINES: tuple[str, ...] = ("vllm", "sglang")

# tool_format (catalog.yaml) -> tool-call parser name, the same in vLLM and SGLang.
# gemma3-tool_code (nano's ```tool_code fences) has no parser in either engine: no tool flags,
# calls come back as plain content there.
TOOL_PARSERS = {"hermes": "hermes", "gemma4-native": "gemma4", "gemma3-pythonic": "pythonic"}
# family -> reasoning parser, used only for models the catalog marks as reasoning.
REASONING_PARSERS = {"gemma4": "gemma4", "qwen3_vl": "qwen3"}
# Gemma 3 has no tool tokens, so vLLM/SGLang need a template that teaches the pythonic list.
GEMMA3_TOOL_TEMPLATE = "gemma3_tool_pythonic.jinja"
_DEFAULT_TOOL_FORMAT = {
    "gemma3": "gemma3-pythonic",
    "qwen3_vl": "hermes",
    "gemma4": "gemma4-native",
}
_MODULES = {"vllm": "vllm.entrypoints.openai.api_server", "sglang": "sglang.launch_server"}

# Tensor-parallel rule: bf16 weights take 2 bytes per parameter and may fill at most this
# share of each GPU; the rest is KV cache, activations and the vision encoder's work space.
WEIGHT_SHARE = 0.5
DEFAULT_GPU_MEMORY_GB = 80.0  # assumed when no GPU is visible (the command is for another host)


class EngineUnavailableError(SealionError, RuntimeError):
    """The interpreter or container meant to run vLLM / SGLang cannot run it."""


@dataclass(frozen=True)
class ModelSpec:
    """What the engine flags depend on, from the catalog or a checkpoint folder."""

    path: str  # what the engine loads: an HF id or a local folder
    served: tuple[str, ...]  # names clients may send as "model"
    family: str
    params_b: float  # all parameters, billions (memory, not compute)
    context: int
    modalities: tuple[str, ...]
    tool_format: str
    reasoning: bool


def template_path(name: str = GEMMA3_TOOL_TEMPLATE) -> Path:
    """The shipped chat template ``name`` (in ``sealion_vl/serve/templates``) as a file path."""
    return Path(str(resources.files("sealion_vl").joinpath("serve", "templates", name)))


def model_spec(model: str) -> ModelSpec:
    """Resolve ``model``: a catalog short name or HF id, or a local checkpoint folder.

    Raises:
        CheckpointNotFoundError: neither in the catalog nor a folder with a config.json.
    """
    from sealion_vl.catalog import catalog, find

    e = find(model)
    if e is not None:
        path = e.id
        if e.local_path:
            path = str(resources.files("sealion_vl").joinpath(e.local_path))
        return ModelSpec(
            path=path,
            served=tuple(dict.fromkeys((e.id, e.short))),
            family=e.family,
            params_b=e.params_total_b or e.params_b,
            context=e.context,
            modalities=tuple(e.modalities),
            tool_format=e.tool_format,
            reasoning=e.reasoning,
        )
    folder = Path(model).expanduser()
    if (folder / "config.json").is_file():
        return _folder_spec(folder.resolve())
    names = ", ".join(x.short for x in catalog())
    raise CheckpointNotFoundError(
        f"--model {model!r} is neither a catalog model ({names}) nor a checkpoint folder with "
        "a config.json; give one of those names, an HF id from `sealion-vl models`, or a folder"
    )


def _folder_spec(folder: Path) -> ModelSpec:
    from sealion_vl.families import adapter_for_architecture

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    adapter, _ = adapter_for_architecture((config.get("architectures") or ["?"])[0])
    text = config.get("text_config") or config
    context = int(text.get("max_position_embeddings") or config.get("max_position_embeddings"))
    weights = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
    return ModelSpec(
        path=str(folder),
        served=(folder.name,),
        family=adapter.name,
        params_b=weights / 2e9,  # bf16 files: 2 bytes per parameter
        context=context,
        modalities=tuple(adapter.modalities),
        tool_format=_DEFAULT_TOOL_FORMAT[adapter.name],
        reasoning=adapter.name == "gemma4",
    )


def tensor_parallel_size(
    params_b: float, gpus: int, gpu_memory_gb: float = DEFAULT_GPU_MEMORY_GB
) -> int:
    """Tensor-parallel degree for a model of ``params_b`` billion parameters.

    The rule: bf16 weights need ``2 * params_b`` GB; each GPU may hold at most
    ``WEIGHT_SHARE`` (half) of its memory in weights, so ``need = ceil(2 * params_b /
    (WEIGHT_SHARE * gpu_memory_gb))`` GPUs; the degree is the smallest power of two >= need
    (attention heads split evenly), capped at the largest power of two <= ``gpus``. With
    ``gpus == 0`` (none visible here: the command is for another host) there is no cap.

    Args:
        params_b: all parameters in billions (Gemma 4 E2B: with its embeddings).
        gpus: GPUs visible to the engine.
        gpu_memory_gb: memory of the smallest of them, in GB.
    """
    need = max(1, math.ceil(2 * params_b / (WEIGHT_SHARE * gpu_memory_gb)))
    tp = 1 << (need - 1).bit_length()
    if gpus > 0:
        tp = min(tp, 1 << (gpus.bit_length() - 1))
    return tp


def visible_gpus() -> tuple[int, float | None]:
    """(count, memory of the smallest in GB) of the NVIDIA GPUs this process may use.

    Read from ``nvidia-smi`` and narrowed by ``CUDA_VISIBLE_DEVICES`` (indices); ``(0, None)``
    when there is no ``nvidia-smi`` or it fails.
    """
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return 0, None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=index,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return 0, None
    mem = {}
    for line in out.splitlines():
        index, _, mib = line.partition(",")
        if mib.strip():
            mem[index.strip()] = float(mib) * 1.048576 / 1000  # MiB -> GB
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        keep = [v.strip() for v in visible.split(",") if v.strip()]
        mem = {k: v for k, v in mem.items() if k in keep}
    return (len(mem), min(mem.values())) if mem else (0, None)


def external_command(
    engine: EngineName,
    model: str,
    *,
    python: str = "python",
    image: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    max_queue: int | None = 64,
    allowed_media_domains: list[str] | tuple[str, ...] = (),
    allowed_media_dir: str | None = None,
    max_images: int = 16,
    max_videos: int = 2,
    max_audios: int = 4,
    tensor_parallel: int | None = None,
    gpus: int | None = None,
    gpu_memory_gb: float | None = None,
    extra: list[str] | tuple[str, ...] = (),
) -> list[str]:
    """The argv that starts ``engine``'s OpenAI-compatible server for ``model``.

    Args:
        engine: ``"vllm"`` (0.33) or ``"sglang"`` (0.5.23).
        model: catalog short name or HF id, or a local checkpoint folder.
        python: interpreter of the environment where the engine is installed.
        image: run a container image with ``docker run`` instead of ``python``.
        host, port: where the server listens.
        api_key: required on requests when set (``Authorization: Bearer``).
        max_queue: waiting requests beyond the running batch before 503 (``None``: unbounded).
        allowed_media_domains: media URL hosts the engine may fetch (empty: engine default).
        allowed_media_dir: local folder media may be read from (vLLM only).
        max_images, max_videos, max_audios: media items per request, for the modalities the
            model has.
        tensor_parallel: GPUs per replica; ``None`` applies :func:`tensor_parallel_size`.
        gpus: GPUs visible to the engine; ``None`` asks ``nvidia-smi`` (:func:`visible_gpus`).
        gpu_memory_gb: memory per GPU for the rule; ``None``: detected, else 80.
        extra: more engine flags, appended last (so they win over ours).

    Returns:
        The command as a list of arguments (for :func:`run_external` or ``subprocess``).

    Raises:
        ValueError: unknown engine, a limit out of range, or more GPUs asked than visible.
        CheckpointNotFoundError: ``model`` is not in the catalog nor a checkpoint folder.
    """
    if engine not in ENGINES:
        raise ValueError(f"--engine {engine!r} is not one of: {', '.join(ENGINES)}")
    media = {"max_images": max_images, "max_videos": max_videos, "max_audios": max_audios}
    for name, value in media.items():
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    if max_queue is not None and max_queue < 1:
        raise ValueError(f"max_queue must be >= 1 (or None for unbounded), got {max_queue}")
    spec = model_spec(model)
    if gpus is None or gpu_memory_gb is None:
        seen, memory = visible_gpus()
        gpus = seen if gpus is None else gpus
        gpu_memory_gb = gpu_memory_gb or memory or DEFAULT_GPU_MEMORY_GB
    if tensor_parallel is None:
        tp = tensor_parallel_size(spec.params_b, gpus, gpu_memory_gb)
    elif tensor_parallel < 1 or (gpus and tensor_parallel > gpus):
        raise ValueError(
            f"tensor_parallel={tensor_parallel} needs that many GPUs; {gpus} visible"
            if tensor_parallel >= 1
            else f"tensor_parallel must be >= 1, got {tensor_parallel}"
        )
    else:
        tp = tensor_parallel

    template = template_path() if spec.tool_format == "gemma3-pythonic" else None
    model_path = spec.path
    mounts: list[str] = []
    if image is not None:  # the container sees its own paths: mount what lives on this host
        if Path(spec.path).is_absolute():
            mounts += ["-v", f"{spec.path}:/model:ro"]
            model_path = "/model"
        if template is not None:
            mounts += ["-v", f"{template.parent}:/sealion-templates:ro"]
            template = Path("/sealion-templates") / template.name
    limits = {"image": max_images}
    if "video" in spec.modalities:
        limits["video"] = max_videos
    if "audio" in spec.modalities:
        limits["audio"] = max_audios
    limits_json = json.dumps(limits, separators=(",", ":"))
    parser = TOOL_PARSERS.get(spec.tool_format)
    reasoning = REASONING_PARSERS.get(spec.family) if spec.reasoning else None
    listen = "0.0.0.0" if image is not None else host  # docker publishes on ``host`` below

    if engine == "vllm":
        flags = ["--served-model-name", *spec.served, "--host", listen, "--port", str(port)]
        flags += ["--max-model-len", str(spec.context), "--tensor-parallel-size", str(tp)]
        flags += ["--limit-mm-per-prompt", limits_json]
        if parser:
            flags += ["--enable-auto-tool-choice", "--tool-call-parser", parser]
        if reasoning:
            flags += ["--reasoning-parser", reasoning]
        if max_queue is not None:
            flags += ["--max-num-queued-reqs", str(max_queue)]
        if allowed_media_dir:
            flags += ["--allowed-local-media-path", allowed_media_dir]
    else:
        if allowed_media_dir:
            raise ValueError(
                "allowed_media_dir: SGLang has no local-media allow-list flag that sealion-vl "
                "knows of; send media as URLs or base64, or use --engine vllm"
            )
        flags = ["--served-model-name", spec.served[0], "--host", listen, "--port", str(port)]
        flags += ["--context-length", str(spec.context), "--tp", str(tp)]
        flags += ["--enable-multimodal", "--limit-mm-data-per-request", limits_json]
        if parser:
            flags += ["--tool-call-parser", parser]
        if reasoning:
            flags += ["--reasoning-parser", reasoning]
        if max_queue is not None:
            flags += ["--max-queued-requests", str(max_queue)]
    if template is not None:
        flags += ["--chat-template", str(template)]
    if allowed_media_domains:
        flags += ["--allowed-media-domains", *allowed_media_domains]
    if api_key:
        flags += ["--api-key", api_key]
    flags += list(extra)

    if image is None:
        load = ["--model", model_path] if engine == "vllm" else ["--model-path", model_path]
        return [python, "-m", _MODULES[engine], *load, *flags]
    hf_cache = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    docker = ["docker", "run", "--rm", "--gpus", "all", "--ipc=host"]
    docker += ["-p", f"{host}:{port}:{port}", "-v", f"{hf_cache}:/root/.cache/huggingface"]
    docker += ["-e", "HF_TOKEN", *mounts, image]
    if engine == "vllm":  # the vllm/vllm-openai image's entrypoint is `vllm serve`
        return [*docker, model_path, *flags]
    return [*docker, "python3", "-m", _MODULES[engine], "--model-path", model_path, *flags]


def command_for_config(engine: EngineName, model: str, config, **kw) -> list[str]:
    """:func:`external_command` with the limits of a ``ServeConfig`` (our server's settings).

    ``config`` needs ``host``, ``port``, ``api_key``, ``max_queue``, ``allowed_media_domains``,
    ``allowed_media_dir`` and ``max_{images,videos,audios}_per_request``; ``kw`` passes the
    rest (``python``, ``image``, ``tensor_parallel``, ``gpus``, ``extra``...).
    """
    media_dir = config.allowed_media_dir
    return external_command(
        engine,
        model,
        host=config.host,
        port=config.port,
        api_key=config.api_key,
        max_queue=config.max_queue,
        allowed_media_domains=list(config.allowed_media_domains),
        allowed_media_dir=str(media_dir) if media_dir else None,
        max_images=config.max_images_per_request,
        max_videos=config.max_videos_per_request,
        max_audios=config.max_audios_per_request,
        **kw,
    )


def check_engine(engine: EngineName, python: str = "python") -> str:
    """The installed version of ``engine`` in the environment of ``python``.

    Raises:
        EngineUnavailableError: ``python`` does not run, or cannot import the engine; the
            message says how to make an environment that has it.
    """
    probe = f"import {engine}; print(getattr({engine}, '__version__', '?'))"
    try:
        done = subprocess.run(
            [python, "-c", probe], capture_output=True, text=True, timeout=300, check=False
        )
    except (OSError, subprocess.SubprocessError) as err:
        raise EngineUnavailableError(
            f"--engine-python {python!r} cannot be run ({err}). " + _install_hint(engine)
        ) from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no error output)"])[-1]
        raise EngineUnavailableError(
            f"{python!r} cannot import {engine}: {last}. " + _install_hint(engine)
        )
    return done.stdout.strip()


def _install_hint(engine: str) -> str:
    pin = {"vllm": "vllm==0.33.*", "sglang": "sglang[all]==0.5.23"}[engine]
    image = {"vllm": "vllm/vllm-openai:<tag>", "sglang": "lmsysorg/sglang:<tag>"}[engine]
    return (
        f"{engine} pins its own transformers and torch, so install it in a separate "
        f"environment: `python -m venv ~/.venvs/{engine} && ~/.venvs/{engine}/bin/pip install "
        f"'{pin}'`, then pass --engine-python ~/.venvs/{engine}/bin/python "
        f"(or run the container image {image})."
    )


def run_external(
    argv: list[str], *, engine: EngineName, wait: bool = True, replace: bool = False
) -> int | subprocess.Popen:
    """Start a command from :func:`external_command` after checking the engine is there.

    Args:
        argv: the command; ``argv[0]`` is the engine's python (or ``docker``).
        engine: which engine ``argv`` starts (checked with :func:`check_engine`).
        wait: wait for the server to exit and return its exit code; else return the process.
        replace: replace this process with the engine's (``os.execvp``; for the CLI, so
            signals reach the engine directly). Does not return.

    Raises:
        EngineUnavailableError: the python cannot import the engine, or docker is missing.
    """
    if argv[0] == "docker":
        if shutil.which("docker") is None:
            raise EngineUnavailableError(
                "--engine-image needs docker on PATH; install docker or use --engine-python"
            )
    else:
        check_engine(engine, argv[0])
    if replace:
        os.execvp(argv[0], argv)
    proc = subprocess.Popen(argv)
    if not wait:
        return proc
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        return proc.wait()

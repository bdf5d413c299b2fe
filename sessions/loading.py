"""Model specs to loaded, hooked models: local checkpoints, the local HF cache, built-in toys.

Nothing here downloads: a hub id is looked up in the local cache only, and a miss is a clear error.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analyses.errors import BadInput

DTYPES = ("float32", "bfloat16", "float16")
LOAD_STAGES = 5  # the steps ``load`` reports through its progress callback
DEVICES = ("auto", "cpu", "cuda")
GENERIC_TOKENIZERS = ("TokenizersBackend", "PreTrainedTokenizerFast")
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")  # accelerate's placement strategies


@dataclass
class LoadedModel:
    """A hooked model with its tokenizer and the facts a session records about it."""

    hooked: Any  # analyses.models.HookedModel
    tokenizer: Any
    info: dict[str, Any] = field(default_factory=dict)


def resolve_device(device: str) -> str:
    import torch

    if device not in DEVICES and not device.startswith("cuda:"):
        raise BadInput(f"--device must be one of {', '.join(DEVICES)}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BadInput("--device cuda: no CUDA device is available (use --device cpu or auto)")
    return device


def check_device_map(device_map: str | dict | None) -> None:
    """Refuse a device map accelerate would reject with a traceback mid-load. A single device
    is ``--device``'s job; an explicit map is a dict of module name to device."""
    if device_map is None or device_map in DEVICE_MAPS:
        return
    if isinstance(device_map, dict) and all(isinstance(k, str) for k in device_map):
        return
    raise BadInput(f"--device-map must be one of {', '.join(DEVICE_MAPS)} (got {device_map!r}); "
                   "to put the whole model on one device use --device")


def resolve_spec(spec: str) -> tuple[Path, str]:
    """(checkpoint directory, revision or content hash) for a model spec."""
    if not spec or not spec.strip():
        raise BadInput("the model spec is empty")
    if spec.startswith("toy:"):
        from sessions.toys import toy_checkpoint

        path = toy_checkpoint(spec[4:])
        return path, fingerprint(path)
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise BadInput(f"{spec}: no config.json there; not a Hugging Face checkpoint directory")
        return path, fingerprint(path)
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise BadInput(f"unknown model {spec!r}: no such directory")
    return _from_hub_cache(spec)


def _from_hub_cache(repo_id: str) -> tuple[Path, str]:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError) as e:
        raise BadInput(
            f"unknown model {repo_id!r}: not a directory, a built-in toy (see `workbench models`), "
            "or a model in the local Hugging Face cache. The workbench never downloads; fetch it "
            f"with `hf download {repo_id}` on a machine with network access. ({type(e).__name__})"
        ) from None
    if not (path / "config.json").is_file():
        raise BadInput(f"{repo_id}: the cached snapshot has no config.json")
    return path, path.name  # snapshot folder name = commit hash


def fingerprint(path: Path) -> str:
    """A cheap content hash: config and tokenizer bytes, weight file sizes and safetensors headers."""
    h = hashlib.sha256()
    for f in sorted(path.iterdir()):
        if not f.is_file():
            continue
        h.update(f.name.encode())
        if f.suffix == ".json" or f.name.startswith("tokenizer"):
            h.update(f.read_bytes())
        else:
            size = f.stat().st_size
            h.update(str(size).encode())
            if f.suffix == ".safetensors" and size >= 8:
                with f.open("rb") as fh:
                    n = int.from_bytes(fh.read(8), "little")
                    h.update(fh.read(min(n, 1 << 24)))
    return "sha256:" + h.hexdigest()[:16]


def read_config(path: Path) -> dict:
    try:
        return json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise BadInput(f"{path}/config.json cannot be read: {e}") from None


def _weights_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.suffix in (".safetensors", ".bin"))


def _check_fits(path: Path, config: dict, dtype: str, device: str) -> None:
    """Refuse up front a model that cannot fit, instead of dying mid-load."""
    from analyses.cost import device_free

    stored = {"float32": 4, "bfloat16": 2, "float16": 2}.get(str(config.get("torch_dtype") or config.get("dtype")), 4)
    need = _weights_bytes(path) * {"float32": 4, "bfloat16": 2, "float16": 2}[dtype] // stored
    free = device_free(device)
    where = f"free memory on {device}" if device.startswith("cuda") else "available RAM"
    if free and need > 0.9 * free:
        raise BadInput(
            f"the model needs about {need / 2**30:.1f} GiB in {dtype} but only {free / 2**30:.1f} GiB of "
            f"{where} is left; try --dtype bfloat16, --device-map auto, or a smaller model"
        )


def load_tokenizer(path: Path):
    """The checkpoint's tokenizer; a checkpoint that declares the generic class gets exactly its
    tokenizer.json (AutoTokenizer would otherwise swap in the model type's own class)."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    cfg_file = path / "tokenizer_config.json"
    declared = json.loads(cfg_file.read_text()).get("tokenizer_class") if cfg_file.is_file() else None
    if declared in GENERIC_TOKENIZERS and (path / "tokenizer.json").is_file():
        return PreTrainedTokenizerFast.from_pretrained(path)
    return AutoTokenizer.from_pretrained(path)


def load(
    spec: str,
    device: str = "auto",
    dtype: str = "float32",
    device_map: str | dict | None = None,
    offload_folder: str | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    parity: bool = True,
) -> LoadedModel:
    """Load a model spec and wrap it in its family's hooked adapter.

    ``device_map`` ("auto" or an explicit accelerate map) dispatches layers across devices and
    CPU/disk; hooks keep working on offloaded layers. ``progress(step, of, what)`` reports each
    stage, so a screen can show how far loading has got. ``parity`` (on unless a caller compares
    the forwards itself) runs one short forward of the hooked and the plain model and records the
    result in ``info["parity"]`` (``analyses.parity``): every run's record carries it.
    """
    say = progress or (lambda step, of, what: None)
    say(0, LOAD_STAGES, "importing torch and transformers")
    import torch
    from transformers import AutoModelForCausalLM

    from analyses.models import check_supported, hooked

    if dtype not in DTYPES:
        raise BadInput(f"--dtype must be one of {', '.join(DTYPES)}")
    check_device_map(device_map)
    device = resolve_device(device)
    say(1, LOAD_STAGES, "finding the checkpoint")
    path, revision = resolve_spec(spec)
    config = read_config(path)
    check_supported(str(config.get("model_type")))
    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype)}
    if config.get("model_type") != "mamba":
        kwargs["attn_implementation"] = "eager"
    if device_map is not None:
        kwargs["device_map"] = device_map
        if offload_folder:
            kwargs["offload_folder"] = offload_folder
    else:
        _check_fits(path, config, dtype, device)
    say(2, LOAD_STAGES, "reading the weights")
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except torch.OutOfMemoryError:
        raise BadInput(f"{spec}: out of memory while loading; try --dtype bfloat16 or --device-map auto") from None
    if device_map is None:
        model.to(device)
    say(3, LOAD_STAGES, "loading the tokenizer and hooking the model")
    tokenizer = load_tokenizer(path)
    info = {
        "spec": spec,
        "path": str(path),
        "revision": revision,
        "model_type": config.get("model_type"),
        "dtype": dtype,
        "device": device if device_map is None else f"map:{device_map if isinstance(device_map, str) else 'custom'}",
    }
    loaded = LoadedModel(hooked(model), tokenizer, info)
    if parity:
        say(4, LOAD_STAGES, "checking the hooked model against the plain forward")
        from analyses.parity import check_parity

        info["parity"] = check_parity(loaded.hooked, tokenizer, dtype)
    say(LOAD_STAGES, LOAD_STAGES, "ready")
    return loaded


def quiet_hf() -> None:
    """Keep HF's progress bars and advisory warnings off the analyst's terminal."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

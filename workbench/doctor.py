"""`workbench doctor`: what this box is and what it can run, before an analyst spends time on it.

On a remote GPU box the questions come first: which torch and CUDA, which card and how much of it
is free, does the hooked model compute what the plain one does here (the parity check), how long a
forward and a sweep's batch take, and which cached model would not fit. One command answers them,
as text or as one JSON object (exit 0; a bad model spec exits 2, as every command does).
"""

from __future__ import annotations

import os
import platform
import time
from importlib import metadata
from typing import Any

GiB = 2**30
PACKAGES = ("torch", "transformers", "textual", "accelerate", "mamba-ssm", "interp-workbench")
SWEEP_ROWS = 8  # rows of a sweep's first forward (analyses.patching.START_ROWS)


def versions() -> dict[str, str | None]:
    """Python, the packages that decide what runs (None: not installed), and CUDA as torch sees it."""
    import torch

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["cuda"] = torch.version.cuda
    out["cudnn"] = str(torch.backends.cudnn.version()) if torch.cuda.is_available() else None
    return out


def devices() -> list[dict[str, Any]]:
    """The CPU (cores, threads torch uses, RAM total and available) and every CUDA device (name,
    compute capability, total and free memory)."""
    import torch

    from analyses.cost import device_free

    total = None
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        pass
    out = [{"device": "cpu", "name": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "total_bytes": total, "free_bytes": device_free("cpu")}]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            free, whole = torch.cuda.mem_get_info(i)
            out.append({"device": f"cuda:{i}", "name": props.name, "capability": f"{props.major}.{props.minor}",
                        "total_bytes": int(whole), "free_bytes": int(free)})
    return out


def _timed(fn, repeats: int = 3) -> float:
    """The median wall time of ``fn()`` over ``repeats`` runs after one warm-up, synchronised on CUDA."""
    import torch

    def sync() -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def model_report(spec: str, device: str, dtype: str) -> dict[str, Any]:
    """Load ``spec`` (BadInput for a bad spec: exit 2), with its load time and parity check; then
    the time of one forward of the parity prompt and of one sweep batch (``SWEEP_ROWS`` copies of
    it with a patch at the middle layer, as a patching sweep's first forward)."""
    from analyses.models import Intervention
    from analyses.parity import parity_ids
    from sessions.loading import load

    t0 = time.perf_counter()
    lm = load(spec, device=device, dtype=dtype)
    load_s = time.perf_counter() - t0
    hm = lm.hooked
    ids = parity_ids(lm.tokenizer, hm.shape.d_vocab)
    rows = ids.repeat(SWEEP_ROWS, 1)
    patch = [Intervention(f"blocks.{hm.shape.n_layers // 2}.hook_resid_pre", "zero", pos=ids.shape[1] - 1)]
    forward_s = _timed(lambda: hm.run(ids))
    sweep_s = _timed(lambda: hm.run(rows, interventions=patch))
    weights = sum(p.numel() * p.element_size() for p in hm.model.parameters())
    return {"info": lm.info, "load_seconds": round(load_s, 3), "weights_bytes": weights,
            "forward": {"tokens": int(ids.shape[1]), "seconds": round(forward_s, 5)},
            "sweep_batch": {"rows": SWEEP_ROWS, "tokens": int(ids.shape[1]), "seconds": round(sweep_s, 5)}}


def limits(device: str, dtype: str, model: dict[str, Any] | None) -> dict[str, Any]:
    """What would limit this box: the memory free on the device the models load on, and for the
    largest cached model (and the one checked) the memory its weights need in ``dtype``."""
    from analyses.cost import device_free
    from sessions.catalogue import list_models
    from sessions.loading import _weights_bytes, read_config, resolve_spec

    per = {"float32": 4, "bfloat16": 2, "float16": 2}
    free = device_free(device)
    sizes = []
    for m in list_models():
        if m["kind"] != "hub-cache" or not m["supported"]:
            continue
        try:
            path, _ = resolve_spec(m["spec"])
            config = read_config(path)
        except Exception:  # a damaged cache entry is not this box's limit
            continue
        stored = per.get(str(config.get("torch_dtype") or config.get("dtype")), 4)
        sizes.append((_weights_bytes(path) * per[dtype] // stored, m["spec"]))
    out: dict[str, Any] = {"device": device, "free_bytes": free, "dtype": dtype}
    if sizes:
        need, spec = max(sizes)
        out["largest_cached"] = {"spec": spec, "weights_bytes": need, "fits": free is None or need < 0.9 * free}
    if model is not None:
        need = model["weights_bytes"]
        out["checked_model"] = {"spec": model["info"]["spec"], "weights_bytes": need,
                                "share_of_free": round(need / free, 4) if free else None}
    out["advice"] = _advice(out)
    return out


def _advice(lim: dict[str, Any]) -> str:
    free, big = lim.get("free_bytes"), lim.get("largest_cached")
    where = "GPU memory" if str(lim["device"]).startswith("cuda") else "RAM"
    if free is None:
        return f"free {where} cannot be read here"
    if big is None:
        return f"{free / GiB:.1f} GiB of {where} free; no cached hub model to size against it"
    verdict = "fits" if big["fits"] else "does not fit: use --dtype bfloat16 or --device-map auto"
    return (f"{free / GiB:.1f} GiB of {where} free; the largest cached model, {big['spec']}, needs "
            f"{big['weights_bytes'] / GiB:.1f} GiB in {lim['dtype']} and {verdict}")


def report(spec: str | None, device: str = "auto", dtype: str = "float32") -> dict[str, Any]:
    """Everything `workbench doctor` prints."""
    from analyses.toys import DEFAULT_MODEL
    from sessions.loading import resolve_device

    device = resolve_device(device)
    model = model_report(spec or DEFAULT_MODEL, device, dtype)
    return {"versions": versions(), "devices": devices(), "model": model,
            "limits": limits(model["info"]["device"], dtype, model)}


def text(rep: dict[str, Any]) -> str:
    """The report for a terminal."""
    from analyses.parity import parity_text

    v = rep["versions"]
    lines = ["versions  " + "  ".join(f"{k} {v[k] or '-'}" for k in v)]
    for d in rep["devices"]:
        mem = f"{(d['free_bytes'] or 0) / GiB:.1f} of {(d['total_bytes'] or 0) / GiB:.1f} GiB free"
        extra = f", {d['cores']} cores, torch uses {d['torch_threads']}" if d["device"] == "cpu" else \
            f", capability {d['capability']}"
        lines.append(f"device    {d['device']}: {d['name']}{extra}; {mem}")
    m = rep["model"]
    info, parity = m["info"], m["info"].get("parity")
    lines.append(f"model     {info['spec']} ({info['model_type']}, {info['dtype']}, {info['device']}, "
                 f"{info['revision']}), {m['weights_bytes'] / 2**20:.1f} MiB of weights, "
                 f"loaded in {m['load_seconds']:.2f} s")
    if parity:
        lines.append(f"parity    {parity_text(parity)}: hooked vs plain logits differ by {parity['relative']:.2e} of "
                     f"the largest (tolerance {parity['tolerance']:.0e}), {parity['tokens']} tokens, "
                     f"{parity['seconds']:.3f} s")
    lines.append(f"timing    one forward ({m['forward']['tokens']} tokens) {m['forward']['seconds'] * 1e3:.1f} ms; "
                 f"one sweep batch ({m['sweep_batch']['rows']} rows) {m['sweep_batch']['seconds'] * 1e3:.1f} ms")
    lines.append(f"limits    {rep['limits']['advice']}")
    return "\n".join(lines)

"""What a run will cost before it starts: its peak memory and its forwards, from the model's shape,
the inputs and the batch size. One estimator for every analysis: ``analyses.costs`` holds each
analysis's formula (and its floor, the forwards it cannot do without); this module sizes the inputs,
reads the memory the device has free, and refuses a run that would not fit (the CLI exits 2, the TUI
asks). Light at import (no torch): the registry and the TUI's forms import it before any model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analyses.errors import BadInput

MB = 2**20
LIMIT_ENV = "WORKBENCH_MEMORY_MB"
MARGIN = 0.9  # refuse above this share of the memory available: the estimate is not exact


@dataclass(frozen=True)
class Dims:
    """The sizes a cost depends on: the model's shape, the tokens per input and how many inputs."""

    family: str
    n_layers: int
    d_model: int
    d_vocab: int
    n_heads: int
    d_head: int
    d_mlp: int
    d_inner: int
    d_state: int
    seq: int  # tokens of one input (a prompt, a pair's prompt, a text as cut to the context)
    items: int  # inputs: 1 for a prompt, the pairs, the texts or the examples
    dtype_bytes: int = 4
    diff: int = 0  # pairs: the first position where clean and corrupted prompts differ (patches before it are no-ops)

    @property
    def attention(self) -> bool:
        return self.family != "mamba"


@dataclass(frozen=True)
class Cost:
    """A run's estimated cost. ``bytes``: its peak memory beyond the loaded model; ``forwards`` /
    ``backwards``: whole-model passes of one sequence (a run from layer l counts the share of the
    layers it runs); ``floor`` / ``floor_backwards``: the passes no implementation can avoid for
    these inputs; ``shrink``: what makes the run smaller."""

    bytes: float
    forwards: float
    floor: float
    backwards: float = 0.0
    floor_backwards: float = 0.0
    shrink: str = ""

    def describe(self) -> str:
        back = f" and {self.backwards:,.0f} backward" if self.backwards else ""
        return f"about {size(self.bytes)} of memory, {self.forwards:,.0f} forward{back} passes"


def size(n: float) -> str:
    """Bytes as MB, or GB from 10 GB on."""
    return f"{n / 2**30:,.0f} GB" if n >= 10 * 2**30 else f"{n / MB:,.0f} MB"


class TooBig(BadInput):
    """A run whose estimated memory exceeds what the device has free."""

    def __init__(self, message: str, cost: Cost, available: int) -> None:
        super().__init__(message)
        self.cost, self.available = cost, available


def dims(lm: Any, analysis: Any, params: dict[str, Any]) -> Dims:
    """The sizes of a run of ``analysis`` with checked ``params`` on the loaded model ``lm``."""
    s = lm.hooked.shape
    dtype = str(getattr(lm, "info", {}).get("dtype", "float32"))
    n_ctx = s.n_ctx or 4096
    pairs = {"clean", "corrupt"} <= {q.name for q in analysis.params}
    seq, items = _inputs(lm, analysis.name, params, n_ctx, pairs)
    return Dims(s.family, s.n_layers, s.d_model, s.d_vocab, s.n_heads or 0, s.d_head or 0, s.d_mlp or 0,
                s.d_inner or 0, s.d_state or 0, max(1, min(seq, n_ctx)), max(1, items), 2 if "16" in dtype else 4,
                _first_diff(lm.tokenizer, params) if pairs else 0)


def estimate(analysis: Any, params: dict[str, Any], d: Dims) -> Cost:
    """The cost of ``analysis`` with ``params`` at sizes ``d`` (every registered analysis has a
    formula in ``analyses.costs``; one without falls back on its kind of inputs)."""
    from analyses.costs import cost_of

    return cost_of(analysis, params, d)


def estimate_run(lm: Any, analysis: Any, params: dict[str, Any]) -> Cost:
    return estimate(analysis, params, dims(lm, analysis, params))


def available_bytes(device: str) -> int | None:
    """Memory a run may still take: free memory of a CUDA device, else the RAM the kernel reports
    available (MemAvailable); None where neither can be read. ``WORKBENCH_MEMORY_MB`` caps it (a
    box shared with other work)."""
    free = device_free(device)
    cap = os.environ.get(LIMIT_ENV, "").strip()
    if cap:
        try:
            limit = int(float(cap) * MB)
        except ValueError:
            raise BadInput(f"{LIMIT_ENV} must be a number of MB (got {cap!r})") from None
        free = limit if free is None else min(free, limit)
    return free


def device_free(device: str) -> int | None:
    """Free memory of a CUDA device, else the RAM the kernel reports available; None if unreadable."""
    if str(device).startswith("cuda"):
        try:
            import torch

            return int(torch.cuda.mem_get_info(torch.device(device))[0])
        except Exception:
            return None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(lm: Any, analysis: Any, params: dict[str, Any], available: int | None = None,
                 override: str = "") -> Cost:
    """The run's cost; ``TooBig`` (a BadInput: the CLI exits 2) when its memory would not fit in
    ``available`` bytes (default: what the model's device has free), naming the estimate, how to
    shrink the run and ``override``, how the front end lets the user go on anyway."""
    cost = estimate_run(lm, analysis, params)
    device = str(getattr(lm, "info", {}).get("device", "cpu"))
    free = available_bytes(device) if available is None else available
    if free is not None and cost.bytes > MARGIN * free:
        where = "free on the GPU" if device.startswith("cuda") else "of RAM available"
        raise TooBig(f"{analysis.name} would need {cost.describe()}; {size(free)} {where}. "
                     f"To shrink it: {cost.shrink or 'fewer inputs'}." + (f" {override}." if override else ""),
                     cost, free)
    return cost


# ---- how many inputs, how long ---------------------------------------------------------------------

def _inputs(lm: Any, name: str, p: dict[str, Any], n_ctx: int, pairs: bool = False) -> tuple[int, int]:
    """(tokens per input, number of inputs) of a run, read from its parameters without running it
    (``pairs``: the analysis takes clean/corrupted pairs, all as long as a task's first pair)."""
    tok = lm.tokenizer
    if p.get("prompt"):
        return _length(tok, p["prompt"]), 1
    if p.get("clean"):
        return _length(tok, p["clean"]), 1
    if p.get("pairs"):
        return _file_length(tok, p["pairs"]), _count_lines(p["pairs"])
    if p.get("corpus"):
        lines = _count_lines(p["corpus"])
        return min(n_ctx, _file_length(tok, p["corpus"])), lines if p.get("n") is None else min(p["n"], lines)
    task = p.get("task") or {"name-arith": "ioi-abc"}.get(name) or ("count01" if name.startswith("count-") else None)
    if task:
        n = p.get("n") or (256 if "batch" in p else 16)
        if name == "name-arith":
            n += p.get("n_avg") or 0
        return _task_length(tok, task, p.get("seed") or 0, pairs), n
    return 1, 1


def _first_diff(tok: Any, p: dict[str, Any]) -> int:
    """Where a typed pair, or a task's first pair, starts to differ (0 when unknown)."""
    clean, corrupt = p.get("clean"), p.get("corrupt")
    if not (clean and corrupt) and p.get("task"):
        from analyses.tasks import PAIR_TASKS

        if p["task"] in PAIR_TASKS:
            pair = PAIR_TASKS[p["task"]](1, p.get("seed") or 0)[0]
            clean, corrupt = pair.clean, pair.corrupt
    if not (clean and corrupt):
        return 0
    try:
        a, b = tok(clean)["input_ids"], tok(corrupt)["input_ids"]
    except Exception:
        return 0
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), 0)


def _length(tok: Any, text: str) -> int:
    try:
        return len(tok(text)["input_ids"])
    except Exception:
        return max(1, len(text) // 3)


def _task_length(tok: Any, task: str, seed: int = 0, pairs: bool = False) -> int:
    from analyses.tasks import PAIR_TASKS, TASKS, task_examples

    if pairs and task in PAIR_TASKS:  # a sample keeps the pairs as long as its first one
        return _length(tok, PAIR_TASKS[task](1, seed)[0].clean)
    if task not in TASKS:
        return 16
    e = task_examples(task, 1, 0)[0]
    return _length(tok, f"{e.prompt}{e.answer}")


def _count_lines(path: str) -> int:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return sum(1 for line in f if line.strip())
    except OSError:
        return 1


def _first_lines(path: str, k: int) -> list[str]:
    out: list[str] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.strip():
                    out.append(line)
                if len(out) >= k:
                    break
    except OSError:
        pass
    return out


def _file_length(tok: Any, path: str, sample: int = 32) -> int:
    """Mean tokens of the first ``sample`` non-blank lines (JSON lines by their text)."""
    import json

    lengths = []
    for line in _first_lines(path, sample):
        try:
            obj = json.loads(line)
            text = obj.get("text") or obj.get("prompt") or obj.get("clean") if isinstance(obj, dict) else line
        except ValueError:
            text = line
        lengths.append(_length(tok, str(text or line)))
    return max(1, round(sum(lengths) / len(lengths))) if lengths else 16

"""The terms every cost formula is built from: a forward's, a cache's and the logits' bytes, the
model's units, and the constants fitted by ``bench/estimate.py``."""

from __future__ import annotations

from typing import Any

from analyses.cost import Cost, Dims


ITEM = 2_500  # Python bytes per input (a pair, an example or a text: strings, token lists, objects)
DRAWN = 4_500  # Python bytes per held-out example: a test split is drawn from ten times as many candidates
ROW = 400  # Python bytes per row of a result table
RUN = 8 * 2**20  # what any run allocates besides its tensors (allocator slack, temporaries)
SWEEP_ROWS = 256  # rows per forward of a batched sweep (patching's rows_per_forward)
SHRINK_PAIRS = "fewer pairs (--n), fewer positions (--positions) or heads (--heads)"
SHRINK_TEXTS = "fewer texts (--n) or a smaller --batch"


def _fw(d: Dims, rows: float, seq: float | None = None) -> float:
    """Bytes one forward of ``rows`` rows holds at its widest (a block's temporaries, no grad)."""
    s = d.seq if seq is None else seq
    per_pos = (10 * d.d_model + 4 * d.d_mlp + 3 * d.n_heads * s if d.attention
               else 10 * d.d_model + 8 * d.d_inner + 3 * d.d_inner * d.d_state)
    return rows * s * per_pos * d.dtype_bytes


def _graph(d: Dims, rows: float) -> float:
    """Bytes a forward with gradients keeps for its backward pass (every block's activations)."""
    return d.n_layers * _fw(d, rows) * 0.95


def _cache(d: Dims, rows: float, units: float, seq: float | None = None) -> float:
    """Bytes of ``units`` [rows, seq, d_model] activations captured at every layer."""
    return rows * (d.seq if seq is None else seq) * d.n_layers * units * d.d_model * d.dtype_bytes


def _logits(d: Dims, rows: float, positions: float) -> float:
    return rows * positions * d.d_vocab * 4


def _heads(d: Dims) -> int:
    return d.n_heads if d.attention else 1


def _components(d: Dims) -> int:
    """Heads and MLPs (Mamba: layers)."""
    return d.n_layers * (d.n_heads + 1) if d.attention else d.n_layers


def _edges(d: Dims) -> int:
    """Edges of the EAP graph: writers (input, heads, MLPs) to later readers (q/k/v, MLPs, logits)."""
    h = _heads(d)
    writers, readers = 1 + d.n_layers * (h + 1), d.n_layers * (3 * h + 1) + 1
    return writers * readers // 2


def _suffix_share(d: Dims) -> float:
    """Mean share of the later layers a patched run from a given layer runs."""
    return (d.n_layers + 1) / (2 * d.n_layers)


def _mine(forwards: float, floor: float | None = None, **kw: Any) -> dict[str, Any]:
    return {"forwards": forwards, "floor": forwards if floor is None else floor, **kw}


def _cost(memory: float, d: Dims, rows: float = 0, **passes: Any) -> Cost:
    return Cost(RUN + memory + ITEM * d.items + ROW * rows, **passes)

"""Whole Mamba layers taken out of the IOI task: layer removal (a layer's write zeroed), and the
greedy search for a minimal layer set, by removal or by cross-talk ablation (a layer's in_proj
from the corrupted prompts). Definitions: ``analyses.mamba``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from analyses.errors import BadInput, Cancelled
from analyses.mamba.task import IN_PROJ, OUT, Task, require_mamba
from analyses.models.hooks import Intervention
from analyses.results import Series, Table


def removal_edits(layers: Sequence[int]) -> list[Intervention]:
    return [Intervention(OUT.format(layer), op="zero") for layer in layers]


def crosstalk_edits(task: Task, ablated: Sequence[int]) -> list[Intervention]:
    return [Intervention(IN_PROJ.format(layer), value=task.corrupt_cache[IN_PROJ.format(layer)]) for layer in ablated]


def layer_removal(task: Task) -> Table:
    """Accuracy, the paper's P(correct) (softmax over the candidate names), NLD and logit
    difference of the clean prompts with each layer's write zeroed in turn; the first row ("none")
    removes nothing and is the clean run."""
    require_mamba(task.model)
    n_layers = task.model.shape.n_layers
    removed = [(f"L{layer}", task.run(removal_edits([layer]))) for layer in range(n_layers)]
    rows = [("none", task.clean_scores), *removed]
    columns = {k: [r[k] for _, r in rows] for k in ("accuracy", "p_correct", "nld", "logit_diff")}
    meta = {"metric": "accuracy", "corrupt": task.corrupt_scores["accuracy"]}
    return Table("mamba_removal", [label for label, _ in rows], columns, meta)


def _counter(progress: Callable[[int, int], None] | None, n_layers: int) -> Callable[[], None]:
    """Reports each evaluation of a greedy search, out of at most n (n + 1) / 2 (it may stop sooner)."""
    done = itertools.count(1)
    total = n_layers * (n_layers + 1) // 2
    return (lambda: progress(next(done), total)) if progress is not None else (lambda: None)


@dataclass(frozen=True)
class _Move:
    """One direction of the greedy layer search. The search keeps a list of moved layers and
    measures each candidate move; ``edits(task, moved)`` are the interventions of a state."""

    mode: str
    edits: Callable[[Task, list[int]], list[Intervention]]
    starts_moved: bool  # the first state has every layer moved (then a move restores one)
    x_name: str
    order_key: str
    cancelled: str


REMOVE = _Move("removal", lambda task, removed: removal_edits(removed), False, "layers removed", "removed_order",
               "greedy removal cancelled")
RESTORE = _Move("crosstalk", lambda task, ablated: crosstalk_edits(task, ablated), True, "layers un-ablated",
                "added_order", "cross-talk search cancelled")


def greedy_layers(task: Task, target: float, move: _Move, should_stop: Callable[[], bool] | None = None,
                  progress: Callable[[int, int], None] | None = None) -> Series:
    """The greedy layer search behind both ``greedy_removal`` and ``greedy_crosstalk``: each step
    measures every move of one more layer and takes the one leaving the highest accuracy. REMOVE
    moves only while accuracy stays >= ``target``; RESTORE until accuracy reaches it."""
    require_mamba(task.model)
    n_layers = task.model.shape.n_layers
    clean = task.clean_scores
    if clean["accuracy"] < target:
        raise BadInput(f"the clean accuracy ({clean['accuracy']:.3f}) is below the target ({target:g})")
    moved: list[int] = []
    tick = _counter(progress, n_layers)

    def state(extra: list[int]) -> list[int]:  # the layers the edits act on
        now = moved + extra
        return [x for x in range(n_layers) if x not in now] if move.starts_moved else now

    history = [task.run(move.edits(task, state([]))) if move.starts_moved else clean]
    while len(moved) < n_layers and not (move.starts_moved and history[-1]["accuracy"] >= target):
        best = None
        for layer in range(n_layers):
            if layer in moved:
                continue
            if should_stop is not None and should_stop():
                raise Cancelled(move.cancelled)
            s = task.run(move.edits(task, state([layer])))
            tick()
            fits = move.starts_moved or s["accuracy"] >= target
            if fits and (best is None or s["accuracy"] > best[1]["accuracy"]):
                best = (layer, s)
        if best is None:
            break
        moved.append(best[0])
        history.append(best[1])
    kept = sorted(moved) if move.starts_moved else [layer for layer in range(n_layers) if layer not in moved]
    meta = {"target": target, move.order_key: [f"L{x}" for x in moved], "kept": [f"L{x}" for x in kept],
            "accuracy": history[-1]["accuracy"], "nld": history[-1]["nld"], "mode": move.mode}
    return Series("mamba_greedy", list(range(len(history))), {k: [h[k] for h in history] for k in ("accuracy", "nld")},
                  move.x_name, meta)


def greedy_removal(task: Task, target: float, should_stop: Callable[[], bool] | None = None,
                   progress: Callable[[int, int], None] | None = None) -> Series:
    """Greedily remove the layer whose removal leaves the highest accuracy, as long as accuracy
    stays >= ``target``. The kept layers are a minimal set (for this greedy order) keeping the
    target; x = number of layers removed."""
    return greedy_layers(task, target, REMOVE, should_stop, progress)


def greedy_crosstalk(task: Task, target: float, should_stop: Callable[[], bool] | None = None,
                     progress: Callable[[int, int], None] | None = None) -> Series:
    """Cross-talk removal: every layer's ``hook_in_proj`` starts resample-ablated (the corrupted
    prompts' value at every position); greedily un-ablate the layer that raises accuracy most
    until accuracy >= ``target``. x = number of layers un-ablated."""
    return greedy_layers(task, target, RESTORE, should_stop, progress)

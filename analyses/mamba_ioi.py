"""The IOI circuit in Mamba (Ensign & Garriga-Alonso 2024): layer removal, greedy minimal layer
sets, cross-talk removal, conv-slice patching and SSM-input name arithmetic.

Definitions (docs/mamba.md has them in full):

- *accuracy*: the fraction of clean prompts whose answer has the largest logit among the
  candidate names: the names in the prompt (tokens that are some pair's answer or distractor, or a
  name of the IOI task) plus that pair's corrupted answer, as the paper's "softmax over the three
  prompt names and the corruption name".
- *NLD*: ``(LD - LD_corrupt) / |LD_clean - LD_corrupt|`` (``analyses.metrics``), 1 = clean.
- *removing* a layer zeroes its whole write (``mixer.hook_out_proj``, bias included);
  *cross-talk ablation* of a layer writes the corrupted prompts' ``mixer.hook_in_proj`` at every
  position (its conv and SSM then read only the corrupted tokens; the gate is untouched).
"""

from __future__ import annotations

import itertools

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from analyses.errors import BadInput, Cancelled
from analyses.metrics import Metric, logit_diff
from analyses.models.base import HookedModel
from analyses.models.hooks import Intervention
from analyses.patching import activation_patching, baselines
from analyses.results import Grid, Series, Table

OUT = "blocks.{}.mixer.hook_out_proj"
IN_PROJ = "blocks.{}.mixer.hook_in_proj"
SSM_IN = "blocks.{}.mixer.hook_ssm_in"
SLICE = "blocks.{}.mixer.hook_conv_slice.{}"


def require_mamba(model: HookedModel) -> None:
    if model.shape.family != "mamba":
        raise BadInput(f"this analysis needs a Mamba model (this one is {model.shape.family})")


def name_token_ids(tokenizer) -> set[int]:
    """The IOI task's names as single tokens of this tokenizer (those it can spell so)."""
    from analyses.tasks.ioi import NAMES
    from analyses.tokens import resolve_token

    ids = set()
    for name in NAMES:
        try:
            ids.add(resolve_token(tokenizer, " " + name))
        except BadInput:
            pass
    return ids


def candidates(clean: Tensor, answer: Tensor, distractor: Tensor, names: set[int] = frozenset()) -> Tensor:
    """[n, k] candidate token ids per row: the row's answer (first), its distractor, and every
    prompt token that is a name (some row's answer or distractor, or in ``names``); short rows
    are padded with the answer."""
    vocab = set(answer.tolist()) | set(distractor.tolist()) | set(names)
    rows = []
    for r in range(clean.shape[0]):
        ids = [int(answer[r]), int(distractor[r])]
        ids += [t for t in dict.fromkeys(clean[r].tolist()) if t in vocab and t not in ids]
        rows.append(ids)
    width = max(len(r) for r in rows)
    return torch.tensor([r + [r[0]] * (width - len(r)) for r in rows])


@dataclass
class Task:
    """Aligned pairs with everything the metrics need, computed once: the clean and corrupted
    runs' last-token logit differences (for NLD) and the candidate names (for accuracy)."""

    model: HookedModel
    clean: Tensor
    corrupt: Tensor
    answer: Tensor
    distractor: Tensor
    cands: Tensor
    metric: Metric
    clean_cache: dict[str, Tensor]
    corrupt_cache: dict[str, Tensor]
    clean_scores: dict[str, float] = field(default_factory=dict)  # of the unedited runs, measured once
    corrupt_scores: dict[str, float] = field(default_factory=dict)

    @classmethod
    def build(cls, model: HookedModel, clean: Tensor, corrupt: Tensor, answer: Tensor, distractor: Tensor,
              names: set[int] = frozenset(), capture: Sequence[str] = ()) -> Task:
        c, r, m = baselines(model, clean, corrupt, answer, distractor, "nld", capture=list(capture))
        task = cls(model, clean, corrupt, answer, distractor, candidates(clean, answer, distractor, names), m,
                   c.cache, r.cache)
        task.clean_scores, task.corrupt_scores = task.scores(c.logits), task.scores(r.logits)
        return task

    def scores(self, logits: Tensor) -> dict[str, float]:
        """accuracy, NLD and mean logit difference of last-token logits [n, pos, vocab]."""
        n = self.clean.shape[0]
        last = logits[torch.arange(n), self.metric.last].float()
        picked = last.gather(1, self.cands.to(last.device))
        acc = float((picked.argmax(1) == 0).float().mean())
        nld = float(self.metric(logits)[0])
        ld = logit_diff(logits, self.metric.last, self.answer, self.distractor)
        return {"accuracy": acc, "nld": nld, "logit_diff": ld}

    def run(self, interventions: Sequence[Intervention] = ()) -> dict[str, float]:
        return self.scores(self.model.run(self.clean, interventions=interventions).logits)


def removal_edits(layers: Sequence[int]) -> list[Intervention]:
    return [Intervention(OUT.format(layer), op="zero") for layer in layers]


def crosstalk_edits(task: Task, ablated: Sequence[int]) -> list[Intervention]:
    return [Intervention(IN_PROJ.format(layer), value=task.corrupt_cache[IN_PROJ.format(layer)]) for layer in ablated]


# ---- layer removal --------------------------------------------------------------------------


def layer_removal(task: Task) -> Table:
    """Accuracy, NLD and logit difference of the clean prompts with each layer's write zeroed in
    turn; the first row ("none") removes nothing and is the clean run."""
    require_mamba(task.model)
    n_layers = task.model.shape.n_layers
    removed = [(f"L{layer}", task.run(removal_edits([layer]))) for layer in range(n_layers)]
    rows = [("none", task.clean_scores), *removed]
    columns = {k: [r[k] for _, r in rows] for k in ("accuracy", "nld", "logit_diff")}
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


# ---- conv slices ----------------------------------------------------------------------------


def conv_width(model: HookedModel) -> int:
    return int(model.model.config.conv_kernel)


def conv_slice_patching(
    task: Task,
    layers: Sequence[int] | None = None,
    direction: str = "noise",
    token_labels: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Grid:
    """NLD with one conv kernel slice at one position of one layer patched: ``noise`` writes the
    corrupted prompts' slice into the clean run (the paper's; it plots 1 - NLD), ``denoise`` the
    clean slice into the corrupted run. Slice k at position p is ``w_k * x[p + k]``
    (x = ``hook_in_proj``), k = -(width-1)..0. Grid [(layer, slice), pos]: a row per layer and
    slice, labelled "L{layer} k={k}". The sweep is ``activation_patching`` at the stacked slices
    (from the patched layer on, time-bounded forwards): a cancelled one returns the cells it
    measured (the rest NaN, ``meta["partial"]``)."""
    require_mamba(task.model)
    if direction not in ("noise", "denoise"):
        raise BadInput("--direction must be noise or denoise")
    model, seq = task.model, task.clean.shape[1]
    n_layers, width = model.shape.n_layers, conv_width(model)
    layers = list(range(n_layers)) if layers is None else list(layers)
    bad = [x for x in layers if not 0 <= x < n_layers]
    if bad:
        raise BadInput(f"layers must be between 0 and {n_layers - 1}; got {', '.join(map(str, bad))}")
    ks = list(range(-(width - 1), 1))
    swept = list(dict.fromkeys(layers))
    grid = activation_patching(model, task.clean, task.corrupt, task.answer, task.distractor, "conv_slice",
                               metric="nld", method=direction, progress=progress, should_stop=should_stop,
                               layers=swept)
    by_layer = torch.tensor(grid.values).transpose(1, 2)  # [layer, slice, pos]
    values = by_layer[[swept.index(x) for x in layers]].reshape(-1, seq)
    tokens = token_labels or [str(i) for i in range(seq)]
    labels = {"slice": [f"L{x} k={k}" for x in layers for k in ks], "pos": [f"{i}:{t}" for i, t in enumerate(tokens)]}
    # method: the TUI heatmap's baseline (a noised cell that changes nothing reads 1, the clean run)
    meta = {"metric": "nld", "method": direction, "clean": 1.0, "corrupt": 0.0, "layers": layers, "slices": ks,
            **{k: grid.meta[k] for k in ("partial", "cells_done", "cells_total")}}
    return Grid("conv_slices", ["slice", "pos"], labels, values.tolist(), meta)


# ---- SSM-input name arithmetic --------------------------------------------------------------


MODES = ("replace", "subtract-add")


def name_slots(ids: Sequence[int], names: set[int]) -> list[int]:
    """Positions of the name tokens of a prompt, in order (the name slots)."""
    return [p for p, t in enumerate(ids) if t in names]


def intervene(model: HookedModel, tokens: Tensor, layer: int, pos: Tensor, old: Tensor, new: Tensor,
              mode: str) -> Tensor:
    """Last-token logits [n, vocab] with ``hook_ssm_in`` of ``layer`` at row r's position
    ``pos[r]`` set to ``new[r]`` (replace) or to ``x - old[r] + new[r]`` (subtract-add)."""
    if mode not in MODES:
        raise BadInput(f"--mode must be one of {', '.join(MODES)}")
    rows = torch.arange(tokens.shape[0])

    def fn(act: Tensor) -> Tensor:
        out = act.clone()
        x = act[rows, pos]
        out[rows, pos] = (new.to(x) if mode == "replace" else x - old.to(x) + new.to(x))
        return out

    logits = model.run(tokens, interventions=[Intervention(SSM_IN.format(layer), op="fn", fn=fn)]).logits
    return logits[:, -1]


def _by_length(rows: list[tuple[list[int], ...]]) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(len(r[0]), []).append(i)
    return groups


def name_averages(model: HookedModel, prompts: list[list[int]], names: set[int], layer: int, n_slots: int,
                  offset: int = 1, batch: int = 64) -> dict[tuple[int, int], Tensor]:
    """avg[(slot, name id)] = mean ``hook_ssm_in`` of ``layer`` at (that slot's position +
    ``offset``) over the prompts whose slot holds that name."""
    sums: dict[tuple[int, int], Tensor] = {}
    counts: dict[tuple[int, int], int] = {}
    name = SSM_IN.format(layer)
    groups = _by_length([(p,) for p in prompts])
    for idx in groups.values():
        for start in range(0, len(idx), batch):
            part = idx[start:start + batch]
            acts = model.run(torch.tensor([prompts[i] for i in part]), capture=[name]).cache[name].float()
            for row, i in enumerate(part):
                slots = name_slots(prompts[i], names)
                for k, p in enumerate(slots[:n_slots]):
                    if p + offset < acts.shape[1]:
                        key = (k, prompts[i][p])
                        sums[key] = sums.get(key, 0) + acts[row, p + offset]
                        counts[key] = counts.get(key, 0) + 1
    return {k: v / counts[k] for k, v in sums.items()}


def name_arithmetic(
    model: HookedModel,
    tokenizer,
    layer: int,
    mode: str,
    n_avg: int = 2000,
    n: int = 200,
    seed: int = 0,
    offset: int = 1,
    should_stop: Callable[[], bool] | None = None,
) -> Grid:
    """Flip rate per (intervened slot p1, averages' slot p2) on three-name IOI prompts.

    p1 in the first clause (slots 0-2, holding the answer): old = the answer, new = another name
    not in the prompt; the expected new answer is new. p1 in the second clause (3, 4: a repeated
    name): old = that name, new = the answer; the expected new answer is old. A prompt counts as
    flipped when the expected new answer's logit beats the original answer's. The intervention
    and the averages are at (slot position + ``offset``): 1 in the paper, where layer 39's conv
    has shifted each name one position on."""
    from analyses.tasks import task_examples
    from analyses.tokens import encode_prompt, resolve_token

    require_mamba(model)
    if mode not in MODES:
        raise BadInput(f"--mode must be one of {', '.join(MODES)}")
    if not 0 <= layer < model.shape.n_layers:
        raise BadInput(f"--layer must be between 0 and {model.shape.n_layers - 1}")
    names = name_token_ids(tokenizer)
    if len(names) < 5:
        raise BadInput("this tokenizer spells too few IOI names as single tokens")

    def encode(examples):
        out = []
        for e in examples:
            ids = encode_prompt(tokenizer, e.prompt, None, None)
            if len(name_slots(ids, names)) == 5:
                out.append((ids, resolve_token(tokenizer, e.answer)))
        return out

    avg_set = encode(task_examples("ioi-abc", n_avg, seed + 1))
    test = encode(task_examples("ioi-abc", n, seed))
    if not 0 <= offset <= 3:
        raise BadInput("--offset must be between 0 and 3 (positions after the name)")
    avg = name_averages(model, [ids for ids, _ in avg_set], names, layer, 5, offset)
    gen = torch.Generator().manual_seed(seed)
    flips = torch.zeros(5, 5)
    counts = torch.zeros(5, 5)
    name_list = sorted(names)
    for p1 in range(5):
        for p2 in range(5):
            if should_stop is not None and should_stop():
                raise Cancelled("name arithmetic cancelled")
            rows = []  # (ids, pos, old, new, expected, original)
            for ids, answer in test:
                slots = name_slots(ids, names)
                here = ids[slots[p1]]
                if p1 < 3:
                    if here != answer:
                        continue
                    others = [x for x in name_list if x not in ids and (p2, x) in avg]
                    if not others or (p2, here) not in avg:
                        continue
                    new = others[int(torch.randint(len(others), (1,), generator=gen))]
                    rows.append((ids, slots[p1] + offset, here, new, new, answer))
                else:
                    if (p2, here) not in avg or (p2, answer) not in avg:
                        continue
                    rows.append((ids, slots[p1] + offset, here, answer, here, answer))
            for idx in _by_length(rows).values():
                group = [rows[i] for i in idx]
                logits = intervene(model, torch.tensor([r[0] for r in group]), layer,
                                   torch.tensor([r[1] for r in group]),
                                   torch.stack([avg[(p2, r[2])] for r in group]),
                                   torch.stack([avg[(p2, r[3])] for r in group]), mode)
                expected = logits.gather(1, torch.tensor([[r[4]] for r in group]))[:, 0]
                original = logits.gather(1, torch.tensor([[r[5]] for r in group]))[:, 0]
                flips[p1, p2] += float((expected > original).sum())
                counts[p1, p2] += len(group)
    rate = torch.where(counts > 0, flips / counts.clamp(min=1), torch.full_like(flips, float("nan")))
    labels = [f"slot {k}" for k in range(5)]
    meta = {"metric": "flip rate", "mode": mode, "layer": layer, "offset": offset, "n_test": len(test), "n_avg": len(avg_set), "prompts_per_cell": counts.tolist(),
            "mean_flip_rate": float(rate.nanmean()), "averages": len(avg)}
    return Grid("name_arith", ["slot", "avg slot"], {"slot": labels, "avg slot": labels}, rate.tolist(), meta)


# ---- positional EAP view and circuit search --------------------------------------------------


def eap_positions(table: Table, top: int | None = None) -> Grid:
    """An ``edge_attribution(positional=True)`` table as an edge x position Grid, the ``top``
    edges by |total score| first (all when None)."""
    pos_cols = [c for c in table.columns if c != "score"]
    if not pos_cols:
        raise BadInput("the EAP table has no per-position scores (run it with positional=True)")
    order = table.top(top if top is not None else len(table.labels))
    values = [[table.columns[c][i] for c in pos_cols] for i in order]
    # Scores are 0 where an edge does nothing: no clean/corrupt baseline for the heatmap to centre on.
    meta = {("metric_" + k if k in ("clean", "corrupt") else k): v for k, v in table.meta.items()}
    return Grid("eap_pos", ["edge", "pos"], {"edge": [table.labels[i] for i in order], "pos": pos_cols}, values, meta)


def circuit_search(task: Task, table: Table, target: float,
                   should_stop: Callable[[], bool] | None = None) -> Series:
    """The fewest top-|score| edges of an EAP ``table`` whose circuit (every other edge carrying
    its corrupted value, on the clean prompts) has accuracy >= ``target``, by binary search on k
    (it assumes accuracy grows with k; every k it measured is in the result). With faithfulness
    ``(NLD(circuit) - 0) / (1 - 0)``, the circuit's NLD."""
    from analyses.attribution import EdgeGraph, run_with_edges_patched, select_edges

    model = task.model
    graph = EdgeGraph(model)
    order = table.top(len(table.labels))
    src = task.model.run(task.corrupt, capture=graph.writer_hooks()).cache
    seen: dict[int, dict[str, float]] = {}

    def measure(k: int) -> dict[str, float]:
        if k not in seen:
            if should_stop is not None and should_stop():
                raise Cancelled("circuit search cancelled")
            keep = select_edges(table, graph, top=k) & graph.allowed
            seen[k] = task.scores(run_with_edges_patched(model, task.clean, src, graph.allowed & ~keep, graph))
        return seen[k]

    total = len(order)
    if measure(total)["accuracy"] < target:
        raise BadInput(f"the full model's accuracy ({measure(total)['accuracy']:.3f}) is below the target ({target:g})")
    lo, hi = 0, total  # invariant: measure(hi) meets the target
    while lo < hi:
        mid = (lo + hi) // 2
        if measure(mid)["accuracy"] >= target:
            hi = mid
        else:
            lo = mid + 1
    ks = sorted(seen)
    best = seen[hi]
    meta = {"target": target, "edges": hi, "edges_total": total, "accuracy": best["accuracy"],
            "faithfulness": best["nld"], "circuit": [table.labels[i] for i in order[:hi]],
            "method": table.meta.get("method", "EAP")}
    return Series("eap_circuit", ks, {"accuracy": [seen[k]["accuracy"] for k in ks],
                                      "faithfulness (NLD)": [seen[k]["nld"] for k in ks]}, "edges kept", meta)

"""Runs with chosen edges patched: circuit faithfulness (one k, a curve over k, and the fewest
top edges keeping a target accuracy), exact edge scores and path patching.

An edge u -> v is patched by adding ``e_u(source) - e_u(current)`` to reader v's input: the
residual stream is a sum, so that is exactly u's output as the source run had it, on that edge
alone (``analyses.edge_graph``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from analyses.edge_graph import EdgeGraph, _edge_set, prune_edges, select_edges
from analyses.errors import BadInput, Cancelled
from analyses.models.base import HookedModel
from analyses.models.hooks import Intervention
from analyses.patching import baselines
from analyses.results import Series, Table

if TYPE_CHECKING:
    from analyses.mamba.task import Task


def run_with_edges_patched(
    model: HookedModel,
    tokens: Tensor,
    source_acts: dict[str, Tensor],
    patched: Tensor,
    graph: EdgeGraph | None = None,
) -> Tensor:
    """Logits of a run on ``tokens`` in which every edge marked in ``patched`` [writers, readers]
    carries the writer's output from the source run instead of the current one."""
    graph = graph or EdgeGraph(model)
    src = graph.writer_outputs(source_acts)  # [W, b, s, d]
    current: dict[str, Tensor] = {}
    edits = []

    def record(name: str) -> Callable[[Tensor], Tensor]:
        def fn(act: Tensor) -> Tensor:
            current[name] = act
            return act
        return fn

    for name in graph.writer_hooks():
        edits.append(Intervention(name, op="fn", fn=record(name)))
    done: dict[str, Tensor] = {}  # writer outputs of hooks already run: computed once, not per reader

    def outputs_so_far(upto: int) -> Tensor:
        parts, count = [], 0
        for name in graph.writer_hooks():
            if count >= upto:
                break
            if name not in done:
                if name not in current:  # not reached yet (only earlier writers are ever read)
                    parts.append(graph.hook_writer_outputs(name, _complete(current, source_acts)))
                    count += len(parts[-1])
                    continue
                done[name] = graph.hook_writer_outputs(name, current)
            parts.append(done[name])
            count += len(done[name])
        return torch.cat(parts)[:upto]

    def edit(hook: str, idx: list[int]) -> Callable[[Tensor], Tensor]:
        readers = [graph.readers[j] for j in idx]

        def fn(act: Tensor) -> Tensor:
            upto = 1 + sum(1 for w in graph.writers[1:] if w.layer <= readers[0].layer)
            cur = outputs_so_far(upto)
            delta = (src[:upto] - cur).to(act.dtype)  # [w, b, s, d]
            mask = patched[:upto][:, idx].to(act.device, act.dtype)  # [w, r]
            add = torch.einsum("wbsd,wr->bsrd", delta, mask)
            if readers[0].head is None:
                return act + add[:, :, 0]
            heads = [r.head for r in readers]
            out = act.clone()
            out[:, :, heads] = act[:, :, heads] + add
            return out
        return fn

    for hook in graph.reader_hooks():
        idx = [j for j, r in enumerate(graph.readers) if r.hook == hook and bool(patched[:, j].any())]
        if idx:
            edits.append(Intervention(hook, op="fn", fn=edit(hook, idx)))
    return model.run(tokens, interventions=edits).logits


def _complete(current: dict[str, Tensor], source: dict[str, Tensor]) -> dict[str, Tensor]:
    """The current run's writer activations, with the not-yet-computed (later) ones taken from
    the source run so the stack has a fixed shape; only earlier writers are ever used."""
    return {k: current.get(k, v) for k, v in source.items()}


def faithfulness(
    model: HookedModel,
    clean: Tensor,
    corrupt: Tensor,
    answer: Tensor,
    distractor: Tensor,
    keep: Tensor,
    metric: str = "logit_diff",
    token_set: Tensor | None = None,
) -> dict[str, float]:
    """Run the clean prompts with every edge *not* in ``keep`` [writers, readers] patched to its
    corrupted value: ``(M(circuit) - M(corrupt)) / (M(clean) - M(corrupt))``."""
    graph = EdgeGraph(model)
    clean_run, corrupt_run, m = baselines(model, clean, corrupt, answer, distractor, metric, token_set, graph.writer_hooks())
    logits = run_with_edges_patched(model, clean, corrupt_run.cache, graph.allowed & ~keep, graph)
    value, lo, hi = float(m(logits)), float(m(corrupt_run.logits)), float(m(clean_run.logits))
    return {"circuit": value, "clean": hi, "corrupt": lo, "faithfulness": (value - lo) / ((hi - lo) or 1.0),
            "edges_kept": int((keep & graph.allowed).sum()), "edges_total": int(graph.allowed.sum())}


def exact_edge_scores(
    model: HookedModel,
    clean: Tensor,
    corrupt: Tensor,
    answer: Tensor,
    distractor: Tensor,
    metric: str = "logit_diff",
    token_set: Tensor | None = None,
) -> Table:
    """M(clean with one edge corrupted) - M(clean), edge by edge: what EAP approximates."""
    graph = EdgeGraph(model)
    clean_run, corrupt_run, m = baselines(model, clean, corrupt, answer, distractor, metric, token_set, graph.writer_hooks())
    base = float(m(clean_run.logits))
    edges = graph.edges()
    scores = []
    for i, j in edges:
        one = torch.zeros_like(graph.allowed)
        one[i, j] = True
        scores.append(float(m(run_with_edges_patched(model, clean, corrupt_run.cache, one, graph))) - base)
    return Table("exact_edges", [graph.edge_label(i, j) for i, j in edges], {"score": scores}, {"metric": metric})


def default_ks(n_edges: int) -> list[int]:
    """1, 2, 5, 10, 20, 50, ... below ``n_edges``, then ``n_edges``: a curve that starts small and
    always ends at the whole graph (faithfulness 1 there), evenly spread on a log axis."""
    ks, scale = [], 1
    while True:
        for m in (1, 2, 5):
            if m * scale >= n_edges:
                return ks + [n_edges] if n_edges > 0 else ks
            ks.append(m * scale)
        scale *= 10


def faithfulness_curve(
    model: HookedModel,
    clean: Tensor,
    corrupt: Tensor,
    answer: Tensor,
    distractor: Tensor,
    table: Table,
    ks: list[int],
    prune: bool = False,
    metric: str = "logit_diff",
    token_set: Tensor | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[dict]:
    """Faithfulness of the top-k edges of an EAP ``table`` (by |score|; pruned with ``prune``) for
    each k in ``ks``, so one can see how many edges a circuit needs. The clean and corrupted
    runs happen once; each k costs one edge-patched run (none when its edge set repeats)."""
    bad = [k for k in ks if k < 0]
    if bad or not ks:
        raise BadInput(f"edge counts must be 0 or more; got {', '.join(map(str, bad)) or 'none'}")
    graph = EdgeGraph(model)
    order = table.top(len(table.labels))
    clean_run, corrupt_run, m = baselines(model, clean, corrupt, answer, distractor, metric, token_set, graph.writer_hooks())
    hi, lo = float(m(clean_run.logits)), float(m(corrupt_run.logits))
    out: list[dict] = []
    last: tuple[Tensor, float] | None = None
    for n, k in enumerate(ks):
        if should_stop is not None and should_stop():
            raise Cancelled("faithfulness curve cancelled")
        keep = _edge_set(table, graph, order[:k])
        keep = prune_edges(keep, graph) if prune else keep & graph.allowed
        if last is None or not torch.equal(last[0], keep):
            logits = run_with_edges_patched(model, clean, corrupt_run.cache, graph.allowed & ~keep, graph)
            last = (keep, float(m(logits)))
        value = last[1]
        out.append({"k": k, "edges_kept": int(keep.sum()), "faithfulness": (value - lo) / ((hi - lo) or 1.0),
                    "circuit": value, "clean": hi, "corrupt": lo})
        if progress is not None:
            progress(n + 1, len(ks))
    return out


def path_patching(
    model: HookedModel,
    clean: Tensor,
    corrupt: Tensor,
    answer: Tensor,
    distractor: Tensor,
    senders: list[str],
    receivers: list[str],
    metric: str = "logit_diff",
    token_set: Tensor | None = None,
) -> dict[str, float]:
    """The corrupted run with the senders' clean outputs reaching the receivers' inputs directly
    (every other path frozen at its corrupted value): the metric, and its baselines."""
    graph = EdgeGraph(model)
    unknown = [s for s in senders if s not in graph.writer_index] + [r for r in receivers if r not in graph.reader_index]
    if unknown:
        raise BadInput(f"unknown node(s): {', '.join(unknown)}; writers are like L0H1, L0MLP, input; "
                       "readers like L1H2.q, L1MLP, logits")
    if not senders or not receivers:
        raise BadInput("path patching needs at least one sender and one receiver")
    patched = torch.zeros_like(graph.allowed)
    for s in senders:
        for r in receivers:
            patched[graph.writer_index[s], graph.reader_index[r]] = True
    patched &= graph.allowed
    if not patched.any():
        raise BadInput(f"no edge from {', '.join(senders)} reaches {', '.join(receivers)}: a sender must write "
                       "before its receiver reads (an earlier layer, or a layer's heads into its MLP)")
    clean_run, corrupt_run, m = baselines(model, clean, corrupt, answer, distractor, metric, token_set, graph.writer_hooks())
    logits = run_with_edges_patched(model, corrupt, clean_run.cache, patched, graph)
    return {"patched": float(m(logits)), "clean": float(m(clean_run.logits)), "corrupt": float(m(corrupt_run.logits)),
            "edges": int(patched.sum())}


def circuit_search(task: Task, table: Table, target: float,
                   should_stop: Callable[[], bool] | None = None) -> Series:
    """The fewest top-|score| edges of an EAP ``table`` whose circuit (every other edge carrying
    its corrupted value, on the clean prompts) has accuracy >= ``target``, by binary search on k
    (it assumes accuracy grows with k; every k it measured is in the result). With faithfulness
    ``(NLD(circuit) - 0) / (1 - 0)``, the circuit's NLD."""
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

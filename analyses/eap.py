"""Edge attribution patching (EAP, EAP-IG, positional): every edge's score from one backward pass
(or one per interpolation step), and the positional scores as an edge x position grid.

An edge is scored ``(e_u^corr - e_u^clean) . dM/d input_v`` with the gradient on the clean run
(averaged over the interpolation steps for IG): the estimated change of the metric when that edge
alone is corrupted. Edges are ranked by magnitude.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from analyses.edge_graph import EdgeGraph
from analyses.errors import BadInput, Cancelled
from analyses.metrics import Metric, logit_diff, metric_columns
from analyses.models.base import HookedModel
from analyses.models.hooks import Intervention
from analyses.results import Grid, Table


def edge_attribution(
    model: HookedModel,
    clean: Tensor,
    corrupt: Tensor,
    answer: Tensor,
    distractor: Tensor,
    metric: str = "logit_diff",
    ig_steps: int = 0,
    positional: bool = False,
    token_labels: list[str] | None = None,
    token_set: Tensor | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Table:
    """Scores of every edge in one backward pass (EAP), or in ``ig_steps`` (EAP-IG: gradients
    averaged over inputs interpolated between the corrupted and clean embeddings, k/m for
    k = 0..m-1). ``positional`` keeps one score per (edge, position), over aligned prompts.
    ``progress(done, total)`` follows the backward passes; ``should_stop`` is checked before each."""
    if ig_steps < 0:
        raise BadInput(f"--ig must be a positive number of steps (0 is plain EAP); got {ig_steps}")
    if clean.shape != corrupt.shape:
        raise BadInput(f"clean and corrupted prompts differ in token length: {clean.shape[1]} vs {corrupt.shape[1]}")
    graph = EdgeGraph(model)
    n, seq = clean.shape
    # Only the last token's answer logits enter the metric: every run unembeds that alone.
    last = torch.full((n,), seq - 1)
    vocab, a_col, d_col = metric_columns(metric, answer, distractor)
    at = torch.zeros(n, dtype=torch.long)
    writers = graph.writer_hooks()
    embeds = ["hook_embed"] if ig_steps else []
    quick = {"logit_pos": last, "vocab": vocab}
    corrupt_run = model.run(corrupt, capture=writers + embeds, **quick)
    m = Metric(metric, at, a_col, d_col, token_set, 0.0, logit_diff(corrupt_run.logits, at, a_col, d_col))
    clean_cache = None
    if ig_steps:  # the gradient passes run on interpolated inputs, so the clean run is one of its own
        clean_run = model.run(clean, capture=writers + embeds, **quick)
        m.clean, clean_cache = logit_diff(clean_run.logits, at, a_col, d_col), clean_run.cache
        clean_value = float(m(clean_run.logits))

    def score(logits: Tensor) -> Tensor:
        if not ig_steps:  # this forward is the clean run: it sets the nld normalisation
            m.clean = logit_diff(logits.detach(), at, a_col, d_col)
        return m(logits)[0]

    readers = graph.reader_hooks()
    grads_sum: dict[str, Tensor] = {}
    steps = max(1, ig_steps)
    for k in range(steps):
        if should_stop is not None and should_stop():
            raise Cancelled("edge attribution cancelled")
        edits = []
        if ig_steps:
            alpha = k / ig_steps
            e_clean, e_corr = clean_cache["hook_embed"], corrupt_run.cache["hook_embed"]
            edits.append(Intervention("hook_embed", value=e_corr + alpha * (e_clean - e_corr)))
        value, grads, cache = model.gradients(clean, score, readers, interventions=edits,
                                              capture=None if ig_steps else writers, **quick)
        if not ig_steps:
            clean_cache, clean_value = cache, float(value)
        for name, g in grads.items():
            grads_sum[name] = g if name not in grads_sum else grads_sum[name] + g
        if progress is not None:
            progress(k + 1, steps)
    # Summed over prompts: the metric is a batch mean, so its gradient already carries the 1/n.
    scores = _edge_scores(graph, _writer_diffs(graph, corrupt_run.cache, clean_cache), grads_sum, steps, positional)
    kept = scores[graph.allowed]  # [edges(, pos)] in the order of graph.edges()
    labels = [graph.edge_label(i, j) for i, j in graph.edges()]
    meta = {"method": f"EAP-IG ({ig_steps} steps)" if ig_steps else "EAP", "metric": metric,
            "clean": clean_value, "corrupt": float(m(corrupt_run.logits)),
            "n_writers": len(graph.writers), "n_readers": len(graph.readers)}
    if positional:
        tokens = token_labels or [str(i) for i in range(seq)]
        columns = {f"{p}:{t}": kept[:, p].tolist() for p, t in enumerate(tokens)}
        return Table("eap", labels, {"score": kept.sum(1).tolist(), **columns}, meta)
    return Table("eap", labels, {"score": kept.tolist()}, meta)


def _writer_diffs(graph: EdgeGraph, corr: dict[str, Tensor], clean: dict[str, Tensor]) -> Tensor:
    """[writers, b, s, d]: corrupted minus clean writer outputs. Outputs are linear in the
    activations and biases cancel, so each layer's heads are projected once, from their z change."""
    out = []
    for name in graph.writer_hooks():
        if name.endswith("attn.hook_z"):
            out.append(graph.hook_writer_outputs(name, {name: corr[name] - clean[name]}))
        else:
            out.append(graph.hook_writer_outputs(name, corr) - graph.hook_writer_outputs(name, clean))
    return torch.cat(out)


def _edge_scores(graph: EdgeGraph, diff: Tensor, grads: dict[str, Tensor], steps: int, positional: bool) -> Tensor:
    """[writers, readers(, pos)] ``diff . grad`` summed over prompts, positions (unless
    ``positional``) and d_model: one matrix product per layer's readers (their gradients side by
    side), over only the writers that come before them (the rest are no edges)."""
    w, r = graph.allowed.shape
    b, s, d = diff.shape[1:]
    scores = diff.new_zeros((w, r, s) if positional else (w, r))
    by_layer: dict[int, list[int]] = {}
    for j, reader in enumerate(graph.readers):
        by_layer.setdefault(reader.layer, []).append(j)
    flat = diff.flatten(1) if not positional else diff.permute(2, 0, 1, 3).reshape(s, w, b * d)
    for cols in by_layer.values():
        feeders = graph.allowed[:, cols].any(1).nonzero()
        if not len(feeders):
            continue
        upto = int(feeders.max()) + 1  # writers come in layer order
        parts = []
        for j in cols:
            reader = graph.readers[j]
            g = grads[reader.hook]
            parts.append(g[:, :, reader.head] if reader.head is not None else g)
        g = torch.stack(parts).float() / steps  # [len(cols), b, s, d]: this layer's readers only
        if positional:
            g = g.permute(2, 0, 1, 3).reshape(s, len(cols), b * d)
            scores[:upto, cols] = torch.bmm(flat[:, :upto], g.transpose(1, 2)).permute(1, 2, 0)
        else:
            scores[:upto, cols] = flat[:upto] @ g.flatten(1).T
    return scores


# ---- positional EAP view ----------------------------------------------------------------------


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

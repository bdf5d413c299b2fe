"""Attribution patching (nodes), edge attribution patching (EAP, EAP-IG, positional), and runs
with chosen edges patched: circuit faithfulness, exact edge scores and path patching.

The edge graph (seed-papers.md §6). Writers: ``input`` (token + position embeddings), every head
``L{l}H{h}`` (its output ``z_h W_O[h]``), every MLP ``L{l}MLP``, and for Mamba every layer ``L{l}``
(its out_proj output). Readers: every head's query, key and value inputs (``L{l}H{h}.q/.k/.v``;
key/value heads under GQA), every MLP's input, every Mamba layer's input, and ``logits`` (the
final residual stream). Because the residual stream is a sum, the part of a reader's input that
comes from writer u is exactly u's output, so an edge can be patched alone: the reader's input
gets ``e_u(source) - e_u(current)`` added. Output biases are constant and belong to no edge.

Sign conventions: node attribution is denoising (corrupted run, clean activation), reported as
the estimated patched metric, in the same units as activation patching. EAP / EAP-IG score an
edge as ``(e_u^corr - e_u^clean) . dM/d input_v`` with the gradient on the clean run (averaged
over the interpolation steps for IG): the estimated change of the metric when that edge alone is
corrupted. Edges are ranked by magnitude.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from analyses.errors import BadInput, Cancelled
from analyses.labels import head_label, mlp_label
from analyses.metrics import Metric, logit_diff, metric_columns
from analyses.models.base import HookedModel
from analyses.models.hooks import Intervention
from analyses.patching import baselines, sites_for
from analyses.results import Grid, Table

# ---- node attribution patching ---------------------------------------------------------------


def attribution_patching(
    model: HookedModel,
    clean: Tensor,
    corrupt: Tensor,
    answer: Tensor,
    distractor: Tensor,
    sites: Iterable[str],
    metric: str = "logit_diff",
    by_pos: bool = True,
    token_labels: list[str] | None = None,
    token_set: Tensor | None = None,
) -> list[Grid]:
    """``M(corrupt) + (a_clean - a_corr) . dM/da`` for every cell of every site, from two forward
    passes and one backward pass in all: the linear estimate of each activation-patching cell."""
    sites = list(sites)
    table = sites_for(model)
    for site in sites:
        if site not in table:
            raise BadInput(f"site {site!r} is not available for {model.shape.family}; sites: {', '.join(table)}")
    seq = clean.shape[1]
    layers = range(model.shape.n_layers)
    names = {site: [f"blocks.{layer}.{table[site]}" for layer in layers] for site in sites}
    flat = [name for site in sites for name in names[site]]
    clean_run, _, m = baselines(model, clean, corrupt, answer, distractor, metric, token_set, flat)
    value, grads, cache = model.gradients(corrupt, lambda logits: m(logits)[0], flat, capture=flat)
    grids = []
    for site in sites:
        cells = []
        for name in names[site]:
            attr = (clean_run.cache[name] - cache[name]).float() * grads[name].float()
            if name.endswith("hook_pattern"):  # [b, head, query, key] -> [b, query, head]
                attr = attr.sum(-1).transpose(1, 2)
            elif attr.ndim == 4:  # [b, pos, head, d_head]
                attr = attr.sum(-1)
            else:  # [b, pos, d]
                attr = attr.sum(-1)
            attr = attr.sum(0)  # over prompts: the batch-mean metric's gradient already carries 1/n
            cells.append(attr if by_pos else attr.sum(0))
        values = (torch.stack(cells) + float(value)).cpu()
        axes = ["layer"] + (["pos"] if by_pos else []) + (["head"] if values.ndim == (3 if by_pos else 2) else [])
        tokens = token_labels or [str(i) for i in range(seq)]
        labels = {"layer": [f"L{layer}" for layer in layers], "pos": [f"{i}:{t}" for i, t in enumerate(tokens)],
                  "head": [f"H{h}" for h in range(values.shape[-1])]}
        meta = {"site": site, "metric": metric, "clean": float(m(clean_run.logits)), "corrupt": float(value)}
        grids.append(Grid("attrib", axes, {a: labels[a] for a in axes}, values.tolist(), meta))
    return grids


# ---- the edge graph --------------------------------------------------------------------------


@dataclass(frozen=True)
class Writer:
    label: str
    layer: int  # -1 for the input
    kind: str  # input | head | mlp | mamba
    index: int = 0  # head index


@dataclass(frozen=True)
class Reader:
    label: str
    layer: int  # n_layers for logits
    hook: str  # the hook point holding this reader's input
    head: int | None = None  # head slice of a split q/k/v input
    reads_same_layer_heads: bool = False  # an MLP after its layer's attention (sequential residual)


class EdgeGraph:
    """Writers, readers and the edges between them for one model."""

    def __init__(self, model: HookedModel) -> None:
        s = model.shape
        self.model = model
        self.n_layers = s.n_layers
        self.writers: list[Writer] = [Writer("input", -1, "input")]
        self.readers: list[Reader] = []
        for layer in range(s.n_layers):
            if s.family == "mamba":
                self.writers.append(Writer(f"L{layer}", layer, "mamba"))
                self.readers.append(Reader(f"L{layer}", layer, f"blocks.{layer}.hook_layer_in"))
                continue
            self.writers += [Writer(head_label(layer, h), layer, "head", h) for h in range(s.n_heads)]
            self.writers.append(Writer(mlp_label(layer), layer, "mlp"))
            for x, count in (("q", s.n_heads), ("k", s.n_kv_heads), ("v", s.n_kv_heads)):
                self.readers += [Reader(f"L{layer}H{h}.{x}", layer, f"blocks.{layer}.hook_{x}_input", h) for h in range(count)]
            self.readers.append(Reader(f"L{layer}MLP", layer, f"blocks.{layer}.hook_mlp_in", None, not s.parallel_attn_mlp))
        self.readers.append(Reader("logits", s.n_layers, f"blocks.{s.n_layers - 1}.hook_resid_post"))
        w_layer = torch.tensor([w.layer for w in self.writers])[:, None]
        r_layer = torch.tensor([r.layer for r in self.readers])[None, :]
        is_head = torch.tensor([w.kind == "head" for w in self.writers])[:, None]
        same = torch.tensor([r.reads_same_layer_heads for r in self.readers])[None, :]
        self.allowed = (w_layer < r_layer) | ((w_layer == r_layer) & is_head & same)
        self.writer_index = {w.label: i for i, w in enumerate(self.writers)}
        self.reader_index = {r.label: j for j, r in enumerate(self.readers)}

    def feeds(self) -> Tensor:
        """[readers, writers] bool: reader j is an input of writer node i (L1H2.q/.k/.v feed the
        head L1H2; under GQA a key/value head feeds every query head of its group). ``logits``
        feeds nothing: it is the sink."""
        out = torch.zeros(len(self.readers), len(self.writers), dtype=torch.bool)
        s = self.model.shape
        group = s.n_heads // s.n_kv_heads if s.n_kv_heads else 1
        for j, r in enumerate(self.readers):
            if r.label == "logits":
                continue
            node, _, part = r.label.partition(".")
            if part in ("k", "v"):
                targets = [f"L{r.layer}H{h}" for h in range(s.n_heads) if h // group == r.head]
            else:
                targets = [node]
            for t in targets:
                out[j, self.writer_index[t]] = True
        return out

    def edges(self) -> list[tuple[int, int]]:
        rows, cols = self.allowed.nonzero(as_tuple=True)  # two flat lists: far quicker than [[i, j], ...]
        return list(zip(rows.tolist(), cols.tolist()))

    def edge_label(self, i: int, j: int) -> str:
        return f"{self.writers[i].label}->{self.readers[j].label}"

    def writer_hooks(self) -> list[str]:
        names = ["hook_embed"] + (["hook_pos_embed"] if self.model.shape.has_pos_embed else [])
        for layer in range(self.n_layers):
            if self.model.shape.family == "mamba":
                names.append(f"blocks.{layer}.mixer.hook_out_proj")
            else:
                names += [f"blocks.{layer}.attn.hook_z", f"blocks.{layer}.hook_mlp_out"]
        return names

    def reader_hooks(self) -> list[str]:
        return list(dict.fromkeys(r.hook for r in self.readers))

    def writer_outputs(self, acts: dict[str, Tensor]) -> Tensor:
        """[writers, b, s, d]: each writer's output (biases excluded) from captured activations."""
        return torch.cat([self.hook_writer_outputs(name, acts) for name in self.writer_hooks()])

    def hook_writer_outputs(self, name: str, acts: dict[str, Tensor]) -> Tensor:
        """[k, b, s, d] (float): the outputs of the writers read at one writer hook: the embeddings
        (token plus position, both at ``hook_embed``), a layer's heads, its MLP or its mixer."""
        if name == "hook_pos_embed":
            return acts[name].new_zeros((0, *acts[name].shape)).float()  # folded into hook_embed
        if name == "hook_embed":
            return (acts[name] + acts.get("hook_pos_embed", 0)).float()[None]
        layer = int(name.split(".")[1])
        if self.model.shape.family == "mamba":
            return (acts[name] - _bias(self.model.writer_bias(layer))).float()[None]
        w_o, _, _, b_out = self.model.writer_weights(layer)
        if name.endswith("attn.hook_z"):
            z = acts[name]
            return torch.einsum("bshe,hed->hbsd", z, w_o.to(z.device, z.dtype)).float()
        return (acts[name] - _bias(b_out)).float()[None]


def _bias(b: Tensor | None) -> Tensor | float:
    return 0.0 if b is None else b


# ---- EAP and EAP-IG ---------------------------------------------------------------------------


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


# ---- runs with chosen edges patched ------------------------------------------------------------


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


def select_edges(
    table: Table, graph: EdgeGraph, top: int | None = None, threshold: float | None = None, prune: bool = False
) -> Tensor:
    """The kept edge set [writers, readers]: the ``top`` edges by |score|, or all with
    |score| >= ``threshold``; with ``prune``, only those on a kept path from input to logits."""
    order = table.top(len(table.labels))
    chosen = order[:top] if top is not None else [i for i in order if abs(table.values[i]) >= (threshold or 0.0)]
    keep = _edge_set(table, graph, chosen)
    return prune_edges(keep, graph) if prune else keep


def _edge_set(table: Table, graph: EdgeGraph, rows: Iterable[int]) -> Tensor:
    """[writers, readers] bool with the edges labelled in ``table``'s ``rows`` set."""
    keep = torch.zeros_like(graph.allowed)
    for idx in rows:
        w, _, r = table.labels[idx].partition("->")
        if w not in graph.writer_index or r not in graph.reader_index:
            raise BadInput(f"edge {table.labels[idx]!r} is not an edge of this model; was the table made on another?")
        keep[graph.writer_index[w], graph.reader_index[r]] = True
    return keep


def prune_edges(keep: Tensor, graph: EdgeGraph) -> Tensor:
    """The kept edges that lie on a path of kept edges from ``input`` to ``logits``.

    The others change nothing when kept: a writer reached by no kept path from the input sees
    only corrupted inputs, so its output is its corrupted one; a node with no kept path on to
    the logits is read by nobody. Pruning them shows how many edges a circuit really uses."""
    keep = keep & graph.allowed
    feeds = graph.feeds()  # [R, W]
    source = torch.zeros(len(graph.writers), dtype=torch.bool)
    source[graph.writer_index["input"]] = True
    sink = torch.zeros(len(graph.readers), dtype=torch.bool)
    sink[graph.reader_index["logits"]] = True
    reached = _fixpoint(source, lambda w: source | (feeds & (keep & w[:, None]).any(0)[:, None]).any(0))
    onward = _fixpoint(sink, lambda r: sink | (feeds & (keep & r[None, :]).any(1)[None, :]).any(1))
    return keep & reached[:, None] & onward[None, :]


def _fixpoint(start: Tensor, step: Callable[[Tensor], Tensor]) -> Tensor:
    """Apply a monotone ``step`` from ``start`` until nothing changes (a DAG: a few layers' worth)."""
    cur = start
    while True:
        nxt = step(cur)
        if torch.equal(nxt, cur):
            return cur
        cur = nxt


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

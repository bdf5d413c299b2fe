"""Erasure: when direct logit attribution misleads (Janiak et al. 2023, "memory management in
GELU-4L"). A *writer* (a head, or an MLP) writes a direction with a large direct effect on the
logits, and later *erasers* write it back out, so its DLA is large while its total effect is small.

Conventions (docs/erasure.md has the reasoning):

- A component's output is what ``dla.py`` attributes: a head's ``z_h . W_O[h]`` (value bias inside
  ``z``, no ``b_O``), an MLP's output without its output bias. Residual points are the stream as is.
- ``PR(a, b) = a . b / |b|^2`` per (text, position), with ``b`` the writer's output there; positions
  where the writer writes nothing are skipped.
- DLA toward the true next token ``t``: ``((x - mean x) / s_f) . (w_lnf * W_U[:, t])`` with ``s_f``
  the final norm's scale of the *clean* run (``dla.readout``; no centring for RMSNorm).
- The OV image of the writer through a later head: the writer's output through that layer's norm
  with the norm's *cached* scale (weight applied, no bias), then ``W_V[h] W_O[h]``, no attention
  weighting and no value bias.
- Resample ablation: a component's output at each position is replaced by the same position's
  output on the next text of the batch (row i takes row i+1's, the last row the first's). Only
  positions that exist in both texts count.

Everything streams over a prompt set (``analyses.corpus``) batch by batch, with progress and cancel;
a cancelled run returns what it measured so far (``partial``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from analyses.corpus import CorpusBatch, corpus_batches, corpus_texts, count_texts
from analyses.dla import readout
from analyses.errors import BadInput
from analyses.models.base import HookedModel
from analyses.models.hooks import Intervention
from analyses.results import Scatter, Series, Table

Progress = Callable[[int, int], None] | None
Stop = Callable[[], bool] | None

_NODE = re.compile(r"^L(\d+)(?:H(\d+)|MLP)$")


@dataclass(frozen=True)
class Node:
    """A head (``L0H2``) or a layer's MLP (``L1MLP``)."""

    layer: int
    head: int | None = None

    @property
    def label(self) -> str:
        return f"L{self.layer}MLP" if self.head is None else f"L{self.layer}H{self.head}"


def parse_node(text: str, model: HookedModel | None = None) -> Node:
    """``L{l}H{h}`` or ``L{l}MLP``, checked against the model's sizes when one is given."""
    m = _NODE.match((text or "").strip())
    if not m:
        raise BadInput(f"{text!r} is not a node: give L{{layer}}H{{head}} or L{{layer}}MLP, e.g. L0H2")
    node = Node(int(m.group(1)), None if m.group(2) is None else int(m.group(2)))
    if model is not None:
        shape = model.shape
        if shape.family == "mamba":
            raise BadInput("Mamba has no attention heads or MLPs to measure erasure on")
        if node.layer >= shape.n_layers:
            raise BadInput(f"{node.label}: the model has layers 0..{shape.n_layers - 1}")
        if node.head is not None and node.head >= shape.n_heads:
            raise BadInput(f"{node.label}: the model has heads 0..{shape.n_heads - 1}")
    return node


@dataclass(frozen=True)
class PromptSet:
    """Where the texts come from (``analyses.corpus``): a file or a task, how many, batch size."""

    corpus: str | None = None
    task: str | None = None
    n: int | None = None
    seed: int = 0
    batch: int = 16
    prepend_bos: bool | None = None

    def describe(self) -> str:
        return f"task {self.task}" if self.task else f"corpus {self.corpus}"


class _Loop:
    """The batches of a prompt set, with progress after each and a stop check before each."""

    def __init__(self, model: HookedModel, tokenizer, prompts: PromptSet, progress: Progress, should_stop: Stop):
        self.prompts, self.progress, self.should_stop = prompts, progress, should_stop
        self.total = count_texts(prompts.corpus, prompts.task, prompts.n)
        texts = corpus_texts(prompts.corpus, prompts.task, prompts.n, prompts.seed)
        n_ctx = model.shape.n_ctx or 2048
        self._batches = corpus_batches(tokenizer, texts, prompts.batch, n_ctx, prompts.prepend_bos)
        self.partial = False
        self.texts = 0

    def __iter__(self) -> Iterator[CorpusBatch]:
        for batch in self._batches:
            if self.should_stop is not None and self.should_stop():
                self.partial = True
                return
            yield batch
            self.texts += len(batch.texts)
            if self.progress is not None:
                self.progress(min(batch.start + len(batch.texts), self.total), self.total)

    def meta(self) -> dict:
        return {"data": self.prompts.describe(), "texts": self.texts, "partial": self.partial}


class _Weights:
    """Each layer's W_O [heads, d_head, d_model] and MLP output bias, in fp32 on one device."""

    def __init__(self, model: HookedModel, device: torch.device):
        self.w_o, self.b_out = [], []
        for layer in range(model.shape.n_layers):
            w_o, _, _, b_out = model.writer_weights(layer)
            self.w_o.append(w_o.float().to(device))
            self.b_out.append(None if b_out is None else b_out.float().to(device))


def _center(model: HookedModel, x: Tensor) -> Tensor:
    return x - x.mean(-1, keepdim=True) if model.shape.norm == "layernorm" else x


@dataclass
class _Run:
    """One forward over a batch and the points measured on it: (row, position) pairs that have a
    true next token, that token's DLA readout ``u`` [N, d] and the final-norm scale ``s_f`` [N]."""

    cache: dict[str, Tensor]
    logits: Tensor
    rows: Tensor
    cols: Tensor
    tokens: Tensor
    u: Tensor
    s_f: Tensor

    def at(self, name: str) -> Tensor:
        """The captured activation at the points, fp32: [N, ...]."""
        x = self.cache[name]
        return x[self.rows.to(x.device), self.cols.to(x.device)].float()

    def next_logits(self, logits: Tensor | None = None) -> Tensor:
        """The true next token's logit at each point [N]."""
        x = self.logits if logits is None else logits
        dev = x.device
        return x[self.rows.to(dev), self.cols.to(dev), self.tokens.to(dev)].float()


class _Measure:
    """What every erasure analysis needs of a model: the hook names, the weights, and the forward
    pass with its points."""

    def __init__(self, model: HookedModel, start: int = 0, last: bool = False):
        if model.shape.family == "mamba":
            raise BadInput("Mamba has no attention heads or MLPs to measure erasure on")
        if start < 0:
            raise BadInput("--start must be 0 or more")
        self.model, self.start, self.last = model, start, last
        self.device = model.input_device()
        self.W = _Weights(model, self.device)
        shape = model.shape
        self.n, self.heads = shape.n_layers, shape.n_heads
        self.resid_names, self.resid_labels = [], []
        for layer in range(self.n):
            subs = ("pre", "post") if shape.parallel_attn_mlp else ("pre", "mid", "post")
            for sub in subs:
                self.resid_names.append(f"blocks.{layer}.hook_resid_{sub}")
                self.resid_labels.append(f"resid_{sub}{layer}")
        self.comp_labels = [Node(layer, h).label for layer in range(self.n) for h in [*range(self.heads), None]]
        self.comp_nodes = [parse_node(label) for label in self.comp_labels]

    def capture(self, resid: bool = True) -> list[str]:
        names = ["ln_final.hook_scale"]
        for layer in range(self.n):
            names += [f"blocks.{layer}.attn.hook_z", f"blocks.{layer}.hook_mlp_out"]
        return names + (self.resid_names if resid else [])

    def run(self, batch: CorpusBatch, capture: list[str], interventions=(), donors: bool = False,
            clean: _Run | None = None) -> _Run | None:
        """Run the batch; points are positions >= start with a next token (and, with ``donors``,
        a position the next row also has). ``clean`` reuses a clean run's points, readout and
        scale (the frozen final-norm scale of a patched run). None when no point is left."""
        model = self.model
        res = model.run(batch.ids, capture=capture, interventions=interventions)
        if clean is not None:
            return _Run(res.cache, res.logits, clean.rows, clean.cols, clean.tokens, clean.u, clean.s_f)
        ids = batch.ids
        lengths = torch.tensor(batch.lengths)
        pos = torch.arange(ids.shape[1])
        valid = (pos[None] >= self.start) & (pos[None] < lengths[:, None] - 1)
        if self.last:  # only the position that predicts each text's last token (a task's answer)
            valid &= pos[None] == lengths[:, None] - 2
        if donors:
            valid &= pos[None] < lengths.roll(-1)[:, None]
        rows, cols = valid.nonzero(as_tuple=True)
        if len(rows) == 0:
            return None
        tokens = ids[rows, cols + 1]
        uniq, inverse = tokens.unique(return_inverse=True)
        cols_u = model.unembed_columns(uniq.tolist())[0].to(self.device)
        u = readout(model, cols_u).T[inverse.to(self.device)]  # [N, d]
        s_f = res.cache["ln_final.hook_scale"][rows, cols, 0].float().to(self.device)
        return _Run(res.cache, res.logits, rows, cols, tokens, u, s_f)

    def output(self, run: _Run, node: Node) -> Tensor:
        """A component's output at the points [N, d] (no b_O / MLP output bias)."""
        full = self.full_output(run.cache, node)
        return full[run.rows.to(full.device), run.cols.to(full.device)]

    def full_output(self, cache: dict[str, Tensor], node: Node) -> Tensor:
        """A component's output at every position [b, s, d]."""
        if node.head is None:
            out = cache[f"blocks.{node.layer}.hook_mlp_out"].float().to(self.device)
            b = self.W.b_out[node.layer]
            return out if b is None else out - b
        z = cache[f"blocks.{node.layer}.attn.hook_z"][:, :, node.head].float().to(self.device)
        return z @ self.W.w_o[node.layer][node.head]

    def project(self, run: _Run, vecs: Tensor, resid: bool = True) -> tuple[Tensor, Tensor | None]:
        """Every component's output (and every residual point) dotted with ``vecs`` [N, k, d]:
        ([N, C, k], [N, R, k]). Heads are projected through W_O first, never expanded."""
        parts = []
        for layer in range(self.n):
            z = run.at(f"blocks.{layer}.attn.hook_z").to(self.device)  # [N, H, dh]
            through = torch.einsum("hed,nkd->nhek", self.W.w_o[layer], vecs)
            parts.append((z[..., None] * through).sum(2))
            mlp = self.output(run, Node(layer))
            parts.append(torch.einsum("nd,nkd->nk", mlp, vecs)[:, None])
        comps = torch.cat(parts, 1)
        if not resid:
            return comps, None
        res = torch.stack([run.at(name).to(self.device) for name in self.resid_names], 1)  # [N, R, d]
        return comps, torch.einsum("nrd,nkd->nrk", res, vecs)

    def downstream(self, writer: Node, node: Node) -> bool:
        """Whether ``node`` reads the residual stream after ``writer`` wrote to it."""
        if node.layer > writer.layer:
            return True
        same_layer_mlp = node.layer == writer.layer and node.head is None and writer.head is not None
        return same_layer_mlp and not self.model.shape.parallel_attn_mlp


def _band(values: np.ndarray, band: float) -> tuple[float, float, float, float]:
    """(median, low, high, mean) of each column; the band is the central ``band`` %."""
    lo, hi = 50 - band / 2, 50 + band / 2
    med, low, high = np.percentile(values, [50, lo, hi], axis=0)
    return med, low, high, values.mean(0)


def check_band(band: float) -> None:
    if not 0 <= band <= 100:
        raise BadInput(f"--band is a width in percent, 0 to 100 (got {band:g})")


def _writer_ratios(m: _Measure, run: _Run, writer: Node, resid: bool = True) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(keep mask [N], component PRs [N, C], residual PRs [N, R] or None, writer's output [N, d])."""
    w = m.output(run, writer)
    wn = (w * w).sum(-1)
    keep = wn > 0
    comps, res = m.project(run, (w / wn.clamp_min(1e-30)[:, None])[:, None], resid=resid)
    return keep, comps[..., 0], None if res is None else res[..., 0], w


def projection_ratios(
    model: HookedModel, tokenizer, prompts: PromptSet, writer: str, *, start: int = 0, last: bool = False,
    band: float = 75.0, threshold: float = 0.05, progress: Progress = None, should_stop: Stop = None,
) -> tuple[Table, Series]:
    """PR of every head, MLP and residual point onto the writer's output over all points: the
    median and the central ``band`` % per component (Table), and along the residual stream
    (Series, in forward order). Components after the writer with median PR < -``threshold`` are
    flagged as erasers."""
    check_band(band)
    node = parse_node(writer, model)
    m = _Measure(model, start, last)
    loop = _Loop(model, tokenizer, prompts, progress, should_stop)
    comp_parts, res_parts = [], []
    for batch in loop:
        run = m.run(batch, m.capture())
        if run is None:
            continue
        keep, comps, res, _ = _writer_ratios(m, run, node)
        comp_parts.append(comps[keep].cpu())
        res_parts.append(res[keep].cpu())
    n_points = sum(len(c) for c in comp_parts)
    if n_points == 0:
        raise BadInput(f"no position to measure: the texts are too short for --start {start}, or {node.label} "
                       "writes nothing")
    comps = torch.cat(comp_parts).numpy()
    res = torch.cat(res_parts).numpy()
    c_med, c_lo, c_hi, c_mean = _band(comps, band)
    r_med, r_lo, r_hi, r_mean = _band(res, band)
    erasers = [lab for lab, nd, med in zip(m.comp_labels, m.comp_nodes, c_med)
               if m.downstream(node, nd) and med < -threshold]
    labels = m.comp_labels + m.resid_labels
    columns = {
        "median": [*map(float, c_med), *map(float, r_med)],
        "low": [*map(float, c_lo), *map(float, r_lo)],
        "high": [*map(float, c_hi), *map(float, r_hi)],
        "mean": [*map(float, c_mean), *map(float, r_mean)],
        "eraser": ["yes" if lab in erasers else "" for lab in labels],
    }
    meta = {"writer": node.label, "points": n_points, "band": band, "threshold": threshold, "erasers": erasers,
            "erasers_sum": float(sum(c_med[m.comp_labels.index(e)] for e in erasers)), **loop.meta()}
    table = Table("erasure_pr", labels, columns, meta)
    series = Series("erasure_stream", m.resid_labels,
                    {"median": list(map(float, r_med)), "low": list(map(float, r_lo)), "high": list(map(float, r_hi))},
                    "stream point", {**meta, "ordered": True})
    return table, series


def _ov_images(m: _Measure, run: _Run, w: Tensor, layers: list[int]) -> Tensor:
    """DLA toward the true next token of the writer's output ``w`` [N, d] through each head's OV
    circuit in ``layers`` (their norm with its cached scale, weight applied, no bias; no attention,
    no b_V): [N, len(layers) * heads]."""
    model, out = m.model, []
    for layer in layers:
        scale = run.at(f"blocks.{layer}.ln1.hook_scale")[:, 0].to(m.device)
        gamma = model.attn_norm_params(layer)[0].float().to(m.device)
        a = _center(model, w) / scale[:, None] * gamma
        w_v = model.value_weights(layer)[0].float().to(m.device)  # [d, kv, dh]
        v = torch.einsum("nd,dke->nke", a, w_v).repeat_interleave(m.heads // w_v.shape[1], dim=1)
        through = torch.einsum("hed,nd->nhe", m.W.w_o[layer], run.u)
        out.append((v * through).sum(-1) / run.s_f[:, None])
    return torch.cat(out, 1)


MODES = ("ov", "actual")


def writer_eraser_scatter(
    model: HookedModel, tokenizer, prompts: PromptSet, writer: str, *, erasers: list[str] | None = None,
    mode: str = "ov", start: int = 0, last: bool = False, threshold: float = 0.05, points: int = 5000,
    progress: Progress = None, should_stop: Stop = None,
) -> Scatter:
    """x: the writer's DLA toward the true next token; y: the erasers' DLA, either of the writer's
    output through their OV circuits (``mode="ov"``) or of their actual summed output
    (``"actual"``). Erasers: the heads named, or every head after the writer whose median PR onto
    it is below -``threshold``. At most ``points`` points are returned (evenly spaced); the fit is
    over the returned points, so the quoted r and slope are those of the plot."""
    if mode not in MODES:
        raise BadInput(f"--mode must be one of {', '.join(MODES)}")
    if points < 2:
        raise BadInput("--points must be at least 2")
    node = parse_node(writer, model)
    m = _Measure(model, start, last)
    later = [layer for layer in range(node.layer + 1, m.n)]
    if not later:
        raise BadInput(f"{node.label} is in the last layer: no head reads it")
    later_heads = [Node(layer, h) for layer in later for h in range(m.heads)]
    named = [parse_node(e, model) for e in erasers] if erasers else None
    for e in named or ():
        if e.head is None or e.layer <= node.layer:
            raise BadInput(f"--erasers: {e.label} is not a head after {node.label}")
    capture = m.capture(resid=False) + [f"blocks.{layer}.ln1.hook_scale" for layer in later]
    idx = [m.comp_labels.index(h.label) for h in later_heads]
    loop = _Loop(model, tokenizer, prompts, progress, should_stop)
    xs, ys, prs, labels = [], [], [], []
    for batch in loop:
        run = m.run(batch, capture)
        if run is None:
            continue
        if named is None:  # erasers by their median PR, measured in the same pass
            keep, comps, _, w = _writer_ratios(m, run, node, resid=False)
            prs.append(comps[keep][:, idx].cpu())
        else:
            w = m.output(run, node)
        x = (w * run.u).sum(-1) / run.s_f
        if mode == "ov":
            y = _ov_images(m, run, w, later)
        else:
            y = m.project(run, (run.u / run.s_f[:, None])[:, None], resid=False)[0][:, idx, 0]
        xs.append(x.cpu()), ys.append(y.cpu())
        labels += [f"{batch.start + int(r)}:{int(c)}" for r, c in zip(run.rows, run.cols)]
    if not labels:
        raise BadInput(f"no position to measure: the texts are too short for --start {start}")
    x_all, y_all = torch.cat(xs).numpy(), torch.cat(ys).numpy()
    if named is None:
        pr = torch.cat(prs).numpy()
        med = np.median(pr, 0)
        chosen = [h for h, v in zip(later_heads, med) if v < -threshold]
        if not chosen:
            best = later_heads[int(np.argmin(med))]
            raise BadInput(f"no head after {node.label} has median PR below -{threshold:g} (lowest: {best.label} "
                           f"{float(med.min()):.3f}); name the erasers with --erasers")
    else:
        chosen = named
    cols = [later_heads.index(h) for h in chosen]
    y_sum = y_all[:, cols].sum(1)
    pick = np.unique(np.linspace(0, len(x_all) - 1, min(points, len(x_all))).round().astype(int))
    meta = {"writer": node.label, "erasers": [h.label for h in chosen], "mode": mode, "points_total": len(x_all),
            **loop.meta()}
    y_name = "erasers' DLA (writer through OV)" if mode == "ov" else "erasers' DLA (actual output)"
    return Scatter("erasure_scatter", [labels[i] for i in pick], [float(x_all[i]) for i in pick],
                   [float(y_sum[i]) for i in pick], f"{node.label} DLA", y_name, meta)


def _remove_from_values(m: _Measure, clean: _Run, w_full: Tensor, layer: int) -> Intervention:
    """Layer ``layer``'s values as if the writer's output ``w_full`` [b, s, d] were not in their
    input, the norm's scale frozen at the clean run's: v - ((w - mean w) / s * gamma) W_V. (The
    norm is affine once its scale is fixed, so this is exactly the value of the edited input.)"""
    model = m.model
    scale = clean.cache[f"blocks.{layer}.ln1.hook_scale"].float().to(m.device)  # [b, s, 1]
    gamma = model.attn_norm_params(layer)[0].float().to(m.device)
    a = _center(model, w_full) / scale * gamma
    w_v = model.value_weights(layer)[0].float().to(m.device)
    delta = torch.einsum("bsd,dke->bske", a, w_v)
    return Intervention(f"blocks.{layer}.attn.hook_v", "fn",
                        fn=lambda v: (v.float() - delta.to(v.device)).to(v.dtype))


def causal_check(
    model: HookedModel, tokenizer, prompts: PromptSet, writer: str, *, layer: int | None = None, start: int = 0,
    last: bool = False, progress: Progress = None, should_stop: Stop = None,
) -> Table:
    """Subtract the writer's output from the value input of every head of ``layer`` (default: the
    one after the writer's), that layer's norm scale frozen, q and k untouched; then PR onto the
    writer (median) and DLA toward the true next token (mean, clean final-norm scale) of every
    component before and after. Residual rows' DLA is the writer's share still in the stream
    (PR x the writer's DLA)."""
    node = parse_node(writer, model)
    m = _Measure(model, start, last)
    layer = node.layer + 1 if layer is None else layer
    if not node.layer < layer < m.n:
        raise BadInput(f"--value-layer must be after the writer's layer {node.layer} and below {m.n} (got {layer})")
    capture = m.capture() + [f"blocks.{layer}.ln1.hook_scale"]
    loop = _Loop(model, tokenizer, prompts, progress, should_stop)
    pr = {"before": [], "after": []}
    dla = {"before": [], "after": []}
    logit = {"before": [], "after": []}
    writer_dla = []
    for batch in loop:
        clean = m.run(batch, capture)
        if clean is None:
            continue
        w_full = m.full_output(clean.cache, node)
        patched = m.run(batch, capture, [_remove_from_values(m, clean, w_full, layer)], clean=clean)
        w = w_full[clean.rows.to(w_full.device), clean.cols.to(w_full.device)]
        wn = (w * w).sum(-1)
        keep = wn > 0
        x = (w * clean.u).sum(-1) / clean.s_f
        vecs = torch.stack([w / wn.clamp_min(1e-30)[:, None], clean.u / clean.s_f[:, None]], 1)
        for key, run in (("before", clean), ("after", patched)):
            comps, res = m.project(run, vecs)
            pr[key].append(torch.cat([comps[..., 0], res[..., 0]], 1)[keep].cpu())
            dla[key].append(torch.cat([comps[..., 1], res[..., 0] * x[:, None]], 1)[keep].cpu())
            logit[key].append(run.next_logits()[keep.to(run.logits.device)].cpu())
        writer_dla.append(x[keep].cpu())
    if not writer_dla or sum(len(x) for x in writer_dla) == 0:
        raise BadInput(f"no position to measure: the texts are too short for --start {start}")
    columns = {}
    for key in ("before", "after"):
        columns[f"pr_{key}"] = np.median(torch.cat(pr[key]).numpy(), 0).tolist()
    for key in ("before", "after"):
        columns[f"dla_{key}"] = torch.cat(dla[key]).mean(0).tolist()
    meta = {"writer": node.label, "layer": layer, "points": int(sum(len(x) for x in writer_dla)),
            "writer_dla": float(torch.cat(writer_dla).mean()),
            "logit_before": float(torch.cat(logit["before"]).mean()),
            "logit_after": float(torch.cat(logit["after"]).mean()), **loop.meta()}
    return Table("erasure_causal", m.comp_labels + m.resid_labels, columns, meta)


def _resample(m: _Measure, batch: CorpusBatch, clean: _Run, node: Node) -> Tensor:
    """The true next token's logit at the points with ``node``'s output taken from the next row."""
    perm = torch.arange(batch.ids.shape[0]).roll(-1)
    if node.head is None:
        name = f"blocks.{node.layer}.hook_mlp_out"
        iv = Intervention(name, "replace", value=clean.cache[name][perm])
    else:
        name = f"blocks.{node.layer}.attn.hook_z"
        iv = Intervention(name, "replace", value=clean.cache[name][perm], head=node.head)
    resid = clean.cache[f"blocks.{node.layer}.hook_resid_pre"]
    res = m.model.run(batch.ids, interventions=[iv], start_at_layer=node.layer, resid=resid)
    return clean.next_logits(res.logits)


def _flag(dla: float, effect: float, factor: float, floor: float) -> str:
    """"sign" when DLA and total effect point opposite ways (both at least ``floor``), "factor"
    when one is more than ``factor`` times the other; nothing when both are below ``floor``."""
    big, small = max(abs(dla), abs(effect)), min(abs(dla), abs(effect))
    if big < floor:
        return ""
    if dla * effect < 0 and small >= floor:
        return "sign"
    return "factor" if small * factor < big or dla * effect < 0 else ""


def dla_vs_effect(
    model: HookedModel, tokenizer, prompts: PromptSet, *, factor: float = 2.0, floor: float = 0.05,
    start: int = 0, last: bool = False, progress: Progress = None, should_stop: Stop = None,
) -> Table:
    """Per head and MLP: mean DLA toward the true next token next to its total effect on that
    token's logit (clean minus resample-ablated, mean over the same points); flagged where they
    disagree in sign or by more than ``factor``."""
    if factor < 1:
        raise BadInput(f"--factor must be at least 1 (got {factor:g})")
    m = _Measure(model, start, last)
    capture = m.capture(resid=False) + [f"blocks.{layer}.hook_resid_pre" for layer in range(m.n)]
    loop = _Loop(model, tokenizer, prompts, progress, should_stop)
    dla_sum = torch.zeros(len(m.comp_labels), dtype=torch.float64)
    eff_sum = torch.zeros(len(m.comp_labels), dtype=torch.float64)
    count, skipped, logit_sum = 0, 0, 0.0
    for batch in loop:
        if len(batch.texts) < 2:
            skipped += len(batch.texts)
            continue
        clean = m.run(batch, capture, donors=True)
        if clean is None:
            continue
        comps, _ = m.project(clean, (clean.u / clean.s_f[:, None])[:, None], resid=False)
        dla_sum += comps[..., 0].sum(0).double().cpu()
        base = clean.next_logits()
        logit_sum += float(base.sum())
        for i, node in enumerate(m.comp_nodes):
            eff_sum[i] += float((base - _resample(m, batch, clean, node)).sum())
        count += len(clean.rows)
    if count == 0:
        raise BadInput("no position to measure: resampling needs batches of two or more texts with a next token "
                       f"after --start {start}")
    dla, eff = (dla_sum / count).tolist(), (eff_sum / count).tolist()
    flags = [_flag(a, b, factor, floor) for a, b in zip(dla, eff)]
    meta = {"metric": "true next-token logit", "points": count, "mean_logit": logit_sum / count, "factor": factor,
            "floor": floor, "flagged": [lab for lab, f in zip(m.comp_labels, flags) if f],
            "skipped_texts": skipped, **loop.meta()}
    return Table("erasure_effect", list(m.comp_labels), {"dla": dla, "effect": eff, "flag": flags}, meta)


def _vocab_dla(model: HookedModel, mean_vec: Tensor, chunk: int = 8192) -> Tensor:
    """Mean DLA toward every vocabulary token, from the mean of (x - mean x) / s_f: DLA is
    linear in that, so one pass over W_U in chunks gives all of them."""
    v = model.shape.d_vocab
    out = []
    for lo in range(0, v, chunk):
        cols = model.unembed_columns(range(lo, min(v, lo + chunk)))[0].to(mean_vec.device)
        out.append(mean_vec @ readout(model, cols))
    return torch.cat(out)


def adversarial_prompts(
    model: HookedModel, tokenizer, prompts: PromptSet, writer: str, *, k: int = 20, limit: int = 20,
    start: int = 0, last: bool = False, progress: Progress = None, should_stop: Stop = None,
) -> Table:
    """Rank the vocabulary by the writer's mean DLA over the set; then list the prefixes of the
    texts whose true next token is among the top ``k`` with the largest writer DLA minus total
    effect (resample ablation of the writer): high DLA, small or opposite effect."""
    if k < 1 or limit < 1:
        raise BadInput("--k and --prompts must be at least 1")
    node = parse_node(writer, model)
    m = _Measure(model, start, last)
    capture = ["ln_final.hook_scale", f"blocks.{node.layer}.hook_resid_pre",
               f"blocks.{node.layer}." + ("hook_mlp_out" if node.head is None else "attn.hook_z")]
    loop = _Loop(model, tokenizer, prompts, progress, should_stop)
    mean_vec = torch.zeros(model.shape.d_model, dtype=torch.float64, device=m.device)
    n_mean = 0
    found: list[tuple[list[int], int, int, float, float, float]] = []  # ids, pos, token, dla, effect, logit
    for batch in loop:
        if len(batch.texts) < 2:
            continue
        clean = m.run(batch, capture, donors=True)
        if clean is None:
            continue
        w = m.output(clean, node)
        mean_vec += (_center(model, w) / clean.s_f[:, None]).sum(0).double()
        n_mean += len(w)
        x = (w * clean.u).sum(-1) / clean.s_f
        base = clean.next_logits()
        effect = base - _resample(m, batch, clean, node)
        rows = batch.ids.tolist()
        for r, c, t, a, e, lg in zip(clean.rows.tolist(), clean.cols.tolist(), clean.tokens.tolist(), x.tolist(),
                                     effect.tolist(), base.tolist()):
            found.append((rows[r], c, t, a, e, lg))
    if n_mean == 0:
        raise BadInput("no position to measure: resampling needs batches of two or more texts")
    vocab = _vocab_dla(model, (mean_vec / n_mean).float())
    top = torch.topk(vocab, min(k, len(vocab)))
    top_ids = top.indices.tolist()
    wanted = set(top_ids)
    chosen = sorted((f for f in found if f[2] in wanted), key=lambda f: f[4] - f[3])[:limit]

    def decode(ids: list[int]) -> str:
        return tokenizer.decode(ids, clean_up_tokenization_spaces=False)

    labels = [decode(ids[: pos + 1]) for ids, pos, *_ in chosen]
    columns = {
        "score": [a - e for *_, a, e, _lg in chosen],
        "next": [decode([t]) for _ids, _p, t, *_ in chosen],
        "writer_dla": [a for *_, a, _e, _lg in chosen],
        "effect": [e for *_, e, _lg in chosen],
        "logit": [lg for *_, lg in chosen],
    }
    meta = {"writer": node.label, "k": k, "points": len(found),
            "top_tokens": [{"token": decode([i]), "mean_dla": float(v)} for i, v in zip(top_ids, top.values.tolist())],
            "candidates": sum(f[2] in wanted for f in found), **loop.meta()}
    return Table("erasure_prompts", labels, columns, meta)

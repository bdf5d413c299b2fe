"""Projection ratios onto a writer (table and residual stream) and the writer-vs-erasers scatter."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from analyses.corpus import CorpusBatch, CorpusLoop, Progress, PromptSet, Stop
from analyses.erasure.measure import Measure, Run, center
from analyses.errors import BadInput
from analyses.labels import Node, parse_node
from analyses.models.base import HookedModel
from analyses.results import Scatter, Series, Table


def _band(values: np.ndarray, band: float) -> tuple[float, float, float, float]:
    """(median, low, high, mean) of each column; the band is the central ``band`` %."""
    lo, hi = 50 - band / 2, 50 + band / 2
    med, low, high = np.percentile(values, [50, lo, hi], axis=0)
    return med, low, high, values.mean(0)


def check_band(band: float) -> None:
    if not 0 <= band <= 100:
        raise BadInput(f"--band is a width in percent, 0 to 100 (got {band:g})")


def _writer_ratios(m: Measure, run: Run, writer: Node, resid: bool = True) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(keep mask [N], component PRs [N, C], residual PRs [N, R] or None, writer's output [N, d])."""
    w = m.output(run, writer)
    wn = (w * w).sum(-1)
    keep = wn > 0
    comps, res = m.project(run, (w / wn.clamp_min(1e-30)[:, None])[:, None], resid=resid)
    return keep, comps[..., 0], None if res is None else res[..., 0], w


def projection_ratios(
    model: HookedModel, tokenizer, prompts: PromptSet, writer: str, *, start: int = 0, last: bool = False,
    band: float = 75.0, threshold: float = 0.05, fold: str = "raw", progress: Progress = None,
    should_stop: Stop = None,
) -> tuple[Table, Series]:
    """PR of every head, MLP and residual point onto the writer's output over all points: the
    median and the central ``band`` % per component (Table), and along the residual stream
    (Series, in forward order). Components after the writer with median PR < -``threshold`` are
    flagged as erasers."""
    check_band(band)
    node = parse_node(writer, model)
    m = Measure(model, start, last, fold)
    loop = CorpusLoop.over(model, tokenizer, prompts, progress, should_stop)
    comp_parts, res_parts = [], []

    def measure(batch: CorpusBatch) -> tuple[Tensor, Tensor] | None:
        run = m.run(batch, m.capture())
        if run is None:
            return None
        keep, comps, res, _ = _writer_ratios(m, run, node)
        return comps[keep].cpu(), res[keep].cpu()

    for _, parts in loop.map(measure):  # a batch out of memory is measured in halves
        if parts is not None:
            comp_parts.append(parts[0])
            res_parts.append(parts[1])
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
    meta = {"writer": node.label, "fold": fold, "points": n_points, "band": band, "threshold": threshold,
            "erasers": erasers,
            "erasers_sum": float(sum(c_med[m.comp_labels.index(e)] for e in erasers)), **loop.meta()}
    table = Table("erasure_pr", labels, columns, meta)
    series = Series("erasure_stream", m.resid_labels,
                    {"median": list(map(float, r_med)), "low": list(map(float, r_lo)), "high": list(map(float, r_hi))},
                    "stream point", {**meta, "ordered": True})
    return table, series


def _ov_images(m: Measure, run: Run, w: Tensor, layers: list[int]) -> Tensor:
    """DLA toward the true next token of the writer's output ``w`` [N, d] through each head's OV
    circuit in ``layers`` (their norm with its cached scale, weight applied, no bias; no attention,
    no b_V): [N, len(layers) * heads]."""
    model, out = m.model, []
    for layer in layers:
        scale = run.at(f"blocks.{layer}.ln1.hook_scale")[:, 0].to(m.device)
        gamma = model.attn_norm_params(layer)[0].float().to(m.device)
        a = center(model, w) / scale[:, None] * gamma
        w_v = model.value_weights(layer)[0].float().to(m.device)  # [d, kv, dh]
        v = torch.einsum("nd,dke->nke", a, w_v).repeat_interleave(m.heads // w_v.shape[1], dim=1)
        through = torch.einsum("hed,nd->nhe", m.W.w_o[layer], run.u)
        out.append((v * through).sum(-1) / run.s_f[:, None])
    return torch.cat(out, 1)


MODES = ("ov", "actual")


def writer_eraser_scatter(
    model: HookedModel, tokenizer, prompts: PromptSet, writer: str, *, erasers: list[str] | None = None,
    mode: str = "ov", start: int = 0, last: bool = False, threshold: float = 0.05, points: int = 5000,
    fold: str = "raw", progress: Progress = None, should_stop: Stop = None,
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
    m = Measure(model, start, last, fold)
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
    loop = CorpusLoop.over(model, tokenizer, prompts, progress, should_stop)
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
    meta = {"writer": node.label, "fold": fold, "erasers": [h.label for h in chosen], "mode": mode,
            "points_total": len(x_all),
            **loop.meta()}
    y_name = "erasers' DLA (writer through OV)" if mode == "ov" else "erasers' DLA (actual output)"
    return Scatter("erasure_scatter", [labels[i] for i in pick], [float(x_all[i]) for i in pick],
                   [float(y_sum[i]) for i in pick], f"{node.label} DLA", y_name, meta)

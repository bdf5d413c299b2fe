"""The paper's further experiments (Janiak et al. 2023; wave2-specs.md section 1): the writer's
"modified DLA" (E1.4c), resample-ablating the writer's input (fig. 4), and the loss-based
importance of a layer's components (E1.6). Conventions: ``analyses.erasure``; definitions:
docs/erasure.md."""

from __future__ import annotations

import numpy as np
import torch

from analyses.corpus import CorpusLoop, Progress, PromptSet, Stop
from analyses.erasure.effects import _resample
from analyses.erasure.measure import Measure, Run, check_resampled
from analyses.erasure.ratios import _band, _writer_ratios, check_band
from analyses.errors import BadInput
from analyses.labels import Node, parse_node
from analyses.models.base import HookedModel
from analyses.models.hooks import Intervention
from analyses.results import Table


def modified_dla(
    model: HookedModel, tokenizer, prompts: PromptSet, writer: str, *, start: int = 0, last: bool = False,
    fold: str = "raw", progress: Progress = None, should_stop: Stop = None,
) -> Table:
    """E1.4c: the DLA toward the true next token of the part of the writer still present at each
    residual point, ``PR(resid, w) * DLA(w)`` per point (mean over points), beside the writer's
    own DLA (``dla``, the same on every row). The last row is the paper's "modified DLA": what is
    left of the writer's direct effect once later layers have written (erased) part of it."""
    node = parse_node(writer, model)
    m = Measure(model, start, last, fold)
    loop = CorpusLoop.over(model, tokenizer, prompts, progress, should_stop)
    mod, own = [], []
    for batch in loop:
        run = m.run(batch, m.capture())
        if run is None:
            continue
        keep, _, res, w = _writer_ratios(m, run, node)
        x = (w * run.u).sum(-1) / run.s_f
        mod.append((res * x[:, None])[keep].cpu())
        own.append(x[keep].cpu())
    if not own or sum(len(x) for x in own) == 0:
        raise BadInput(f"no position to measure: the texts are too short for --start {start}")
    mod_all, own_all = torch.cat(mod).double(), torch.cat(own).double()
    later = [i for i, lab in enumerate(m.resid_labels) if i >= m.resid_labels.index(f"resid_pre{node.layer}")]
    labels = [m.resid_labels[i] for i in later]
    writer_dla = float(own_all.mean())
    cols = {"modified_dla": [float(mod_all[:, i].mean()) for i in later], "dla": [writer_dla] * len(later),
            "share": [float(mod_all[:, i].mean()) / writer_dla if writer_dla else float("nan") for i in later]}
    meta = {"writer": node.label, "fold": fold, "points": len(own_all), "writer_dla": writer_dla,
            "modified_dla": cols["modified_dla"][-1], "stream": labels[-1], **loop.meta()}
    return Table("erasure_modified_dla", labels, cols, meta)


def _qkv_names(layer: int) -> list[str]:
    return [f"blocks.{layer}.attn.hook_{x}" for x in ("q", "k", "v")]


def input_resample(
    model: HookedModel, tokenizer, prompts: PromptSet, writer: str, *, start: int = 0, last: bool = False,
    fold: str = "raw", progress: Progress = None, should_stop: Stop = None,
) -> Table:
    """Fig. 4: the writer head's input at one position (its query, key and value there, i.e. its
    normalised input) taken from the same position of the next text of the batch; every head's
    and MLP's mean DLA toward the true next token at that position, before and after. One
    forward per position (all rows at once): a writer whose write does not depend on its
    context keeps its DLA; heads that read the context lose theirs."""
    node = parse_node(writer, model)
    if node.head is None:
        raise BadInput(f"--writer {node.label}: resampling a writer's input needs a head (its q, k and v)")
    m = Measure(model, start, last, fold)
    group = m.heads // model.shape.n_kv_heads
    qkv = _qkv_names(node.layer)
    capture = m.capture(resid=False) + qkv
    loop = CorpusLoop.over(model, tokenizer, prompts, progress, should_stop)
    n_comp = len(m.comp_labels)
    before, after = torch.zeros(n_comp, dtype=torch.float64), torch.zeros(n_comp, dtype=torch.float64)
    count = 0
    for batch, clean in m.donor_runs(loop, capture):
        perm = torch.arange(batch.ids.shape[0]).roll(-1)
        readout = (clean.u / clean.s_f[:, None])[:, None]
        comps, _ = m.project(clean, readout, resid=False)
        done = torch.zeros(n_comp, dtype=torch.float64)
        for pos in clean.cols.unique().tolist():
            if loop.stopped():
                break
            here = clean.cols == pos
            ivs = [Intervention(name, "replace", value=clean.cache[name][perm], pos=pos,
                                head=node.head if i == 0 else node.head // group) for i, name in enumerate(qkv)]
            res = model.run(batch.ids, capture=m.capture(resid=False), interventions=ivs)
            sub = Run(res.cache, res.logits, clean.rows[here], clean.cols[here], clean.tokens[here], clean.u[here],
                      clean.s_f[here], clean.centred)
            done += m.project(sub, readout[here], resid=False)[0][..., 0].sum(0).double().cpu()
        if loop.partial:
            break
        before += comps[..., 0].sum(0).double().cpu()
        after += done
        count += len(clean.rows)
    check_resampled(count, loop.partial, "erasure-input", start)
    b, a = (before / count).tolist(), (after / count).tolist()
    meta = {"writer": node.label, "fold": fold, "points": count,
            "writer_dla": b[m.comp_labels.index(node.label)], "writer_dla_after": a[m.comp_labels.index(node.label)],
            **loop.meta()}
    return Table("erasure_input", list(m.comp_labels), {"dla": b, "dla_after": a,
                                                        "change": [y - x for x, y in zip(b, a)]}, meta)


def layer_importance(
    model: HookedModel, tokenizer, prompts: PromptSet, *, layer: int = 0, band: float = 75.0, start: int = 0,
    last: bool = False, progress: Progress = None, should_stop: Stop = None,
) -> Table:
    """E1.6: each head and the MLP of ``layer`` resample-ablated (output taken from the next text
    of the batch) in turn; the increase of the true next token's loss per point: median, the
    central ``band`` % and mean. The loss does not depend on how the weights are parameterised,
    so there is no ``fold``."""
    check_band(band)
    m = Measure(model, start, last)
    if not 0 <= layer < m.n:
        raise BadInput(f"--layer must be between 0 and {m.n - 1} (got {layer})")
    nodes = [Node(layer, h) for h in range(m.heads)] + [Node(layer)]
    capture = m.capture(resid=False) + [f"blocks.{layer}.hook_resid_pre"]
    loop = CorpusLoop.over(model, tokenizer, prompts, progress, should_stop)
    rises, clean_losses = [], []
    for batch, clean in m.donor_runs(loop, capture):
        lse = clean.logits.float().logsumexp(-1)[clean.rows, clean.cols]
        base = lse - clean.logits.float()[clean.rows, clean.cols, clean.tokens]
        per = []
        for nd in nodes:
            if loop.stopped():
                break
            patched = _resample(m, batch, clean, nd, logits=True)
            lp = patched.float().logsumexp(-1)[clean.rows, clean.cols] - patched.float()[clean.rows, clean.cols,
                                                                                          clean.tokens]
            per.append((lp - base).cpu())
        if loop.partial:
            break
        rises.append(torch.stack(per, 1))
        clean_losses.append(base.cpu())
    check_resampled(len(rises), loop.partial, "erasure-importance", start)
    values = torch.cat(rises).numpy()
    med, low, high, mean = _band(values, band)
    clean_all = torch.cat(clean_losses).numpy()
    meta = {"layer": layer, "points": len(values), "band": band, "clean_loss_median": float(np.median(clean_all)),
            "clean_loss_mean": float(clean_all.mean()), "most": nodes[int(np.argmax(med))].label, **loop.meta()}
    return Table("erasure_importance", [nd.label for nd in nodes],
                 {"median": list(map(float, med)), "low": list(map(float, low)), "high": list(map(float, high)),
                  "mean": list(map(float, mean))}, meta)

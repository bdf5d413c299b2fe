"""Causal checks of erasure: the writer removed from a later layer's values, DLA against the
resample-ablation effect, and prompts where the two disagree most."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from analyses.corpus import CorpusBatch, CorpusLoop, Progress, PromptSet, Stop
from analyses.dla import readout
from analyses.erasure.measure import Measure, Run, center, check_resampled
from analyses.errors import BadInput
from analyses.labels import Node, parse_node
from analyses.models.base import HookedModel
from analyses.models.hooks import Intervention
from analyses.results import Table


def _remove_from_values(m: Measure, clean: Run, w_full: Tensor, layer: int) -> Intervention:
    """Layer ``layer``'s values as if the writer's output ``w_full`` [b, s, d] were not in their
    input, the norm's scale frozen at the clean run's: v - ((w - mean w) / s * gamma) W_V. (The
    norm is affine once its scale is fixed, so this is exactly the value of the edited input.)"""
    model = m.model
    scale = clean.cache[f"blocks.{layer}.ln1.hook_scale"].float().to(m.device)  # [b, s, 1]
    gamma = model.attn_norm_params(layer)[0].float().to(m.device)
    a = center(model, w_full) / scale * gamma
    w_v = model.value_weights(layer)[0].float().to(m.device)
    delta = torch.einsum("bsd,dke->bske", a, w_v)
    return Intervention(f"blocks.{layer}.attn.hook_v", "fn",
                        fn=lambda v: (v.float() - delta.to(v.device)).to(v.dtype))


def causal_check(
    model: HookedModel, tokenizer, prompts: PromptSet, writer: str, *, layer: int | None = None, start: int = 0,
    last: bool = False, fold: str = "raw", progress: Progress = None, should_stop: Stop = None,
) -> Table:
    """Subtract the writer's output from the value input of every head of ``layer`` (default: the
    one after the writer's), that layer's norm scale frozen, q and k untouched; then PR onto the
    writer (median) and DLA toward the true next token (mean, clean final-norm scale) of every
    component before and after. Residual rows' DLA is the writer's share still in the stream
    (PR x the writer's DLA)."""
    node = parse_node(writer, model)
    m = Measure(model, start, last, fold)
    layer = node.layer + 1 if layer is None else layer
    if not node.layer < layer < m.n:
        raise BadInput(f"--value-layer must be after the writer's layer {node.layer} and below {m.n} (got {layer})")
    capture = m.capture() + [f"blocks.{layer}.ln1.hook_scale"]
    loop = CorpusLoop.over(model, tokenizer, prompts, progress, should_stop)
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
    meta = {"writer": node.label, "fold": fold, "layer": layer, "points": int(sum(len(x) for x in writer_dla)),
            "writer_dla": float(torch.cat(writer_dla).mean()),
            "logit_before": float(torch.cat(logit["before"]).mean()),
            "logit_after": float(torch.cat(logit["after"]).mean()), **loop.meta()}
    return Table("erasure_causal", m.comp_labels + m.resid_labels, columns, meta)


def _resample(m: Measure, batch: CorpusBatch, clean: Run, node: Node, logits: bool = False) -> Tensor:
    """The true next token's logit at the points with ``node``'s output taken from the next row
    (``logits``: the whole logits [b, s, vocab] of that run)."""
    perm = torch.arange(batch.ids.shape[0]).roll(-1)
    if node.head is None:
        name = f"blocks.{node.layer}.hook_mlp_out"
        iv = Intervention(name, "replace", value=clean.cache[name][perm])
    else:
        name = f"blocks.{node.layer}.attn.hook_z"
        iv = Intervention(name, "replace", value=clean.cache[name][perm], head=node.head)
    resid = clean.cache[f"blocks.{node.layer}.hook_resid_pre"]
    res = m.model.run(batch.ids, interventions=[iv], start_at_layer=node.layer, resid=resid)
    return res.logits if logits else clean.next_logits(res.logits)


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
    start: int = 0, last: bool = False, fold: str = "raw", progress: Progress = None, should_stop: Stop = None,
) -> Table:
    """Per head and MLP: mean DLA toward the true next token next to its total effect on that
    token's logit (clean minus resample-ablated, mean over the same points); flagged where they
    disagree in sign or by more than ``factor``."""
    if factor < 1:
        raise BadInput(f"--factor must be at least 1 (got {factor:g})")
    m = Measure(model, start, last, fold)
    capture = m.capture(resid=False) + [f"blocks.{layer}.hook_resid_pre" for layer in range(m.n)]
    loop = CorpusLoop.over(model, tokenizer, prompts, progress, should_stop)
    dla_sum = torch.zeros(len(m.comp_labels), dtype=torch.float64)
    eff_sum = torch.zeros(len(m.comp_labels), dtype=torch.float64)
    count, logit_sum = 0, 0.0
    for batch, clean in m.donor_runs(loop, capture):
        base = clean.next_logits()
        effects = torch.zeros_like(eff_sum)
        for i, node in enumerate(m.comp_nodes):
            if loop.stopped():  # one forward per component: on a large model a batch takes minutes
                break
            effects[i] = float((base - _resample(m, batch, clean, node)).sum())
        if loop.partial:  # the batch cut short counts for nothing; the finished ones stand
            break
        comps, _ = m.project(clean, (clean.u / clean.s_f[:, None])[:, None], resid=False)
        dla_sum += comps[..., 0].sum(0).double().cpu()
        logit_sum += float(base.sum())
        eff_sum += effects
        count += len(clean.rows)
    check_resampled(count, loop.partial, "erasure-effect", start)
    dla, eff = (dla_sum / count).tolist(), (eff_sum / count).tolist()
    flags = [_flag(a, b, factor, floor) for a, b in zip(dla, eff)]
    meta = {"metric": "true next-token logit" + (" (centred over the vocabulary)" if fold == "tl" else ""),
            "fold": fold, "points": count, "mean_logit": logit_sum / count, "factor": factor,
            "floor": floor, "flagged": [lab for lab, f in zip(m.comp_labels, flags) if f],
            "skipped_texts": m.skipped_texts, **loop.meta()}
    return Table("erasure_effect", list(m.comp_labels), {"dla": dla, "effect": eff, "flag": flags}, meta)


def _vocab_dla(model: HookedModel, mean_vec: Tensor, centred: bool = False, chunk: int = 8192) -> Tensor:
    """Mean DLA toward every vocabulary token, from the mean of (x - mean x) / s_f: DLA is
    linear in that, so one pass over W_U in chunks gives all of them (``centred``: W_U centred
    over the vocabulary, fold "tl")."""
    v = model.shape.d_vocab
    out = []
    for lo in range(0, v, chunk):
        cols = model.unembed_columns(range(lo, min(v, lo + chunk)))[0].to(mean_vec.device)
        out.append(mean_vec @ readout(model, cols))
    dla = torch.cat(out)
    return dla - dla.mean() if centred else dla


def adversarial_prompts(
    model: HookedModel, tokenizer, prompts: PromptSet, writer: str, *, k: int = 20, limit: int = 20,
    start: int = 0, last: bool = False, fold: str = "raw", progress: Progress = None, should_stop: Stop = None,
) -> Table:
    """Rank the vocabulary by the writer's mean DLA over the set; then list the prefixes of the
    texts whose true next token is among the top ``k`` with the largest writer DLA minus total
    effect (resample ablation of the writer): high DLA, small or opposite effect."""
    if k < 1 or limit < 1:
        raise BadInput("--k and --prompts must be at least 1")
    node = parse_node(writer, model)
    m = Measure(model, start, last, fold)
    capture = ["ln_final.hook_scale", f"blocks.{node.layer}.hook_resid_pre",
               f"blocks.{node.layer}." + ("hook_mlp_out" if node.head is None else "attn.hook_z")]
    loop = CorpusLoop.over(model, tokenizer, prompts, progress, should_stop)
    mean_vec = torch.zeros(model.shape.d_model, dtype=torch.float64, device=m.device)
    n_mean = 0
    found: list[tuple[list[int], int, int, float, float, float]] = []  # ids, pos, token, dla, effect, logit
    for batch, clean in m.donor_runs(loop, capture):
        w = m.output(clean, node)
        mean_vec += (center(model, w) / clean.s_f[:, None]).sum(0).double()
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
    vocab = _vocab_dla(model, (mean_vec / n_mean).float(), fold == "tl")
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
    meta = {"writer": node.label, "fold": fold, "k": k, "points": len(found),
            "top_tokens": [{"token": decode([i]), "mean_dla": float(v)} for i, v in zip(top_ids, top.values.tolist())],
            "candidates": sum(f[2] in wanted for f in found), **loop.meta()}
    return Table("erasure_prompts", labels, columns, meta)

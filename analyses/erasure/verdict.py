"""The eraser verdict: median PR, the OV scatter and the causal check of every head after the
writer, side by side, per head and for the erasers as a set.

Why all three: a median PR below a threshold alone misleads. A head can point away from the
writer for reasons of its own (on a trained 3-layer induction model, heads at median PR -0.7
had scatter r = +0.02, and removing the writer from their values did not move them); and
erasure can be spread thin over many heads (GELU-4L: -0.03 to -0.26 per head, -0.87 summed), so
no single head passes a -0.3 threshold while together they remove most of what the writer wrote.
Definitions: docs/erasure.md ("The eraser verdict")."""

from __future__ import annotations

import numpy as np
import torch

from analyses.corpus import CorpusLoop, Progress, PromptSet, Stop
from analyses.erasure.effects import _remove_from_values
from analyses.erasure.measure import Measure
from analyses.erasure.ratios import _ov_images
from analyses.errors import BadInput
from analyses.labels import Node, parse_node
from analyses.models.base import HookedModel
from analyses.results import Scatter, Table

SET = "erasers (set)"
SET_FLOOR = 0.01  # a head joins the set below this median PR (GELU-4L's smallest eraser: -0.03)


def _fit(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    return Scatter("fit", [""] * len(x), x.tolist(), y.tolist()).fit()


def _head_verdict(pr: float, after: float, r: float, threshold: float, r_max: float) -> tuple[str, list[str]]:
    """(verdict, the checks it passes): PR below -threshold; scatter r at most r_max; the causal
    check taking at least half of its PR away."""
    passed = [name for name, ok in (("PR", pr < -threshold), ("scatter", r <= r_max),
                                    ("causal", pr < 0 and abs(after) <= 0.5 * abs(pr))) if ok]
    if len(passed) == 3:
        return "eraser", passed
    if "PR" in passed:
        return "PR only: not " + " or ".join(c for c in ("scatter", "causal") if c not in passed), passed
    return ("", passed)


def eraser_verdict(
    model: HookedModel, tokenizer, prompts: PromptSet, writer: str, *, start: int = 0, last: bool = False,
    threshold: float = 0.05, r_max: float = -0.5, restore: float = 0.3, fold: str = "raw",
    progress: Progress = None, should_stop: Stop = None,
) -> Table:
    """Per head after the writer: its median PR onto the writer (``pr``), the same with the
    writer removed from the value input of every later layer (``pr_after``; norm scales frozen,
    q and k untouched), and the fit of its OV image's DLA on the writer's DLA (``r``, ``slope``).
    The set: every later head with median PR below -``SET_FLOOR``; its summed PR (before and after), the
    fit of the summed OV images, and the stream's PR onto the writer at the last residual point
    before and after the removal (``restored``: the share of what was lost that comes back).
    The set erases when its summed PR is below -threshold, its r at most ``r_max`` and at least
    ``restore`` of the stream comes back."""
    node = parse_node(writer, model)
    m = Measure(model, start, last, fold)
    later = list(range(node.layer + 1, m.n))
    if not later:
        raise BadInput(f"{node.label} is in the last layer: no head reads it")
    heads = [Node(layer, h) for layer in later for h in range(m.heads)]
    idx = [m.comp_labels.index(h.label) for h in heads]
    capture = m.capture() + [f"blocks.{layer}.ln1.hook_scale" for layer in later]
    loop = CorpusLoop.over(model, tokenizer, prompts, progress, should_stop)
    parts: dict[str, list] = {"pr": [], "after": [], "res": [], "res_after": [], "x": [], "y": []}
    for batch in loop:
        clean = m.run(batch, capture)
        if clean is None:
            continue
        w_full = m.full_output(clean.cache, node)
        w = w_full[clean.rows.to(w_full.device), clean.cols.to(w_full.device)]
        wn = (w * w).sum(-1)
        keep = wn > 0
        vec = (w / wn.clamp_min(1e-30)[:, None])[:, None]
        patched = m.run(batch, capture, [_remove_from_values(m, clean, w_full, layer) for layer in later],
                        clean=clean)
        for key, run in (("", clean), ("_after", patched)):
            comps, res = m.project(run, vec)
            parts["pr" if not key else "after"].append(comps[keep][:, idx, 0].cpu())
            parts["res" + key].append(res[keep][:, -1, 0].cpu())
        parts["x"].append(((w * clean.u).sum(-1) / clean.s_f)[keep].cpu())
        parts["y"].append(_ov_images(m, clean, w, later)[keep].cpu())
    if not parts["x"] or sum(len(x) for x in parts["x"]) == 0:
        raise BadInput(f"no position to measure: the texts are too short for --start {start}, or {node.label} "
                       "writes nothing")
    cat = {k: torch.cat(v).numpy() for k, v in parts.items()}
    pr, after = np.median(cat["pr"], 0), np.median(cat["after"], 0)
    fits = [_fit(cat["x"], cat["y"][:, i]) for i in range(len(heads))]
    verdicts = [_head_verdict(float(p), float(a), f["r"], threshold, r_max) for p, a, f in zip(pr, after, fits)]
    members = [i for i, p in enumerate(pr) if p < -SET_FLOOR]
    set_fit = _fit(cat["x"], cat["y"][:, members].sum(1)) if members else {"r": float("nan"), "slope": float("nan")}
    set_pr, set_after = float(pr[members].sum()), float(after[members].sum())
    stream, stream_after = float(np.median(cat["res"])), float(np.median(cat["res_after"]))
    lost = 1.0 - stream
    restored = (stream_after - stream) / lost if lost > 1e-6 else float("nan")
    failed = [name for name, ok in (("summed PR", set_pr < -threshold), ("scatter", set_fit["r"] <= r_max),
                                    ("causal", restored >= restore)) if not ok]
    set_verdict = "erasure" if members and not failed else "no erasure: not " + ", ".join(failed or ["members"])
    labels = [h.label for h in heads] + [SET]
    cols = {
        "pr": [*map(float, pr), set_pr],
        "pr_after": [*map(float, after), set_after],
        "r": [f["r"] for f in fits] + [set_fit["r"]],
        "slope": [f["slope"] for f in fits] + [set_fit["slope"]],
        "in_set": ["yes" if i in members else "" for i in range(len(heads))] + [""],
        "verdict": [v for v, _ in verdicts] + [set_verdict],
    }
    meta = {"writer": node.label, "fold": fold, "points": len(cat["x"]), "threshold": threshold, "r_max": r_max,
            "restore": restore, "erasers": [heads[i].label for i, (v, _) in enumerate(verdicts) if v == "eraser"],
            "misleading": [heads[i].label for i, (v, _) in enumerate(verdicts) if v.startswith("PR only")],
            "set": [heads[i].label for i in members], "set_verdict": set_verdict, "set_pr": set_pr,
            "set_r": set_fit["r"], "set_slope": set_fit["slope"], "stream": m.resid_labels[-1],
            "stream_before": stream, "stream_after": stream_after, "restored": restored, **loop.meta()}
    return Table("erasure_verdict", labels, cols, meta)

"""How the output combines the heads: the model's own weighting against least squares and a
uniform one (definitions: ``analyses.counting``)."""

from __future__ import annotations

import torch
from torch import Tensor

from analyses.counting.batch import Data, clean_run, forward, prepare
from analyses.counting.stats import separation_accuracy
from analyses.labels import head_label
from analyses.models.base import HookedModel
from analyses.models.hooks import Intervention
from analyses.results import Table
from analyses.tasks import Example


def _lstsq(x: Tensor, target: Tensor) -> tuple[Tensor, float]:
    """Ordinary least squares with an intercept column appended: (coefficients, R^2)."""
    x = torch.cat([x.double(), torch.ones(x.shape[0], 1, dtype=torch.float64)], 1)
    t = target.double()[:, None]
    beta = torch.linalg.lstsq(x, t, driver="gelsd").solution[:, 0]
    resid = t[:, 0] - x @ beta
    ss_tot = float(((t[:, 0] - t.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else float("nan")
    return beta, r2


def _weighted_run(model: HookedModel, data: Data, weights: Tensor) -> tuple[float, float, float]:
    """(acc, acc_best_threshold, eos_acc) with every head's z at the decision and EOS positions
    scaled by ``weights`` [heads]."""
    name = f"blocks.{data.layer}.attn.hook_z"

    def edits(idx):
        def fn(act):
            out = act.clone()
            rows = torch.arange(act.shape[0], device=act.device)
            w = weights.to(act.device, act.dtype)
            for pos in (data.dec[idx],) if data.readout == "eos" else (data.dec[idx], data.eos[idx]):
                pos = pos.to(act.device)
                out[rows, pos] = act[rows, pos] * w[:, None]
            return out

        return [Intervention(name, op="fn", fn=fn)]

    out = forward(model, data, edits)
    return out.accuracy(), separation_accuracy(out.ld, data.y, both_signs=False), out.eos_accuracy()


def head_combination(model: HookedModel, tokenizer, examples: list[Example], layer: int = 0,
                     readout: str = "answer") -> Table:
    """Rows ``model``, ``least squares``, ``uniform``: per-head weights and the accuracy of the
    model with its heads so weighted (module docstring)."""
    data = prepare(model, tokenizer, examples, layer, readout)
    con = clean_run(model, data)
    n_heads = model.shape.n_heads
    beta, r2 = _lstsq(torch.cat([con.s, con.rest[:, None]], 1), con.ld)
    beta_heads, r2_heads = _lstsq(con.s, con.ld)
    sigma = con.s.double().std(0)
    uniform = sigma.mean() / sigma.clamp(min=1e-300)
    rows = {"model": (torch.ones(n_heads, dtype=torch.float64), float("nan")),
            "least squares": (beta[:n_heads], r2),
            "uniform": (uniform, float("nan"))}
    cols: dict[str, list] = {f"w_{head_label(data.layer, h)}": [] for h in range(n_heads)}
    cols.update({"acc": [], "acc_best_threshold": [], "eos_acc": [], "r2": []})
    for weights, fit in rows.values():
        for h in range(n_heads):
            cols[f"w_{head_label(data.layer, h)}"].append(float(weights[h]))
        acc, best, eos = _weighted_run(model, data, weights.float())
        cols["acc"].append(acc)
        cols["acc_best_threshold"].append(best)
        cols["eos_acc"].append(eos)
        cols["r2"].append(fit)
    meta = {"layer": data.layer, "n": data.n, "accuracy": con.accuracy, "eos_accuracy": con.eos_accuracy,
            "readout": data.readout, "beta_rest": float(beta[n_heads]), "intercept": float(beta[n_heads + 1]),
            "heads_only_beta": [float(b) for b in beta_heads[:n_heads]], "heads_only_intercept": float(beta_heads[-1]),
            "heads_only_r2": r2_heads, "scale": [float(s) for s in sigma]}
    return Table("count_combine", list(rows), cols, meta)

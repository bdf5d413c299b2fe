"""Per-head metrics on Count01: AUC, separation and probe accuracy, attention ratios, accuracy
alone (definitions: ``analyses.counting``)."""

from __future__ import annotations

import torch
from torch import Tensor

from analyses.counting.batch import Data, Out, clean_run, forward, prepare
from analyses.counting.stats import L2, auc_and_sign, probe_accuracy, separation_accuracy
from analyses.labels import head_label
from analyses.models.base import HookedModel
from analyses.models.hooks import Intervention
from analyses.results import Table
from analyses.tasks import Example


def _class_stats(data: Data, pattern: Tensor, g: Tensor) -> dict[str, Tensor]:
    """Per example and head: ā_c and t_c for c = 0, 1, 2 ([n, H] each), and n_c ([n])."""
    out = {}
    for c in range(3):
        m = (data.kind == c).double()  # [n, s]
        n_c = m.sum(-1)
        denom = n_c.clamp(min=1)[:, None]
        out[f"n{c}"] = n_c
        out[f"a{c}"] = (pattern.double() * m[:, None]).sum(-1) / denom
        out[f"t{c}"] = (pattern.double() * g.double() * m[:, None]).sum(-1) / denom
    return out


def _ratios(stats: dict[str, Tensor], c: int) -> tuple[Tensor, Tensor]:
    """(raw, value-weighted) pooled ratio of class c to class 0 per head (module docstring)."""
    both = (stats[f"n{c}"] > 0) & (stats["n0"] > 0)
    if not both.any():
        nan = torch.full((stats["a0"].shape[1],), float("nan"), dtype=torch.float64)
        return nan, nan
    raw = stats[f"a{c}"][both].sum(0) / stats["a0"][both].sum(0)
    eff = stats[f"t{c}"][both].sum(0) / -stats["t0"][both].sum(0)
    return raw, eff


def _own_run(model: HookedModel, data: Data, z: Tensor, head: int) -> Out:
    """The run with every other head's z at the decision position set to its mean."""
    mean = z.mean(0)  # [H, dh]
    others = [h for h in range(model.shape.n_heads) if h != head]
    name = f"blocks.{data.layer}.attn.hook_z"

    def edits(idx):
        dec = data.dec[idx]

        def fn(act):
            out = act.clone()
            rows = torch.arange(act.shape[0], device=act.device)[:, None]
            hs = torch.tensor(others, device=act.device)[None, :]
            out[rows, dec.to(act.device)[:, None], hs] = mean[others].to(act.device, act.dtype)
            return out

        return [Intervention(name, op="fn", fn=fn)] if others else []

    return forward(model, data, edits)


def head_metrics(model: HookedModel, tokenizer, examples: list[Example], layer: int = 0, seed: int = 0,
                 readout: str = "answer") -> Table:
    """Per head of ``layer``: auc, auc_sign, s_acc, s_acc_one_dir, l_acc, w01, w02, w01_eff, w02_eff, own_acc,
    scale; then a ``model`` row (module docstring)."""
    data = prepare(model, tokenizer, examples, layer, readout)
    con = clean_run(model, data)
    n_heads = model.shape.n_heads
    stats = _class_stats(data, con.pattern, con.g)
    w01, w01_eff = _ratios(stats, 1)
    w02, w02_eff = _ratios(stats, 2)
    cols: dict[str, list] = {k: [] for k in ("auc", "auc_sign", "s_acc", "s_acc_one_dir", "l_acc", "w01", "w02", "w01_eff",
                                             "w02_eff", "own_acc", "scale")}
    scores = [con.s[:, h] for h in range(n_heads)] + [con.ld]
    feats = [con.outputs[:, h] for h in range(n_heads)] + [con.outputs.sum(1)]
    own_best: list[float] = []
    for i, (sc, ft) in enumerate(zip(scores, feats)):
        auc, sign = auc_and_sign(sc, con.y)
        cols["auc"].append(auc)
        cols["auc_sign"].append(sign)
        cols["s_acc"].append(separation_accuracy(sc, con.y))
        cols["s_acc_one_dir"].append(separation_accuracy(sc, con.y, both_signs=False))
        cols["l_acc"].append(probe_accuracy(ft, con.y, seed=seed))
        is_head = i < n_heads
        for key, t in (("w01", w01), ("w02", w02), ("w01_eff", w01_eff), ("w02_eff", w02_eff)):
            cols[key].append(float(t[i]) if is_head else float("nan"))
        if is_head:
            own = _own_run(model, data, con.z, i)
            cols["own_acc"].append(own.accuracy())
            own_best.append(separation_accuracy(own.ld, data.y, both_signs=False))
        else:
            cols["own_acc"].append(con.accuracy)
        cols["scale"].append(float(sc.double().std()) if len(sc) > 1 else float("nan"))
    labels = [head_label(data.layer, h) for h in range(n_heads)] + ["model"]
    meta = {"layer": data.layer, "n": data.n, "accuracy": con.accuracy, "eos_accuracy": con.eos_accuracy,
            "positives": int(con.y.sum()), "seed": seed, "readout": data.readout, "l2": L2, "own_acc_best_threshold": own_best}
    return Table("count_heads", labels, cols, meta)

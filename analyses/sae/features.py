"""An SAE's features on one prompt: the top active features per token, and each feature's direct
logit attribution through its decoder vector.

Feature DLA follows SPEC.md's DLA: the hook's activation ``x = Σ_i f_i W_dec[i] + b_dec + err``
(``err`` the reconstruction error), so for an SAE on a residual-width hook each term's DLA toward
``d`` is ``((term - mean term) / s_final) · (w_lnf ⊙ d)``, and the rows (features, ``b_dec``,
``error``) sum to the DLA of the hook's whole activation (``meta["hook_dla"]``). That is the
feature's *direct* effect as if written straight to the final norm: true for ``resid_post`` of
the last layer, an upper view of the direct path for earlier ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from analyses.errors import BadInput
from analyses.models.base import HookedModel
from analyses.results import Grid, Table
from analyses.sae.model import SAE, load_sae

SHIPPED_SAES = Path(__file__).resolve().parent.parent / "toys" / "shipped_saes"


def resolve_sae(folder: str | None, spec: str | None) -> SAE:
    """The SAE in ``folder``, or the one shipped for the built-in toy ``spec`` when none is given."""
    if folder:
        return load_sae(folder)
    name = (spec or "").removeprefix("toy:") if (spec or "").startswith("toy:") else ""
    shipped = SHIPPED_SAES / name if name else None
    if shipped is None or not (shipped / "cfg.json").is_file():
        have = ", ".join(sorted(f"toy:{p.name}" for p in SHIPPED_SAES.iterdir() if p.is_dir())) \
            if SHIPPED_SAES.is_dir() else "none"
        raise BadInput(f"give --sae DIR (an SAE folder in the SAELens layout); SAEs ship only for {have}")
    return load_sae(shipped)


def check_hook(model: HookedModel, sae: SAE) -> None:
    if sae.hook_name not in model.hook_names():
        raise BadInput(f"the SAE reads {sae.hook_name}, which this {model.shape.family} model does not have "
                       "(docs/hooks.md lists each family's names)")


def hook_activations(model: HookedModel, ids: Tensor, sae: SAE) -> tuple[Tensor, Any]:
    """The SAE hook's activations [b, s, d_in] of ``ids`` (fp32), the run stopped after its block
    when nothing later is needed; and the run (for logits and the final scale when it ran through)."""
    check_hook(model, sae)
    result = model.run(ids, capture=[sae.hook_name], stop_at_layer=_stop_after(model, sae.hook_name))
    x = result.cache[sae.hook_name].float()
    if x.shape[-1] != sae.d_in:
        raise BadInput(f"{sae.hook_name} has width {x.shape[-1]} on this model; the SAE reads {sae.d_in}")
    return x, result


def _stop_after(model: HookedModel, hook: str) -> int | None:
    """The layer to stop at once ``hook`` is computed (None: it is read at the end of the run)."""
    parts = hook.split(".")
    if parts[0] == "blocks" and len(parts) > 2 and parts[1].isdigit():
        layer = int(parts[1])
        return layer + 1 if layer + 1 < model.shape.n_layers else None
    return 0 if hook in ("hook_embed", "hook_pos_embed") else None


def top_features(model: HookedModel, ids: Tensor, sae: SAE, tokens: list[str], top: int) -> Grid:
    """A token x feature grid: for each token its ``top`` most active features, the columns the
    union of those (ordered by their largest activation on the prompt), the cells every column's
    activation at every token."""
    x, _ = hook_activations(model, ids, sae)
    f = sae.to(x.device).encode(x)[0]  # [s, d_sae]
    k = min(top, sae.d_sae)
    vals, idx = f.topk(k, dim=-1)
    chosen = sorted({int(i) for row_v, row_i in zip(vals, idx) for v, i in zip(row_v, row_i) if v > 0},
                    key=lambda i: -float(f[:, i].max()))
    per_token = [[{"feature": int(i), "act": float(v)} for v, i in zip(rv, ri) if v > 0] for rv, ri in zip(vals, idx)]
    cells = f[:, chosen].tolist() if chosen else [[] for _ in tokens]
    active = (f > 0).sum(-1).tolist()
    meta = {"sae": sae.describe(), "sae_path": sae.path, "hook": sae.hook_name, "top": top,
            "per_token": per_token, "active_per_token": active, "value": "feature activation"}
    return Grid("sae-features", ["pos", "feature"], {"pos": tokens, "feature": [f"F{i}" for i in chosen]}, cells, meta)


def feature_dla(model: HookedModel, ids: Tensor, sae: SAE, answer: int, distractor: int | None, pos: int,
                top: int) -> Table:
    """The DLA of each active feature at ``pos`` toward the answer (minus the distractor) through
    W_dec, with ``b_dec`` and ``error`` rows; the rows sum to the hook activation's DLA."""
    from analyses.dla import _direction, _position

    check_hook(model, sae)
    if sae.d_in != model.shape.d_model:
        raise BadInput(f"feature DLA reads W_dec as residual-stream directions: the SAE on {sae.hook_name} "
                       f"has width {sae.d_in}, the residual stream {model.shape.d_model}")
    p = _position(pos, ids.shape[1])
    result = model.run(ids, capture=[sae.hook_name, "ln_final.hook_scale"])
    x = result.cache[sae.hook_name][0, p].float()
    s = sae.to(x.device)
    f = s.encode(x)
    _, v, _ = _direction(model, answer, distractor)
    v = v.to(x.device)
    scale = result.cache["ln_final.hook_scale"][0, p, 0].float().to(x.device)
    per_feature = f * (s.W_dec @ v) / scale  # [d_sae]: f_i W_dec[i] · v / s, centring is in v
    b_dec = float(s.b_dec @ v / scale)
    err = float((x - s.decode(f)) @ v / scale)
    whole = float(x @ v / scale)
    active = torch.nonzero(f > 0).flatten()
    order = sorted(active.tolist(), key=lambda i: -abs(float(per_feature[i])))
    shown = order[:top]
    rest = float(per_feature[order[top:]].sum()) if len(order) > top else 0.0
    labels = [f"F{i}" for i in shown] + (["other features"] if len(order) > top else []) + ["b_dec", "error"]
    values = [float(per_feature[i]) for i in shown] + ([rest] if len(order) > top else []) + [b_dec, err]
    acts = [float(f[i]) for i in shown] + ([None] if len(order) > top else []) + [None, None]
    logits = result.logits[0, p].float()
    logit = float(logits[answer] - (logits[distractor] if distractor is not None else 0.0))
    meta = {"sae": s.describe(), "sae_path": sae.path, "hook": sae.hook_name, "pos": p, "logit": logit,
            "hook_dla": whole, "sum": sum(values), "active": len(order)}
    return Table("sae-dla", labels, {"dla": values, "activation": acts}, meta)

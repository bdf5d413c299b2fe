"""Head ablation: the change in the neuron's token probability when a head is zeroed, on the
texts where it is active against those where it is not (KS test)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from analyses.errors import BadInput
from analyses.models.base import HookedModel
from analyses.models.hooks import Intervention
from analyses.neurons.heads import active_heads, head_labels, padded, prompts_attribution, selected_heads
from analyses.neurons.max_acts import Trimmed
from analyses.results import Table


def token_prob(model: HookedModel, prompts: list[list[int]], token: int, ablate: tuple[int, int] | None = None,
               batch: int = 16, pad: int = 0) -> Tensor:
    """p(token) at each prompt's last token [n], with head (layer, head) zeroed (its ``hook_z``:
    the same as zeroing its values, and per query head on GQA models) when ``ablate`` is given."""
    out = []
    for ids, lengths in padded(prompts, batch, pad):
        last = torch.tensor([n - 1 for n in lengths])
        ivs = [] if ablate is None else [Intervention(f"blocks.{ablate[0]}.attn.hook_z", op="zero", head=ablate[1])]
        logits = model.run(ids, interventions=ivs, logit_pos=last).logits[:, 0].float()
        out.append(logits.log_softmax(-1)[:, token].cpu())
    return torch.cat(out).exp() if out else torch.zeros(0)


def ks_2samp(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov (D = sup |F_a - F_b|, and its p-value: exact for small
    samples, asymptotic otherwise), by scipy. NaN for an empty sample."""
    if len(a) == 0 or len(b) == 0:
        return float("nan"), float("nan")
    from scipy import stats

    result = stats.ks_2samp(a, b)
    return float(result.statistic), float(result.pvalue)


def ablation_table(model: HookedModel, prompts: list[Trimmed], layer: int, neuron: int, token: int,
                   heads: list[str] | None = None, low: float = 0.25, high: float = 0.75) -> Table:
    """Per head (``heads`` by label, default the selected ones): Δp = p(token) clean - p(token) with
    the head zeroed, averaged over the prompts where it is active and where it is not, and the
    two-sample KS test between those two sets of Δp; a last row ``all`` pools every head's;
    ``meta["samples"][label]`` holds the two Δp samples (``active``, ``inactive``) of that row's
    test, so that it can be checked or redone outside. Also Δ log p = log p clean - log p ablated (a change that a p near 0 or 1 hides in Δp)."""
    ids = [p.ids for p in prompts]
    attr = prompts_attribution(model, ids, layer, neuron)
    active = active_heads(attr)
    labels = head_labels(model, layer)
    rate = active.float().mean(0)
    if heads is None:
        chosen = selected_heads(rate, labels, low, high)
    else:
        unknown = [h for h in heads if h not in labels]
        if unknown:
            raise BadInput(f"--heads: {', '.join(unknown)} not among the heads that feed L{layer}: "
                           f"{labels[0]} .. {labels[-1]}")
        chosen = [labels.index(h) for h in heads]
    clean = token_prob(model, ids, token)
    rows: dict[str, list] = {k: [] for k in ("ks_d", "ks_p", "dp_active", "dp_inactive", "dlogp_active",
                                             "dlogp_inactive", "n_active", "n_inactive", "active_rate")}
    pooled: tuple[list, list, list, list] = ([], [], [], [])
    samples: dict[str, dict[str, list[float]]] = {}  # the two Δp samples each KS test compares
    n_heads = model.shape.n_heads
    for h in chosen:
        ablated = token_prob(model, ids, token, ablate=(h // n_heads, h % n_heads))
        dp = (clean - ablated).tolist()
        dlogp = (clean.log() - ablated.log()).tolist()
        flags = active[:, h].tolist()
        parts = ([d for d, f in zip(dp, flags) if f], [d for d, f in zip(dp, flags) if not f],
                 [d for d, f in zip(dlogp, flags) if f], [d for d, f in zip(dlogp, flags) if not f])
        for acc, part in zip(pooled, parts):
            acc += part
        _ks_row(rows, *parts, float(rate[h]))
        samples[labels[h]] = {"active": parts[0], "inactive": parts[1]}
    _ks_row(rows, *pooled, float("nan"))
    samples["all"] = {"active": pooled[0], "inactive": pooled[1]}
    meta = {"layer": layer, "neuron": neuron, "token_id": token, "n_prompts": len(prompts),
            "clean_p_mean": float(clean.mean()) if len(clean) else float("nan"), "samples": samples}
    return Table("neuron-ablation", [labels[h] for h in chosen] + ["all"], rows, meta)


def _ks_row(rows: dict[str, list], a: list[float], b: list[float], la: list[float], lb: list[float],
            rate: float) -> None:
    """KS on Δp (the paper's measure); the mean Δ log p too, which a saturated p(token) hides."""
    d, p = ks_2samp(a, b)
    mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")
    for k, v in (("ks_d", d), ("ks_p", p), ("dp_active", mean(a)), ("dp_inactive", mean(b)),
                 ("dlogp_active", mean(la)), ("dlogp_inactive", mean(lb)), ("n_active", len(a)),
                 ("n_inactive", len(b)), ("active_rate", rate)):
        rows[k].append(v)

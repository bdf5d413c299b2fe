"""Attribution patching of nodes: the linear estimate of every activation-patching cell.

Sign convention: denoising (corrupted run, clean activation), reported as the estimated patched
metric, in the same units as activation patching. The edge analyses live beside it:
``analyses.edge_graph`` (the graph, edge sets), ``analyses.eap`` (EAP, EAP-IG) and
``analyses.edge_patching`` (runs with edges patched); their public names are importable from
here too.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from analyses.eap import edge_attribution  # noqa: F401  (re-exported)
from analyses.edge_graph import EdgeGraph, Reader, Writer, prune_edges, select_edges  # noqa: F401
from analyses.edge_patching import (  # noqa: F401
    default_ks,
    exact_edge_scores,
    faithfulness,
    faithfulness_curve,
    path_patching,
    run_with_edges_patched,
)
from analyses.errors import BadInput
from analyses.models.base import HookedModel
from analyses.patching import baselines, sites_for
from analyses.results import Grid


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

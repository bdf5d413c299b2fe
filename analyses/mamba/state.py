"""The state cosine of Ensign & Garriga-Alonso 2024 (Fig 6, E4.5): how much of the SSM hidden state
h_j at position j points along what position i wrote into it, the SSM input term B̄_i x_i.

Per layer, prompt and (i, j): ``cos(Δ_i ⊙ x_i ⊗ B_i, h_j)`` over the flattened [d_inner, d_state]
state, with Δ = ``hook_delta``, x = ``hook_ssm_in``, B = ``hook_B`` and h = ``hook_h``; the grid is
its mean over the prompts. Not causal: a line of high cosine at one i says the state keeps that
token's write; the paper saw such lines one token after each name. Definitions: docs/mamba.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from analyses.errors import BadInput
from analyses.mamba.task import require_mamba
from analyses.models.base import HookedModel
from analyses.results import Grid

HOOKS = ("hook_delta", "hook_ssm_in", "hook_B", "hook_h")


def input_terms(delta: Tensor, x: Tensor, B: Tensor) -> Tensor:
    """B̄_i x_i = Δ_i x_i ⊗ B_i for every position: [b, s, d_inner, d_state]."""
    return (delta.float() * x.float())[..., None] * B.float()[:, :, None, :]


def state_cosine_matrix(terms: Tensor, states: Tensor) -> Tensor:
    """[b, i, j] cosine of input term i against state j, both [b, s, d_inner, d_state] (0 where a
    norm is 0)."""
    t, h = terms.flatten(2), states.float().flatten(2)
    dots = torch.einsum("bie,bje->bij", t, h)
    norms = t.norm(dim=-1)[:, :, None] * h.norm(dim=-1)[:, None, :]
    return torch.where(norms > 0, dots / norms.clamp_min(1e-30), torch.zeros_like(dots))


@torch.no_grad()
def state_cosine(model: HookedModel, tokens: Tensor, layers: Sequence[int] | None, token_labels: list[str]) -> Grid:
    """The grid layer x input position i x state position j of the mean state cosine over the
    prompts ``tokens`` [n, s] (aligned: one template's positions)."""
    require_mamba(model)
    n_layers = model.shape.n_layers
    chosen = list(range(n_layers)) if not layers else list(layers)
    bad = [x for x in chosen if not 0 <= x < n_layers]
    if bad:
        raise BadInput(f"--layers {bad[0]}: the model has layers 0-{n_layers - 1}")
    names = [f"blocks.{layer}.mixer.{h}" for layer in chosen for h in HOOKS]
    cache = model.run(tokens, capture=names).cache
    values = []
    for layer in chosen:
        p = f"blocks.{layer}.mixer."
        terms = input_terms(cache[p + "hook_delta"], cache[p + "hook_ssm_in"], cache[p + "hook_B"])
        values.append(state_cosine_matrix(terms, cache[p + "hook_h"]).mean(0).tolist())
    pos = [f"{k}:{t}" for k, t in enumerate(token_labels)]
    labels = {"layer": [f"L{x}" for x in chosen], "input pos": pos, "state pos": pos}
    return Grid("state_cosine", ["layer", "input pos", "state pos"], labels, values,
                {"metric": "cosine", "n_prompts": int(tokens.shape[0]), "tokens": token_labels})

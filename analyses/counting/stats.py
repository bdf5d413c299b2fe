"""Statistics of a score against yes/no labels: ROC AUC, separation accuracy, a linear probe
(definitions: ``analyses.counting``)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from analyses.errors import BadInput

L2 = 1e-2


def _scores_labels(scores, y) -> tuple[Tensor, Tensor]:
    s = torch.as_tensor(scores, dtype=torch.float64).flatten()
    lab = torch.as_tensor(y).flatten().bool()
    if s.numel() != lab.numel():
        raise BadInput(f"{s.numel()} scores for {lab.numel()} labels")
    if s.numel() == 0:
        raise BadInput("no scores")
    return s, lab


def roc_auc(scores, y) -> float:
    """``P(score of a positive > score of a negative) + P(equal) / 2`` (unfolded: may be < 0.5);
    NaN when a class is missing."""
    s, lab = _scores_labels(scores, y)
    n_pos, n_neg = int(lab.sum()), int((~lab).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inv, counts = torch.unique(s, return_inverse=True, return_counts=True)
    below = torch.cumsum(counts, 0) - counts  # values strictly below each distinct value
    ranks = (below + (counts + 1) / 2.0)[inv]  # average 1-based ranks
    return float((ranks[lab].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def auc_and_sign(scores, y) -> tuple[float, float]:
    """``(max(A, 1 - A), +1 if A >= 0.5 else -1)`` with ``A = roc_auc(scores, y)``; NaNs when a
    class is missing."""
    a = roc_auc(scores, y)
    if math.isnan(a):
        return a, a
    return max(a, 1.0 - a), 1.0 if a >= 0.5 else -1.0


def separation_accuracy(scores, y, both_signs: bool = True) -> float:
    """Best accuracy of ``predict y = 1 when score > tau`` over all thresholds (and, with
    ``both_signs``, of ``score <= tau`` too)."""
    s, lab = _scores_labels(scores, y)
    n = s.numel()
    vals, inv = torch.unique(s, return_inverse=True)
    pos = torch.bincount(inv, weights=lab.double(), minlength=len(vals))
    neg = torch.bincount(inv, weights=(~lab).double(), minlength=len(vals))
    zero = torch.zeros(1, dtype=torch.float64)
    neg_le = torch.cat([zero, torch.cumsum(neg, 0)])  # tau = -inf, vals[0], vals[1], ...
    pos_gt = pos.sum() - torch.cat([zero, torch.cumsum(pos, 0)])
    correct = neg_le + pos_gt
    best = correct.max()
    if both_signs:
        best = torch.maximum(best, (n - correct).max())
    return float(best / n)


def probe_accuracy(features, y, seed: int = 0, l2: float = L2, train_frac: float = 0.8) -> float:
    """Held-out accuracy of an L2-regularised logistic-regression probe (module docstring, l_acc)."""
    x = torch.as_tensor(features, dtype=torch.float64)
    lab = torch.as_tensor(y).flatten().bool()
    if x.ndim != 2 or x.shape[0] != lab.numel():
        raise BadInput(f"probe: features must be [examples, dims] for {lab.numel()} labels; got {list(x.shape)}")
    n = x.shape[0]
    n_train = round(train_frac * n)
    if n_train < 2 or n_train >= n:
        raise BadInput(f"probe: {n} examples are too few for a {train_frac:.0%} / {1 - train_frac:.0%} split")
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)
    tr, te = perm[:n_train], perm[n_train:]
    mu = x[tr].mean(0)
    sd = x[tr].std(0, unbiased=False)
    sd = torch.where(sd > 1e-12, sd, torch.ones_like(sd))
    xs = (x - mu) / sd
    t = lab.double()
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=500, tolerance_grad=1e-10, tolerance_change=1e-14,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        z = xs[tr] @ w + b
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z, t[tr]) + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        pred = (xs[te] @ w + b) > 0
    return float((pred == lab[te]).double().mean())

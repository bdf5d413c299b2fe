"""Patching metrics, computed at the last real token of each prompt, averaged over the batch.

``logit_diff``: answer logit - distractor logit. ``nld`` (normalized logit difference):
``(LD - LD_corrupt) / |LD_clean - LD_corrupt|`` with the batch-mean logit differences (a range of
0 is replaced by 1): 1 behaves like the clean run, 0 like the corrupted one. ``prob``: softmax
probability of the answer. ``tokens``: total probability of a user-chosen token set.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from analyses.errors import BadInput

METRICS = ("logit_diff", "nld", "prob", "tokens")


@dataclass
class Metric:
    """Per-row metric values from logits, for a batch of ``n`` prompts repeated ``k`` times."""

    name: str
    last: Tensor  # [n] index of the last real token
    answer: Tensor  # [n]
    distractor: Tensor  # [n]
    token_set: Tensor | None = None  # [t] for "tokens"
    clean: float = 0.0  # batch-mean logit differences of the two unpatched runs (for nld)
    corrupt: float = 0.0

    def __post_init__(self) -> None:
        if self.name not in METRICS:
            raise BadInput(f"--metric must be one of {', '.join(METRICS)}")
        if self.name == "tokens" and (self.token_set is None or len(self.token_set) == 0):
            raise BadInput("the 'tokens' metric needs a token set")

    def per_row(self, logits: Tensor) -> Tensor:
        """[k * n] values for logits [k * n, pos, vocab] (k copies of the batch, row-major)."""
        n = len(self.last)
        k = logits.shape[0] // n
        dev = logits.device
        rows = torch.arange(logits.shape[0], device=dev)
        last = logits[rows, self.last.to(dev).repeat(k)].float()
        answer, distractor = self.answer.to(dev).repeat(k), self.distractor.to(dev).repeat(k)
        if self.name == "prob":
            return last.softmax(-1)[rows, answer]
        if self.name == "tokens":
            return last.softmax(-1)[:, self.token_set.to(dev)].sum(-1)
        ld = last[rows, answer] - last[rows, distractor]
        if self.name == "nld":
            span = abs(self.clean - self.corrupt) or 1.0
            return (ld - self.corrupt) / span
        return ld

    def __call__(self, logits: Tensor) -> Tensor:
        """The batch mean for each of the k copies: [k]."""
        return self.per_row(logits).view(-1, len(self.last)).mean(-1)


def metric_columns(metric: str, answer: Tensor, distractor: Tensor) -> tuple[Tensor | None, Tensor, Tensor]:
    """(vocab, answer, distractor) for a run that unembeds only ``vocab``: the token ids the
    metric reads and the answer/distractor as columns of those logits. Probability metrics need
    the whole vocabulary (vocab None, ids unchanged)."""
    if metric not in ("logit_diff", "nld"):
        return None, answer, distractor
    vocab, cols = torch.cat([answer, distractor]).unique(return_inverse=True)
    return vocab, cols[: len(answer)], cols[len(answer) :]


def logit_diff(logits: Tensor, last: Tensor, answer: Tensor, distractor: Tensor) -> float:
    rows = torch.arange(len(last), device=logits.device)
    final = logits[rows, last.to(logits.device)].float()
    return float((final[rows, answer.to(logits.device)] - final[rows, distractor.to(logits.device)]).mean())

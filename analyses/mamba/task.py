"""The Mamba IOI task (Ensign & Garriga-Alonso 2024): aligned pairs with what its accuracy and NLD
need, computed once, and the hook names its analyses edit. Definitions: ``analyses.mamba``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from analyses.errors import BadInput
from analyses.metrics import Metric, logit_diff
from analyses.models.base import HookedModel
from analyses.models.hooks import Intervention
from analyses.patching import baselines

OUT = "blocks.{}.mixer.hook_out_proj"
IN_PROJ = "blocks.{}.mixer.hook_in_proj"
SSM_IN = "blocks.{}.mixer.hook_ssm_in"
SLICE = "blocks.{}.mixer.hook_conv_slice.{}"


def require_mamba(model: HookedModel) -> None:
    if model.shape.family != "mamba":
        raise BadInput(f"this analysis needs a Mamba model (this one is {model.shape.family})")


def name_token_ids(tokenizer) -> set[int]:
    """The IOI task's names as single tokens of this tokenizer (those it can spell so)."""
    from analyses.tasks.ioi import NAMES
    from analyses.tokens import resolve_token

    ids = set()
    for name in NAMES:
        try:
            ids.add(resolve_token(tokenizer, " " + name))
        except BadInput:
            pass
    return ids


def candidates(clean: Tensor, answer: Tensor, distractor: Tensor, names: set[int] = frozenset()) -> Tensor:
    """[n, k] candidate token ids per row: the row's answer (first), its distractor, and every
    prompt token that is a name (some row's answer or distractor, or in ``names``); short rows
    are padded with the answer."""
    vocab = set(answer.tolist()) | set(distractor.tolist()) | set(names)
    rows = []
    for r in range(clean.shape[0]):
        ids = [int(answer[r]), int(distractor[r])]
        ids += [t for t in dict.fromkeys(clean[r].tolist()) if t in vocab and t not in ids]
        rows.append(ids)
    width = max(len(r) for r in rows)
    return torch.tensor([r + [r[0]] * (width - len(r)) for r in rows])


def p_correct(picked: Tensor, cands: Tensor) -> float:
    """The paper's layer-removal quantity (Ensign & Garriga-Alonso 2024, Fig 4): the softmax
    probability of the answer among the row's candidate names only, batch mean. ``picked`` [n, k]
    are the candidates' logits, answer first; the answer's padding copies in ``cands`` are left out."""
    pad = cands == cands[:, :1]
    pad[:, 0] = False
    probs = picked.masked_fill(pad, float("-inf")).softmax(1)
    return float(probs[:, 0].mean())


@dataclass
class Task:
    """Aligned pairs with everything the metrics need, computed once: the clean and corrupted
    runs' last-token logit differences (for NLD) and the candidate names (for accuracy)."""

    model: HookedModel
    clean: Tensor
    corrupt: Tensor
    answer: Tensor
    distractor: Tensor
    cands: Tensor
    metric: Metric
    clean_cache: dict[str, Tensor]
    corrupt_cache: dict[str, Tensor]
    clean_scores: dict[str, float] = field(default_factory=dict)  # of the unedited runs, measured once
    corrupt_scores: dict[str, float] = field(default_factory=dict)

    @classmethod
    def build(cls, model: HookedModel, clean: Tensor, corrupt: Tensor, answer: Tensor, distractor: Tensor,
              names: set[int] = frozenset(), capture: Sequence[str] = ()) -> Task:
        c, r, m = baselines(model, clean, corrupt, answer, distractor, "nld", capture=list(capture))
        task = cls(model, clean, corrupt, answer, distractor, candidates(clean, answer, distractor, names), m,
                   c.cache, r.cache)
        task.clean_scores, task.corrupt_scores = task.scores(c.logits), task.scores(r.logits)
        return task

    def scores(self, logits: Tensor) -> dict[str, float]:
        """accuracy, NLD and mean logit difference of last-token logits [n, pos, vocab]."""
        n = self.clean.shape[0]
        last = logits[torch.arange(n), self.metric.last].float()
        cands = self.cands.to(last.device)
        picked = last.gather(1, cands)
        acc = float((picked.argmax(1) == 0).float().mean())
        nld = float(self.metric(logits)[0])
        ld = logit_diff(logits, self.metric.last, self.answer, self.distractor)
        return {"accuracy": acc, "nld": nld, "logit_diff": ld, "p_correct": p_correct(picked, cands)}

    def run(self, interventions: Sequence[Intervention] = ()) -> dict[str, float]:
        return self.scores(self.model.run(self.clean, interventions=interventions).logits)

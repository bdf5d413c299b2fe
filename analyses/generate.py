"""Text generation through the hooked forward pass, so the standing edits and steering act on it.

Each new token runs only its own position: the keys and values of the earlier positions (Mamba:
the conv's last inputs and the SSM state) come from the previous step as the interventions left
them (``HookedModel.run(keep_prefix=True)``). That equals re-running the whole sequence at every
step only if every intervention lands on the same positions in both: so a position given to an
intervention counts in the prompt (``@-1`` is the prompt's last token, not each step's newest),
fixed once before the first step (``anchored``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from analyses.errors import BadInput, Cancelled
from analyses.models.base import HookedModel
from analyses.models.hooks import Intervention


@dataclass(frozen=True)
class Sampling:
    """How the next token is chosen: ``temperature`` 0 is greedy (argmax); otherwise a draw from
    softmax(logits / temperature) over the ``top_k`` most likely tokens (0: all), from a
    generator seeded with ``seed`` (the same seed, the same text)."""

    temperature: float = 0.0
    top_k: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.temperature < 0 or self.top_k < 0:
            raise BadInput("temperature and top-k must be at least 0")


@dataclass
class Continuation:
    """The tokens chosen after the prompt, and each one's probability under the model (softmax of
    the raw logits, before temperature or top-k)."""

    ids: list[int]
    probs: list[float]


def _anchor_pos(pos, length: int):
    if pos is None:
        return None
    if isinstance(pos, slice):
        start, stop = (None if p is None else p % length if p < 0 else p for p in (pos.start, pos.stop))
        return slice(start, stop, pos.step)
    if isinstance(pos, int):
        return pos % length if pos < 0 else pos
    if isinstance(pos, Tensor):
        return torch.where(pos < 0, pos % length, pos)
    return [p % length if p < 0 else p for p in pos]


def anchored(interventions: Sequence[Intervention], length: int) -> tuple[Intervention, ...]:
    """``interventions`` with negative positions counted from the end of a ``length``-token prompt."""
    return tuple(dataclasses.replace(iv, pos=_anchor_pos(iv.pos, length)) for iv in interventions)


def choose(logits: Tensor, sampling: Sampling, generator: torch.Generator) -> int:
    """The next token from the last position's logits [vocab]."""
    if sampling.temperature == 0:
        return int(logits.argmax())
    scaled = logits.float() / sampling.temperature
    if sampling.top_k and sampling.top_k < scaled.shape[-1]:
        kth = scaled.topk(sampling.top_k).values[-1]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    probs = scaled.softmax(-1).cpu()
    return int(torch.multinomial(probs, 1, generator=generator))


def continuation(model: HookedModel, prompt: Sequence[int], max_new: int, sampling: Sampling = Sampling(),
                 eos: int | None = None, on_token: Callable[[int, float], None] | None = None,
                 should_stop: Callable[[], bool] | None = None, use_cache: bool = True) -> Continuation:
    """Up to ``max_new`` tokens after ``prompt`` (ids), stopping after ``eos`` or at the model's
    last position; every run has the model's standing interventions (anchored to the prompt).
    ``use_cache`` False re-runs the whole sequence at every step (the reference the cached path
    must equal). ``on_token(id, p)`` sees each token as it is chosen; ``should_stop`` is checked
    before each step."""
    if not prompt:
        raise BadInput("generation needs a prompt of at least one token")
    n_ctx = model.shape.n_ctx
    if n_ctx is not None:  # generation ends where the model's positions do
        if len(prompt) >= n_ctx:
            raise BadInput(f"the prompt ({len(prompt)} tokens) fills the model's {n_ctx} positions: nothing to add")
        max_new = min(max_new, n_ctx - len(prompt))
    generator = torch.Generator().manual_seed(sampling.seed)
    saved = model.standing
    model.standing = anchored(saved, len(prompt))
    tokens = torch.tensor([list(prompt)])
    prefix, out = None, Continuation([], [])
    try:
        for _ in range(max_new):
            if should_stop is not None and should_stop():
                raise Cancelled("generation stopped")
            if use_cache:
                start = 0 if prefix is None else prefix.start
                last = torch.tensor([tokens.shape[1] - 1 - start])
                result = model.run(tokens, prefix=prefix, keep_prefix=True, logit_pos=last)
                prefix = result.prefix
            else:
                result = model.run(tokens, logit_pos=torch.tensor([tokens.shape[1] - 1]))
            logits = result.logits[0, -1]
            token = choose(logits, sampling, generator)
            p = float(logits.float().softmax(-1)[token])
            out.ids.append(token)
            out.probs.append(p)
            if on_token is not None:
                on_token(token, p)
            if token == eos:
                break
            tokens = torch.cat([tokens, torch.tensor([[token]])], 1)
    finally:
        model.standing = saved
    return out

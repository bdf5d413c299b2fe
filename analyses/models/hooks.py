"""Hook points: the one place where activations are captured, edited and tapped for gradients.

Every adapter's forward pass calls ``hooks(name, x)`` at each named activation. With nothing
asked for that name the call is a dictionary miss and returns ``x`` unchanged, so an unhooked run
costs about what a plain forward costs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from analyses.errors import BadInput

Index = int | Sequence[int] | slice | Tensor | None

# Activations whose axes are [batch, head, query_pos, key_pos]; every other per-head activation
# is [batch, pos, head, d_head], and the rest are [batch, pos, ...]. Mamba's stacked conv slices
# [batch, pos, slice, d_inner] index their slice like a head.
_HEAD_FIRST = ("hook_pattern", "hook_attn_scores")
_PER_HEAD = ("hook_q", "hook_k", "hook_v", "hook_z", "hook_rot_q", "hook_rot_k", "hook_q_input", "hook_k_input",
             "hook_v_input", "hook_conv_slices") + _HEAD_FIRST

OPS = ("replace", "add", "zero", "mean", "fn")


def axes_of(name: str) -> tuple[int, int | None]:
    """(position axis, head axis or None) of the activation called ``name``."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf in _HEAD_FIRST:
        return 2, 1
    if leaf in _PER_HEAD:
        return 1, 2
    return 1, None


def _as_index(i: Index) -> slice | list[int] | Tensor:
    if i is None:
        return slice(None)
    if isinstance(i, int):
        return [i]
    if isinstance(i, (slice, Tensor)):
        return i
    return list(i)


@dataclass(frozen=True)
class Intervention:
    """An edit of one named activation during a run.

    ``op``: ``replace`` writes ``value``; ``add`` adds it; ``zero`` zeroes; ``mean`` writes the
    mean over the batch axis of ``value`` (a reference set of activations) or, without ``value``,
    of the activation itself; ``fn`` calls ``fn(activation) -> activation`` on the whole tensor
    (with ``pos``, only its change at those positions is kept). ``batch``, ``pos`` and ``head``
    restrict the edit (None = all). A ``value`` of the activation's full shape is indexed like the
    activation (the patching case: the same cells of a clean run); any other shape is broadcast
    onto the selected cells.

    ``pos`` counts positions of the whole prompt, also in runs whose activations cover fewer
    (``Hooks.frame``): a run over a suffix, or one narrowed to one position per row. ``label``
    names the edit in errors.
    """

    name: str
    op: str = "replace"
    value: Tensor | None = None
    pos: Index = None
    head: Index = None
    batch: Index = None
    fn: Callable[[Tensor], Tensor] | None = None
    label: str = ""

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise BadInput(f"unknown intervention op {self.op!r}; expected one of {', '.join(OPS)}")
        if self.op in ("replace", "add") and self.value is None:
            raise BadInput(f"intervention {self.op!r} on {self.name} needs a value")
        if self.op == "fn" and self.fn is None:
            raise BadInput(f"intervention 'fn' on {self.name} needs fn")
        if self.head is not None and axes_of(self.name)[1] is None:
            raise BadInput(f"{self.name} has no head axis; drop the head index")

    def _index(self, ndim: int) -> tuple:
        pos_axis, head_axis = axes_of(self.name)
        idx: list = [slice(None)] * ndim
        # Advanced indices on several axes would pair up element-wise; we want the outer product,
        # so turn each list into a broadcastable tensor.
        picks = [(0, self.batch), (pos_axis, self.pos)]
        if head_axis is not None:
            picks.append((head_axis, self.head))
        lists = [(axis, _as_index(i)) for axis, i in picks]
        n_adv = sum(not isinstance(i, slice) for _, i in lists)
        k = 0
        for axis, i in lists:
            if isinstance(i, slice) or n_adv <= 1:
                idx[axis] = i
            else:
                t = torch.as_tensor(i)
                idx[axis] = t.reshape([-1] + [1] * (n_adv - k - 1))
                k += 1
        return tuple(idx)

    def apply(self, act: Tensor, where: Tensor | None = None, seq: int | None = None) -> Tensor:
        """The edited activation. ``where`` [b or 1, positions]: the prompt position of each of the
        activation's positions, given when they are not 0..s-1 (or for ``fn`` with ``pos``),
        ``seq`` the prompt's length."""
        if self.pos is not None and (where is not None or self.op == "fn"):
            return self._apply_at(act, where, seq)
        if self.op == "fn":
            return self.fn(act)
        idx = self._index(act.ndim)
        out = act.clone()
        target = out[idx]
        if self.op == "zero":
            new = torch.zeros_like(target)
        elif self.op == "mean":
            ref = act if self.value is None else self.value.to(act.device, act.dtype)
            mean = ref.mean(0, keepdim=True).expand(act.shape[0], *ref.shape[1:])
            new = mean[idx] if mean.shape == act.shape else mean.expand_as(act)[idx]
        else:
            value = self.value.to(act.device, act.dtype)
            value = value[idx] if value.shape == act.shape else value.expand_as(target)
            new = target + value if self.op == "add" else value
        out[idx] = new
        return out


    def _apply_at(self, act: Tensor, where: Tensor | None, seq: int | None) -> Tensor:
        """The edit made at every position, kept only where ``where`` is one of ``pos``."""
        pos_axis = axes_of(self.name)[0]
        if where is None:
            where = torch.arange(act.shape[pos_axis])[None]
        seq = act.shape[pos_axis] if seq is None else seq
        if isinstance(self.pos, slice):
            chosen = torch.arange(seq)[self.pos]
        else:
            chosen = torch.as_tensor([self.pos] if isinstance(self.pos, int) else self.pos).long().flatten().cpu()
        bad = chosen[(chosen < -seq) | (chosen >= seq)]
        if len(bad):
            raise BadInput(f"{self.label or self.name}: position {int(bad[0])} is outside the run's {seq} positions")
        mask = torch.isin(where.to(act.device), (chosen % seq).to(act.device))  # [b or 1, positions]
        shape = [1] * act.ndim
        shape[0], shape[pos_axis] = mask.shape
        edited = replace(self, pos=None).apply(act)
        return torch.where(mask.view(shape), edited, act)


Capture = Iterable[str] | Callable[[str], bool] | None


class Hooks:
    """The per-run state behind every hook point: what to capture, edit and differentiate."""

    def __init__(
        self,
        capture: Capture = None,
        interventions: Sequence[Intervention] = (),
        grad_names: Iterable[str] = (),
        detach: bool = True,
    ) -> None:
        self._filter = capture if callable(capture) else None
        self._names = frozenset(() if capture is None or callable(capture) else capture)
        self.edits: dict[str, list[Intervention]] = {}
        for iv in interventions:
            self.edits.setdefault(iv.name, []).append(iv)
        self.grad_names = frozenset(grad_names)
        self.detach = detach
        self.cache: dict[str, Tensor] = {}
        self.taps: dict[str, Tensor] = {}
        self.seq: int | None = None
        self.start = 0
        self.at: Tensor | None = None

    def frame(self, seq: int, start: int = 0, at: Tensor | None = None) -> None:
        """Which prompt positions this run's activations cover, so that an edit's ``pos`` lands
        where it would in a whole run: positions ``start..seq-1`` (a run resumed over a suffix),
        and where an activation has one position per row (a run narrowed to the position it
        unembeds), row r's is ``at[r]`` (counted from 0)."""
        self.seq, self.start, self.at = seq, start, at

    def _where(self, iv: Intervention, x: Tensor) -> Tensor | None:
        """The prompt positions of ``x``'s positions [b or 1, s], or None when they are 0..s-1."""
        if self.seq is None or iv.pos is None:
            return None
        length = x.shape[axes_of(iv.name)[0]]
        if length == self.seq - self.start:
            return torch.arange(self.start, self.seq)[None] if self.start else None
        if length == 1 and self.at is not None:
            return self.at[:, None]
        raise BadInput(f"{iv.label or iv.name}: cannot place its positions in an activation of {length} positions")

    def names_used(self) -> set[str]:
        """Every explicitly named activation (for validation against the model's names)."""
        return set(self._names) | set(self.edits) | set(self.grad_names)

    def wants(self, name: str) -> bool:
        return name in self._names or (self._filter is not None and self._filter(name))

    def active(self, name: str) -> bool:
        """Whether anything looks at ``name`` (lets adapters skip optional work, e.g. patterns)."""
        return self.wants(name) or name in self.edits or name in self.grad_names

    def __call__(self, name: str, x: Tensor) -> Tensor:
        for iv in self.edits.get(name, ()):
            x = iv.apply(x, self._where(iv, x), self.seq)
        if name in self.grad_names:
            # Adding a zero leaf keeps the graph through x intact, so gradients at earlier taps
            # still see every path; d(metric)/d(tap) is the gradient at this activation.
            tap = torch.zeros_like(x, requires_grad=True)
            self.taps[name] = tap
            x = x + tap
        if self.wants(name):
            self.cache[name] = x.detach() if self.detach else x
        return x

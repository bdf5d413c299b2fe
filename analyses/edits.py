"""Edits of heads' SVD components: on the weights (W_O) or on the activations during runs.

A weight edit scales OV components of head h: ``W_O[h] <- W_O[h] (I + Σ_i (α-1) v_i v_iᵀ)``, so
``OV' = OV + Σ_i (α-1) s_i u_i v_iᵀ`` exactly (``OV v_i = s_i u_i`` and v_i ⊥ 1 when W_O is
centred). It acts on everything the head writes through W_O, the value bias's share included.
An activation edit changes the head's output ``z_h W_O[h]`` inside ``hook_attn_out`` (the head
output recomputed from ``hook_z`` of the same run): scale its components along v_i, or add
``value * v_i``. Both are the same on the residual stream: scaling by α as weights or as
activations gives the same run.

``EditStack`` keeps the edits applied to a model in order; ``undo`` restores the weights from a
copy taken before the edit (bit for bit) or drops the run-time interventions. It also keeps any
other standing intervention: an object with a ``text`` and ``interventions(model)`` (a steering
vector, ``analyses.steering.Steer``).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor

from analyses.talking_heads.composition import head_weights, ov_svd
from analyses.edit_spec import Edit, parse_edit
from analyses.errors import BadInput
from analyses.models.base import HookedModel
from analyses.models.hooks import Intervention


class Standing(Protocol):
    """A run-time intervention the analyst keeps on (steering): named by ``text`` in each run's record."""

    text: str

    def interventions(self, model: HookedModel) -> tuple[Intervention, ...]: ...


def _check(model: HookedModel, edit: Edit) -> None:
    shape = model.shape
    if shape.n_heads == 0 or not hasattr(model, "head_out_weight"):
        raise BadInput(f"edit {edit.text}: {shape.family} has no attention heads to edit")
    if not (0 <= edit.layer < shape.n_layers and 0 <= edit.head < shape.n_heads):
        raise BadInput(f"edit {edit.text}: no head {edit.head_label} ({shape.n_layers} layers x {shape.n_heads} heads)")
    bad = [c for c in edit.comps if c >= shape.d_head]
    if bad:
        raise BadInput(f"edit {edit.text}: a head has {shape.d_head} components (0..{shape.d_head - 1})")


# model -> layer -> (the stamp of the weights it was computed from, the layer's write directions
# [H, d_head, D]): an edit search applies thousands of edits to a few layers, one SVD each.
_svd_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _stamp(model: HookedModel, layer: int) -> tuple:
    """Identifies the state of the weights a layer's OV SVD reads: any in-place change of them
    (an edit, its undo) bumps a parameter's version."""
    return model.attn_weights_stamp(layer)


def _layer_directions(model: HookedModel, layer: int) -> Tensor:
    """Write directions [H, d_head, D] of every head of ``layer``, computed once per weight state."""
    cache = _svd_cache.setdefault(model, {})
    stamp = _stamp(model, layer)
    hit = cache.get(layer)
    if hit is None or hit[0] != stamp:
        hit = cache[layer] = (stamp, ov_svd(head_weights(model, "tl", layers=[layer]))[1][0])
    return hit[1]


def write_directions(model: HookedModel, layer: int, head: int, comps: Sequence[int]) -> Tensor:
    """Unit write directions v_i [len(comps), D] (fp32, CPU) of OV components of one head."""
    return _layer_directions(model, layer)[head, list(comps)]


@dataclass
class _Applied:
    edit: Any  # an Edit or a Standing
    saved: Tensor | None = None  # the weight before a weight edit
    weight: Tensor | None = None
    directions: Tensor | None = None  # the edited layer's write directions before a weight edit
    interventions: tuple[Intervention, ...] = ()


def _weight_edit(model: HookedModel, edit: Edit) -> _Applied:
    directions = _layer_directions(model, edit.layer)
    v = directions[edit.head, list(edit.comps)]
    with model.head_out_weight(edit.layer, edit.head) as (weight, block), torch.no_grad():
        saved = weight.detach().clone()
        w = block.float()
        vd = v.to(w.device)
        new = w + (edit.value - 1.0) * (w @ vd.T) @ vd
        block.copy_(new.to(block.dtype))
    return _Applied(edit, saved=saved, weight=weight, directions=directions)


def _activation_edit(model: HookedModel, edit: Edit) -> _Applied:
    v = write_directions(model, edit.layer, edit.head, edit.comps)
    with model.head_out_weight(edit.layer, edit.head) as (_, block):
        reads = block.detach().float() @ v.T.to(block.device)  # [d_head, k]: z_h -> the head's output along each v_i
    seen: dict[str, Tensor] = {}
    h, value, scale = edit.head, edit.value, edit.op == "="

    def keep_z(z: Tensor) -> Tensor:
        seen["z"] = z
        return z

    def change(out: Tensor) -> Tensor:
        vd = v.to(out.device)
        if scale:
            delta = (value - 1.0) * (seen["z"][:, :, h].float() @ reads.to(out.device)) @ vd
        else:
            delta = (value * vd.sum(0)).expand(*out.shape[:2], -1)
        return out + delta.to(out.dtype)

    p = f"blocks.{edit.layer}."
    # At ``pos`` only (a position of the whole prompt, also in runs over part of it: Hooks.frame).
    ivs = ((Intervention(p + "attn.hook_z", "fn", fn=keep_z),) if scale else ()) + \
        (Intervention(p + "hook_attn_out", "fn", fn=change, pos=edit.pos, label=f"edit {edit.text}"),)
    return _Applied(edit, interventions=ivs)


@dataclass
class EditStack:
    """The edits applied to one model, oldest first."""

    model: HookedModel
    applied: list[_Applied] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._base = tuple(self.model.standing)  # interventions of an enclosing stack stay on

    def _sync(self) -> None:
        self.model.standing = self._base + tuple(iv for a in self.applied for iv in a.interventions)

    @property
    def edits(self) -> list[Edit | Standing]:
        return [a.edit for a in self.applied]

    def texts(self) -> list[str]:
        return [e.text for e in self.edits]

    def apply(self, edit: Edit | Standing | str) -> Edit | Standing:
        edit = parse_edit(edit) if isinstance(edit, str) else edit
        if not isinstance(edit, Edit):
            self.applied.append(_Applied(edit, interventions=tuple(edit.interventions(self.model))))
            self._sync()
            return edit
        _check(self.model, edit)
        done = _weight_edit(self.model, edit) if edit.target == "ov" else _activation_edit(self.model, edit)
        self.applied.append(done)
        self._sync()
        return edit

    def undo(self) -> Edit | Standing | None:
        """Undo the latest edit: its weights back bit for bit, or its interventions dropped."""
        if not self.applied:
            return None
        done = self.applied.pop()
        if done.saved is not None:
            with torch.no_grad():
                done.weight.copy_(done.saved)
            # The weights are as they were before the edit, bit for bit: so is their SVD.
            _svd_cache.setdefault(self.model, {})[done.edit.layer] = (_stamp(self.model, done.edit.layer),
                                                                       done.directions)
        self._sync()
        return done.edit

    def clear(self) -> None:
        while self.applied:
            self.undo()


@contextlib.contextmanager
def edited(model: HookedModel, edits: Sequence[Edit | Standing | str]) -> Iterator[EditStack]:
    """Within the block, ``edits`` are applied (in order); afterwards the model is as before."""
    stack = EditStack(model)
    try:
        for e in edits:
            stack.apply(e)
        yield stack
    finally:
        stack.clear()

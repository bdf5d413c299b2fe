"""Steering vectors: a direction found from two sets of prompts, added to the residual stream.

The vector is the difference of the mean activations of two prompt sets at one hook and position
(contrastive activation addition, CAA): ``v = mean_a x - mean_b x``. ``Steer`` adds ``scale * v``
at a hook during every run, at every position or from one position on: a standing intervention
like an activation edit (``analyses.edits.EditStack`` keeps it, undoes it, and each run records
its ``text``), made from any vector: a probe's direction serves as well as a mean difference.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from analyses.errors import BadInput, Cancelled
from analyses.models.base import HookedModel
from analyses.models.hooks import Intervention
from analyses.results import Grid


@dataclass(frozen=True)
class Steer:
    """Add ``scale * vector`` to the activation ``hook`` [b, pos, d]: at every position, or at
    positions ``start`` and later (a prompt position; negative counts from the prompt's end).
    ``name`` says where the vector came from (a session run, a file)."""

    vector: Tensor
    hook: str
    scale: float
    start: int | None = None
    name: str = "v"

    def __post_init__(self) -> None:
        if self.vector.ndim != 1:
            raise BadInput(f"a steering vector is one direction [d]; got shape {tuple(self.vector.shape)}")
        if not math.isfinite(self.scale):
            raise BadInput(f"steering scale {self.scale!r} is not a finite number")

    @property
    def text(self) -> str:
        where = "" if self.start is None else f":from{self.start}"
        return f"steer:{self.name}*{self.scale:g}@{self.hook}{where}"

    @property
    def norm(self) -> float:
        return float(self.vector.float().norm())

    def interventions(self, model: HookedModel) -> tuple[Intervention, ...]:
        """The run-time edit on ``model``: checked against its hook names and width."""
        _check_fits(self.text, self.vector, self.hook, model)
        pos = None if self.start is None else slice(self.start, None)
        return (Intervention(self.hook, "add", value=self.scale * self.vector.float(), pos=pos, label=self.text),)


def _check_fits(text: str, vector: Tensor, hook: str, model: HookedModel) -> None:
    """A standing vector intervention's hook exists on ``model`` and the vector has its width."""
    if hook not in model.hook_names():
        raise BadInput(f"{text}: {model.shape.family} has no hook {hook} (see docs/hooks.md)")
    if vector.shape[0] != model.shape.d_model:
        raise BadInput(f"{text}: the vector has {vector.shape[0]} dimensions, the model's residual "
                       f"stream {model.shape.d_model}")


_STEER = re.compile(r"^\*?(-?[0-9.eE+-]+)@([^:]+)(?::from(-?\d+))?$")
STEER_SYNTAX = "SCALE@LAYER or SCALE@HOOK, optionally :fromPOS (e.g. 4@1, -2@blocks.1.hook_resid_pre:from-1)"


def resid_hook(where: str, model_layers: int | None = None) -> str:
    """``"3"`` -> ``blocks.3.hook_resid_pre``; a hook name as given."""
    if where.lstrip("-").isdigit():
        layer = int(where)
        if model_layers is not None and not 0 <= layer < model_layers:
            raise BadInput(f"layer {layer}: the model has layers 0..{model_layers - 1}")
        return f"blocks.{layer}.hook_resid_pre"
    return where


def parse_steer(text: str, vector: Tensor, name: str, default_hook: str, n_layers: int | None = None) -> Steer:
    """``"4@1:from-1"`` (scale, layer or hook, first position) applied to ``vector`` -> Steer;
    without ``@`` the vector's own hook."""
    t = text.strip().replace(" ", "")
    if "@" not in t:
        t = f"{t}@{default_hook}"
    m = _STEER.match(t)
    if not m:
        raise BadInput(f"steering {text!r}: write {STEER_SYNTAX}")
    try:
        scale = float(m.group(1))
    except ValueError:
        raise BadInput(f"steering {text!r}: {m.group(1)!r} is not a number") from None
    start = None if m.group(3) is None else int(m.group(3))
    return Steer(vector, resid_hook(m.group(2), n_layers), scale, start, name)


def _rows(ids: Tensor, pos: int) -> Tensor:
    return torch.full((ids.shape[0],), pos % ids.shape[1], dtype=torch.long)


def mean_activation(model: HookedModel, prompts: Sequence[Sequence[int]], hooks: Sequence[str], pos: int,
                    batch: int = 32) -> dict[str, Tensor]:
    """Mean over ``prompts`` of each hook's activation [d] at ``pos`` (of each prompt; negative
    counts from its end), in float64. Prompts of one length run in batches; nothing else is kept."""
    if not prompts:
        raise BadInput("a steering vector needs prompts in both sets")
    by_length: dict[int, list[Sequence[int]]] = {}
    for p in prompts:
        by_length.setdefault(len(p), []).append(p)
    sums = {h: None for h in hooks}
    for length, group in by_length.items():
        if not -length <= pos < length:
            raise BadInput(f"position {pos} is outside a prompt of {length} tokens")
        for i in range(0, len(group), batch):
            ids = torch.tensor([list(p) for p in group[i:i + batch]])
            cache = model.run(ids, capture=list(hooks), stop_at_layer=_stop(model, hooks)).cache
            for h in hooks:
                x = cache[h][:, pos % length].double().sum(0).cpu()
                sums[h] = x if sums[h] is None else sums[h] + x
    return {h: s / len(prompts) for h, s in sums.items()}


def _stop(model: HookedModel, hooks: Sequence[str]) -> int | None:
    """The block after the last one the hooks are in (None: the whole model)."""
    layers = [int(h.split(".")[1]) for h in hooks if h.startswith("blocks.")]
    if len(layers) < len(hooks) or max(layers) + 1 >= model.shape.n_layers:
        return None
    return max(layers) + 1


def mean_difference(model: HookedModel, positive: Sequence[Sequence[int]], negative: Sequence[Sequence[int]],
                    hooks: Sequence[str], pos: int = -1) -> dict[str, Tensor]:
    """The CAA vector [d] (fp32) of each hook: mean activation over ``positive`` minus over ``negative``."""
    a, b = mean_activation(model, positive, hooks, pos), mean_activation(model, negative, hooks, pos)
    return {h: (a[h] - b[h]).float() for h in hooks}


def steering_sweep(model: HookedModel, prompts: Tensor, metric: Callable[[Tensor], Tensor],
                   vectors: dict[int, Tensor], scales: Sequence[float], start: int | None = None,
                   progress=None, should_stop=None) -> Grid:
    """``metric`` (batch mean per copy, ``analyses.metrics.Metric``) of ``prompts`` [n, s] with
    ``scale * vectors[layer]`` added at ``blocks.{layer}.hook_resid_pre`` (from position
    ``start`` on, or everywhere), for every layer x scale. One run captures the residual stream;
    each layer then resumes there once, with every scale in its own copy of the batch."""
    n, k = prompts.shape[0], len(scales)
    layers = sorted(vectors)
    names = [f"blocks.{layer}.hook_resid_pre" for layer in layers]
    cache = model.run(prompts, capture=names).cache
    rows = []
    for i, layer in enumerate(layers):
        if should_stop is not None and should_stop():
            raise Cancelled("steering sweep stopped")
        resid = cache[names[i]].repeat(k, 1, 1)
        per_row = torch.tensor([float(s) for s in scales]).repeat_interleave(n)[:, None, None]
        value = per_row * vectors[layer].float()[None, None, :]  # [k * n, 1, d]
        pos = None if start is None else slice(start, None)
        edit = Intervention(names[i], "add", value=value, pos=pos, label=f"steering at L{layer}")
        logits = model.run(prompts.repeat(k, 1), start_at_layer=layer, resid=resid, interventions=[edit]).logits
        rows.append([float(v) for v in metric(logits)])
        if progress is not None:
            progress(i + 1, len(layers))
    return Grid("steering-sweep", ["layer", "scale"],
                {"layer": [f"L{layer}" for layer in layers], "scale": [f"{s:g}" for s in scales]}, rows)


@dataclass(frozen=True)
class ProjectOut:
    """Remove ``vector``'s direction from the activation ``hook``: ``x - (x . u) u`` with u its
    unit vector, at every position or from ``start`` on (a probe's direction: does the model still
    do the task without it?). A standing intervention like ``Steer``."""

    vector: Tensor
    hook: str
    start: int | None = None
    name: str = "v"

    def __post_init__(self) -> None:
        if self.vector.ndim != 1 or not float(self.vector.float().norm()) > 0:
            raise BadInput(f"a direction to project out is one nonzero vector [d]; got shape {tuple(self.vector.shape)}")

    @property
    def text(self) -> str:
        where = "" if self.start is None else f":from{self.start}"
        return f"project:{self.name}@{self.hook}{where}"

    def interventions(self, model: HookedModel) -> tuple[Intervention, ...]:
        _check_fits(self.text, self.vector, self.hook, model)
        u = self.vector.float() / self.vector.float().norm()

        def remove(x: Tensor) -> Tensor:
            ud = u.to(x.device, torch.float32)
            return x - ((x.float() @ ud)[..., None] * ud).to(x.dtype)

        pos = None if self.start is None else slice(self.start, None)
        return (Intervention(self.hook, "fn", fn=remove, pos=pos, label=self.text),)


_WHERE = re.compile(r"^@?([^:@]*)(?::from(-?\d+))?$")
PROJECT_SYNTAX = "@LAYER or @HOOK, optionally :fromPOS (e.g. @1, @blocks.1.hook_resid_post:from-1); empty: the vector's own hook"


def parse_projection(text: str, vector: Tensor, name: str, default_hook: str, n_layers: int | None = None) -> ProjectOut:
    """``"@1:from-1"`` (layer or hook, first position; empty: the vector's own hook) -> ProjectOut."""
    m = _WHERE.match(text.strip().replace(" ", ""))
    if not m:
        raise BadInput(f"projection {text!r}: write {PROJECT_SYNTAX}")
    hook = resid_hook(m.group(1), n_layers) if m.group(1) else default_hook
    return ProjectOut(vector, hook, None if m.group(2) is None else int(m.group(2)), name)


DIRECTION_RUNS = ("steering-vector", "probe")  # the runs whose result holds a direction


def direction_of(result, name: str) -> tuple[Tensor, str]:
    """(vector, the hook it was read at) of a ``steering-vector`` run, or of a ``probe`` run (its
    best probe's unit direction, two labels only), as a session stores them."""
    analysis = getattr(result, "analysis", None)
    if analysis == "steering-vector":
        return torch.tensor([float(v) for v in result.values], dtype=torch.float32), result.meta["hook"]
    if analysis == "probe":
        found = result.meta.get("direction")
        if not found:
            raise BadInput(f"{name}: the probe has no direction (a direction needs exactly two labels)")
        return torch.tensor([float(v) for v in found["vector"]], dtype=torch.float32), found["hook"]
    raise BadInput(f"{name} is not a steering-vector or probe run")


def steer_from_result(result, name: str, text: str, n_layers: int | None = None) -> Steer:
    """A ``steering-vector`` or ``probe`` result (as a session stores it) applied as ``text`` (``STEER_SYNTAX``)."""
    vector, hook = direction_of(result, name)
    return parse_steer(text, vector, name, hook, n_layers)


def projection_from_result(result, name: str, text: str, n_layers: int | None = None) -> ProjectOut:
    """A ``steering-vector`` or ``probe`` result's direction projected out as ``text`` (``PROJECT_SYNTAX``)."""
    vector, hook = direction_of(result, name)
    return parse_projection(text, vector, name, hook, n_layers)

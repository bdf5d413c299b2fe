"""Default values resolved for the model: one function for both front ends, so an analysis opened
fresh in the TUI shows exactly what `workbench run NAME --model SPEC` uses with no options (its
declaration's defaults, the model's own task, its last layer where that is the default).

Torch-free: the facts come from the spec (a toy's recipe) before the model loads, and from the
loaded model's shape after (declares no analysis of its own)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from analyses.registry import TABS, Analysis, Param, analyses


@dataclass(frozen=True)
class ModelFacts:
    """What defaults depend on: the model's family, its depth and the task it was trained on (a
    toy's; None for any other model). A field is None while unknown (before the model loads)."""

    family: str | None = None
    n_layers: int | None = None
    task: str | None = None
    writer: str | None = None  # the head a trained toy's erasure finding is about (``Recipe.writer``)

    @classmethod
    def of(cls, spec: str | None, hooked: Any = None) -> ModelFacts:
        """The facts of model ``spec``: its shape from ``hooked`` (a loaded ``HookedModel``) when
        given, else what a built-in toy's recipe says without loading it."""
        from analyses.toys import RANDOM_TOYS, toy_task
        from analyses.toys.recipes import RECIPES

        name = (spec or "").removeprefix("toy:") if (spec or "").startswith("toy:") else None
        writer = getattr(RECIPES.get(name), "writer", "") or None
        if hooked is not None:
            return cls(hooked.shape.family, hooked.shape.n_layers, toy_task(spec), writer)
        toy = RECIPES.get(name) or RANDOM_TOYS.get(name)
        if toy is None:
            return cls()
        return cls(toy.family, toy.shape.get("n_layers"), toy_task(spec), writer)


def last_layer(model: ModelFacts) -> int | None:
    """A ``model_default``: the model's last layer."""
    return None if model.n_layers is None else model.n_layers - 1


def preferred_site(model: ModelFacts) -> str | None:
    """A ``model_default``: the site a patching sweep opens on, per head, or per layer on Mamba."""
    return None if model.family is None else "out_proj" if model.family == "mamba" else "head_out"


def toy_writer(model: ModelFacts) -> str | None:
    """A ``model_default``: the writer head a trained erasure toy is about (None: the declared one)."""
    return model.writer


def given(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def accepts_task(p: Param, task: str | None) -> bool:
    """Whether task parameter ``p`` can take ``task`` (a parameter with choices takes only those)."""
    if task is None:
        return False
    if p.choices:
        return task in p.choices
    from analyses.tasks import TASKS

    return task in TASKS


def resolve_defaults(analysis: Analysis, model: ModelFacts, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every parameter of ``analysis`` as it runs with ``values`` given (CLI options, or nothing):
    a given value as it is; else the model's (``Param.model_default``; for a task, the model's own
    task when no other source of inputs, a prompt or a file, is given); else the declared default.
    ``Analysis.bind`` checks the result."""
    values = dict(values or {})
    out = {p.name: values.get(p.name) for p in analysis.params}
    other_source = any(given(out[p.name]) for p in analysis.params if p.kind in ("prompt", "path"))
    for p in analysis.params:
        if out[p.name] is not None:  # given, even blank (an empty prompt is refused as empty)
            continue
        value = p.model_default(model) if p.model_default is not None else None
        if value is None and p.kind == "task" and not other_source and accepts_task(p, model.task):
            value = model.task
        out[p.name] = p.default if value is None else value
    return out


def default_analysis(tab: str, model: ModelFacts) -> str:
    """The analysis a tab opens on for ``model``: one made for the model's task, else the tab's
    default (``TABS``), else the first the model's family has that is made for no task."""
    usable = [a for a in analyses().values() if a.tab == tab and (model.family is None or a.available_for(model.family))]
    if not usable:
        return TABS[tab].default
    made = next((a.name for a in usable if model.task is not None and model.task in a.tasks), None)
    if made is not None:
        return made
    if any(a.name == TABS[tab].default for a in usable):
        return TABS[tab].default
    return next((a.name for a in usable if not a.tasks), usable[0].name)

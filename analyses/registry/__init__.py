"""One declaration per analysis: its name, help, parameters, runner and result shape.

The `workbench run NAME` subcommand, the TUI form, the parameters stored with a session's run and
the docs' table of analyses are all generated from these declarations, so adding an analysis is
its numeric module, a declaration in a module of this package, and its tests.

This package stays light (no torch at import): the TUI builds its forms from it before its first
frame. Runners import their numeric module when they run.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from analyses.errors import BadInput

# What a parameter is, which decides its CLI option and its TUI control:
#   prompt  text with a live token preview          token  one token, spelled as the tokenizer does (F2 picks)
#   text    free text                               path   a file on this machine
#   int     a whole number                          float  a finite number
#   ints    a comma list of whole numbers ("9,-1")  nodes  a comma list of node names ("L0H1,L0MLP")
#   floats  a comma list of finite numbers ("0.5,1,2")
#   choice  one of ``choices``                      flag   on or off
#   bos     the tokenizer's default, or force a BOS token on (--prepend-bos) or off (--no-prepend-bos)
#   site    a hook site; the choices come from the loaded model
#   task    a built-in task (analyses.tasks.TASKS; ``choices`` names those it can take, e.g. tasks with pairs)
KINDS = ("prompt", "token", "text", "path", "int", "float", "ints", "floats", "nodes", "choice", "flag", "bos", "site",
         "task")
RESULTS = ("table", "grid", "scatter", "series", "tokens")


class ModelContext(Protocol):
    """What a runner needs of a loaded model (``sessions.loading.LoadedModel`` is one)."""

    hooked: Any
    tokenizer: Any


@dataclass(frozen=True)
class Param:
    """One parameter of an analysis. ``default`` None means "not given" (optional);
    ``minimum`` bounds numbers; ``label`` is the TUI's short name for the control; ``when`` hides
    it in the TUI unless another parameter has a value (``--tokens`` only for ``--metric tokens``)."""

    name: str
    kind: str
    help: str
    default: Any = None
    required: bool = False
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    metavar: str | None = None
    label: str | None = None
    when: tuple[str, str | tuple[str, ...]] | None = None  # (parameter, value or values): the TUI shows it only then
    # The default as it follows the loaded model (``registry.defaults.ModelFacts``): a Mamba model's
    # site, the last layer. None when it cannot tell (the model not loaded yet): ``default`` then.
    model_default: Callable[[Any], Any] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"parameter {self.name}: unknown kind {self.kind!r}")
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"parameter {self.name}: a choice needs choices")
        if self.kind == "flag" and self.default is None:
            object.__setattr__(self, "default", False)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def short(self) -> str:
        return self.label or self.name.replace("_", " ")

    def parse(self, value: Any) -> Any:
        """A value as typed (CLI text, a TUI input) or as stored, checked and converted; None or
        blank text is "not given" (the default, or an error when required)."""
        if value is None or (isinstance(value, str) and not value.strip() and self.kind != "prompt"):
            if self.required:
                raise BadInput(f"{self.flag} is required: {self.help}")
            return self.default
        if self.kind == "int":
            return self._bounded(_number(value, int, self.flag))
        if self.kind == "float":
            return self._bounded(_number(value, float, self.flag))
        if self.kind == "flag":
            return bool(value)
        if self.kind == "bos":
            if value not in (True, False):
                raise BadInput(f"{self.flag}: true, false or not given")
            return value
        text = str(value)
        if self.kind == "choice" and text not in self.choices:
            raise BadInput(f"{self.flag} must be one of {', '.join(self.choices)} (got {text!r})")
        if self.kind == "ints":
            int_list(text, self.flag)  # checked now, parsed by the runner
        if self.kind == "floats":
            float_list(text, self.flag)
        if self.kind == "prompt" and not text.strip():
            if self.required:
                raise BadInput("the prompt is empty")
            return self.default
        return text

    def _bounded(self, x: float) -> float:
        if self.minimum is not None and x < self.minimum:
            raise BadInput(f"{self.flag} must be at least {self.minimum:g} (got {x:g})")
        return x


def _number(value: Any, kind: type, flag: str) -> Any:
    try:
        x = kind(value) if not (kind is int and isinstance(value, float)) else None
    except (TypeError, ValueError):
        x = None
    if x is None or (kind is float and not math.isfinite(x)):
        what = "a whole number" if kind is int else "a finite number"
        raise BadInput(f"{flag} must be {what} (got {value!r})")
    return x


def int_list(text: str | None, what: str) -> list[int] | None:
    """ "9, -1" -> [9, -1]; None or blank -> None (everything)."""
    if text is None or not str(text).strip():
        return None
    try:
        return [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise BadInput(f"{what}: give whole numbers separated by commas, like 9,-1 (got {text!r})") from None


def float_list(text: str | None, what: str) -> list[float] | None:
    """ "0.5, 1, 2" -> [0.5, 1.0, 2.0]; None or blank -> None."""
    if text is None or not str(text).strip():
        return None
    values = [_number(x, float, what) for x in str(text).split(",") if x.strip()]
    return values


def names_list(text: str | None) -> list[str]:
    """ "L0H1, L0MLP" -> ["L0H1", "L0MLP"]."""
    return [x.strip() for x in (text or "").split(",") if x.strip()]


@dataclass(frozen=True)
class Analysis:
    """An analysis as the CLI, the TUI and the session store see it.

    ``run(lm, **params)`` returns a result of shape ``result``; a ``cancellable`` runner also takes
    ``progress(done, total)`` and ``should_stop()``. ``tab`` is the TUI tab whose form hosts it
    ("prompt": one prompt; "pairs": clean/corrupted pairs or a dataset). ``check`` refuses
    combinations of parameters that make no sense together. ``key`` names the parameters a
    history row shows. ``headline(result)`` gives the result's key findings as short lines (the
    chosen edit, the circuit's edges, the erasers and the fit, the baselines, the kept layers):
    the CLI prints them above the table, the TUI shows them above the result and in the history."""

    name: str
    title: str
    help: str
    params: tuple[Param, ...]
    run: Callable[..., Any]
    result: str
    tab: str
    cancellable: bool = False
    check: Callable[[dict[str, Any]], None] | None = None
    key: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()  # model families it does not apply to (no attention in "mamba")
    tasks: tuple[str, ...] = ()  # made for models of these tasks: a toy of one opens its tab on it
    doc: str = ""
    headline: Callable[[Any], list[str]] | None = None
    # The runner takes the standing edits itself (``edits=``) instead of running under them:
    # generation shows the text with and without them side by side.
    own_edits: bool = False
    # The runner also takes ``on_token(text)``: its output so far as it grows (the TUI streams it).
    streams: bool = False

    def __post_init__(self) -> None:
        if self.result not in RESULTS:
            raise ValueError(f"analysis {self.name}: unknown result shape {self.result!r}")
        names = [p.name for p in self.params]
        if len(names) != len(set(names)):
            raise ValueError(f"analysis {self.name}: a parameter is declared twice")

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)

    def bind(self, given: dict[str, Any]) -> dict[str, Any]:
        """Every declared parameter with its checked value (defaults filled in): what runs, and
        what the session stores. Unknown names are an error."""
        unknown = set(given) - {p.name for p in self.params}
        if unknown:
            raise BadInput(f"{self.name}: unknown parameter(s) {', '.join(sorted(unknown))}")
        params = {p.name: p.parse(given.get(p.name)) for p in self.params}
        if self.check is not None:
            self.check(params)
        return params

    def __call__(self, lm: ModelContext, given: dict[str, Any], progress=None, should_stop=None,
                 edits: Sequence[Any] = (), on_token: Callable[[str], None] | None = None) -> Any:
        """Run with ``given`` parameters (checked by ``bind``), with ``edits`` (analyses.edit_spec
        texts, e.g. "L1H2:ov:0=0", or standing interventions such as steering,
        ``analyses.edits.Standing``) applied for the run and undone after it; the result's meta
        records them under "edits"."""
        extra = {"progress": progress, "should_stop": should_stop} if self.cancellable else {}
        if self.streams:
            extra["on_token"] = on_token
        params = self.bind(given)
        if self.own_edits:
            return self.run(lm, **params, **extra, edits=list(edits))
        if not edits:
            return self.run(lm, **params, **extra)
        from analyses.edit_spec import parse_edits
        from analyses.edits import edited

        with edited(lm.hooked, parse_edits(edits)) as stack:
            result = self.run(lm, **params, **extra)
            result.meta["edits"] = stack.texts()
        return result

    def facts(self, result: Any) -> list[str]:
        """The result's headline facts (``headline``); [] when it declares none or when a result
        stored by an older version lacks what they read, so a history still opens."""
        if self.headline is None:
            return []
        try:
            return [line for line in self.headline(result) if line]
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, ZeroDivisionError):
            return []

    def available_for(self, family: str) -> bool:
        return family not in self.excludes


REGISTRY: dict[str, Analysis] = {}
# Declared first, so their analyses lead the tabs' lists and the palette.
CORE = ("prompt", "pairs", "talking_heads")


class Tab(NamedTuple):
    """A TUI analysis tab: its title, what its analyses take, and the analysis it opens on (unless
    one is made for the model's task, or the model's family lacks it)."""

    title: str
    takes: str
    default: str


TABS = {"prompt": Tab("Prompt", "one prompt", "dla"),
        "pairs": Tab("Patching", "clean/corrupted pairs or a dataset", "patch"),
        "model": Tab("Model", "the model and a task's examples", "composition")}
# Parameters that mean the same thing in every analysis declaring them (the prompt, the pair, the
# corpus): a value typed for one analysis carries to the others of the session (``shared``).
SHARED: set[Param] = set()


def shared(*params: Param) -> tuple[Param, ...]:
    """Mark ``params`` as inputs shared by the analyses that declare them (see ``SHARED``)."""
    SHARED.update(params)
    return params


def declare(analysis: Analysis) -> Analysis:
    if analysis.name in REGISTRY and REGISTRY[analysis.name] is not analysis:
        raise ValueError(f"analysis {analysis.name!r} declared twice")
    if analysis.tab not in TABS:
        raise ValueError(f"analysis {analysis.name}: unknown tab {analysis.tab!r}")
    REGISTRY[analysis.name] = analysis
    return analysis


def analyses() -> dict[str, Analysis]:
    """Every declared analysis, by name (the modules of this package declare them on import), the
    core modules' first (``CORE``)."""
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))  # not __main__
    for name in sorted(names, key=lambda n: (n not in CORE, CORE.index(n) if n in CORE else 0)):
        importlib.import_module(f"{__name__}.{name}")
    return REGISTRY


def get(name: str) -> Analysis:
    found = analyses().get(name)
    if found is None:
        raise BadInput(f"unknown analysis {name!r}; available: {', '.join(sorted(REGISTRY))}")
    return found


def run_analysis(lm: ModelContext, name: str, progress=None, should_stop=None, edits: Sequence[str] = (),
                 **given: Any) -> Any:
    """Run analysis ``name`` on a loaded model: the one entry point of the CLI and the TUI, so a
    number seen in the TUI is the number ``workbench run`` prints. ``edits``: see ``Analysis.__call__``."""
    return get(name)(lm, given, progress, should_stop, edits)


def _param_doc(p: Param) -> str:
    value = "\\|".join(p.choices) if p.choices else p.metavar or p.kind.upper()  # \| inside a table cell
    flag = {"bos": "--prepend-bos/--no-prepend-bos", "flag": p.flag}.get(p.kind, f"{p.flag} {value}")
    return f"`{flag}`" + (" (required)" if p.required else "")


def analyses_table() -> str:
    """The docs' table of analyses, generated from the declarations (a test keeps the README's
    copy equal to it: ``python -m analyses.registry README.md`` rewrites it)."""
    from analyses.registry.pairs import PAIRS

    lines = ["| analysis | result | TUI tab | what it does | parameters |", "|---|---|---|---|---|"]
    for a in sorted(analyses().values(), key=lambda a: (list(TABS).index(a.tab), a.name)):
        what = a.help + (f". {a.doc}" if a.doc else "")
        shared = set(PAIRS) <= set(a.params)
        params = ["*pair inputs*"] * shared + [_param_doc(p) for p in a.params if not (shared and p in PAIRS)]
        lines.append(f"| `{a.name}` | {a.result} | {TABS[a.tab].takes} | {what} | {', '.join(params)} |")
    pair_inputs = ", ".join(_param_doc(p) for p in PAIRS)
    return "\n".join(lines) + f"\n\n*pair inputs*: {pair_inputs}."


MARKERS = ("<!-- analyses:start (generated by `python -m analyses.registry README.md`) -->", "<!-- analyses:end -->")


def with_table(text: str) -> str:
    """``text`` with the generated table between the markers."""
    start, end = text.index(MARKERS[0]) + len(MARKERS[0]), text.index(MARKERS[1])
    return text[:start] + "\n" + analyses_table() + "\n" + text[end:]

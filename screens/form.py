"""The TUI form of a tab, generated from the analysis declarations (analyses.registry).

One control per parameter name among the tab's analyses; choosing an analysis shows the controls it
reads, hides the rest and puts in its own values: those the session set for it, else its defaults
resolved for the model (what `workbench run NAME --model SPEC` uses), with the shared inputs (the
prompt, the pair) carried from analysis to analysis. The values live in the session's
``FormMemory``, so nothing leaks into another session or another analysis. On the pairs tab a
"data" choice says where the pairs come from (one typed pair, a pairs file, or a task sample) and
shows only those inputs. Controls are named ``{tab}-{param}`` (``prompt-answer``, ``pairs-site``).
"""

from __future__ import annotations

import re
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Label, Select

from analyses.registry import SHARED, Analysis, Param
from analyses.registry.defaults import ModelFacts, default_analysis
from sessions.workspace import FormMemory

# The order of the form's fields by kind: texts, tokens, choices, numbers; and how many of the
# grid's four columns a field spans.
ORDER = {"prompt": 0, "path": 0, "task": 0, "token": 1, "text": 1, "nodes": 1, "choice": 2, "site": 2, "bos": 2,
         "flag": 2, "int": 3, "float": 3, "ints": 3, "floats": 3}
SPAN = {"path": 2, "nodes": 2}  # a prompt spans the row, or half of it beside another
BOS_OPTIONS = [("default", "default"), ("prepend", "on"), ("none", "off")]
# The pairs tab's data sources and the parameters each one reads.
SOURCES = {"one pair": ("clean", "corrupt", "answer", "distractor"), "pairs file": ("pairs",),
           "task sample": ("task", "n", "seed")}
SOURCE_PARAMS = {name for names in SOURCES.values() for name in names}


def _default_text(param: Param) -> str:
    return "" if param.default is None or param.kind == "flag" else str(param.default)


class Field(Horizontal):
    """A label and its control; ``focused`` while the control has the focus (its label is drawn
    reversed, screens.focus: CSS's :focus-within does not restyle the label when focus leaves)."""

    DEFAULT_CSS = """
    Field { height: 1; }
    Field > Label { width: auto; color: $text-muted; margin-right: 1; }
    Field > Input, Field > Select { width: 1fr; }
    """

    def on_descendant_focus(self) -> None:
        self.add_class("focused")

    def on_descendant_blur(self) -> None:
        self.remove_class("focused")


class AnalysisForm(Vertical):
    """The controls of every analysis on one tab; ``analysis`` is the one chosen."""

    DEFAULT_CSS = """
    AnalysisForm { height: auto; }
    AnalysisForm > .fields { layout: grid; grid-size: 4; grid-rows: 1; grid-gutter: 0 1; height: auto; }
    AnalysisForm .span2 { column-span: 2; }
    AnalysisForm .span4 { column-span: 4; }
    AnalysisForm .choose { height: 1; }
    AnalysisForm .choose > Select { width: 1fr; margin-right: 1; }
    AnalysisForm .choose > Input { width: 1fr; margin-right: 1; }
    """

    def __init__(self, tab: str, declared: list[Analysis], **kwargs) -> None:
        super().__init__(**kwargs)
        self.tab = tab
        self.declared = {a.name: a for a in declared}
        self.analysis = declared[0]
        self.params: dict[str, Param] = {}
        for a in declared:
            for p in a.params:
                self.params.setdefault(p.name, p)
        self.family: str | None = None
        self.memory = FormMemory()  # the session's values (``attach``)
        self.facts = ModelFacts()  # what the defaults follow: the session's model
        self.options: dict[str, list[str]] = {}  # a Select's current option values, by parameter

    # ---- building --------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(classes="choose"):
            yield Select([(a.title, a.name) for a in self.declared.values()], value=self.analysis.name,
                         allow_blank=False, compact=True, id=f"{self.tab}-analysis", tooltip="the analysis to run")
            if self.has_sources:
                yield Select([(s, s) for s in SOURCES], value="one pair", allow_blank=False, compact=True,
                             id=f"{self.tab}-source", tooltip="where the prompts come from")
            yield Input(placeholder="filter labels", id=f"{self.tab}-filter", compact=True)
            yield Input(placeholder="top k rows", id=f"{self.tab}-topk", type="integer", valid_empty=True, compact=True)
        prompts = sum(p.kind == "prompt" for p in self.params.values())
        with Horizontal(classes="fields"):
            for p in sorted(self.params.values(), key=lambda p: ORDER[p.kind]):
                yield self._field(p, 4 // max(prompts, 1) if p.kind == "prompt" else SPAN.get(p.kind, 1))

    @property
    def has_sources(self) -> bool:
        return any(SOURCE_PARAMS <= {p.name for p in a.params} for a in self.declared.values())

    def _field(self, p: Param, span: int) -> Widget:
        cid, tip = f"{self.tab}-{p.name}", p.help
        if p.kind == "flag":
            return Field(Checkbox(p.short, p.default, compact=True, id=cid, tooltip=tip), id=f"{cid}-field", classes="span1")
        if p.kind == "bos":
            control: Widget = Select(BOS_OPTIONS, value="default", allow_blank=False, compact=True, id=cid, tooltip=tip)
        elif p.kind in ("choice", "site", "task"):
            options = self.options[p.name] = self._options(p)
            value = p.default if p.default in options else (Select.NULL if not p.required else options[0])
            if p.kind == "site":
                value = "head_out"
            blank = any(q.name == p.name and _blankable(q) for a in self.declared.values() for q in a.params)
            control = Select([(o, o) for o in options], value=value, allow_blank=blank,
                             compact=True, id=cid, tooltip=tip, prompt=p.short)
        else:
            kind = {"int": "integer", "float": "number"}.get(p.kind, "text")
            control = Input(_default_text(p), placeholder=_placeholder(p), id=cid, type=kind, valid_empty=True,
                            compact=True, tooltip=tip)
        return Field(Label(p.short), control, id=f"{cid}-field", classes=f"span{span}")

    def _options(self, p: Param) -> list[str]:
        if p.kind == "task" and not p.choices:
            from analyses.tasks import TASKS

            return list(TASKS)
        if p.kind == "site":
            return ["resid_pre", "attn_out", "mlp_out", "head_out", "head_q", "head_k", "head_v", "head_pattern"]
        return list(p.choices)

    def default_for(self, task: str | None, family: str | None = None) -> str:
        """The analysis to open on: one made for the model's task, else the tab's (``TABS``)."""
        name = default_analysis(self.tab, ModelFacts(family, None, task))
        return name if name in self.declared else next(iter(self.declared))

    def on_mount(self) -> None:
        self._open(self.analysis.name)

    # ---- state -----------------------------------------------------------------------------------

    def attach(self, memory: FormMemory, facts: ModelFacts, inputs: dict[str, Any] | None = None,
               source: str | None = None) -> None:
        """Show a session's forms: ``memory`` its values, ``facts`` its model. The first time,
        ``inputs`` (its last prompt, else the model's example) seed the shared prompt and token
        inputs that nothing has set yet, and ``source`` the pairs' data source."""
        self.memory, self.facts = memory, facts
        if self.tab not in memory.seeded:
            memory.seeded.add(self.tab)
            for p in {p for a in self.declared.values() for p in a.params if p in SHARED}:
                if p.kind in ("prompt", "token") and (inputs or {}).get(p.name) is not None:
                    memory.inputs.setdefault(p, inputs[p.name])
            if source is not None:
                memory.inputs.setdefault("source", source)
        usable = self._offer_analyses(facts.family)
        name = memory.chosen.get(self.tab)
        self._open(name if name in usable else self.default_for(facts.task, facts.family))

    def set_facts(self, facts: ModelFacts) -> None:
        """The model has loaded: defaults that follow its shape (the last layer, its sites) take it."""
        if facts != self.facts:
            self.remember()
            self.facts = facts
            self._open(self.analysis.name)

    def remember(self) -> None:
        """Keep the values on show in the session's memory (before another analysis or session)."""
        reads = {p.name for p in self.analysis.params}
        source = self.query_one(f"#{self.tab}-source", Select).value if self.has_sources and reads & SOURCE_PARAMS \
            else None
        self.memory.keep(self.analysis, self.facts, {p.name: self._get(p) for p in self.analysis.params}, source)

    def choose(self, name: str) -> None:
        """Show analysis ``name`` with its own values (the one on show keeps its values for later)."""
        if name == self.analysis.name:
            select = self.query_one(f"#{self.tab}-analysis", Select)
            if select.value != name:
                select.value = name
            return self.refresh_fields()
        self.remember()
        self._open(name)

    def _open(self, name: str) -> None:
        self.analysis = self.declared[name]
        select = self.query_one(f"#{self.tab}-analysis", Select)
        if select.value != name:
            select.value = name
        values = self.memory.opening(self.analysis, self.facts)
        for p in self.analysis.params:
            self._adopt(p)
            self._set(p.name, values[p.name])
        if self.has_sources and {p.name for p in self.analysis.params} & SOURCE_PARAMS:
            own = self.memory.values.get(name)  # a stored run's parameters name their one source
            source = self.memory.source(self.analysis) or \
                (_source_of(own) if own else "task sample" if values.get("task") else "one pair")
            self.query_one(f"#{self.tab}-source", Select).value = source
        self.refresh_fields()

    def _adopt(self, p: Param) -> None:
        """Make the shared control of ``p``'s name this analysis's: two analyses of a tab may give one
        name other choices, defaults or help (``mode`` Q|K|V or replace|subtract-add; ``n`` 16 pairs
        to patch, 500 prompts to evaluate)."""
        self.params[p.name] = p
        control = self.query_one(f"#{self.tab}-{p.name}")
        control.tooltip = p.help
        if p.kind in ("choice", "task"):
            self._offer(p.name, self._options(p), replace=True)
        elif isinstance(control, Input):
            control.placeholder = _placeholder(p)

    def refresh_fields(self) -> None:
        reads = {p.name for p in self.analysis.params}
        source = self.source
        shown = {n for n in reads if (n not in SOURCE_PARAMS or source is None or n in SOURCES[source])
                 and self._wanted(self.params[n])}
        for name in self.params:
            self.query_one(f"#{self.tab}-{name}-field").display = name in shown
        if self.has_sources:
            self.query_one(f"#{self.tab}-source").display = bool(reads & SOURCE_PARAMS)

    def _wanted(self, p: Param) -> bool:
        """Shown only where it means something: ``when`` names the values of another control it needs
        (the heads to sweep only at a head site, so never on Mamba, which has none)."""
        if p.when is None:
            return True
        value, wanted = self._get(self.params[p.when[0]]), p.when[1]
        return value in wanted if isinstance(wanted, tuple) else value == wanted

    @property
    def source(self) -> str | None:
        if not self.has_sources or not ({p.name for p in self.analysis.params} & SOURCE_PARAMS):
            return None
        value = self.query_one(f"#{self.tab}-source", Select).value
        if "clean" not in {p.name for p in self.analysis.params}:  # eval: a task or a file
            return "pairs file" if value == "pairs file" else "task sample"
        return str(value)

    def values(self) -> dict[str, Any]:
        """The chosen analysis's parameters as typed: what ``Analysis.bind`` checks. Inputs of
        another data source are left out."""
        source = self.source
        out: dict[str, Any] = {}
        for p in self.analysis.params:
            if p.name in SOURCE_PARAMS and source is not None and p.name not in SOURCES[source]:
                continue
            out[p.name] = self._get(p)
        return out

    def _get(self, p: Param) -> Any:
        control = self.query_one(f"#{self.tab}-{p.name}")
        if isinstance(control, Checkbox):
            return control.value
        if isinstance(control, Select):
            value = control.value
            if p.kind == "bos":
                return {"default": None, "on": True, "off": False}[value]
            return None if value is Select.NULL else value
        return control.value

    def fill(self, name: str, params: dict[str, Any]) -> None:
        """Show analysis ``name`` with a stored run's parameters, so the controls match the run."""
        if name not in self.declared:
            return
        self.choose(name)
        if self.has_sources and set(params) & SOURCE_PARAMS:
            self.query_one(f"#{self.tab}-source", Select).value = _source_of(params)
        for key, value in params.items():
            if key in self.params:
                self._set(key, value)
        self.refresh_fields()

    def set_inputs(self, values: dict[str, Any]) -> None:
        """Put prompts and tokens (a stored prompt, the model's own task) into the controls."""
        for key, value in values.items():
            if key in self.params and value is not None:
                self._set(key, value)

    def _set(self, name: str, value: Any) -> None:
        p, control = self.params[name], self.query_one(f"#{self.tab}-{name}")
        if isinstance(control, Checkbox):
            control.value = bool(value)
        elif isinstance(control, Select):
            if p.kind == "bos":
                control.value = {None: "default", True: "on", False: "off"}[value]
            elif value is None:
                if _blankable(p):
                    control.clear()
            else:
                self._offer(name, [str(value)])
                control.value = str(value)
        else:
            control.value = "" if value is None else str(value)

    def set_family(self, family: str, sites: list[str]) -> None:
        """Offer what the loaded model has: its sites, and only the analyses that apply to it."""
        self.family = family
        if "site" in self.params:
            select = self.query_one(f"#{self.tab}-site", Select)
            current = select.value
            self._offer("site", sites, replace=True)
            preferred = next((s for s in ("head_out", "out_proj") if s in sites), sites[0])
            select.value = current if current in sites else preferred
        usable = self._offer_analyses(family)
        self.choose(self.analysis.name if self.analysis.name in usable else self.default_for(self.facts.task, family))
        if "by" in self.params:
            by = self.query_one(f"#{self.tab}-by", Select)
            current = by.value
            options = ["layer"] if family == "mamba" else list(self.params["by"].choices)
            self._offer("by", options, replace=True)
            by.value = current if current in options else options[0]

    def _offer_analyses(self, family: str | None) -> list[str]:
        """Offer the analyses that apply to ``family`` (every one while it is unknown)."""
        usable = [a.name for a in self.declared.values() if family is None or a.available_for(family)]
        select = self.query_one(f"#{self.tab}-analysis", Select)
        if [value for _, value in select._options] != usable:
            select.set_options([(self.declared[n].title, n) for n in usable])
        return usable

    def _offer(self, name: str, options: list[str], replace: bool = False) -> None:
        """Make ``options`` choosable in a Select (a stored run may name one the model lacks)."""
        have = self.options[name]
        new = list(options) if replace else have + [o for o in options if o not in have]
        if new != have:
            self.options[name] = new
            self.query_one(f"#{self.tab}-{name}", Select).set_options([(o, o) for o in new])


def _blankable(p: Param) -> bool:
    """Whether ``p`` may be left blank (not given): optional, with no default, even one the model gives."""
    return not p.required and p.default is None and p.model_default is None


def _source_of(params: dict[str, Any]) -> str:
    """The data source a run's parameters name (a typed pair when nothing does)."""
    return next((s for s, names in SOURCES.items() if any(params.get(n) for n in names[:2])), "one pair")


def _placeholder(p: Param) -> str:
    """What an empty control means, and an example of its own (from its help): "all; e.g. 9,-1" for
    positions, "L1H2.q, L1H2.k, L1MLP, logits" for path patching's receivers."""
    if p.kind == "prompt":
        return p.help
    if p.default is not None:
        return str(p.default)
    blank = re.search(r"\(default: ([^)]*)\)", p.help)
    every = "all" if "only these" in p.help else None  # "sweep only these positions"
    meaning = blank.group(1) if blank else None if p.required else every
    example = re.search(r"e\.g\. ([^;()]+?)\s*(?:[;()]|$)", p.help)
    if example is None and p.kind == "nodes":  # "comma list of readers: L1H2.q, L1H2.k, L1MLP, logits"
        example = re.search(r": ([^;()]+?)\s*(?:[;()]|$)", p.help.split("(")[0])
    shown = [meaning, example and f"e.g. {example.group(1)}"]
    return "; ".join(part for part in shown if part) or "none"

"""One open session as the app holds it: the model spec, the runs and prompts, and the session file
they are saved to (if any). The app can hold several and switch between them; this module has no
Textual in it, so the bookkeeping is tested on its own."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analyses.errors import BadInput
from analyses.results import Result

if TYPE_CHECKING:  # the store pulls in numpy and safetensors: imported when first used, after the first frame
    from sessions.store import Session

PROMPT_KEYS = ("prompt", "corrupt", "answer", "distractor")


@dataclass
class Entry:
    """A run as the history lists it; ``id`` is the session's run id (None while unsaved).
    ``damage`` says why a stored run's bytes do not decode (its ``result`` is then None)."""

    id: int | None
    analysis: str
    params: dict[str, Any]
    result: Result | None
    damage: str | None = None
    model: dict[str, Any] | None = None  # the model's facts when it ran (spec, revision, dtype, device, parity)


@dataclass
class FormMemory:
    """What the forms of one session hold, so no value leaks into another session or analysis:
    per analysis, the values set that differ from its defaults (and its data source); the latest
    value of each shared input (``registry.SHARED``: the prompt, the pair, the corpus), which every
    analysis declaring it shows; the analysis each tab was on; the tabs whose inputs are seeded."""

    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    inputs: dict[Any, Any] = field(default_factory=dict)  # a shared Param (or "source") -> its value
    chosen: dict[str, str] = field(default_factory=dict)
    seeded: set[str] = field(default_factory=set)

    @classmethod
    def from_runs(cls, runs: list[Entry]) -> FormMemory:
        """A reopened session's forms: each analysis with its last run's parameters, the shared
        inputs of the latest run that gave them, each tab on its last run's analysis."""
        from analyses.registry import SHARED, analyses

        memory = cls()
        for entry in runs:
            analysis = analyses().get(entry.analysis)
            if analysis is None:
                continue
            memory.values[entry.analysis] = dict(entry.params)
            memory.chosen[analysis.tab] = entry.analysis
            for p in analysis.params:
                if p in SHARED and entry.params.get(p.name) not in (None, ""):
                    memory.inputs[p] = entry.params[p.name]
        return memory

    def opening(self, analysis: Any, model: Any) -> dict[str, Any]:
        """The values ``analysis`` opens with on ``model`` (``registry.defaults.ModelFacts``): its
        defaults resolved for the model, overlaid by what was set for it, then by the shared inputs."""
        from analyses.registry.defaults import resolve_defaults

        values = resolve_defaults(analysis, model)
        values.update({k: v for k, v in self.values.get(analysis.name, {}).items() if k in values})
        values.update({p.name: self.inputs[p] for p in analysis.params if p in self.inputs})
        return values

    def source(self, analysis: Any) -> str | None:
        """The data source last chosen for ``analysis`` (shared by the analyses of a typed pair)."""
        if "clean" in {p.name for p in analysis.params}:
            return self.inputs.get("source")
        return self.values.get(analysis.name, {}).get("source")

    def keep(self, analysis: Any, model: Any, values: dict[str, Any], source: str | None = None) -> None:
        """Remember the values shown for ``analysis``: the shared inputs as they are, its own values
        where they differ from its defaults on ``model`` (so a default follows the model once loaded)."""
        from analyses.registry import SHARED
        from analyses.registry.defaults import given, resolve_defaults

        defaults = resolve_defaults(analysis, model)
        own: dict[str, Any] = {}
        for p in analysis.params:
            value = values.get(p.name)
            if p in SHARED:
                self.inputs[p] = value
            elif (given(value) or given(defaults[p.name])) and str(value) != str(defaults[p.name]):
                own[p.name] = value
        if source is not None and "clean" in {p.name for p in analysis.params}:
            self.inputs["source"] = source
        elif source is not None:
            own["source"] = source
        self.values[analysis.name] = own
        self.chosen[analysis.tab] = analysis.name


@dataclass
class Workspace:
    spec: str
    session: Session | None = None
    new_path: Path | None = None  # a session file to create once the model's facts are known
    runs: list[Entry] = field(default_factory=list)
    prompts: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    attached: bool = False  # whether the loaded model has been checked against (or saved to) the file
    forms: FormMemory = field(default_factory=FormMemory)

    @classmethod
    def from_file(cls, path: str | Path) -> Workspace:
        """Open a session file; its runs and prompts are read at once, the model is not loaded.
        A run whose bytes are damaged is listed as damaged; the file is not changed."""
        from sessions.store import Session

        session = Session.open(path)
        runs = [Entry(r.id, r.analysis, r.params, r.result, r.damage, r.model) for r in session.runs()]
        return cls(session.model.get("spec", ""), session, None, runs, session.prompts(), session.notes(),
                   forms=FormMemory.from_runs(runs))

    @property
    def damaged(self) -> list[Entry]:
        """The stored runs that could not be read back."""
        return [e for e in self.runs if e.damage is not None]

    def last_readable(self) -> Entry | None:
        """The newest run that has a result to show."""
        return next((e for e in reversed(self.runs) if e.damage is None), None)

    @property
    def name(self) -> str:
        path = self.session.path if self.session else self.new_path
        return path.name if path else "unsaved"

    @property
    def path(self) -> Path | None:
        """The session file (absolute), or None while unsaved."""
        path = self.session.path if self.session else self.new_path
        return path.resolve() if path else None

    def attach(self, info: dict[str, Any]) -> None:
        """The model has loaded: create the pending session file, or check that the open one
        holds runs of this model (BadInput if not)."""
        from sessions.store import check_same_model

        if self.new_path is not None:
            self.save_as(self.new_path, info)
        elif self.session is not None:
            check_same_model(self.session, info)
        self.attached = True

    def save_as(self, path: str | Path, info: dict[str, Any]) -> None:
        """Write everything held so far into a new session file, which then takes every run."""
        from sessions.store import Session

        session = Session.create(path, info)
        for prompt in self.prompts:
            session.add_prompt(*(prompt.get(k) for k in PROMPT_KEYS))
        for entry in (e for e in self.runs if e.damage is None):  # a damaged run has nothing to copy
            entry.id = session.append_run(entry.analysis, entry.params, entry.result, entry.model)
        for note in self.notes:
            session.add_note(note)
        self.session, self.new_path, self.attached = session, None, True

    def record(self, analysis: str, params: dict[str, Any], result: Result,
               model: dict[str, Any] | None = None) -> Entry:
        """A finished run: autosaved to the session file at once (with ``model``, the loaded
        model's facts and parity check), its prompt remembered."""
        run_id = self.session.append_run(analysis, params, result, model) if self.session else None
        entry = Entry(run_id, analysis, params, result, model=model)
        self.runs.append(entry)
        prompt = _prompt_of(params)
        if prompt is not None:
            self.remember_prompt(**prompt)
        return entry

    def remember_prompt(self, prompt: str, corrupt: str | None = None, answer: str | None = None,
                        distractor: str | None = None) -> None:
        item = {"prompt": prompt, "corrupt": corrupt, "answer": answer, "distractor": distractor}
        if any(all(p.get(k) == item[k] for k in PROMPT_KEYS) for p in self.prompts):
            return
        item["id"] = self.session.add_prompt(prompt, corrupt, answer, distractor) if self.session else None
        item["kind"] = "pair" if corrupt is not None else "single"
        self.prompts.append(item)

    def add_note(self, text: str) -> None:
        if self.session is not None:
            self.session.add_note(text)
        self.notes.append(text)

    def close(self) -> None:
        if self.session is not None:
            self.session.close()


def open_workspaces(model: str | None, paths: list[str], default: str) -> list[Workspace]:
    """Workspaces for session files: existing ones opened (a bad file raises BadInput and is left
    untouched), new ones to be created for ``model`` (or ``default``) once it has loaded; a path
    given twice once. A ``model`` given with a session of another model is refused, as on the CLI."""
    if not paths:
        return [Workspace(model or default)]
    out = []
    for p in dict.fromkeys(paths):
        if Path(p).exists():
            ws = Workspace.from_file(p)
            if model is not None and ws.spec != model:
                ws.close()
                raise BadInput(f"{p} holds runs of {ws.spec}, not {model}; open it without --model, "
                               "or give another session file")
        else:
            check_new_path(p)
            ws = Workspace(model or default, new_path=Path(p))
        out.append(ws)
    return out


def damage_text(entry: Entry) -> str:
    """What a damaged run is, for the analyst who selects it."""
    return (f"Run {entry.id} ({entry.analysis}) is damaged in the session file: its stored bytes do not decode, "
            f"so its result cannot be shown.\n\n{entry.damage}\n\nEvery other run, prompt and note is intact. "
            "The file is left byte for byte as it is; new runs are appended after it.")


def check_new_path(path: str | Path) -> None:
    """A session file can be created here: refused up front, before any model loads."""
    path = Path(path).expanduser()
    if path.exists():
        raise BadInput(f"{path}: already exists; open it instead")
    if not path.parent.is_dir():
        raise BadInput(f"{path.parent}: no such folder for the session file {path.name}")
    if not os.access(path.parent, os.W_OK):
        raise BadInput(f"{path.parent}: not writable; the session file {path.name} cannot be created there")


def _prompt_of(params: dict[str, Any]) -> dict[str, Any] | None:
    if params.get("prompt"):
        return {"prompt": params["prompt"], "answer": params.get("answer"), "distractor": params.get("distractor")}
    if params.get("clean") and params.get("corrupt"):
        return {"prompt": params["clean"], "corrupt": params["corrupt"], "answer": params.get("answer"),
                "distractor": params.get("distractor")}
    return None

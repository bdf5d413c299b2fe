"""Running analyses from the app: one at a time in a thread worker, later ones waiting their turn,
Escape stopping the running one between batches; results shown on their analysis's tab with the
controls that made them. A mixin of ``WorkbenchApp``."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass, field
from typing import Any

from textual import work
from textual.message import Message
from textual.widgets import Input, ProgressBar

from analyses.cost import TooBig, check_memory
from analyses.errors import BadInput, Cancelled, WouldOverwrite
from analyses.registry import TABS, Analysis, analyses
from screens.dialogs import ConfirmDialog, TokenPicker
from screens.plots import ResultPlot
from screens.widgets import ErrorDialog
from sessions.workspace import Entry, Workspace
from workbench.support import as_controls, failure_text, headline, oom_text, out_of_memory

ANALYSIS_TABS = tuple(TABS)


@dataclass
class Job:
    """A run asked for: the session it belongs to, the analysis, its checked parameters."""

    ws: Workspace
    analysis: Analysis
    params: dict[str, Any]
    stop: threading.Event = field(default_factory=threading.Event)  # Escape or quit: stop between batches
    edits: tuple = ()  # the edits and steering in force when it was asked for (workbench.edit_actions)


class RunFinished(Message):
    """A run ended: with a result, or with the text of its failure."""

    def __init__(self, job: Job, result=None, error: str | None = None) -> None:
        super().__init__()
        self.job, self.result, self.error = job, result, error


class RunFailed(Message):
    """Work beside the runs failed (looking up token candidates): its error, for a dialog."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class RunProgress(Message):
    """How far a run has got: ``what`` names the input preparation under way (sampling pairs,
    tokenising them), None for the analysis's own loop."""

    def __init__(self, tab: str, done: int, total: int, what: str | None = None) -> None:
        super().__init__()
        self.tab, self.done, self.total, self.what = tab, done, total, what


class RunText(Message):
    """A streaming run's output so far (generation's text), to show as it grows."""

    def __init__(self, job: Job, text: str) -> None:
        super().__init__()
        self.job, self.text = job, text


class TokenCandidates(Message):
    def __init__(self, field: str, candidates: list[tuple[str, str]]) -> None:
        super().__init__()
        self.field, self.candidates = field, candidates


class RunActions:
    """Needs the app's ``ws``, ``models``, ``_pane``, ``_tab`` and status helpers."""

    # ---- running -------------------------------------------------------------------------------

    def action_run(self) -> None:
        tab = self._tab()
        other = {"history_tab": self._reopen_selected, "prompts_tab": self._use_selected_prompt,
                 "sessions_tab": self._switch_to_selected}.get(tab)
        if other is not None:
            return other()
        if tab not in ANALYSIS_TABS:
            return self.notify("ctrl+r runs the analysis of the Prompt, Patching or Model tab", severity="warning")
        form = self._pane(tab).form
        self._submit(form.analysis, form.values())

    def _submit(self, analysis: Analysis, given: dict[str, Any], memory_checked: bool = False) -> None:
        """Check the parameters now (a dialog names what is wrong) and the run's estimated memory (a
        dialog asks before a run larger than the memory free), then run, or queue behind the running
        analysis."""
        try:
            params = analysis.bind(given)
        except WouldOverwrite as e:  # a non-empty output folder: replace it only when the user says so
            return self._confirm_overwrite(analysis, given, e)
        except BadInput as e:
            return self.push_screen(ErrorDialog(as_controls(str(e), analysis)))
        loaded = self._model_ready(self.ws)
        if loaded is None:
            if self.ws.spec in self._loading:
                self._run_after.add(self.ws.spec)
            return
        if not analysis.available_for(loaded.hooked.shape.family):
            return self.push_screen(ErrorDialog(f"{analysis.title} does not apply to {loaded.hooked.shape.family}"))
        if not memory_checked:
            try:
                check_memory(loaded, analysis, params)
            except TooBig as e:  # the estimate names its controls, not the CLI's flags
                go_on = lambda yes: yes and self._submit(analysis, given, memory_checked=True)  # noqa: E731
                return self.push_screen(ConfirmDialog(as_controls(str(e), analysis), "run it anyway"), go_on)
            except BadInput as e:
                return self.push_screen(ErrorDialog(str(e)))
        job = Job(self.ws, analysis, params, edits=self.edits)
        if self._active_job is not None:
            self._waiting.append(job)
            return self.notify(f"{analysis.title} waits for {self._active_job.analysis.title} to finish "
                               f"({len(self._waiting)} waiting; Escape cancels the running one)")
        self._start(job, loaded)

    def _confirm_overwrite(self, analysis: Analysis, given: dict[str, Any], e: WouldOverwrite) -> None:
        """Ask before writing over a folder's files; yes runs with ``force``, no changes nothing."""
        if "force" not in {p.name for p in analysis.params}:
            return self.push_screen(ErrorDialog(str(e)))
        question = (f"The folder {e.path} is not empty (it holds {e.holds}).\n"
                    "Write the new checkpoint over its files? Anything else there stays.")

        def answered(yes: bool | None) -> None:
            if yes:
                self._submit(analysis, {**given, "force": True})
            else:
                self._set_status(f"{analysis.title} not run: {e.path} was left as it was")

        self.push_screen(ConfirmDialog(question), answered)

    def _start(self, job: Job, loaded) -> None:
        self._active_job = job
        bar = self._pane(job.analysis.tab).query_one(ProgressBar)
        bar.update(total=None, progress=0)
        bar.add_class("running")
        self._set_status(f"running {job.analysis.title} ...")
        self.refresh_bindings()  # Escape now cancels
        self.compute(job, loaded)

    @work(thread=True, group="analysis")
    def compute(self, job: Job, loaded) -> None:
        from analyses.preparation import watching

        tab = job.analysis.tab
        progress = lambda d, t: self.post_message(RunProgress(tab, d, t))  # noqa: E731
        preparing = lambda what, d, t: self.post_message(RunProgress(tab, d, t, what))  # noqa: E731
        streamed = lambda text: self.post_message(RunText(job, text))  # noqa: E731
        try:
            with watching(preparing, job.stop.is_set):  # input preparation too reports and stops
                result = job.analysis(loaded, job.params, progress, job.stop.is_set, job.edits, on_token=streamed)
            self.post_message(RunFinished(job, result))
        except Cancelled:
            self.post_message(RunFinished(job, error="cancelled: the run stopped; nothing was saved"))
        except Exception as e:  # out of memory names the run and how to shrink it; the model stays loaded
            self.post_message(RunFinished(job, error=oom_text(e, job.analysis, job.params, loaded)
                                          if out_of_memory(e) else failure_text(e)))

    def action_cancel(self) -> None:
        if self._active_job is None:
            return
        dropped, self._waiting = len(self._waiting), []
        self._active_job.stop.set()
        self._set_status(f"cancelling {self._active_job.analysis.title}… (it stops after the current batch)"
                         + (f"; {dropped} waiting run(s) dropped" if dropped else ""))

    def on_run_failed(self, event: RunFailed) -> None:
        self.push_screen(ErrorDialog(event.text))

    def on_run_progress(self, event: RunProgress) -> None:
        self._pane(event.tab).query_one(ProgressBar).update(total=event.total, progress=event.done)
        job = self._active_job
        if job is not None and not job.stop.is_set():
            title = job.analysis.title  # the stage first: an 80-column status bar cuts the end
            self._set_status(f"{event.what} {event.done:,}/{event.total:,} for {title}" if event.what else
                             f"running {title} ...")

    def on_run_text(self, event: RunText) -> None:
        if event.job is self._active_job and not event.job.stop.is_set():
            self._pane(event.job.analysis.tab).view.show_stream(event.text)

    def on_run_finished(self, event: RunFinished) -> None:
        job = event.job
        self._active_job = None
        self.refresh_bindings()
        self._pane(job.analysis.tab).query_one(ProgressBar).remove_class("running")
        if event.error is not None and job.stop.is_set():
            self._set_status(f"{job.analysis.title} cancelled; nothing was saved")
        elif event.error is not None:
            self._set_status(f"{job.analysis.title} failed")
            self.push_screen(ErrorDialog(as_controls(event.error, job.analysis)))
        else:
            self._record(job, event.result)
        if self._waiting:
            nxt = self._waiting.pop(0)
            loaded = self.models.get(nxt.ws.spec)
            if loaded is not None and nxt.ws in self.workspaces:
                self._start(nxt, loaded)
            else:
                self.notify(f"{nxt.analysis.title} was not run: its session was closed or its model unloaded",
                            severity="warning")

    def _record(self, job: Job, result) -> None:
        ws = job.ws
        if ws not in self.workspaces:
            return self.notify(f"{job.analysis.name} finished after {ws.name} was closed; not kept", severity="warning")
        try:
            loaded = self.models.get(ws.spec)
            entry = ws.record(job.analysis.name, job.params, result, loaded.info if loaded else None)  # autosaved here
        except (OSError, sqlite3.Error) as e:
            return self.push_screen(ErrorDialog(f"{ws.name}: the run could not be saved ({e}); earlier runs are intact"))
        self._fill_sessions()
        if ws is not self.ws:
            return self.notify(f"{job.analysis.name} finished in session {ws.name}")
        self._add_history_row(entry, len(ws.runs))
        self._fill_prompts()
        self._show_result(entry, "(saved)" if entry.id is not None else "")

    # ---- answer tokens ---------------------------------------------------------------------------

    def action_pick_token(self) -> None:
        """F2: pick the answer or distractor from the model's top predictions and the prompt's tokens."""
        focused = self.focused.id if self.focused is not None else ""
        tab = self._tab()
        if tab not in ANALYSIS_TABS or "answer" not in self._pane(tab).form.params:
            return self.notify("F2 picks an answer or distractor on the Prompt or Patching tab", severity="warning")
        field = focused if focused in (f"{tab}-answer", f"{tab}-distractor") else f"{tab}-answer"
        v = self._pane(tab).form.values()
        order = ("prompt",) if tab == "prompt" else ("clean", "corrupt") if field.endswith("answer") else ("corrupt", "clean")
        loaded = self._model_ready(self.ws)
        if loaded is None:
            return self.notify("the tokens come from the model's tokenizer: press F2 again once it has loaded")
        self.find_candidates(loaded, field, [v.get(k) or "" for k in order])

    @work(thread=True, exclusive=True, group="tokens")
    def find_candidates(self, loaded, field: str, prompts: list[str]) -> None:
        from analyses.inputs import token_candidates

        try:
            self.post_message(TokenCandidates(field, token_candidates(loaded, prompts)))
        except Exception as e:
            self.post_message(RunFailed(failure_text(e)))

    def on_token_candidates(self, event: TokenCandidates) -> None:
        def chosen(token: str | None) -> None:
            if token is not None:
                self.query_one(f"#{event.field}", Input).value = token

        label = self._pane(self._tab()).form.params[event.field.partition("-")[2]].short
        self.push_screen(TokenPicker(label, event.candidates), chosen)

    # ---- showing results -------------------------------------------------------------------------

    def _show_result(self, entry: Entry, state: str) -> None:
        """Show a run on its analysis's tab; a stored or reopened run also puts its parameters back
        into the controls, so they match what is shown."""
        analysis = analyses().get(entry.analysis)
        tab = analysis.tab if analysis is not None else "prompt"
        pane = self._pane(tab)
        if analysis is not None and (state in ("(stored)", "(reopened)") or pane.form.analysis.name != entry.analysis):
            pane.form.fill(entry.analysis, entry.params)
        pane.view.show(entry.result, analysis.facts(entry.result) if analysis is not None else [])
        self._shown = entry
        self._check_stale(tab)
        self.query_one("#plot", ResultPlot).show(entry.result, partner=self._partner(entry))
        self.action_show_tab(tab)
        where = f"run {entry.id} {state}   " if entry.id is not None else ""
        self._set_status(f"{where}{entry.analysis}  {headline(entry.result, entry.analysis)}")
        self._show_model()
        self._refresh_tokens()

    def _partner(self, entry: Entry):
        """The session's latest other grid over the same cells, to scatter this one against."""
        from analyses.results import Grid

        if not isinstance(entry.result, Grid):
            return None
        cells = (entry.result.axes, entry.result.labels)
        for n, other in reversed(list(enumerate(self.ws.runs, 1))):
            grid = other.result
            if other is not entry and isinstance(grid, Grid) and (grid.axes, grid.labels) == cells:
                method = f" {grid.meta['method']}" if "method" in grid.meta else ""
                return f"run {other.id or n} ({grid.analysis}{method})", grid
        return None

    def _clear_results(self) -> None:
        for tab in ANALYSIS_TABS:
            self._pane(tab).view.show(None)
        self.query_one("#plot", ResultPlot).show(None)
        self._shown = None

    def action_toggle_view(self) -> None:
        if self._tab() in ANALYSIS_TABS:
            self._pane(self._tab()).view.toggle_view()

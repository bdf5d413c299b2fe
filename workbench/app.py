"""The Textual app. Model loading and analyses run in thread workers that only post messages;
handlers on the app's thread change the widgets (the Harlequin rule). Escape cancels a running
sweep between batches. Several sessions can be open at once, each with its own model, prompts and
history; stored results show at once and every run is autosaved to its session file."""

from __future__ import annotations

import os
import sqlite3
import tomllib
from functools import partial
from pathlib import Path

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import ContentSwitcher, DataTable, Footer, Header, Input, ProgressBar, Select, Static, TabbedContent, TabPane, Tabs
from textual.worker import get_current_worker

from analyses.errors import BadInput, Cancelled
from analyses.results import Grid, Table
from screens.dialogs import AskDialog, HelpScreen, OpenSessionDialog, TokenPicker
from screens.panes import DLAPane, HistoryPane, PatchPane, PlotPane, PromptsPane, SessionsPane, token_preview
from screens.plots import ResultPlot
from screens.widgets import ErrorDialog, Heatmap, ResultTable
from sessions.workspace import Entry, Workspace, open_workspaces

TABS = [("dla", "DLA"), ("patch", "Patching"), ("plot_tab", "Plot"), ("prompts_tab", "Prompts"),
        ("history_tab", "History"), ("sessions_tab", "Sessions")]
ANSWER_FIELDS = {"answer": "answer", "distractor": "distractor", "p_answer": "clean answer",
                 "p_distractor": "corrupted answer"}
EDGE_TABLES = ("eap", "path_patch")  # table results shown on the patching tab


def keymap_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(base) / "workbench" / "keymap.toml"


class WorkbenchApp(App, inherit_bindings=False):
    TITLE = "interpretability workbench"
    AUTO_FOCUS = "#prompt"  # type a prompt straight away
    CSS = """
    #statusbar { height: 1; background: $boost; }
    #status { width: 1fr; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    #model_status { width: auto; padding: 0 1; color: $text-muted; }
    #load_bar { width: 20; display: none; }
    #load_bar.loading { display: block; }
    TabbedContent, TabPane, ContentSwitcher { height: 1fr; }
    DLAPane, PatchPane, PlotPane, PromptsPane, HistoryPane, SessionsPane { height: 1fr; }
    ResultTable, Heatmap, ResultPlot, #history, #prompts, #sessions { height: 1fr; }
    """
    BINDINGS = [
        Binding("ctrl+r", "run", "Run", id="run", tooltip="run the analysis of the current tab"),
        Binding("escape", "cancel", "Cancel", id="cancel", tooltip="stop a running sweep between batches"),
        Binding("f2", "pick_token", "Token", id="pick_token", tooltip="pick an answer / distractor token"),
        Binding("ctrl+s", "save", "Save", id="save", tooltip="save the session (and the prompt typed)"),
        Binding("ctrl+o", "open_session", "Open", id="open_session", tooltip="open or create another session"),
        Binding("ctrl+n", "add_note", "Note", id="add_note", show=False, tooltip="keep a note in the session"),
        Binding("f3", "next_session", "Next session", id="next_session", show=False,
                tooltip="switch to the next open session"),
        Binding("ctrl+t", "toggle_view", "Table/map", id="toggle_view", show=False,
                tooltip="DLA heads as a layer x head map; patching results as a table"),
        Binding("f4,ctrl+e", "export", "Export", id="export", tooltip="export the result to JSON and CSV"),
        Binding("f1", "help", "Help", id="help", tooltip="what this pane does and every key"),
        *(Binding(f"f{n}", f"show_tab('{tab_id}')", title, id=f"tab_{tab_id.removesuffix('_tab')}", show=False,
                  tooltip=f"show the {title} tab") for n, (tab_id, title) in enumerate(TABS, 5)),
        Binding("ctrl+q", "quit", "Quit", id="quit", priority=True),
        Binding("ctrl+c", "help_quit", show=False, system=True),
    ]

    class Loaded(Message):
        def __init__(self, spec: str, loaded) -> None:
            super().__init__()
            self.spec, self.loaded = spec, loaded

    class LoadFailed(Message):
        def __init__(self, spec: str, text: str) -> None:
            super().__init__()
            self.spec, self.text = spec, text

    class LoadProgress(Message):
        def __init__(self, spec: str, step: int, of: int, what: str) -> None:
            super().__init__()
            self.spec, self.step, self.of, self.what = spec, step, of, what

    class Result(Message):
        def __init__(self, ws: Workspace, analysis: str, result, params: dict) -> None:
            super().__init__()
            self.ws, self.analysis, self.result, self.params = ws, analysis, result, params

    class Failed(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class Progress(Message):
        def __init__(self, done: int, total: int) -> None:
            super().__init__()
            self.done, self.total = done, total

    class Candidates(Message):
        def __init__(self, field: str, candidates: list[tuple[str, str]]) -> None:
            super().__init__()
            self.field, self.candidates = field, candidates

    def __init__(self, model: str, device: str = "auto", dtype: str = "float32", device_map: str | None = None,
                 workspaces: list[Workspace] | None = None) -> None:
        """Open on ``workspaces`` (sessions, the first one shown), or on an unsaved session of ``model``."""
        super().__init__()
        self.device, self.dtype, self.device_map = device, dtype, device_map
        self.workspaces: list[Workspace] = list(workspaces or [Workspace(model)])
        self.ws = self.workspaces[0]
        self.models: dict = {}  # spec -> LoadedModel, shared by the sessions on that model
        self._loading: set[str] = set()
        self._run_after: set[str] = set()  # specs whose loading a run is waiting for
        self._shown = None

    @property
    def loaded(self):
        """The current session's model, once loaded."""
        return self.models.get(self.ws.spec)

    # ---- layout and start-up -----------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="statusbar"):
            yield Static("", id="status", markup=False)  # tokens look like [tags]
            yield ProgressBar(id="load_bar", show_eta=False)
            yield Static("", id="model_status", markup=False)
        with TabbedContent(initial="dla"):
            panes = {"dla": DLAPane, "patch": PatchPane, "plot_tab": PlotPane, "prompts_tab": PromptsPane,
                     "history_tab": HistoryPane, "sessions_tab": SessionsPane}
            for tab_id, title in TABS:
                with TabPane(title, id=tab_id):
                    yield panes[tab_id]()
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._apply_keymap()
        self.set_interval(5, self._show_model)
        self._switch_to(self.ws)
        if not self.ws.runs:
            self._start_loading(self.ws.spec, run_after=True)  # a newcomer sees a result at once
        # else: stored results are on screen; the model loads only when a new run needs it

    def _apply_keymap(self) -> None:
        """User key bindings from $XDG_CONFIG_HOME/workbench/keymap.toml: ``run = "f5"``."""
        path = keymap_path()
        if not path.is_file():
            return
        try:
            keys = tomllib.loads(path.read_text()).get("keymap", {})
            self.set_keymap({str(k): str(v) for k, v in keys.items()})
        except (OSError, tomllib.TOMLDecodeError) as e:
            self.notify(f"{path}: {e}; using the default keys", severity="error")

    # ---- models --------------------------------------------------------------------------------

    def _start_loading(self, spec: str, run_after: bool = False) -> None:
        if run_after:
            self._run_after.add(spec)
        if spec not in self._loading and spec not in self.models:
            self._loading.add(spec)
            self._set_status(f"loading {spec} ...")
            self.query_one("#load_bar", ProgressBar).add_class("loading")
            self._show_model()
            self.load_model(spec)

    @work(thread=True, group="model")
    def load_model(self, spec: str) -> None:
        from sessions.loading import load, quiet_hf

        quiet_hf()
        say = lambda step, of, what: self.post_message(self.LoadProgress(spec, step, of, what))  # noqa: E731
        try:
            self.post_message(self.Loaded(spec, load(spec, self.device, self.dtype, self.device_map, progress=say)))
        except Exception as e:  # shown in a dialog; the app keeps running
            self.post_message(self.LoadFailed(spec, _message(e)))

    def on_workbench_app_load_progress(self, event: LoadProgress) -> None:
        self.query_one("#load_bar", ProgressBar).update(total=event.of, progress=event.step)
        if event.spec == self.ws.spec and event.step < event.of:
            self._set_status(f"loading {event.spec}: {event.what} ({event.step + 1}/{event.of})")

    def on_workbench_app_loaded(self, event: Loaded) -> None:
        self.models[event.spec] = event.loaded
        self._loading.discard(event.spec)
        self._loading_done()
        if event.spec != self.ws.spec:
            self.notify(f"{event.spec} loaded")
            return
        if self._model_ready(self.ws) is None:
            return
        self._set_status(f"{event.spec} loaded: ctrl+r runs the tab's analysis")
        self._show_model()
        self._fit_controls()
        self._refresh_tokens()
        if event.spec in self._run_after:
            self._run_after.discard(event.spec)
            self.action_run()

    def on_workbench_app_load_failed(self, event: LoadFailed) -> None:
        self._loading.discard(event.spec)
        self._run_after.discard(event.spec)
        self._loading_done()
        self._set_status(f"{event.spec} failed to load")
        self._show_model()
        self.push_screen(ErrorDialog(event.text))

    def _loading_done(self) -> None:
        if not self._loading:
            self.query_one("#load_bar", ProgressBar).remove_class("loading")

    def _model_ready(self, ws: Workspace):
        """The session's model, attached to its session file; None (and loading started) when it
        is not loaded yet, or None after an error dialog when the file holds another model."""
        loaded = self.models.get(ws.spec)
        if loaded is None:
            self._start_loading(ws.spec)
            return None
        if not ws.attached:
            try:
                ws.attach(loaded.info)
            except (BadInput, OSError, sqlite3.Error) as e:
                self.push_screen(ErrorDialog(str(e)))
                return None
            self._fill_sessions()
        return loaded

    # ---- running -------------------------------------------------------------------------------

    def action_run(self) -> None:
        tab = self._tab()
        if tab == "history_tab":
            return self._reopen_selected()
        if tab == "prompts_tab":
            return self._use_selected_prompt()
        if tab == "sessions_tab":
            return self._switch_to_selected()
        if tab == "plot_tab":
            return self.notify("ctrl+r runs the analysis of the DLA or the patching tab", severity="warning")
        loaded = self._model_ready(self.ws)
        if loaded is None:
            if self.ws.spec in self._loading:
                self._run_after.add(self.ws.spec)
            return
        analysis, params = self._patch_request() if tab == "patch" else self._dla_request()
        if analysis in ("patch", "eap"):
            self.query_one("#progress", ProgressBar).update(total=None, progress=0)
        self.compute(self.ws, loaded, analysis, params)

    def _dla_request(self) -> tuple[str, dict]:
        by = self.query_one("#by", Select).value
        pos = self._value("#dla_pos")
        params = {"prompt": self._value("#prompt"), "answer": self._value("#answer"),
                  "distractor": self._value("#distractor") or None, **({"pos": int(pos)} if _is_int(pos) else {})}
        return ("logit-lens", params) if by == "lens" else ("dla", {**params, "by": by})

    def _patch_request(self) -> tuple[str, dict]:
        method = self.query_one("#method", Select).value
        params = {"clean": self._value("#clean"), "corrupt": self._value("#corrupt"), "answer": self._value("#p_answer"),
                  "distractor": self._value("#p_distractor"), "metric": self.query_one("#metric", Select).value}
        if method == "patch":
            return "patch", {**params, "site": self.query_one("#site", Select).value,
                             "direction": self.query_one("#direction", Select).value,
                             "positions": self._value("#positions") or None, "heads": self._value("#heads") or None}
        if method == "attrib":
            return "attrib", {**params, "site": self.query_one("#site", Select).value}
        if method == "path-patch":
            return "path-patch", {**params, "senders": self._value("#senders"), "receivers": self._value("#receivers")}
        top = self._value("#edges_top")
        return "eap", {**params, "ig": 5 if method == "eap-ig" else 0, **({"top": int(top)} if top.isdigit() else {})}

    def _evaluate(self, task: str) -> None:
        loaded = self._model_ready(self.ws)
        if loaded is None:
            self.notify("the model is loading; evaluate again once it is ready")
            return
        self.compute(self.ws, loaded, "eval", {"task": task, "n": 200})

    @work(thread=True, exclusive=True, group="analysis")
    def compute(self, ws: Workspace, loaded, analysis: str, params: dict) -> None:
        from sessions.runs import run_analysis

        worker = get_current_worker()
        extra = {}
        if analysis in ("patch", "eap"):  # the ones that report progress and stop when asked
            extra = {"progress": lambda d, t: self.post_message(self.Progress(d, t)),
                     "should_stop": lambda: worker.is_cancelled}
        try:
            self.post_message(self.Result(ws, analysis, run_analysis(loaded, analysis, **params, **extra), params))
        except Cancelled:
            self.post_message(self.Failed("cancelled: the run stopped between batches; nothing was saved"))
        except Exception as e:
            self.post_message(self.Failed(_message(e)))

    def action_cancel(self) -> None:
        self.workers.cancel_group(self, "analysis")

    def on_workbench_app_progress(self, event: Progress) -> None:
        self.query_one("#progress", ProgressBar).update(total=event.total, progress=event.done)

    def on_workbench_app_result(self, event: Result) -> None:
        ws = event.ws
        if ws not in self.workspaces:
            return self.notify(f"{event.analysis} finished after {ws.name} was closed; not kept", severity="warning")
        try:
            entry = ws.record(event.analysis, event.params, event.result)  # autosaved here
        except (OSError, sqlite3.Error) as e:
            self.push_screen(ErrorDialog(f"{ws.name}: the run could not be saved ({e}); earlier runs are intact"))
            return
        self._fill_sessions()
        if ws is not self.ws:
            self.notify(f"{event.analysis} finished in session {ws.name}")
            return
        self._add_history_row(entry, len(ws.runs))
        self._fill_prompts()
        self._show_result(entry, "(saved)" if entry.id is not None else "")

    def on_workbench_app_failed(self, event: Failed) -> None:
        self.push_screen(ErrorDialog(event.text))

    # ---- answer tokens ---------------------------------------------------------------------------

    def action_pick_token(self) -> None:
        focused = self.focused.id if self.focused is not None else None
        field = focused if focused in ANSWER_FIELDS else {"dla": "answer", "patch": "p_answer"}.get(self._tab())
        if field is None:
            return self.notify("F2 picks an answer or distractor on the DLA or patching tab", severity="warning")
        prompts = {"answer": ["#prompt"], "distractor": ["#prompt"], "p_answer": ["#clean", "#corrupt"],
                   "p_distractor": ["#corrupt", "#clean"]}[field]
        loaded = self._model_ready(self.ws)
        if loaded is None:
            return self.notify("the tokens come from the model's tokenizer: press F2 again once it has loaded")
        self.find_candidates(loaded, field, [self._value(p) for p in prompts])

    @work(thread=True, exclusive=True, group="tokens")
    def find_candidates(self, loaded, field: str, prompts: list[str]) -> None:
        from sessions.runs import token_candidates

        try:
            self.post_message(self.Candidates(field, token_candidates(loaded, prompts)))
        except Exception as e:
            self.post_message(self.Failed(_message(e)))

    def on_workbench_app_candidates(self, event: Candidates) -> None:
        def chosen(token: str | None) -> None:
            if token is not None:
                self.query_one(f"#{event.field}", Input).value = token

        self.push_screen(TokenPicker(ANSWER_FIELDS[event.field], event.candidates), chosen)

    # ---- sessions --------------------------------------------------------------------------------

    def action_save(self) -> None:
        ws = self.ws
        self._remember_inputs()
        if ws.session is not None:
            self.notify(f"{ws.name}: {_count(ws.runs, 'run')} and {_count(ws.prompts, 'prompt')} saved "
                        "(every run is saved as it finishes)")
        elif ws.new_path is not None:
            self.notify(f"{ws.name} is created as soon as {ws.spec} has loaded")
        else:
            question = "Save this session as (a new file; every later run is autosaved to it)"
            self.push_screen(AskDialog(question, "save_path", "path/to/analysis.wbs"), self._save_as)

    def _save_as(self, path: str | None) -> None:
        if path is None:
            return
        ws, target = self.ws, Path(path).expanduser()
        loaded = self.models.get(ws.spec)
        try:
            _check_new_file(target)
            if loaded is None:
                ws.new_path = target  # created with the model's facts once it has loaded
                self._start_loading(ws.spec)
            else:
                ws.save_as(target, loaded.info)
        except (BadInput, OSError, sqlite3.Error) as e:
            self.push_screen(ErrorDialog(f"could not save: {e}"))
            return
        self.sub_title = self._sub_title()
        self._fill_sessions()
        self._fill_history()
        self.notify(f"saved to {target}; every run is now saved as it finishes")

    def action_add_note(self) -> None:
        self.push_screen(AskDialog(f"A note for session {self.ws.name}", "note_text", "what you found"), self._add_note)

    def _add_note(self, text: str | None) -> None:
        if text is None:
            return
        try:
            self.ws.add_note(text)
        except (OSError, sqlite3.Error) as e:
            self.push_screen(ErrorDialog(f"the note could not be saved ({e})"))
            return
        self._fill_history()
        self.notify("note kept" + (f" in {self.ws.name}" if self.ws.session else "; it is saved with the session"))

    def action_open_session(self) -> None:
        self.push_screen(OpenSessionDialog(self.ws.spec), self._open)

    def _open(self, choice: tuple[str, str] | None) -> None:
        if choice is None:
            return
        path, model = choice
        try:
            if not path:
                ws = Workspace(model or self.ws.spec)
            else:
                target = Path(path).expanduser()
                same = next((w for w in self.workspaces if w.path == target.resolve()), None)
                if same is not None:
                    return self._switch_to(same)
                if target.exists():
                    ws = Workspace.from_file(target)
                else:
                    _check_new_file(target)
                    ws = Workspace(model or self.ws.spec, new_path=target)
        except (BadInput, OSError) as e:
            self.push_screen(ErrorDialog(str(e)))
            return
        self.workspaces.append(ws)
        self._switch_to(ws)
        if not ws.runs:
            self._model_ready(ws)  # load in the background, ready for the first run

    def action_close_session(self) -> None:
        """Close the current session (its file keeps everything) and show the one before it."""
        if len(self.workspaces) == 1:
            return self.notify("the last open session stays open; ctrl+q quits", severity="warning")
        ws = self.ws
        i = self.workspaces.index(ws)
        self.workspaces.remove(ws)
        ws.close()
        self._switch_to(self.workspaces[max(0, i - 1)])
        self.notify(f"closed {ws.name}")

    def action_next_session(self) -> None:
        i = self.workspaces.index(self.ws)
        self._switch_to(self.workspaces[(i + 1) % len(self.workspaces)])

    def _switch_to_selected(self) -> None:
        row = self.query_one("#sessions", DataTable).cursor_row
        if row is not None and 0 <= row < len(self.workspaces):
            self._switch_to(self.workspaces[row])

    def _switch_to(self, ws: Workspace) -> None:
        self.ws = ws
        self.sub_title = self._sub_title()
        self._fill_history()
        self._fill_prompts()
        self._fill_sessions()
        if ws.runs:
            self._show_result(ws.runs[-1], "(stored)")
        else:
            self._clear_results()
            loading = ws.spec in self._loading
            self._set_status(f"loading {ws.spec} ..." if loading else "no runs yet: ctrl+r runs the tab's analysis")
        self._show_model()
        self._fit_controls()
        self._refresh_tokens()

    def on_unmount(self) -> None:
        for ws in self.workspaces:
            ws.close()

    # ---- showing results -------------------------------------------------------------------------

    def _show_result(self, entry: Entry, state: str) -> None:
        result, analysis = entry.result, entry.analysis
        if isinstance(result, Grid):
            self.query_one("#patch_map", Heatmap).show_grid(result)
            self.query_one("#patch_view", ContentSwitcher).current = "patch_map"
            self.action_show_tab("patch")
        elif result.analysis in EDGE_TABLES:
            self.query_one("#patch_table", ResultTable).show(result)
            self.query_one("#patch_view", ContentSwitcher).current = "patch_table"
            self.action_show_tab("patch")
        else:
            self.query_one("#result", ResultTable).show(result)
            if result.meta.get("by") == "head":
                self.query_one("#head_map", Heatmap).show_heads(result)
            self.action_show_tab("dla")
        self.query_one("#plot", ResultPlot).show(result, partner=self._partner(entry))
        where = f"run {entry.id} {state}   " if entry.id is not None else ""
        self._set_status(f"{where}{analysis}  {_summary(result)}")
        self._show_model()
        self._shown = result
        if state in ("(stored)", "(reopened)"):
            self._fill_inputs(entry.params)

    def _partner(self, entry: Entry) -> tuple[str, Grid] | None:
        """The session's latest other grid over the same cells, to scatter this one against."""
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
        for selector in ("#result", "#patch_table"):
            self.query_one(selector, ResultTable).show(None)
        for selector in ("#patch_map", "#head_map"):
            self.query_one(selector, Heatmap).clear(columns=True)
        self.query_one("#plot", ResultPlot).show(None)
        self._shown = None

    def _fill_history(self) -> None:
        table = self.query_one("#history", DataTable)
        table.clear()
        for n, entry in enumerate(self.ws.runs, 1):
            self._add_history_row(entry, n)
        notes = self.query_one("#notes", DataTable)
        notes.clear()
        for note in self.ws.notes:
            notes.add_row(note)

    def _add_history_row(self, entry: Entry, n: int) -> None:
        meta, params = entry.result.meta, entry.params
        summary = meta.get("site") or meta.get("by") or meta.get("task") or ""
        prompt = params.get("prompt") or params.get("clean")
        if prompt:
            summary += f"  {prompt[:60]}"
        self.query_one("#history", DataTable).add_row(str(entry.id or n), entry.analysis, summary)

    def _fill_prompts(self) -> None:
        table = self.query_one("#prompts", DataTable)
        table.clear()
        for p in self.ws.prompts:
            table.add_row(p["kind"], repr(p["answer"]) if p["answer"] else "", repr(p["distractor"]) if p["distractor"] else "",
                          p["prompt"], p["corrupt"] or "")

    def _fill_sessions(self) -> None:
        table = self.query_one("#sessions", DataTable)
        table.clear()
        for ws in self.workspaces:
            table.add_row("*" if ws is self.ws else "", ws.name, ws.spec, str(len(ws.runs)), str(len(ws.prompts)))
        table.move_cursor(row=self.workspaces.index(self.ws))

    def _reopen_selected(self) -> None:
        row = self.query_one("#history", DataTable).cursor_row
        if self.ws.runs and row is not None and 0 <= row < len(self.ws.runs):
            self._show_result(self.ws.runs[row], "(reopened)")

    def _use_selected_prompt(self) -> None:
        row = self.query_one("#prompts", DataTable).cursor_row
        if not self.ws.prompts or row is None or not 0 <= row < len(self.ws.prompts):
            return
        p = self.ws.prompts[row]
        self._fill_inputs({**p, "clean": p["prompt"]} if p["corrupt"] is not None else p)
        self.action_show_tab("dla" if p["corrupt"] is None else "patch")

    def _fill_inputs(self, params: dict) -> None:
        """Put a run's (or a stored prompt's) prompt, pair and tokens back into the inputs."""
        if params.get("corrupt") is not None and params.get("clean") is not None:
            fields = {"#clean": "clean", "#corrupt": "corrupt", "#p_answer": "answer", "#p_distractor": "distractor"}
        elif params.get("prompt") is not None:
            fields = {"#prompt": "prompt", "#answer": "answer", "#distractor": "distractor"}
        else:
            return
        for selector, key in fields.items():
            self.query_one(selector, Input).value = params.get(key) or ""

    def _remember_inputs(self) -> None:
        """The prompt (or pair) typed on the current tab joins the session's prompts."""
        tab = self._tab()
        if tab == "dla" and self._value("#prompt"):
            self.ws.remember_prompt(self._value("#prompt"), None, self._value("#answer") or None,
                                    self._value("#distractor") or None)
        elif tab == "patch" and self._value("#clean") and self._value("#corrupt"):
            self.ws.remember_prompt(self._value("#clean"), self._value("#corrupt"), self._value("#p_answer") or None,
                                    self._value("#p_distractor") or None)
        self._fill_prompts()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        action = {"history": self._reopen_selected, "prompts": self._use_selected_prompt,
                  "sessions": self._switch_to_selected}.get(event.data_table.id or "")
        if action is not None:
            action()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """Focus follows the tab shown (unless it is on the tab bar, where arrows switch tabs):
        focus left in a hidden pane would pull its tab back to the front."""
        focused = self.focused
        if isinstance(focused, Tabs) or (focused is not None and event.pane in focused.ancestors):
            return
        target = next((w for w in self.screen.focus_chain if event.pane in w.ancestors), None)
        if target is not None:
            target.focus()
        else:
            self.query_one(TabbedContent).query_one(Tabs).focus()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "method":
            self.query_one(PatchPane).show_fields(str(event.value))

    def action_toggle_view(self) -> None:
        if self._tab() == "patch":
            switcher = self.query_one("#patch_view", ContentSwitcher)
            switcher.current = "patch_table" if switcher.current == "patch_map" else "patch_map"
        else:
            switcher = self.query_one("#dla_view", ContentSwitcher)
            switcher.current = "head_map" if switcher.current == "result" else "result"

    def action_export(self) -> None:
        from sessions.export import export

        result = self._shown
        if self._tab() == "history_tab" and self.ws.runs:
            result = self.ws.runs[self.query_one("#history", DataTable).cursor_row].result
        if result is None:
            self.notify("nothing to export yet", severity="warning")
            return
        stem = f"workbench-{result.analysis}-{len(self.ws.runs)}"
        try:
            json_path, csv_path = export(result, Path.cwd() / stem)
        except OSError as e:
            self.push_screen(ErrorDialog(f"export failed: {e}"))
            return
        self.notify(f"wrote {json_path.name} and {csv_path.name}")

    def action_help(self) -> None:
        focused = self.focused
        text = next((node.HELP for node in (focused.ancestors_with_self if focused else []) if getattr(node, "HELP", None)),
                    APP_HELP)
        keys: dict[str, str] = {}
        actives = sorted(self.screen.active_bindings.values(), key=lambda a: a.node is not self)  # the app's first
        for active in actives:
            binding = active.binding
            if binding.description and not binding.system:
                what = binding.description + (f": {binding.tooltip}" if binding.tooltip else "")
                keys.setdefault(self.get_key_display(binding), what)
        self.push_screen(HelpScreen(text, list(keys.items())))

    def get_system_commands(self, screen):
        """The command palette (ctrl+p): every action, every tab, every open session, task evals."""
        yield from super().get_system_commands(screen)
        for title, help_text, action in [
            ("Run", "run the analysis of the current tab (ctrl+r)", self.action_run),
            ("Save session", "save the session and the prompt typed (ctrl+s)", self.action_save),
            ("Open session", "open or create another session file (ctrl+o)", self.action_open_session),
            ("Add note", "keep a note in the session (ctrl+n)", self.action_add_note),
            ("Next session", "switch to the next open session (F3)", self.action_next_session),
            ("Close session", "close the current session; its file keeps everything", self.action_close_session),
            ("Pick token", "pick the answer or distractor from the prompt's tokens (F2)", self.action_pick_token),
            ("Toggle table / map", "DLA heads as a map, patching results as a table (ctrl+t)", self.action_toggle_view),
            ("Export result", "write the result on show to JSON and CSV (F4)", self.action_export),
            ("Cycle plot kind", "bar / line / scatter / heatmap of the result (p on the plot)",
             self.query_one("#plot", ResultPlot).action_cycle_kind),
        ]:
            yield SystemCommand(title, help_text, action)
        for n, (tab_id, title) in enumerate(TABS, 5):
            yield SystemCommand(f"Show tab: {title}", f"switch to the {title} tab (F{n})", partial(self.action_show_tab, tab_id))
        for n, ws in enumerate(self.workspaces, 1):
            yield SystemCommand(f"Switch to session {n}: {ws.name}", f"{ws.spec}, {len(ws.runs)} runs",
                                partial(self._switch_to, ws))
        from analyses.tasks import TASKS

        for task in TASKS:
            yield SystemCommand(f"Evaluate task: {task}", "accuracy overall and per variant on 200 held-out examples",
                                partial(self._evaluate, task))

    # ---- live inputs -------------------------------------------------------------------------------

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id in ("prompt", "clean", "corrupt"):
            self._refresh_tokens()
        elif event.input.id in ("filter", "topk"):
            table = self.query_one("#result", ResultTable)
            table.label_filter = self._value("#filter")
            top = self._value("#topk")
            table.top_k = int(top) if top.isdigit() and int(top) > 0 else None
            table.refresh_rows()

    def _refresh_tokens(self) -> None:
        tok = None if self.loaded is None else self.loaded.tokenizer

        def spell(text: str) -> list[str] | None:
            if tok is None:
                return None
            from analyses.tokens import token_strings

            return token_strings(tok, tok(text)["input_ids"]) if text else []

        self.query_one("#tokens", Static).update(token_preview(spell(self._value("#prompt"))))
        self.query_one("#pair_tokens", Static).update(
            token_preview(spell(self._value("#clean")), spell(self._value("#corrupt")) if tok else None)
        )

    # ---- helpers ---------------------------------------------------------------------------------------

    def _tab(self) -> str:
        return self.query_one(TabbedContent).active

    def action_show_tab(self, tab_id: str) -> None:
        self.query_one(TabbedContent).active = tab_id

    def _value(self, selector: str) -> str:
        return self.query_one(selector, Input).value

    def _set_status(self, text: str) -> None:
        self.query_one("#status", Static).update(text)

    def _sub_title(self) -> str:
        return f"{self.ws.name} · {self.ws.spec}"

    def _fit_controls(self) -> None:
        """Offer the sites and DLA granularities the current session's model has."""
        if self.loaded is None:
            return
        from analyses.patching import sites_for

        hooked = self.loaded.hooked
        self.query_one(PatchPane).set_sites(list(sites_for(hooked)))
        self.query_one(DLAPane).set_granularities(hooked.shape.family != "mamba")

    def _show_model(self) -> None:
        """The right of the status bar: the session's model as loaded (family, device, dtype) and
        the memory in use, refreshed after every run and every few seconds."""
        loaded = self.loaded
        if loaded is None:
            text = "" if self.ws.spec in self._loading else "model not loaded"
        else:
            info = loaded.info
            text = f"{info['model_type']} · {info['device']} · {info['dtype']} · {_memory(info['device'])}"
        self.query_one("#model_status", Static).update(text)


APP_HELP = """### Interpretability workbench
Type a prompt on the DLA tab or a clean/corrupted pair on the patching tab and press
**ctrl+r**. Results are tables, heatmaps and plots; every run is kept in the session's
history, saved as it finishes once the session has a file (**ctrl+s**)."""


def _summary(result: Table | Grid) -> str:
    meta = result.meta
    if isinstance(result, Grid):
        return f"{meta.get('site')} clean {meta['clean']:+.3f} corrupt {meta['corrupt']:+.3f}"
    if "logit" in meta:
        return f"logit {meta['logit']:+.4f}"
    if "circuit" in meta:
        return f"{len(result.labels)} edges; top edges' faithfulness {meta['circuit'].get('faithfulness', 0):.3f}"
    if result.analysis == "eval":
        return f"accuracy {result.values[-1]:.3f}"
    if result.analysis == "path_patch":
        return "  ".join(f"{k} {v:+.4f}" for k, v in zip(result.labels, result.values))
    return f"{len(result.labels)} rows"


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()


def _count(items: list, noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def _check_new_file(path: Path) -> None:
    if path.exists():
        raise BadInput(f"{path}: already exists; open it with ctrl+o instead")
    if not path.parent.is_dir():
        raise BadInput(f"{path.parent}: no such folder")


def _memory(device: str) -> str:
    """Memory in use: the process's resident set, and allocated CUDA memory on a GPU."""
    try:
        rss = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        text = f"RSS {rss / 2**20:.0f} MiB"
    except (OSError, ValueError, IndexError):
        text = ""
    if device.startswith("cuda"):
        import torch

        text += f"  CUDA {torch.cuda.memory_allocated() / 2**20:.0f} MiB"
    return text


def _message(e: Exception) -> str:
    if isinstance(e, BadInput):
        return str(e)
    if type(e).__name__ == "OutOfMemoryError":
        return "out of memory: try a smaller batch, --dtype bfloat16, or --device-map auto"
    return f"internal error: {type(e).__name__}: {e}"


def run_tui(model: str, device: str, dtype: str, device_map: str | None, sessions: list[str] | None) -> int:
    """Open the app on these session files (each created for ``model`` if absent), or on ``model``.
    A bad session file is an error here, before the screen opens, and is left untouched."""
    WorkbenchApp(model, device, dtype, device_map, open_workspaces(model, sessions or [])).run()
    return 0

"""The Textual app: wiring only. The tabs' forms come from the analysis declarations
(``analyses.registry``); loading and analyses run in thread workers that only post messages, and
handlers on the app's thread change the widgets (the Harlequin rule). One analysis runs at a time;
one started meanwhile waits its turn, and Escape stops the running one between batches."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from functools import partial
from typing import NoReturn

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.content import Content
from textual.css.query import NoMatches
from textual.message import Message
from textual.widgets import Footer, Header, ProgressBar, Select, Static, TabbedContent, TabPane

from analyses.errors import BadInput
from analyses.parity import parity_text, parity_warning
from analyses.registry import TABS as ANALYSIS_TAB_TITLES
from analyses.registry import Analysis, analyses
from screens.focus import FOCUS_CSS
from screens.panes import AnalysisPane, HistoryPane, PlotPane, PromptsPane, SessionsPane
from screens.plots import ResultPlot
from screens.widgets import ErrorDialog
from sessions.workspace import Entry, Workspace, open_workspaces
from workbench.edit_actions import EditActions
from workbench.failures import FailureActions, hard_exit
from workbench.forms import FormActions
from workbench.running import ANALYSIS_TABS, Job, RunActions
from workbench.session_actions import SessionActions
from workbench.support import apply_keymap, failure_text, help_keys, memory_text


def tab_binding_id(tab_id: str) -> str:
    """The id of the key binding that shows a tab (``tab_prompt``, ``tab_history``): keymap.toml's name."""
    return f"tab_{tab_id.removesuffix('_tab')}"


FIRST_TAB = "prompt"  # the tab of the first frame
TABS = [*((tab, title) for tab, (title, *_) in ANALYSIS_TAB_TITLES.items()), ("plot_tab", "Plot"), ("prompts_tab", "Prompts"),
        ("history_tab", "History"), ("sessions_tab", "Sessions")]


class WorkbenchApp(FormActions, RunActions, SessionActions, EditActions, FailureActions, App, inherit_bindings=False):
    TITLE = "interpretability workbench"
    AUTO_FOCUS = "#prompt-prompt"  # type a prompt straight away
    CSS = FOCUS_CSS + """
    #statusbar { height: 1; background: $boost; }
    #status { width: 1fr; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    #model_status { width: auto; padding: 0 1; color: $text-muted; }
    #load_bar { width: 20; display: none; }
    #load_bar.loading { display: block; }
    TabbedContent, TabPane, ContentSwitcher { height: 1fr; }
    Tab { padding: 0 0 0 1; }  /* "F5 Prompt ... F11 Sessions" fits 80 columns */
    PlotPane, PromptsPane, HistoryPane, SessionsPane { height: 1fr; }
    ResultPlot, #history, #prompts, #sessions { height: 1fr; }
    """
    BINDINGS = [
        Binding("ctrl+r", "run", "Run", id="run", tooltip="run the analysis of the current tab"),
        Binding("escape", "cancel", "Cancel", id="cancel", tooltip="stop the running analysis between batches"),
        Binding("f2", "pick_token", "Token", id="pick_token", tooltip="pick an answer / distractor token"),
        Binding("ctrl+s", "save", "Save", id="save", tooltip="save the session (and the prompt typed)"),
        Binding("ctrl+o", "open_session", "Open", id="open_session", show=False, tooltip="open or create another session"),
        Binding("ctrl+n", "add_note", "Note", id="add_note", show=False, tooltip="keep a note in the session"),
        Binding("f3", "next_session", "Next session", id="next_session", show=False,
                tooltip="switch to the next open session"),
        Binding("ctrl+t", "toggle_view", "Table/map", id="toggle_view", show=False,
                tooltip="switch the result between its views (table, heatmap)"),
        Binding("f4,ctrl+e", "export", "Export", id="export", tooltip="export the result to JSON and CSV"),
        Binding("f1", "help", "Help", id="help", tooltip="what this pane does and every key"),
        *(Binding(f"f{n}", f"show_tab('{tab_id}')", title, id=tab_binding_id(tab_id), show=False,
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
        self._shown: Entry | None = None
        self._active_job: Job | None = None
        self._waiting: list[Job] = []
        self._panes: dict[str, AnalysisPane] = {}
        self._started = False  # every form composed and the first session shown
        self._last_input = None  # the last key or mouse press
        self._up = False  # _started and nothing failed on the way: later failures become dialogs

    @property
    def loaded(self):
        """The current session's model, once loaded."""
        return self.models.get(self.ws.spec)

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="statusbar"):
            yield Static("", id="status", markup=False)  # tokens look like [tags]
            yield ProgressBar(id="load_bar", show_eta=False)
            yield Static("", id="model_status", markup=False)
        declared = list(analyses().values())
        panes = {"plot_tab": PlotPane, "prompts_tab": PromptsPane, "history_tab": HistoryPane,
                 "sessions_tab": SessionsPane}
        with TabbedContent(initial=FIRST_TAB):
            for tab_id, title in TABS:
                with TabPane(title, id=tab_id):
                    if tab_id in ANALYSIS_TABS:
                        self._panes[tab_id] = AnalysisPane(tab_id, [a for a in declared if a.tab == tab_id])
                        if tab_id == FIRST_TAB:  # the others are mounted after the first frame
                            yield self._panes[tab_id]
                    else:
                        yield panes[tab_id]()
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._label_tabs(apply_keymap(self))
        self.set_interval(5, self._show_model)
        self.call_after_refresh(self._mount_hidden_panes)

    async def _mount_hidden_panes(self) -> None:
        """The analysis tabs not on show, mounted once the first frame is painted: their few
        hundred controls took most of the time before it. Then the first session is shown."""
        for tab_id, pane in self._panes.items():
            if not pane.is_attached:
                await self.query_one(f"#{tab_id}", TabPane).mount(pane)
        try:
            self._open_first()
        except Exception as error:
            # A startup failure ends the app (exit 1) naming this error: handed to Textual here, it is
            # the one recorded, not whatever the teardown of half-mounted controls raises after it.
            self._handle_exception(error)

    def _label_tabs(self, keymap: dict[str, str]) -> None:
        """Each tab's label leads with its key ("F5 Prompt"), as bound after the user's keymap."""
        tabs = self.query_one(TabbedContent)
        for n, (tab_id, title) in enumerate(TABS, 5):
            key = keymap.get(tab_binding_id(tab_id), f"f{n}").split(",")[0].strip()
            shown = key.upper() if re.fullmatch(r"f\d+", key) else self.get_key_display(Binding(key, ""))
            tabs.get_tab(tab_id).label = Content.assemble((shown, "bold"), " ", title)

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """Escape (Cancel) is offered in the footer only while an analysis runs."""
        return self._active_job is not None if action == "cancel" else True

    def _open_first(self) -> None:
        self._started = True
        self._switch_to(self.ws)
        for ws in self.workspaces:
            self._warn_damaged(ws)
        if not self.ws.runs:
            self._start_loading(self.ws.spec, run_after=True)  # a newcomer sees a result at once
        self._up = True

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
            self.post_message(self.LoadFailed(spec, failure_text(e)))

    def on_workbench_app_load_progress(self, event: LoadProgress) -> None:
        self.query_one("#load_bar", ProgressBar).update(total=event.of, progress=event.step)
        if event.spec == self.ws.spec and event.step < event.of:
            self._set_status(f"loading {event.spec}: {event.what} ({event.step + 1}/{event.of})")

    def on_workbench_app_loaded(self, event: Loaded) -> None:
        self.models[event.spec] = event.loaded
        self._loading.discard(event.spec)
        self._loading_done()
        if event.spec != self.ws.spec:
            return self.notify(f"{event.spec} loaded")
        if self._model_ready(self.ws) is None:
            return
        self._set_status(f"{event.spec} loaded: ctrl+r runs the tab's analysis")
        self._show_model()
        warning = parity_warning(event.loaded.info)
        if warning:
            self.push_screen(ErrorDialog(warning, title="Warning: the hooked model is not the plain model"))
        self._fit_controls()
        self._fit_answers()
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

    def action_help(self) -> None:
        from screens.dialogs import HelpScreen

        focused = self.focused
        text = next((node.HELP for node in (focused.ancestors_with_self if focused else []) if getattr(node, "HELP", None)),
                    APP_HELP)
        self.push_screen(HelpScreen(text, help_keys(self)))

    def get_system_commands(self, screen):
        """The command palette (ctrl+p): every action, tab, analysis, open session and task eval."""
        yield from super().get_system_commands(screen)
        yield from self.session_commands()
        yield from self.edit_commands()
        for title, help_text, action in [
            ("Run", "run the analysis of the current tab (ctrl+r)", self.action_run),
            ("Pick token", "pick the answer or distractor from the prompt's tokens (F2)", self.action_pick_token),
            ("Toggle view", "a result's table or its heatmap (ctrl+t)", self.action_toggle_view),
            ("Export result", "write the result on show to JSON and CSV (F4)", self.action_export),
            ("Cycle plot kind", "the kinds of plot the result allows (p on the plot)",
             self.query_one("#plot", ResultPlot).action_cycle_kind),
        ]:
            yield SystemCommand(title, help_text, action)
        for n, (tab_id, title) in enumerate(TABS, 5):
            yield SystemCommand(f"Show tab: {title}", f"switch to the {title} tab (F{n})", partial(self.action_show_tab, tab_id))
        for analysis in analyses().values():  # those the forms offer: the model's family's
            if self._offered(analysis):
                yield SystemCommand(f"Analysis: {analysis.title}", analysis.help, partial(self._choose, analysis))
        if self._tab() in ANALYSIS_TABS:  # every choice of the form on show, by name
            form = self._pane(self._tab()).form
            for name, options in form.options.items():
                if form.query_one(f"#{form.tab}-{name}-field").display:
                    for option in options:
                        yield SystemCommand(f"Set {form.params[name].short} = {option}", form.params[name].help,
                                            partial(form.set_inputs, {name: option}))
        from analyses.tasks import PAIR_TASKS, TASKS

        for task in PAIR_TASKS:
            yield SystemCommand(f"Pairs from task {task}", f"the Patching tab's pairs: 16 of the {task} task",
                                partial(self._use_task, task))
        for task in TASKS:
            yield SystemCommand(f"Evaluate task: {task}", "accuracy overall and per variant on 200 held-out examples",
                                partial(self._evaluate, task))

    def _offered(self, analysis: Analysis) -> bool:
        """Whether the form of its tab offers it: it applies to the family of the model the forms
        were last fitted to (any, before a model has loaded)."""
        family = self._pane(analysis.tab).form.family
        return family is None or analysis.available_for(family)

    def _choose(self, analysis: Analysis) -> None:
        if not self._offered(analysis):  # a palette opened before the session or its model changed
            family = self._pane(analysis.tab).form.family
            return self.notify(f"{analysis.title} does not apply to this session's model ({family})", severity="warning")
        self.action_show_tab(analysis.tab)
        self._pane(analysis.tab).form.choose(analysis.name)

    def _use_task(self, task: str) -> None:
        self.action_show_tab("pairs")
        form = self._pane("pairs").form
        self.query_one("#pairs-source", Select).value = "task sample"
        form.set_inputs({"task": task, "n": 16})
        form.refresh_fields()

    def _evaluate(self, task: str) -> None:
        from analyses.toys import toy_task

        own = toy_task(self.ws.spec)
        if own is not None and own != task:
            self.notify(f"{task} is not {self.ws.spec}'s own task ({own}): expect chance accuracy", severity="warning")
        self._submit(analyses()["eval"], {"task": task, "n": 200})

    # ---- helpers ---------------------------------------------------------------------------------------

    def _tab(self) -> str:
        return self.query_one(TabbedContent).active

    def _pane(self, tab: str) -> AnalysisPane:
        return self._panes[tab]

    def action_show_tab(self, tab_id: str) -> None:
        self.query_one(TabbedContent).active = tab_id

    def _set_status(self, text: str) -> None:
        self.query_one("#status", Static).update(text)

    def _show_model(self) -> None:
        """The right of the status bar: the model as loaded (family, device, dtype) and memory."""
        loaded = self.loaded
        if loaded is None:
            text = "" if self.ws.spec in self._loading else "model not loaded"
        else:
            info = loaded.info
            parity = info.get("parity")
            # A passing check gives way to the edits in force (an 80-column bar has no room for both
            # beside the run's status); a failing one always shows.
            checked = "" if self.edits and parity and parity["ok"] else f"{parity_text(parity)} · "
            text = f"{info['model_type']} · {info['device']} · {info['dtype']} · {checked}{memory_text(info['device'])}"
        if self.edits:
            text += " · edits: " + " ".join(self.edit_texts())
        try:
            self.query_one("#model_status", Static).update(text)
        except NoMatches:  # the refresh timer fired while the app was closing
            if self.is_running:
                raise


APP_HELP = """### Interpretability workbench
Choose an analysis on the Prompt tab (one prompt) or the Patching tab (pairs, a pairs file or a
task sample), fill in its form and press **ctrl+r**. Results are tables, heatmaps and plots;
every run is kept in the session's history, saved as it finishes once the session has a file
(**ctrl+s**)."""


def run_tui(model: str | None, device: str, dtype: str, device_map: str | None, sessions: list[str] | None) -> NoReturn:
    """Open the app on these session files (each created for ``model`` if absent), or on ``model``.
    A bad session file, a folder that is not there, or a ``model`` other than a session's is an
    error here, before the screen opens, and every file is left untouched."""
    from analyses.toys import DEFAULT_MODEL
    from sessions.loading import check_device_map

    check_device_map(device_map)
    workspaces = open_workspaces(model, sessions or [], DEFAULT_MODEL)
    app = WorkbenchApp(model or DEFAULT_MODEL, device, dtype, device_map, workspaces)
    app.exit_hard = True
    # Our own loop: asyncio.run would wait, after the app has gone, for the threads of runs still
    # busy in torch, as would Python's exit, which also takes seconds to tear down torch's heap on
    # a busy machine. The sessions are closed by now: the process ends there.
    app.run(loop=asyncio.new_event_loop())
    hard_exit(app.return_code or 0)

"""The Textual app. Model loading and analyses run in thread workers that only post messages;
handlers on the app's thread change the widgets (the Harlequin rule). Escape cancels a running
sweep between batches. With a session, stored results show at once and every run is autosaved."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import ContentSwitcher, DataTable, Footer, Header, Input, ProgressBar, Select, Static, TabbedContent, TabPane
from textual.worker import get_current_worker

from analyses.errors import BadInput, Cancelled
from analyses.results import Grid
from screens.panes import DLAPane, HistoryPane, PatchPane, token_preview
from screens.widgets import ErrorDialog, Heatmap, ResultTable


def keymap_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(base) / "workbench" / "keymap.toml"


class WorkbenchApp(App):
    TITLE = "interpretability workbench"
    CSS = """
    #status { height: 1; background: $boost; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    TabbedContent, TabPane, ContentSwitcher { height: 1fr; }
    DLAPane, PatchPane, HistoryPane { height: 1fr; }
    ResultTable, Heatmap, #history { height: 1fr; }
    """
    BINDINGS = [
        Binding("ctrl+r", "run", "Run", id="run"),
        Binding("escape", "cancel", "Cancel", id="cancel"),
        Binding("ctrl+t", "toggle_view", "Table/map", id="toggle_view"),
        Binding("ctrl+e", "export", "Export", id="export"),
        Binding("f1", "show_help_panel", "Help", id="help"),
        Binding("ctrl+q", "quit", "Quit", id="quit"),
    ]

    class Loaded(Message):
        def __init__(self, loaded) -> None:
            super().__init__()
            self.loaded = loaded

    class Result(Message):
        def __init__(self, analysis: str, result, params: dict) -> None:
            super().__init__()
            self.analysis, self.result, self.params = analysis, result, params

    class Failed(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class Progress(Message):
        def __init__(self, done: int, total: int) -> None:
            super().__init__()
            self.done, self.total = done, total

    def __init__(self, model: str, device: str = "auto", dtype: str = "float32", device_map: str | None = None,
                 session=None, new_session: str | None = None) -> None:
        super().__init__()
        self.spec, self.device, self.dtype, self.device_map = model, device, dtype, device_map
        self.loaded = None
        self.session = session  # sessions.store.Session or None: every run is appended to it
        self.new_session = new_session  # a session file to create once the model is loaded
        self._run_when_loaded = False
        self._model_loading = False
        self.history: list[tuple[int | None, str, object]] = []  # (run id, analysis, result)

    # ---- layout and start-up -----------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"loading {self.spec} ...", id="status", markup=False)  # tokens look like [tags]
        with TabbedContent(initial="dla"):
            with TabPane("DLA", id="dla"):
                yield DLAPane()
            with TabPane("Patching", id="patch"):
                yield PatchPane()
            with TabPane("History", id="history_tab"):
                yield HistoryPane()
        yield Footer()

    def on_mount(self) -> None:
        self._apply_keymap()
        if self.session is not None:
            for run in self.session.runs():
                self._remember_run(run.id, run.analysis, run.result)
            if self.history:
                run_id, analysis, result = self.history[-1]
                self._show_result(analysis, result, f"session {self.session.path.name}: run {run_id} (stored)")
                return  # the model loads only when a new run needs it
        self._start_loading(run_after=True)

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

    def _start_loading(self, run_after: bool) -> None:
        self._run_when_loaded = self._run_when_loaded or run_after
        if not self._model_loading:
            self._model_loading = True
            self._set_status(f"loading {self.spec} ...")
            self.load_model()

    @work(thread=True, exclusive=True, group="model")
    def load_model(self) -> None:
        from sessions.loading import load, quiet_hf

        quiet_hf()
        try:
            self.post_message(self.Loaded(load(self.spec, self.device, self.dtype, self.device_map)))
        except Exception as e:  # shown in a dialog; the app keeps running
            self.post_message(self.Failed(_message(e)))

    def on_workbench_app_loaded(self, event: Loaded) -> None:
        self.loaded, self._model_loading = event.loaded, False
        try:
            if self.new_session is not None:
                from sessions.store import Session

                self.session, self.new_session = Session.create(self.new_session, self.loaded.info), None
            elif self.session is not None:
                from sessions.store import check_same_model

                check_same_model(self.session, self.loaded.info)
        except BadInput as e:
            self.push_screen(ErrorDialog(str(e)))
            return
        self._set_status(self._model_line())
        self._refresh_tokens()
        if self._run_when_loaded:
            self._run_when_loaded = False
            self.action_run()

    # ---- running -------------------------------------------------------------------------------

    def action_run(self) -> None:
        if self.loaded is None:
            self._start_loading(run_after=True)
            return
        tab = self.query_one(TabbedContent).active
        if tab == "patch":
            params = {
                "clean": self._input_value("#clean"), "corrupt": self._input_value("#corrupt"), "answer": self._input_value("#p_answer"),
                "distractor": self._input_value("#p_distractor"), "site": self.query_one("#site", Select).value,
                "direction": self.query_one("#direction", Select).value, "metric": self.query_one("#metric", Select).value,
            }
            self.query_one("#progress", ProgressBar).update(total=None, progress=0)
            self.compute("patch", params)
        elif tab == "dla":
            by = self.query_one("#by", Select).value
            params = {"prompt": self._input_value("#prompt"), "answer": self._input_value("#answer"),
                      "distractor": self._input_value("#distractor") or None}
            if by == "lens":
                self.compute("logit-lens", params)
            else:
                self.compute("dla", {**params, "by": by})
        else:
            self._reopen_selected()

    @work(thread=True, exclusive=True, group="analysis")
    def compute(self, analysis: str, params: dict) -> None:
        from sessions.runs import run_analysis

        worker = get_current_worker()
        extra = {}
        if analysis == "patch":
            extra = {"progress": lambda d, t: self.post_message(self.Progress(d, t)),
                     "should_stop": lambda: worker.is_cancelled}
        try:
            self.post_message(self.Result(analysis, run_analysis(self.loaded, analysis, **params, **extra), params))
        except Cancelled:
            self.post_message(self.Failed("cancelled: the sweep stopped between batches; nothing was saved"))
        except Exception as e:
            self.post_message(self.Failed(_message(e)))

    def action_cancel(self) -> None:
        self.workers.cancel_group(self, "analysis")

    def on_workbench_app_progress(self, event: Progress) -> None:
        self.query_one("#progress", ProgressBar).update(total=event.total, progress=event.done)

    def on_workbench_app_result(self, event: Result) -> None:
        run_id = None
        note = self.loaded.info["spec"]
        if self.session is not None:
            run_id = self.session.append_run(event.analysis, event.params, event.result)  # autosave
            note = f"session {self.session.path.name}: run {run_id} (saved)"
        self._remember_run(run_id, event.analysis, event.result)
        self._show_result(event.analysis, event.result, note)

    def on_workbench_app_failed(self, event: Failed) -> None:
        self._model_loading = False
        self.push_screen(ErrorDialog(event.text))

    # ---- showing results -------------------------------------------------------------------------

    def _show_result(self, analysis: str, result, note: str) -> None:
        meta = result.meta
        if isinstance(result, Grid):
            self.query_one("#patch_map", Heatmap).show_grid(result)
            self.query_one(TabbedContent).active = "patch"
            line = f"{note}   {meta.get('site')}: clean {meta['clean']:+.4f}  corrupt {meta['corrupt']:+.4f}"
        else:
            table = self.query_one("#result", ResultTable)
            table.show(result)
            if meta.get("by") == "head":
                self.query_one("#head_map", Heatmap).show_heads(result)
            self.query_one(TabbedContent).active = "dla"
            line = f"{note}   {analysis}  logit {meta['logit']:+.4f}" if "logit" in meta else f"{note}   {analysis}"
        self._set_status(line)
        self._shown_result = result

    def _remember_run(self, run_id: int | None, analysis: str, result) -> None:
        self.history.append((run_id, analysis, result))
        meta = result.meta
        summary = meta.get("site") or meta.get("by") or meta.get("task") or ""
        if "prompt_tokens" in meta:
            summary += "  " + "".join(meta["prompt_tokens"])[:50]
        self.query_one("#history", DataTable).add_row(str(run_id or len(self.history)), analysis, summary)

    def _reopen_selected(self) -> None:
        table = self.query_one("#history", DataTable)
        if not self.history or table.cursor_row is None:
            return
        run_id, analysis, result = self.history[table.cursor_row]
        self._show_result(analysis, result, f"run {run_id or table.cursor_row + 1} (reopened)")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "history":
            self._reopen_selected()

    def action_toggle_view(self) -> None:
        switcher = self.query_one("#dla_view", ContentSwitcher)
        switcher.current = "head_map" if switcher.current == "result" else "result"

    def action_export(self) -> None:
        from sessions.export import export

        result = getattr(self, "_shown_result", None)
        if self.query_one(TabbedContent).active == "history_tab" and self.history:
            result = self.history[self.query_one("#history", DataTable).cursor_row][2]
        if result is None:
            self.notify("nothing to export yet", severity="warning")
            return
        stem = f"workbench-{result.analysis}-{len(self.history)}"
        try:
            json_path, csv_path = export(result, Path.cwd() / stem)
        except OSError as e:
            self.push_screen(ErrorDialog(f"export failed: {e}"))
            return
        self.notify(f"wrote {json_path.name} and {csv_path.name}")

    # ---- live inputs -------------------------------------------------------------------------------

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id in ("prompt", "clean", "corrupt"):
            self._refresh_tokens()
        elif event.input.id in ("filter", "topk"):
            table = self.query_one("#result", ResultTable)
            table.label_filter = self._input_value("#filter")
            top = self._input_value("#topk")
            table.top_k = int(top) if top.isdigit() and int(top) > 0 else None
            table.refresh_rows()

    def _refresh_tokens(self) -> None:
        tok = None if self.loaded is None else self.loaded.tokenizer

        def spell(text: str) -> list[str] | None:
            if tok is None:
                return None
            from analyses.tokens import token_strings

            return token_strings(tok, tok(text)["input_ids"]) if text else []

        self.query_one("#tokens", Static).update(token_preview(spell(self._input_value("#prompt"))))
        self.query_one("#pair_tokens", Static).update(
            token_preview(spell(self._input_value("#clean")), spell(self._input_value("#corrupt")) if tok else None)
        )

    # ---- helpers ---------------------------------------------------------------------------------------

    def _input_value(self, selector: str) -> str:
        return self.query_one(selector, Input).value

    def _set_status(self, text: str) -> None:
        self.query_one("#status", Static).update(text)

    def _model_line(self) -> str:
        info = self.loaded.info
        return f"{info['spec']}  {info['model_type']}  {info['device']}  {info['dtype']}  {_memory(info['device'])}"


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


def run_tui(model: str, device: str, dtype: str, device_map: str | None, session: str | None) -> int:
    """Open the app; with ``session``, on that session file (created for ``model`` if absent)."""
    store, new = None, None
    if session is not None:
        from sessions.store import Session

        if os.path.exists(session):
            store = Session.open(session)  # a bad file is an error here, before the screen opens
            model = store.model.get("spec", model)
        else:
            new = session
    WorkbenchApp(model, device, dtype, device_map, session=store, new_session=new).run()
    return 0

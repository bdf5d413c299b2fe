"""The Textual app. Model loading and analyses run in thread workers that only post messages;
handlers on the app's thread change the widgets (the Harlequin rule)."""

from __future__ import annotations

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Footer, Header, Static

from analyses.errors import BadInput
from analyses.toys import DEFAULT_ANSWER, DEFAULT_DISTRACTOR, DEFAULT_PROMPT
from screens.dla_view import ErrorDialog, PromptBar, ResultTable


class WorkbenchApp(App):
    TITLE = "interpretability workbench"
    BINDINGS = [
        Binding("ctrl+r", "run_dla", "Run DLA", id="run_dla"),
        Binding("ctrl+q", "quit", "Quit", id="quit"),
    ]

    class Loaded(Message):
        def __init__(self, loaded) -> None:
            super().__init__()
            self.loaded = loaded

    class Result(Message):
        def __init__(self, table, params: dict) -> None:
            super().__init__()
            self.table, self.params = table, params

    class Failed(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(
        self,
        model: str,
        device: str = "auto",
        dtype: str = "float32",
        device_map: str | None = None,
        session=None,
        new_session: str | None = None,
    ) -> None:
        super().__init__()
        self.spec, self.device, self.dtype, self.device_map = model, device, dtype, device_map
        self.loaded = None
        self.session = session  # sessions.store.Session or None: every run is appended to it
        self.new_session = new_session  # a session file to create once the model is loaded
        self._run_when_loaded = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"loading {self.spec} ...", id="status", markup=False)  # tokens look like [tags]
        yield PromptBar(DEFAULT_PROMPT, DEFAULT_ANSWER, DEFAULT_DISTRACTOR)
        yield ResultTable(id="result")
        yield Footer()

    def on_mount(self) -> None:
        if self.session is None:
            self.load_model()
            return
        # A session shows what it holds at once; the model loads only when a new run needs it.
        runs = [r for r in self.session.runs() if r.analysis == "dla"]
        if runs:
            self._show(runs[-1].result, note=f"session {self.session.path.name}: run {runs[-1].id} (stored)")
        else:
            self.query_one("#status", Static).update(f"session {self.session.path.name}: no runs yet; ctrl+r runs DLA")

    @work(thread=True, exclusive=True, group="model")
    def load_model(self) -> None:
        from sessions.loading import load, quiet_hf

        quiet_hf()
        try:
            self.post_message(self.Loaded(load(self.spec, self.device, self.dtype, self.device_map)))
        except Exception as e:  # shown in a dialog; the app keeps running
            self.post_message(self.Failed(_message(e)))

    def on_workbench_app_loaded(self, event: Loaded) -> None:
        self.loaded = event.loaded
        info = self.loaded.info
        self.query_one("#status", Static).update(f"{info['spec']}  {info['model_type']}  {info['device']}  {info['dtype']}")
        if self.new_session is not None:
            from sessions.store import Session

            self.session, self.new_session = Session.create(self.new_session, info), None
        elif self.session is not None:
            from sessions.store import check_same_model

            try:
                check_same_model(self.session, info)
            except BadInput as e:
                self.push_screen(ErrorDialog(str(e)))
                return
        if self._run_when_loaded or len(self.session.runs() if self.session else []) == 0:
            self.action_run_dla()

    def action_run_dla(self) -> None:
        if self.loaded is None:
            if self.session is not None and not self._run_when_loaded:
                self._run_when_loaded = True
                self.query_one("#status", Static).update(f"loading {self.spec} ...")
                self.load_model()
            return
        values = {k: self.query_one(f"#{k}").value for k in ("prompt", "answer", "distractor")}
        self.compute_dla(values["prompt"], values["answer"], values["distractor"] or None)

    @work(thread=True, exclusive=True, group="analysis")
    def compute_dla(self, prompt: str, answer: str, distractor: str | None) -> None:
        from sessions.runs import run_analysis

        params = {"prompt": prompt, "answer": answer, "distractor": distractor}
        try:
            self.post_message(self.Result(run_analysis(self.loaded, "dla", **params), params))
        except Exception as e:
            self.post_message(self.Failed(_message(e)))

    def on_workbench_app_result(self, event: Result) -> None:
        note = self.loaded.info["spec"]
        if self.session is not None:
            run_id = self.session.append_run("dla", event.params, event.table)  # autosave
            note = f"session {self.session.path.name}: run {run_id} (saved)"
        self._show(event.table, note)

    def _show(self, table, note: str) -> None:
        self.query_one(ResultTable).show(table)
        meta = table.meta
        self.query_one("#status", Static).update(
            f"{note}   logit {meta['logit']:+.4f}   tokens: " + " ".join(f"[{t}]" for t in meta["prompt_tokens"])
        )

    def on_workbench_app_failed(self, event: Failed) -> None:
        self.push_screen(ErrorDialog(event.text))


def _message(e: Exception) -> str:
    return str(e) if isinstance(e, BadInput) else f"internal error: {type(e).__name__}: {e}"


def run_tui(model: str, device: str, dtype: str, device_map: str | None, session: str | None) -> int:
    """Open the app; with ``session``, on that session file (created for ``model`` if absent)."""
    store, new = None, None
    if session is not None:
        import os

        from sessions.store import Session

        if os.path.exists(session):
            store = Session.open(session)  # a bad file is an error here, before the screen opens
            model = store.model.get("spec", model)
        else:
            new = session
    WorkbenchApp(model, device, dtype, device_map, session=store, new_session=new).run()
    return 0

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
        def __init__(self, table) -> None:
            super().__init__()
            self.table = table

    class Failed(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, model: str, device: str = "auto", dtype: str = "float32", device_map: str | None = None) -> None:
        super().__init__()
        self.spec, self.device, self.dtype, self.device_map = model, device, dtype, device_map
        self.loaded = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"loading {self.spec} ...", id="status", markup=False)  # tokens look like [tags]
        yield PromptBar(DEFAULT_PROMPT, DEFAULT_ANSWER, DEFAULT_DISTRACTOR)
        yield ResultTable(id="result")
        yield Footer()

    def on_mount(self) -> None:
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
        self.loaded = event.loaded
        info = self.loaded.info
        self.query_one("#status", Static).update(f"{info['spec']}  {info['model_type']}  {info['device']}  {info['dtype']}")
        self.action_run_dla()

    def action_run_dla(self) -> None:
        if self.loaded is None:
            self.push_screen(ErrorDialog("the model is still loading"))
            return
        values = {k: self.query_one(f"#{k}").value for k in ("prompt", "answer", "distractor")}
        self.compute_dla(values["prompt"], values["answer"], values["distractor"] or None)

    @work(thread=True, exclusive=True, group="analysis")
    def compute_dla(self, prompt: str, answer: str, distractor: str | None) -> None:
        from sessions.runs import run_analysis

        try:
            table = run_analysis(self.loaded, "dla", prompt=prompt, answer=answer, distractor=distractor)
            self.post_message(self.Result(table))
        except Exception as e:
            self.post_message(self.Failed(_message(e)))

    def on_workbench_app_result(self, event: Result) -> None:
        self.query_one(ResultTable).show(event.table)
        meta = event.table.meta
        self.query_one("#status", Static).update(
            f"{self.loaded.info['spec']}   logit {meta['logit']:+.4f}   tokens: " + " ".join(f"[{t}]" for t in meta["prompt_tokens"])
        )

    def on_workbench_app_failed(self, event: Failed) -> None:
        self.push_screen(ErrorDialog(event.text))


def _message(e: Exception) -> str:
    return str(e) if isinstance(e, BadInput) else f"internal error: {type(e).__name__}: {e}"


def run_tui(model: str, device: str, dtype: str, device_map: str | None, session: str | None) -> int:
    if session is not None:
        raise BadInput("session files are not supported yet (the session store is the next milestone)")
    WorkbenchApp(model, device, dtype, device_map).run()
    return 0

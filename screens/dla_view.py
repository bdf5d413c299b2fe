"""The first screen: a prompt, answer / distractor, and the DLA table of the loaded model.

Renders results it is handed; it does no tensor math and never touches the model.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Static

from analyses.results import Table


class PromptBar(Horizontal):
    """Prompt, answer and distractor inputs."""

    DEFAULT_CSS = """
    PromptBar { height: auto; }
    PromptBar #prompt { width: 3fr; }
    PromptBar #answer, PromptBar #distractor { width: 1fr; }
    """

    def __init__(self, prompt: str, answer: str, distractor: str) -> None:
        super().__init__()
        self._values = (prompt, answer, distractor)

    def compose(self) -> ComposeResult:
        prompt, answer, distractor = self._values
        yield Input(prompt, placeholder="prompt", id="prompt")
        yield Input(answer, placeholder="answer token", id="answer")
        yield Input(distractor, placeholder="distractor (optional)", id="distractor")


class ResultTable(DataTable):
    """A result table: one row per label, one column per result column."""

    def show(self, table: Table) -> None:
        self.clear(columns=True)
        self.add_column("label", key="label")
        for name in table.columns:
            self.add_column(name, key=name)
        for row in table.rows():
            self.add_row(*(_fmt(row[k]) for k in ["label", *table.columns]))


def _fmt(v: object) -> str:
    return f"{v:+.4f}" if isinstance(v, float) else str(v)


class ErrorDialog(ModalScreen[None]):
    """An error message; the app and its data stay as they were."""

    DEFAULT_CSS = """
    ErrorDialog { align: center middle; }
    ErrorDialog > Static { width: 70%; height: auto; border: thick $error; padding: 1 2; background: $surface; }
    """
    BINDINGS = [("escape", "dismiss", "Close"), ("enter", "dismiss", "Close")]

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def compose(self) -> ComposeResult:
        # A Text, not markup: messages name tokens such as [BOS] that markup would swallow.
        yield Static(Text.assemble(("Error", "bold"), f"\n\n{self.message}\n\n(Escape or Enter to close)"))

    def action_dismiss(self) -> None:
        self.dismiss()


"""Modal dialogs: open a session, ask for a line of text (a file name, a note), pick a token,
confirm an overwrite, and help. Each returns what was chosen (or None on Escape) and leaves the acting to the app."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, Markdown, OptionList
from textual.widgets.option_list import Option

class Dialog(ModalScreen):
    """A centred box; Escape closes it with None."""

    DEFAULT_CSS = """
    Dialog { align: center middle; }
    Dialog > Vertical { width: 76; max-width: 95%; height: auto; max-height: 90%; border: thick $accent;
        padding: 0 1; background: $surface; }
    Dialog Label { margin-top: 1; width: 100%; }  /* a long question wraps inside the box */
    Dialog OptionList { height: auto; max-height: 16; }
    Dialog DataTable { height: auto; max-height: 14; }
    """
    AUTO_FOCUS = "*"  # the first field (the app's own AUTO_FOCUS names a widget not in here)
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="close_dialog")]

    def action_cancel(self) -> None:
        self.dismiss(None)


class OpenSessionDialog(Dialog):
    """A session file to open (or to create, for the model given) alongside the open ones."""


    def __init__(self, model: str) -> None:
        super().__init__()
        self.model = model

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Session file (an existing one opens, a new name is created, empty: unsaved)")
            yield Input(placeholder="path/to/analysis.wbs", id="open_path")
            yield Label("Model for a new session (an existing file names its own)")
            yield Input(self.model, id="open_model")
            yield Label("Enter: open   Escape: cancel", classes="hint")

    def on_input_submitted(self) -> None:
        path = self.query_one("#open_path", Input).value.strip()
        model = self.query_one("#open_model", Input).value.strip()
        if model or path:
            self.dismiss((path, model))


class AskDialog(Dialog):
    """One line of text: a file name to save under, a note to keep."""


    def __init__(self, question: str, field_id: str, placeholder: str = "") -> None:
        super().__init__()
        self.question, self.field_id, self.placeholder = question, field_id, placeholder

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question)
            yield Input(placeholder=self.placeholder, id=self.field_id)
            yield Label("Enter: done   Escape: cancel")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(event.value.strip())


class TokenPicker(Dialog):
    """Tokens to choose an answer or distractor from, spelled exactly as the tokenizer does."""


    def __init__(self, field: str, candidates: list[tuple[str, str]]) -> None:
        super().__init__()
        self.field, self.candidates = field, candidates

    def compose(self) -> ComposeResult:
        width = max(len(repr(t)) for t, _ in self.candidates)
        options = [Option(Text.assemble((repr(t).ljust(width), "bold"), "  ", why)) for t, why in self.candidates]
        with Vertical():
            yield Label(f"Pick the {self.field} (Enter), Escape to cancel")
            yield OptionList(*options, id="token_options")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.candidates[event.option_index][0])


class HelpScreen(Dialog):
    """F1: what the focused pane is for, and every key that works there (footer or not)."""

    BINDINGS = [Binding("f1", "cancel", "Close", id="close_help")]
    # At 80x24 the keys get most of the box: the pane's text scrolls in a few lines above them.
    DEFAULT_CSS = """
    HelpScreen > Vertical { height: 100%; max-height: 100%; }
    HelpScreen Markdown { height: auto; max-height: 9; margin: 0; padding: 0; overflow-y: auto; }
    HelpScreen MarkdownH3 { margin: 0; }
    HelpScreen MarkdownParagraph { margin: 0; }
    HelpScreen Label { margin-top: 0; }
    HelpScreen DataTable { height: 1fr; max-height: 100%; }
    """
    AUTO_FOCUS = "#help_keys"  # arrows and page keys scroll the keys

    def __init__(self, text: str, keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.text, self.keys = text, keys

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Markdown(self.text)
            yield Label("Every key here (Escape or F1 closes; ctrl+p finds any command by name):")
            table = DataTable(id="help_keys", cursor_type="row", zebra_stripes=True)
            table.add_columns("key", "what it does")
            for key, what in self.keys:
                table.add_row(key, what)
            yield table


class ConfirmDialog(Dialog):
    """A yes/no question before a step that is hard to undo (writing over a folder's files, a run
    larger than the memory free): ``y`` (or the button) answers True; ``n`` or Escape answers None."""

    BINDINGS = [Binding("y", "confirm", "Yes", id="confirm_yes"), Binding("n", "cancel", "No", id="confirm_no")]

    def __init__(self, question: str, yes: str = "Replace") -> None:
        super().__init__()
        self.question, self.yes = question, yes

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(self.question))  # plain text: messages name tokens like [BOS]
            yield Button(f"{self.yes} (y)", id="confirm", variant="warning")
            yield Label(f"y: {self.yes}   n or Escape: no, change nothing")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_confirm()

    def action_confirm(self) -> None:
        self.dismiss(True)

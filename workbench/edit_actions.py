"""The edits in force in the app: every run applies them (and undoes them after itself), so the
model between runs is always the loaded one; the list shows beside the model in the status bar,
and the palette adds ("Edit: add"), undoes ("Undo edit") and clears them. A mixin of ``WorkbenchApp``."""

from __future__ import annotations

from textual.app import SystemCommand

from analyses.edit_spec import SYNTAX, Edit, parse_edit
from analyses.errors import BadInput
from screens.dialogs import AskDialog
from screens.widgets import ErrorDialog


class EditActions:
    """Needs the app's ``loaded``, ``notify``, ``push_screen`` and ``_show_model``."""

    edits: tuple[str, ...] = ()

    def edit_commands(self):
        yield SystemCommand("Edit: add", "run every analysis with an edit of a head's SVD component, "
                            "e.g. L1H2:ov:0=0 (see docs/composition.md)", self.action_add_edit)
        if self.edits:
            yield SystemCommand("Undo edit", f"drop the latest edit ({self.edits[-1]})", self.action_undo_edit)
            yield SystemCommand("Edits: clear", f"drop all {len(self.edits)} edits", self.action_clear_edits)

    def action_add_edit(self) -> None:
        self.push_screen(AskDialog(f"An edit for every run: {SYNTAX}", "edit_text", "L1H2:ov:0=0"), self.add_edit)

    def add_edit(self, text: str | None) -> None:
        if text is None:
            return
        try:
            edit = parse_edit(text)
            shape = self.loaded.hooked.shape if self.loaded is not None else None
            if shape is not None and isinstance(edit, Edit):  # an SAE feature edit is checked when it runs
                if shape.n_heads == 0:
                    raise BadInput(f"{shape.family} has no attention heads to edit")
                if not (edit.layer < shape.n_layers and edit.head < shape.n_heads):
                    raise BadInput(f"no head {edit.head_label} ({shape.n_layers} layers x {shape.n_heads} heads)")
                if max(edit.comps) >= shape.d_head:
                    raise BadInput(f"a head has {shape.d_head} components (0..{shape.d_head - 1})")
        except BadInput as e:
            self.push_screen(ErrorDialog(str(e)))
            return
        self.edits = (*self.edits, edit.text)
        self._show_model()
        self.notify(f"edit {edit.text} applies to every run until undone ({len(self.edits)} in force)")

    def action_undo_edit(self) -> None:
        if not self.edits:
            return self.notify("no edits in force")
        last, self.edits = self.edits[-1], self.edits[:-1]
        self._show_model()
        self.notify(f"edit {last} undone; {len(self.edits)} in force")

    def action_clear_edits(self) -> None:
        self.edits = ()
        self._show_model()

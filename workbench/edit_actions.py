"""The edits in force in the app: every run applies them (and undoes them after itself), so the
model between runs is always the loaded one; the list shows beside the model in the status bar,
and the palette adds ("Edit: add"), undoes ("Undo edit") and clears them. The session's steering
vectors and probes' directions join the same list ("Steering: apply", "Direction: project out"), as
standing interventions (analyses.edits.Standing) that undo and clear like edits. A mixin of
``WorkbenchApp``."""

from __future__ import annotations

from textual.app import SystemCommand

from analyses.edit_spec import SYNTAX, Edit, parse_edit
from analyses.errors import BadInput
from screens.dialogs import AskDialog
from screens.widgets import ErrorDialog


def edit_text(edit) -> str:
    """An edit's text, or a standing intervention's (``steer:run3*4@blocks.1.hook_resid_pre``)."""
    return edit if isinstance(edit, str) else edit.text


class EditActions:
    """Needs the app's ``ws``, ``loaded``, ``_shown``, ``notify``, ``push_screen`` and ``_show_model``."""

    edits: tuple = ()  # edit texts and standing interventions (steering), oldest first

    def edit_texts(self) -> list[str]:
        return [edit_text(e) for e in self.edits]

    def edit_commands(self):
        yield SystemCommand("Edit: add", "run every analysis with an edit of a head's SVD component, "
                            "e.g. L1H2:ov:0=0 (see docs/composition.md)", self.action_add_edit)
        if self._direction_run() is not None:
            yield SystemCommand("Steering: apply", "add a steering vector or probe direction of this session to "
                                "every run, at a scale and layer (e.g. 4@1)", self.action_add_steering)
            yield SystemCommand("Direction: project out", "remove a steering vector's or probe's direction from "
                                "a layer's residual stream in every run (e.g. @1)", self.action_add_projection)
        if self.edits:
            yield SystemCommand("Undo edit", f"drop the latest edit ({self.edit_texts()[-1]})", self.action_undo_edit)
            yield SystemCommand("Edits: clear", f"drop all {len(self.edits)} edits", self.action_clear_edits)

    def action_add_edit(self) -> None:
        from analyses.sae.edit_spec import SYNTAX as FEATURE_SYNTAX

        self.push_screen(AskDialog(f"An edit for every run: {SYNTAX}; or an SAE feature's: {FEATURE_SYNTAX}",
                                   "edit_text", "L1H2:ov:0=0"), self.add_edit)

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
        self.notify(f"edit {edit_text(last)} undone; {len(self.edits)} in force")

    def action_clear_edits(self) -> None:
        self.edits = ()
        self._show_model()

    # ---- steering vectors ----------------------------------------------------------------------

    def _direction_run(self) -> tuple[str, object] | None:
        """(its name, result) of the direction to apply: the run on show when it is a steering-vector
        or probe run, else the session's latest such run."""
        from analyses.steering import DIRECTION_RUNS

        shown = self._shown
        if shown is not None and shown.analysis in DIRECTION_RUNS and shown.result is not None:
            entries = [shown]
        else:
            entries = [e for e in reversed(self.ws.runs) if e.analysis in DIRECTION_RUNS and e.result is not None]
        if not entries:
            return None
        entry = entries[0]
        number = entry.id if entry.id is not None else self.ws.runs.index(entry) + 1
        return f"run{number}", entry.result

    def _ask_direction(self, verb: str, syntax: str, example: str, make) -> None:
        found = self._direction_run()
        if found is None:
            return self.notify("run steering-vector (Patching tab) or probe first: its direction is what this uses",
                               severity="warning")
        from analyses.steering import direction_of

        name, result = found
        try:
            vector, hook = direction_of(result, name)
        except BadInput as e:
            return self.push_screen(ErrorDialog(str(e)))
        about = f"{result.analysis}, |v| {float(vector.norm()):.4g}, taken at {hook}"
        self.push_screen(AskDialog(f"{verb} {name} ({about}): {syntax}", "steer_text", example),
                         lambda text: self.add_direction(make, name, result, text))

    def action_add_steering(self) -> None:
        from analyses.steering import STEER_SYNTAX, steer_from_result

        self._ask_direction("Steer every run with", STEER_SYNTAX, "4@1", steer_from_result)

    def action_add_projection(self) -> None:
        from analyses.steering import PROJECT_SYNTAX, projection_from_result

        self._ask_direction("Project out of every run the direction of", PROJECT_SYNTAX, "@1", projection_from_result)

    def add_direction(self, make, name: str, result, text: str | None) -> None:
        """``make(result, name, text, n_layers)`` (a Steer or ProjectOut) joins the edits in force."""
        if text is None:
            return
        try:
            hooked = self.loaded.hooked if self.loaded is not None else None
            standing = make(result, name, text, hooked.shape.n_layers if hooked is not None else None)
            if hooked is not None:
                standing.interventions(hooked)  # the hook and the width checked now, not at the next run
        except BadInput as e:
            self.push_screen(ErrorDialog(str(e)))
            return
        self.edits = (*self.edits, standing)
        self._show_model()
        self.notify(f"{standing.text} applies to every run until undone ({len(self.edits)} in force)")

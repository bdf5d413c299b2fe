"""The app's session side: open, save, switch and close sessions, the history, prompts and notes
tabs, and export. A mixin of ``WorkbenchApp``, kept apart so the app module stays wiring."""

from __future__ import annotations

import sqlite3
from functools import partial
from pathlib import Path

from textual import events
from textual.app import SystemCommand
from textual.widgets import DataTable, Tabs

from analyses.errors import BadInput
from screens.dialogs import AskDialog, OpenSessionDialog
from screens.widgets import ErrorDialog
from sessions.workspace import Entry, Workspace, check_new_path, damage_text
from workbench.running import ANALYSIS_TABS
from workbench.support import count, headline, key_params


class SessionActions:
    """Needs the app's ``ws``, ``workspaces``, ``models`` and its result and status helpers."""

    def session_commands(self):
        for title, help_text, action in [
            ("Save session", "save the session and the prompt typed (ctrl+s)", self.action_save),
            ("Open session", "open or create another session file (ctrl+o)", self.action_open_session),
            ("Add note", "keep a note in the session (ctrl+n)", self.action_add_note),
            ("Next session", "switch to the next open session (F3)", self.action_next_session),
            ("Close session", "close the current session; its file keeps everything", self.action_close_session),
        ]:
            yield SystemCommand(title, help_text, action)
        for n, ws in enumerate(self.workspaces, 1):
            yield SystemCommand(f"Switch to session {n}: {ws.name}", f"{ws.spec}, {len(ws.runs)} runs",
                                partial(self._switch_to, ws))

    # ---- saving and notes ------------------------------------------------------------------------

    def action_save(self) -> None:
        ws = self.ws
        self._remember_inputs()
        if ws.session is not None:
            self.notify(f"{ws.name}: {count(ws.runs, 'run')} and {count(ws.prompts, 'prompt')} saved "
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
            check_new_path(target)
            if loaded is None:
                ws.new_path = target  # created with the model's facts once it has loaded
                self._start_loading(ws.spec)
            else:
                ws.save_as(target, loaded.info)
        except (BadInput, OSError, sqlite3.Error) as e:
            return self.push_screen(ErrorDialog(f"could not save: {e}"))
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
            return self.push_screen(ErrorDialog(f"the note could not be saved ({e})"))
        self._fill_history()
        self.notify("note kept" + (f" in {self.ws.name}" if self.ws.session else "; it is saved with the session"))

    # ---- opening, switching, closing ---------------------------------------------------------------

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
                    check_new_path(target)
                    ws = Workspace(model or self.ws.spec, new_path=target)
        except (BadInput, OSError, sqlite3.Error) as e:  # a corrupt file is refused; the open sessions stay
            return self.push_screen(ErrorDialog(str(e)))
        self.workspaces.append(ws)
        self._switch_to(ws)
        self._warn_damaged(ws)
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
        """Show a session: its forms as it left them (or with its last prompt, else its model's own
        task's example, and each analysis's defaults for its model), and its last run."""
        for tab in ANALYSIS_TABS:
            self._pane(tab).form.remember()  # the session left keeps its values
        self.ws = ws
        self.sub_title = self._sub_title()
        self._fill_history()
        self._fill_prompts()
        self._fill_sessions()
        self._fill_defaults(ws)
        self._fit_controls()
        if ws.last_readable() is not None:
            self._show_result(ws.last_readable(), "(stored)")
        else:
            self._clear_results()
            loading = ws.spec in self._loading
            self._set_status(f"loading {ws.spec} ..." if loading else "no runs yet: ctrl+r runs the tab's analysis")
        self._show_model()
        self._refresh_tokens()

    def _fill_defaults(self, ws: Workspace) -> None:
        """Put the session's forms on show: its inputs are, the first time, its last prompt and
        pair (a reopened session's), else the model's own task's example."""
        from analyses.tasks import default_inputs
        from analyses.toys import toy_task

        example = default_inputs(toy_task(ws.spec))
        single = next((p for p in reversed(ws.prompts) if p["corrupt"] is None), None)
        pair = next((p for p in reversed(ws.prompts) if p["corrupt"] is not None), None)
        keys = ("answer", "distractor")
        prompt = {"prompt": single["prompt"], **{k: single[k] for k in keys}} if single else \
            {k: example.get(k) for k in ("prompt", *keys)}
        pairs = {"clean": pair["prompt"], "corrupt": pair["corrupt"], **{k: pair[k] for k in keys}} if pair else \
            {k: example.get(f"pair_{k}") for k in ("clean", "corrupt", *keys)}
        facts = self._model_facts()
        self._pane("prompt").form.attach(ws.forms, facts, prompt)
        self._pane("pairs").form.attach(ws.forms, facts, pairs, "one pair" if pair else None)
        self._pane("model").form.attach(ws.forms, facts)
        self._fit_answers()

    def on_unmount(self) -> None:
        for ws in self.workspaces:
            ws.close()

    def _sub_title(self) -> str:
        return f"{self.ws.name} · {self.ws.spec}"

    # ---- history, prompts, sessions tables ------------------------------------------------------------

    def _fill_history(self) -> None:
        self.query_one("#history", DataTable).clear()
        for n, entry in enumerate(self.ws.runs, 1):
            self._add_history_row(entry, n)
        notes = self.query_one("#notes", DataTable)
        notes.clear()
        for note in self.ws.notes:
            notes.add_row(note)

    def _warn_damaged(self, ws: Workspace) -> None:
        if ws.damaged:
            ids = ", ".join(str(e.id) for e in ws.damaged)
            self.notify(f"{ws.name}: run {ids} is damaged and cannot be shown (History: Enter on it says why); "
                        "every other run is intact and the file is left as it is", severity="warning", timeout=10)

    def _add_history_row(self, entry: Entry, n: int) -> None:
        if entry.damage is not None:
            self.query_one("#history", DataTable).add_row(str(entry.id or n), entry.analysis, key_params(entry),
                                                          "DAMAGED (Enter: why)", "")
            return
        prompt = entry.params.get("prompt") or entry.params.get("clean") or ""  # a task or file is in key_params
        self.query_one("#history", DataTable).add_row(str(entry.id or n), entry.analysis, key_params(entry),
                                                      _clip(headline(entry.result, entry.analysis)), prompt[:60])

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
            entry = self.ws.runs[row]
            if entry.damage is not None:
                return self.push_screen(ErrorDialog(damage_text(entry)))
            self._show_result(entry, "(reopened)")

    def _use_selected_prompt(self) -> None:
        row = self.query_one("#prompts", DataTable).cursor_row
        if not self.ws.prompts or row is None or not 0 <= row < len(self.ws.prompts):
            return
        p = self.ws.prompts[row]
        if p["corrupt"] is None:
            self._pane("prompt").form.set_inputs(p)
            self.action_show_tab("prompt")
        else:
            form = self._pane("pairs").form
            if "clean" not in {q.name for q in form.analysis.params}:  # eval reads no typed pair
                form.choose(next(a.name for a in form.declared.values()
                                 if "clean" in {q.name for q in a.params} and a.available_for(form.family or "")))
            form.query_one("#pairs-source").value = "one pair"  # the pair on show is the pair that runs
            form.set_inputs({**p, "clean": p["prompt"]})
            form.refresh_fields()
            self.action_show_tab("pairs")

    def _remember_inputs(self) -> None:
        """The prompt (or pair) typed on the current tab joins the session's prompts."""
        if self._tab() not in ("prompt", "pairs"):
            return
        v = self._pane(self._tab()).form.values()
        if v.get("prompt"):
            self.ws.remember_prompt(v["prompt"], None, v.get("answer") or None, v.get("distractor") or None)
        elif v.get("clean") and v.get("corrupt"):
            self.ws.remember_prompt(v["clean"], v["corrupt"], v.get("answer") or None, v.get("distractor") or None)
        self._fill_prompts()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        action = {"history": self._reopen_selected, "prompts": self._use_selected_prompt,
                  "sessions": self._switch_to_selected}.get(event.data_table.id or "")
        if action is not None:
            action()

    def on_tabbed_content_tab_activated(self, event) -> None:
        """A tab shown (by its key, a click or the palette) takes the focus to its main widget: the
        first control of its form (the prompt), else its table, so Enter acts at once. Arrows on
        the tab bar keep the focus there; focus left in a hidden pane would pull its tab back."""
        if not self.is_running or event.tabbed_content.active != event.pane.id:
            return  # closing, or a stale message: another tab was shown since, and focusing here would pull this one back
        focused = self.focused
        arrows = isinstance(focused, Tabs) and getattr(self._last_input, "key", None) in ("left", "right")
        if arrows or (focused is not None and event.pane in focused.ancestors):
            return
        inside = [w for w in self.screen.focus_chain if event.pane in w.ancestors]
        in_form = (w for w in inside if any(a.has_class("fields") for a in w.ancestors))
        target = next(in_form, inside[0] if inside else None)
        (target or self.query_one(Tabs)).focus()

    async def on_event(self, event: events.Event) -> None:
        """Remember the last key or mouse press (how a tab was shown decides where the focus goes)."""
        if isinstance(event, (events.Key, events.MouseDown)) and not event.is_forwarded:
            self._last_input = event
        await super().on_event(event)

    # ---- export ------------------------------------------------------------------------------------------

    def action_export(self) -> None:
        """The run on show (or the one selected in the history) to JSON and CSV in the current
        folder, named by its run id, with the model and every parameter; never overwriting."""
        from sessions.export import export_run

        entry = self._shown
        if self._tab() == "history_tab" and self.ws.runs:
            entry = self.ws.runs[self.query_one("#history", DataTable).cursor_row]
        if entry is None:
            return self.notify("nothing to export yet", severity="warning")
        if entry.damage is not None:
            return self.push_screen(ErrorDialog(damage_text(entry)))
        loaded = self.models.get(self.ws.spec)
        model = loaded.info if loaded is not None else (self.ws.session.model if self.ws.session else {"spec": self.ws.spec})
        try:
            json_path, csv_path = export_run(entry.result, Path.cwd(), analysis=entry.analysis, params=entry.params,
                                             model=model, run_id=entry.id)
        except OSError as e:
            return self.push_screen(ErrorDialog(f"export failed: {e}"))
        self.notify(f"wrote {json_path.name} and {csv_path.name}")


HISTORY_FACTS = 100  # characters of a run's findings a history row shows


def _clip(text: str, width: int = HISTORY_FACTS) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"

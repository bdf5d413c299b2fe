"""The forms as the analyst edits them: choosing an analysis or a data source shows its controls,
edits mark a result on show as stale, the token previews follow the prompts, and the controls
offer what the loaded model has. A mixin of ``WorkbenchApp``."""

from __future__ import annotations

from textual.css.query import NoMatches
from textual.widgets import Checkbox, Input, Select, Static

from analyses.errors import BadInput
from analyses.registry import analyses

from screens.panes import token_preview
from workbench.running import ANALYSIS_TABS


class FormActions:
    """Needs the app's ``_pane``, ``_shown`` and ``loaded``."""

    def on_input_changed(self, event: Input.Changed) -> None:
        self._form_changed(event.input)

    def on_select_changed(self, event: Select.Changed) -> None:
        self._form_changed(event.select)

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self._form_changed(event.checkbox)

    def _form_changed(self, control) -> None:
        try:
            self._follow_control(control)
        except NoMatches:  # a change that arrives while the app is closing: nothing left to update
            if self.is_running:  # False from the start of the app's shutdown
                raise

    def _follow_control(self, control) -> None:
        tab, _, name = (control.id or "").partition("-")
        if tab not in ANALYSIS_TABS or not self._started:  # events of controls still being set up
            return
        pane = self._pane(tab)
        if name == "analysis":
            pane.form.choose(str(control.value))
        elif isinstance(control, Select):  # a data source or a metric may show or hide fields
            pane.form.refresh_fields()
        elif name in ("filter", "topk"):
            pane.view.label_filter = pane.form.query_one(f"#{tab}-filter", Input).value
            top = pane.form.query_one(f"#{tab}-topk", Input).value
            pane.view.top_k = int(top) if top.isdigit() and int(top) > 0 else None
            return
        if name in ("prompt", "clean", "corrupt", "source", "analysis"):
            self._refresh_tokens()
        self._check_stale(tab)

    def _check_stale(self, tab: str) -> None:
        """Mark the result on show when its tab's inputs no longer match the run's."""
        entry = self._shown
        if entry is None or analyses().get(entry.analysis) is None or analyses()[entry.analysis].tab != tab:
            return
        form = self._pane(tab).form
        try:
            same = form.analysis.name == entry.analysis and form.analysis.bind(form.values()) == entry.params
        except BadInput:
            same = False
        view = self._pane(tab).view
        view.border_subtitle = "" if same else "inputs edited since this run: ctrl+r runs them"
        view.set_class(not same, "stale")

    def _refresh_tokens(self) -> None:
        tok = None if self.loaded is None else self.loaded.tokenizer

        def spell(text: str) -> list[str] | str | None:
            if tok is None:
                return None
            from analyses.errors import BadInput
            from analyses.tokens import text_ids, visible_tokens

            try:
                return visible_tokens(tok, text_ids(tok, text, True)) if text else []
            except BadInput as e:  # a word a vocabulary without [UNK] cannot spell: say which
                return str(e)

        prompt = self._pane("prompt").form
        self.query_one("#prompt-tokens", Static).update(token_preview(spell(prompt.values().get("prompt") or "")))
        pairs = self._pane("pairs").form.values()
        if "clean" in pairs:
            text = token_preview(spell(pairs["clean"] or ""), spell(pairs["corrupt"] or "") if tok else None)
        else:
            text = token_preview(None) if tok is None else "pairs from " + (
                f"file {pairs['pairs']}" if pairs.get("pairs") else f"task {pairs.get('task')}" if pairs.get("task") else
                "the form")
        self.query_one("#pairs-tokens", Static).update(text)

    def _fit_answers(self) -> None:
        """The answers and distractors the analyst has not typed, spelled as single tokens of the
        loaded model's tokenizer (the defaults are GPT-2's spelling, two tokens on a Llama)."""
        if self.loaded is None:
            return
        from analyses.inputs import fit_inputs
        from analyses.tasks import default_inputs
        from analyses.toys import toy_task

        example = default_inputs(toy_task(self.ws.spec))  # what nobody typed: the example's spelling
        for tab, prompt_key in (("prompt", "prompt"), ("pairs", "clean")):
            form = self._pane(tab).form
            shown = {n: form.query_one(f"#{tab}-{n}", Input).value for n in (prompt_key, "answer", "distractor")}
            fitted = fit_inputs(self.loaded, shown)
            untouched = {n for n in ("answer", "distractor")
                         if shown[n] == example.get(f"pair_{n}" if tab == "pairs" else n, example.get(n))}
            form.set_inputs({n: fitted[n] for n in untouched if fitted[n] != shown[n]})

    def _model_facts(self):
        """What the forms' defaults follow: the current session's model, as loaded or as its spec says."""
        from analyses.registry.defaults import ModelFacts

        return ModelFacts.of(self.ws.spec, self.loaded.hooked if self.loaded is not None else None)

    def _fit_controls(self) -> None:
        """Offer the sites and analyses the current session's model has, and the defaults that follow it."""
        if self.loaded is None:
            return
        from analyses.patching import sites_for

        hooked, facts = self.loaded.hooked, self._model_facts()
        for tab in ANALYSIS_TABS:
            self._pane(tab).form.set_facts(facts)
            self._pane(tab).form.set_family(hooked.shape.family, list(sites_for(hooked)))


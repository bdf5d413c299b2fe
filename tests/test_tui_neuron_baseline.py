"""The random-neuron control in the TUI on the trained several-marker toy (docs/neurons.md walks it)."""

from __future__ import annotations

from pilot import choose, wait_for
from textual.widgets import Select

from screens.widgets import ErrorDialog
from workbench.app import WorkbenchApp


async def test_the_baseline_form_opens_on_the_toys_own_task_and_defaults():
    app = WorkbenchApp("toy:lookup-multi", device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.loaded is not None and (app.ws.runs or isinstance(app.screen, ErrorDialog)),
                       steps=1200)
        if isinstance(app.screen, ErrorDialog):
            await pilot.press("escape")
        await wait_for(pilot, lambda: app._active_job is None, steps=1200)
        choose(app, "model", "neuron-baseline")
        await pilot.pause()
        assert app.query_one("#model-task", Select).value == "lookup-multi"
        values = app._pane("model").form.values()
        assert (values["layer"], values["k"], values["random_seed"]) == ("-1", "8", "0")

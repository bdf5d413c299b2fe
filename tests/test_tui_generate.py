"""The TUI's generation and steering: the text streams into the Prompt tab token by token, Escape
stops it (nothing saved), and a session's steering vector applied from the palette shows in the
status bar, steers the "edited" text, is recorded with the run, and undoes."""

from __future__ import annotations

import time

from pilot import choose, ready, status, wait_for

import analyses.generate
from analyses.steering import Steer, steer_from_result


async def test_generation_streams_token_by_token_and_escape_cancels_it(monkeypatch):
    from workbench.app import WorkbenchApp

    choose_token = analyses.generate.choose

    def slowly(*args):  # the toy writes a token in a millisecond: slow it so a cancel lands mid-way
        time.sleep(0.15)
        return choose_token(*args)

    monkeypatch.setattr(analyses.generate, "choose", slowly)
    app = WorkbenchApp("toy:ioi", device="cpu")
    async with app.run_test(size=(110, 34)) as pilot:
        await ready(pilot, app)
        runs = len(app.ws.runs)
        choose(app, "prompt", "generate", max_tokens="15")
        await pilot.press("ctrl+r")
        view = app._pane("prompt").view
        # "plain: A B C": three tokens so far (the caption held the opening DLA's headline before)
        await wait_for(pilot, lambda: view.caption.lstrip().startswith("plain:") and len(view.caption.split()) >= 4)
        shown = view.caption
        assert shown.lstrip().startswith("plain:") and app._active_job is not None
        await wait_for(pilot, lambda: view.caption != shown)  # it grows as tokens come
        await pilot.press("escape")
        await wait_for(pilot, lambda: app._active_job is None)
        assert len(app.ws.runs) == runs and "cancelled" in status(app)
        partial = len(view.caption.split()) - 1
        assert 0 < partial < 15


async def test_a_steering_vector_applies_from_the_palette_and_is_recorded_and_undone():
    from workbench.app import WorkbenchApp

    app = WorkbenchApp("toy:ioi", device="cpu")
    async with app.run_test(size=(110, 34)) as pilot:
        await ready(pilot, app)
        assert "Steering: apply" not in [c.title for c in app.get_system_commands(app.screen)]
        choose(app, "pairs", "steering-vector", layer="1")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.ws.runs[-1].analysis == "steering-vector")
        assert "Steering: apply" in [c.title for c in app.get_system_commands(app.screen)]
        name, result = app._direction_run()
        app.add_direction(steer_from_result, name, result, "8@1")
        await pilot.pause()
        (steer,) = app.edits
        assert isinstance(steer, Steer) and steer.hook == "blocks.1.hook_resid_pre" and steer.scale == 8
        assert f"edits: {name}" not in str(app.query_one("#model_status").render())
        assert f"steer:{name}*8@blocks.1.hook_resid_pre" in str(app.query_one("#model_status").render())
        choose(app, "prompt", "generate", max_tokens="4")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.ws.runs[-1].analysis == "generate")
        table = app.ws.runs[-1].result
        assert table.meta["edits"] == [steer.text] and "token edited" in table.columns
        app.action_undo_edit()
        assert app.edits == () and "steer" not in str(app.query_one("#model_status").render())
        app.add_direction(steer_from_result, name, result, "8@7")  # no layer 7: refused, nothing added
        await pilot.pause()
        assert app.edits == ()

"""Nothing the app offers can end it: every palette command on a transformer and on a Mamba model,
an exception in an action, a handler or a worker (an error dialog; the sessions stay), and a
cancel while a large task sample is still being prepared."""

from __future__ import annotations

import asyncio

import pytest

from pilot import choose, status, wait_for

from textual.screen import ModalScreen
from textual.widgets import ProgressBar

from screens.widgets import ErrorDialog
from workbench.app import WorkbenchApp


def _commands(app) -> dict:
    return {c.title: c for c in app.get_system_commands(app.screen)}


async def _settle(pilot, app) -> None:
    """Let a command act, then close what it opened and let what it started finish."""
    await pilot.pause(0.1)
    await wait_for(pilot, lambda: app._active_job is None and not app._waiting, steps=1200)
    await wait_for(pilot, lambda: not app._loading, steps=1200)
    await pilot.pause(0.1)
    while isinstance(app.screen, ModalScreen):  # a dialog, the token picker, the theme picker
        app.pop_screen()
        await pilot.pause(0.05)


@pytest.mark.parametrize("spec", ["toy:ioi", "toy:ioi-mamba"])
async def test_every_palette_command_leaves_the_app_and_the_session(spec, tmp_path, monkeypatch):
    """Defect: on toy:ioi, the palette's "Mamba layer removal" ended the app
    (InvalidSelectValueError) and the unsaved session with it."""
    monkeypatch.chdir(tmp_path)  # Export and Screenshot write here
    app = WorkbenchApp(spec, device="cpu")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(app.ws.runs) == 1, steps=1200)
        ws, first = app.ws, app.ws.runs[0]
        titles = set(_commands(app))
        family = app.loaded.hooked.shape.family
        mamba_only, attention_only = "Analysis: Mamba layer removal", "Analysis: attention pattern"
        assert (mamba_only in titles) == (family == "mamba") and (attention_only in titles) == (family != "mamba")
        done: list[str] = []
        while True:  # every command, including those a command brings (other tabs' "Set" commands)
            todo = [t for t in _commands(app) if t not in done and t != "Quit"]
            if not todo:
                break
            done.append(todo[0])
            app.call_later(_commands(app)[todo[0]].callback)  # what the palette does on Enter
            await _settle(pilot, app)
            assert app.is_running and app.failures == (), (todo[0], app.failures)
        assert len(done) > 40 and "Run" in done and any(t.startswith("Set ") for t in done)
        assert app.workspaces == [ws] and app.ws is ws and ws.runs[0] is first and len(ws.runs) >= 2


async def test_a_stale_palette_command_for_another_family_is_refused_with_a_word():
    """A command listed for one session's model, chosen once another family's is on show."""
    app = WorkbenchApp("toy:ioi", device="cpu")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(app.ws.runs) == 1, steps=1200)
        from analyses.registry import analyses

        app._choose(analyses()["mamba-removal"])  # a stale palette's command
        await pilot.pause()
        assert app.is_running and app._pane("pairs").form.analysis.name != "mamba-removal"
        assert any("does not apply" in n.message for n in app._notifications)


async def test_an_exception_in_an_action_a_handler_or_a_worker_is_a_dialog(monkeypatch):
    """Defect: any exception escaping the app's code ended it, unsaved sessions and all."""
    app = WorkbenchApp("toy:ioi", device="cpu")

    def boom(*_):
        raise RuntimeError("boom in the code")

    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(app.ws.runs) == 1, steps=1200)
        monkeypatch.setattr(WorkbenchApp, "action_toggle_view", boom)
        await pilot.press("ctrl+t")  # a key binding's action
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorDialog))
        assert "RuntimeError: boom in the code" in app.screen.message and "Nothing was lost" in app.screen.message
        await pilot.press("escape")
        app.call_later(boom)  # a palette command, a callback
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorDialog))
        await pilot.press("escape")
        app.run_worker(boom, thread=True)  # a worker
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorDialog))
        await pilot.press("escape")
        assert len(app.failures) == 3 and app.is_running and len(app.ws.runs) == 1
        await pilot.press("ctrl+r")  # and the app still works
        await wait_for(pilot, lambda: len(app.ws.runs) == 2, steps=1200)
        await pilot.press("ctrl+q")
    assert app.return_code == 0  # quitting is still an ordinary exit


async def test_a_failure_while_starting_still_ends_the_app(monkeypatch):
    def broken(self):
        raise RuntimeError("cannot start")

    monkeypatch.setattr(WorkbenchApp, "_open_first", broken)
    app = WorkbenchApp("toy:ioi", device="cpu")
    with pytest.raises(RuntimeError, match="cannot start"):
        async with app.run_test(size=(80, 24)):
            # Until the start fails: leaving sooner (a fixed second, on a loaded machine) ended the app
            # while its tabs were still mounting, and Textual's Select raised its own error first.
            for _ in range(1200):
                if app.return_code == 1:
                    break
                await asyncio.sleep(0.05)
    assert app.return_code == 1


async def test_escape_stops_a_large_task_sample_while_it_is_prepared():
    """Defect: with n in the millions, progress showed --% and Escape left "cancelling…" on screen
    for minutes while the sample was drawn and tokenised."""
    messages = []
    app = WorkbenchApp("toy:ioi", device="cpu")
    async with app.run_test(size=(100, 32), message_hook=messages.append) as pilot:
        await wait_for(pilot, lambda: len(app.ws.runs) == 1, steps=1200)
        choose(app, "pairs", "patch", source="task sample", task="ioi", n="100000", site="head_out")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: "sampling pairs" in status(app), steps=400)  # "... 49,920/400,000"
        bar = app._pane("pairs").query_one(ProgressBar)
        assert bar.total == 400_000 and "/400,000" in status(app)  # known, not --%: 4n drawn for n of one length
        await pilot.press("escape")
        await wait_for(pilot, lambda: app._active_job is None, steps=60)  # within 3 s
        assert "cancelled" in status(app) and len(app.ws.runs) == 1 and app.is_running

"""Helpers for driving the app with Textual's Pilot: wait for a condition, never sleep blindly."""

from __future__ import annotations


async def wait_for(pilot, condition, steps: int = 400) -> None:
    for _ in range(steps):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("timed out waiting for the app")


async def started(pilot, app) -> None:
    """Every tab's form is mounted and the first session shown (the tabs not on show are mounted
    after the first frame)."""
    await wait_for(pilot, lambda: app._started)


async def ready(pilot, app) -> None:
    """The first DLA result is on screen (the model has loaded and run)."""

    await wait_for(pilot, lambda: app.query_one("#prompt-result").table.row_count > 0)


def status(app) -> str:
    return str(app.query_one("#status").render())


def choose(app, tab: str, analysis: str, **values) -> None:
    """Show ``tab``, pick ``analysis`` and type ``values`` into its controls (``#{tab}-{name}``)."""
    from textual.widgets import Select

    app.action_show_tab(tab)
    app.query_one(f"#{tab}-analysis", Select).value = analysis
    app._pane(tab).form.choose(analysis)
    for name, value in values.items():
        app.query_one(f"#{tab}-{name}").value = value

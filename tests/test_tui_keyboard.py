"""The keyboard and the eye (issue 25, part 7), driven through Pilot: tab labels name their keys,
a tab shown takes the focus to its main widget, F1's keys fit 80x24, placeholders and controls
belong to the parameter and the model, dialogs name controls, history rows tell runs apart, and
the first frame does not wait for the tabs not on show."""

from __future__ import annotations

import re

import pytest
from conftest import PROMPT
from pilot import choose, ready, started, wait_for

from textual.widgets import DataTable, Select, TabbedContent

from analyses.registry import analyses
from screens.dialogs import HelpScreen
from screens.form import _placeholder
from screens.widgets import ErrorDialog
from sessions.workspace import Workspace
from workbench.app import WorkbenchApp


async def test_the_first_frame_mounts_only_the_tab_on_show():
    """Defect: all three tabs' forms (about 490 widgets) were mounted before the first frame."""
    mounted: list[int] = []

    class Probe(WorkbenchApp):
        def on_mount(self) -> None:
            super().on_mount()
            mounted.append(len(self.query("*")))

    app = Probe("toy:ioi", device="cpu")
    app.load_model = lambda spec: None  # the first frame is the point here, not the model
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, app)
        assert mounted[0] < 200 < len(app.query("*"))  # the Patching and Model forms come after it
        assert app.query_one("#pairs-clean") and app.query_one("#model-analysis")


async def test_tab_labels_lead_with_their_keys_as_bound(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "workbench").mkdir()
    (tmp_path / "workbench" / "keymap.toml").write_text('[keymap]\ntab_history = "f12"\n')
    app = WorkbenchApp("toy:ioi", device="cpu")
    app.load_model = lambda spec: None
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, app)
        tabs = app.query_one(TabbedContent)
        shown = ("prompt", "pairs", "model", "plot_tab", "history_tab", "sessions_tab")
        labels = [str(tabs.get_tab(t).label) for t in shown]
        assert labels == ["F5 Prompt", "F6 Patching", "F7 Model", "F8 Plot", "F12 History", "F11 Sessions"]
        last = tabs.get_tab("sessions_tab")
        assert last.region.right <= 80  # every label on screen at 80 columns
        await pilot.press("f12")
        assert tabs.active == "history_tab"


async def test_a_tab_shown_by_key_or_click_focuses_its_main_widget(checkpoints):
    """Defect: F10 left the focus where it was; Enter did not reopen the run selected."""
    app = WorkbenchApp(str(checkpoints["gpt2"]), device="cpu")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        await pilot.press("f10")
        await pilot.pause()
        assert app.focused is app.query_one("#history", DataTable)
        await pilot.press("enter")  # reopens the run at once, on its tab
        await wait_for(pilot, lambda: app.query_one(TabbedContent).active == "prompt")
        await pilot.press("f9")
        await pilot.pause()
        assert app.focused is app.query_one("#prompts", DataTable)
        await pilot.press("f11")
        await pilot.pause()
        assert app.focused is app.query_one("#sessions", DataTable)
        await pilot.press("f5")
        await pilot.pause()
        assert app.focused is app.query_one("#prompt-prompt")  # type a prompt straight away
        await pilot.click("#--content-tab-history_tab")
        await pilot.pause()
        assert app.focused is app.query_one("#history", DataTable)
        await pilot.click("#--content-tab-pairs")
        await pilot.pause()
        assert app.focused is app.query_one("#pairs-clean")


async def test_f1_shows_most_keys_at_80x24(checkpoints):
    """Defect: at 80x24 the help text left the key table four rows."""
    app = WorkbenchApp(str(checkpoints["gpt2"]), device="cpu")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        table = app.screen.query_one("#help_keys", DataTable)
        box = table.parent.scrollable_content_region  # what the dialog shows of the table
        assert table.region.intersection(box).height >= 12  # the header and 11 keys; the rest scroll
        assert table.has_focus  # arrows scroll it


def test_placeholders_belong_to_their_parameter():
    """Defect: receivers showed writer names, --ks a negative position."""
    declared = analyses()
    receivers = _placeholder(declared["path-patch"].param("receivers"))
    assert "L1H2.q" in receivers and "logits" in receivers
    assert "input" in _placeholder(declared["path-patch"].param("senders"))
    ks = _placeholder(declared["eap-curve"].param("ks"))
    assert "-1" not in ks and "1,5,20" in ks
    assert _placeholder(declared["patch"].param("positions")) == "all; e.g. 9,-1"
    assert _placeholder(declared["name-arith"].param("layer")) == "the last"
    for a in declared.values():  # an example given in a parameter's help is the one it shows
        for p in a.params:
            if p.default is None and p.kind != "prompt" and "e.g. " in p.help:
                example = re.split(r"[;()]", p.help.split("e.g. ")[1])[0].strip()
                assert example in _placeholder(p), (a.name, p.name)


async def test_heads_are_shown_only_at_head_sites_so_never_on_mamba(checkpoints):
    app = WorkbenchApp(str(checkpoints["mamba"]), device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, app)
        choose(app, "pairs", "patch")
        await pilot.pause()
        assert not app.query_one("#pairs-heads-field").display
        assert app.query_one("#pairs-positions-field").display
    app = WorkbenchApp(str(checkpoints["gpt2"]), device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, app)
        choose(app, "pairs", "patch", site="head_out")
        await pilot.pause()
        assert app.query_one("#pairs-heads-field").display
        app.query_one("#pairs-site", Select).value = "resid_pre"
        await pilot.pause()
        assert not app.query_one("#pairs-heads-field").display


async def test_dialogs_name_controls_not_flags(checkpoints):
    app = WorkbenchApp(str(checkpoints["gpt2"]), device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, app)
        choose(app, "pairs", "patch")
        app.query_one("#pairs-source", Select).value = "task sample"
        app.query_one("#pairs-n").value = "0"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorDialog))
        assert app.screen.message.startswith('"n" must be at least 1') and "--" not in app.screen.message


async def test_history_rows_show_the_inputs_that_tell_runs_apart(tmp_path):
    """Defect: a task's size and seed sat in the last column (off screen at 80x24)."""
    import json

    from workbench.cli import main

    model, path = "toy:ioi", tmp_path / "h.wbs"
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"clean": PROMPT, "corrupt": PROMPT.replace("John gave", "Mary gave"),
                                 "answer": " Mary", "distractor": " John"}) + "\n")
    for args in (["eval", "--pairs", str(pairs), "--n", "1"],
                 ["patch", "--task", "ioi", "--n", "2", "--site", "resid_pre"],
                 ["patch", "--task", "ioi", "--n", "4", "--seed", "3", "--site", "resid_pre"]):
        assert main(["run", *args, "--model", model, "--session", str(path), "--json"]) == 0
    app = WorkbenchApp(model, device="cpu", workspaces=[Workspace.from_file(path)])
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, app)
        history = app.query_one("#history", DataTable)
        params = [str(history.get_row_at(i)[2]) for i in range(3)]
    assert f"pairs={pairs}" in params[0] and "n=1" in params[0]
    assert params[1].endswith("task=ioi n=2") and params[2].endswith("task=ioi n=4 seed=3")

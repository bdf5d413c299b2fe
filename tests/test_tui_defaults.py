"""Values never leak and defaults follow the model: each (session, analysis) owns its form values,
an analysis opened fresh shows what `workbench run NAME --model SPEC` uses with no options on that
model, and a reopened session shows its last prompt and each analysis's last run."""

from __future__ import annotations

import argparse
import json

import pytest
from pilot import choose, started, wait_for
from textual.widgets import Input, Select

from screens.widgets import ErrorDialog
from sessions.catalogue import list_models
from sessions.workspace import Workspace
from workbench.app import WorkbenchApp
from workbench.cli import build_parser, main, resolved_params
from workbench.running import ANALYSIS_TABS

TOYS = [m["spec"] for m in list_models() if m["kind"] == "toy" and "not shipped" not in m["about"]]


async def _settled(pilot, app) -> None:
    """The model has loaded and its automatic first run has ended (a result, or a dialog closed)."""
    await wait_for(pilot, lambda: app.loaded is not None and (app.ws.runs or isinstance(app.screen, ErrorDialog)),
                   steps=1200)
    if isinstance(app.screen, ErrorDialog):
        await pilot.press("escape")
    await wait_for(pilot, lambda: app._active_job is None, steps=1200)
    await pilot.pause()


async def _type(pilot, app, control: str, text: str) -> None:
    """Type into a control as a person does: focused, cleared, key by key."""
    box = app.query_one(f"#{control}", Input)
    box.focus()
    box.value = ""
    await pilot.press(*text)
    await pilot.pause()


def _no_options(analysis, spec: str) -> argparse.Namespace:
    """`workbench run NAME --model SPEC` with no options, as the CLI's parser leaves it (a required
    option is left out: the CLI refuses it, and the form's example is not compared)."""
    parser = build_parser()
    args = [a for p in analysis.params if p.required for a in (p.flag, "x")]
    parsed = parser.parse_args(["run", analysis.name, "--model", spec, *args])
    for p in analysis.params:
        if p.required:
            setattr(parsed, p.name, None)
    return parsed


def _value(p, value):
    return None if value is None or (isinstance(value, str) and not value.strip()) else p.parse(value)


@pytest.mark.parametrize("spec", TOYS)
async def test_every_analysis_opens_on_the_values_the_cli_uses(spec):
    """For every analysis the toy's family has: the form's values as they would run equal what
    `workbench run NAME --model SPEC` resolves with no options (the prompt and the answer the CLI
    needs typed are the form's example, not compared)."""
    app = WorkbenchApp(spec, device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await _settled(pilot, app)
        family, checked, runnable = app.loaded.hooked.shape.family, 0, 0
        for tab in ANALYSIS_TABS:
            form = app._pane(tab).form
            for name, analysis in form.declared.items():
                if not analysis.available_for(family):
                    continue
                form.choose(name)
                shown = form.values()
                cli = resolved_params(analysis, _no_options(analysis, spec), app.loaded.hooked)
                for p in analysis.params:
                    if cli[p.name] is None and p.kind in ("prompt", "token"):
                        continue
                    value = shown[p.name] if p.name in shown else p.default  # another data source's: not given
                    assert _value(p, value) == _value(p, cli[p.name]), (spec, name, p.name)
                try:
                    bound = analysis.bind(cli)
                except Exception:  # the CLI needs an input typed (a prompt, a neuron): compared above
                    bound = None
                if bound is not None:
                    assert sorted(analysis.bind(shown).items(), key=str) == sorted(bound.items(), key=str), (spec, name)
                    runnable += 1
                checked += 1
        print(f"{spec}: {checked} analyses, {runnable} runnable with no options")
        assert checked >= 10


async def test_an_analysis_keeps_its_values_per_session_and_nothing_crosses_models():
    """Seen: on toy:recall "edit search" opened with task lookup and n typed on toy:lookup."""
    app = WorkbenchApp("toy:lookup", device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await _settled(pilot, app)
        choose(app, "model", "recall-edit")
        await pilot.pause()
        app.query_one("#model-task", Select).value = "lookup"
        await _type(pilot, app, "model-n", "120")
        app._open(("", "toy:recall"))
        await wait_for(pilot, lambda: app.loaded is not None and app.ws.spec == "toy:recall", steps=1200)
        await pilot.pause()
        form = app._pane("model").form
        assert form.analysis.name == "recall-edit"
        assert form.values()["task"] == "recall" and form.values()["n"] == "300"
        await pilot.press("f3")  # back to the toy:lookup session: its values are as it left them
        await pilot.pause()
        assert form.analysis.name == "recall-edit"
        assert form.values()["task"] == "lookup" and form.values()["n"] == "120"


async def test_a_value_typed_for_one_analysis_stays_with_it():
    """Seen: toy:count01 count-heads opened with n 100 (its default is 400)."""
    app = WorkbenchApp("toy:count01", device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await _settled(pilot, app)
        choose(app, "model", "count-attention")
        await _type(pilot, app, "model-n", "100")
        choose(app, "model", "count-heads")
        await pilot.pause()
        assert app.query_one("#model-n", Input).value == "400"
        choose(app, "model", "count-attention")
        await pilot.pause()
        assert app.query_one("#model-n", Input).value == "100"


async def test_mamba_name_arithmetic_opens_on_the_last_layer_and_its_own_n():
    """Seen: toy:ioi-mamba name-arith opened with layer 0 and n 100 (the CLI: the last layer, n 200)."""
    app = WorkbenchApp("toy:ioi-mamba", device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await _settled(pilot, app)
        choose(app, "model", "count-swap")
        await _type(pilot, app, "model-n", "100")
        await _type(pilot, app, "model-layer", "0")
        choose(app, "model", "name-arith")
        await pilot.pause()
        assert app.query_one("#model-layer", Input).value == "1"
        assert app.query_one("#model-n", Input).value == "200"


async def test_mamba_layer_removal_runs_the_models_own_task_as_the_cli_does(capsys):
    """Seen: on toy:ioi-mamba the Patching tab's task was ioi, not ioi-abc (L0 accuracy 0.5625
    instead of the CLI's)."""
    assert main(["run", "mamba-removal", "--model", "toy:ioi-mamba", "--device", "cpu", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    app = WorkbenchApp("toy:ioi-mamba", device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await _settled(pilot, app)
        choose(app, "pairs", "mamba-removal")
        await pilot.pause()
        assert app.query_one("#pairs-source", Select).value == "task sample"
        assert app.query_one("#pairs-task", Select).value == "ioi-abc"
        app.action_run()
        await wait_for(pilot, lambda: app.ws.runs[-1].analysis == "mamba-removal", steps=1200)
        result = app.ws.runs[-1].result
        assert result.meta["data"] == cli["data"] == "task ioi-abc"
        assert result.columns["accuracy"] == [row["accuracy"] for row in cli["rows"]]


async def test_neuron_heads_on_the_lookup_toy_read_its_own_task():
    """Seen: toy:lookup neuron-heads opened on task ioi."""
    app = WorkbenchApp("toy:lookup", device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await _settled(pilot, app)
        choose(app, "model", "inhibition-task")  # its task defaults to ioi on a model of no IOI-like task
        await pilot.pause()
        choose(app, "model", "neuron-heads")
        await pilot.pause()
        assert app.query_one("#model-task", Select).value == "lookup"


async def test_the_prompt_and_the_pair_carry_between_the_analyses_that_read_them():
    app = WorkbenchApp("toy:ioi", device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await _settled(pilot, app)
        choose(app, "prompt", "dla", prompt="When Anna and Ryan went to the station, Ryan gave a cake to", answer=" Anna")
        choose(app, "prompt", "attention")
        await pilot.pause()
        assert app.query_one("#prompt-prompt", Input).value.startswith("When Anna")
        choose(app, "prompt", "logit-lens")
        await pilot.pause()
        assert app.query_one("#prompt-answer", Input).value == " Anna"
        choose(app, "pairs", "patch", n="32")
        choose(app, "pairs", "attrib")
        await pilot.pause()
        assert app._pane("pairs").form.values()["n"] == "32"  # the same task sample


async def test_a_reopened_session_shows_its_last_prompt_and_each_analysiss_last_run(tmp_path, capsys):
    """The README promises a reopened session on its last prompt; it opened with empty forms."""
    path = tmp_path / "s.wbs"
    prompt = "When Anna and Ryan went to the station, Ryan gave a cake to"
    assert main(["run", "dla", "--model", "toy:ioi", "--prompt", prompt, "--answer", " Anna", "--by", "head",
                 "--session", str(path), "--json"]) == 0
    assert main(["run", "patch", "--model", "toy:ioi", "--task", "ioi", "--n", "8", "--site", "resid_pre",
                 "--session", str(path), "--json"]) == 0
    capsys.readouterr()
    app = WorkbenchApp("toy:ioi", device="cpu", workspaces=[Workspace.from_file(path)])
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot, app)
        assert app.query_one("#prompt-prompt", Input).value == prompt
        assert app.query_one("#prompt-answer", Input).value == " Anna"
        assert app.query_one("#prompt-by", Select).value == "head"  # dla's last run
        pairs = app._pane("pairs").form.values()
        assert pairs["task"] == "ioi" and pairs["n"] == "8" and pairs["site"] == "resid_pre"

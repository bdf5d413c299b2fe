"""A probe's direction used as the issue asks: as a steering vector, or projected out of the
residual stream (``analyses.steering.ProjectOut``), from the CLI (``--steer``, ``--project-out``)
and the TUI's palette; both are standing interventions that each run records."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import PROMPT
from pilot import ready

from analyses.errors import BadInput
from analyses.results import Series
from analyses.steering import ProjectOut, direction_of, parse_projection, projection_from_result
from workbench.cli import main


def test_projecting_out_removes_the_component_only_from_the_start_position(loaded):
    lm = loaded("gpt2")
    hook = "blocks.1.hook_resid_pre"
    ids = torch.tensor([lm.tokenizer(PROMPT)["input_ids"]])
    u = torch.randn(lm.hooked.shape.d_model)
    plain = lm.hooked.run(ids, capture=[hook]).cache[hook][0]
    (iv,) = ProjectOut(u, hook, start=3).interventions(lm.hooked)
    seen = lm.hooked.run(ids, interventions=[iv], capture=[hook]).cache[hook][0]
    unit = u / u.norm()
    assert float((seen[3:] @ unit).abs().max()) < 1e-4  # nothing left along u from position 3 on
    assert torch.equal(seen[:3], plain[:3])  # before it, untouched
    # what is removed is exactly the projection: x - (x.u) u
    assert torch.allclose(seen[3:], plain[3:] - (plain[3:] @ unit)[:, None] * unit, atol=1e-5)


def test_projection_syntax_and_what_has_a_direction():
    v = torch.ones(4)
    assert parse_projection("", v, "run1", "blocks.0.hook_resid_post").hook == "blocks.0.hook_resid_post"
    p = parse_projection("@1:from-1", v, "run1", "x", n_layers=2)
    assert (p.hook, p.start, p.text) == ("blocks.1.hook_resid_pre", -1, "project:run1@blocks.1.hook_resid_pre:from-1")
    with pytest.raises(BadInput, match="layers 0..1"):
        parse_projection("@5", v, "run1", "x", n_layers=2)
    with pytest.raises(BadInput, match="nonzero"):
        ProjectOut(torch.zeros(4), "x")
    three = Series("probe", [0], {"pos -1": [0.5]}, "layer")  # more than two labels: no direction
    with pytest.raises(BadInput, match="two labels"):
        direction_of(three, "run2")
    with pytest.raises(BadInput, match="steering-vector or probe"):
        projection_from_result(Series("dla", [0], {"a": [1.0]}, "layer"), "run3", "")


def test_a_probe_run_steers_and_is_projected_out_from_the_cli(capsys, tmp_path):
    session = str(tmp_path / "s.wbs")
    model = ["--model", "toy:ioi"]
    probe = ["run", "probe", *model, "--n", "64", "--layers", "1", "--label", "variant", "--session", session]
    assert main(probe) == 0
    capsys.readouterr()
    dla = ["run", "dla", *model, "--prompt", PROMPT, "--answer", " Mary", "--distractor", " John", "--json",
           "--session", session]
    assert main([*dla, "--project-out", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    (text,) = out["edits"]
    assert text.startswith("project:run1@blocks.1.") and text.endswith("resid_post")  # the probe's own hook
    assert main([*dla, "--steer", "1*3@1"]) == 0
    assert json.loads(capsys.readouterr().out)["edits"] == ["steer:run1*3@blocks.1.hook_resid_pre"]
    assert main([*dla, "--project-out", "9@1"]) == 2 and "no run 9" in capsys.readouterr().err
    assert main([*dla, "--project-out", "x"]) == 2 and "RUN[@LAYER|@HOOK]" in capsys.readouterr().err


async def test_the_palette_projects_a_probes_direction_out_of_every_run():
    from analyses.steering import projection_from_result
    from pilot import choose, wait_for
    from workbench.app import WorkbenchApp

    app = WorkbenchApp("toy:ioi", device="cpu")
    async with app.run_test(size=(110, 34)) as pilot:
        await ready(pilot, app)
        assert "Direction: project out" not in [c.title for c in app.get_system_commands(app.screen)]
        choose(app, "model", "probe", n="64", layers="1")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.ws.runs[-1].analysis == "probe")
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Direction: project out" in titles and "Steering: apply" in titles
        name, result = app._direction_run()
        app.add_direction(projection_from_result, name, result, "@1")
        await pilot.pause()
        (projection,) = app.edits
        assert isinstance(projection, ProjectOut) and projection.hook == "blocks.1.hook_resid_pre"
        assert f"project:{name}@blocks.1.hook_resid_pre" in str(app.query_one("#model_status").render())
        app.action_undo_edit()
        assert app.edits == ()

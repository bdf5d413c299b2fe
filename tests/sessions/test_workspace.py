"""The app's per-session bookkeeping, without Textual: runs and prompts held in memory until the
session has a file, then written through to it."""

from __future__ import annotations

import pytest

from analyses.errors import BadInput
from analyses.results import Grid, Table
from sessions.store import Session
from sessions.workspace import Workspace, open_workspaces

INFO = {"spec": "toy:ioi", "revision": "sha256:abc", "dtype": "float32", "device": "cpu"}
TABLE = Table("dla", ["embed", "bias"], {"value": [0.5, -0.25]}, {"logit": 0.25})
GRID = Grid("patch", ["layer", "pos"], {"layer": ["L0"], "pos": ["0:a", "1:b"]}, [[1.0, 2.0]], {"clean": 2.0, "corrupt": 1.0})


def test_an_unsaved_workspace_saved_later_keeps_every_run_and_prompt(tmp_path):
    ws = Workspace("toy:ioi")
    ws.record("dla", {"prompt": "When Mary", "answer": " Mary", "distractor": None, "by": "layer"}, TABLE)
    ws.record("dla", {"prompt": "When Mary", "answer": " Mary", "distractor": None, "by": "head"}, TABLE)
    ws.record("patch", {"clean": "a b", "corrupt": "a c", "answer": " b", "distractor": " c", "site": "resid_pre"}, GRID)
    ws.add_note("L1 carries the name")
    assert [e.id for e in ws.runs] == [None, None, None] and len(ws.prompts) == 2  # the same prompt once
    ws.save_as(tmp_path / "s.wbs", INFO)
    ws.record("dla", {"prompt": "When John", "answer": " Mary"}, TABLE)  # written through at once
    ws.add_note("and so does L0")
    with Session.open(tmp_path / "s.wbs") as s:
        assert [r.analysis for r in s.runs()] == ["dla", "dla", "patch", "dla"]
        assert [(p["kind"], p["prompt"]) for p in s.prompts()] == [("single", "When Mary"), ("pair", "a b"), ("single", "When John")]
    assert [e.id for e in ws.runs] == [1, 2, 3, 4]
    again = Workspace.from_file(tmp_path / "s.wbs")
    assert again.spec == "toy:ioi" and again.name == "s.wbs" and len(again.runs) == 4 and len(again.prompts) == 3
    assert again.runs[2].result.values == GRID.values
    assert again.notes == ["L1 carries the name", "and so does L0"]


def test_a_pending_file_is_created_when_the_model_is_known_and_a_foreign_model_is_refused(tmp_path):
    ws = Workspace("toy:ioi", new_path=tmp_path / "new.wbs")
    assert ws.name == "new.wbs" and not (tmp_path / "new.wbs").exists()
    ws.attach(INFO)
    assert ws.attached and Session.open(tmp_path / "new.wbs").model == INFO
    other = Workspace.from_file(tmp_path / "new.wbs")
    with pytest.raises(BadInput, match="holds runs of toy:ioi"):
        other.attach({**INFO, "spec": "toy:count01"})
    assert not other.attached


def test_session_files_named_on_the_command_line(tmp_path, capsys):
    from workbench.cli import main

    old = tmp_path / "old.wbs"
    with Session.create(old, INFO) as s:
        s.append_run("dla", {}, TABLE)
    spaces = open_workspaces(None, [str(old), str(tmp_path / "new.wbs"), str(old)], "toy:count01")
    assert [(w.name, w.spec, len(w.runs)) for w in spaces] == [("old.wbs", "toy:ioi", 1), ("new.wbs", "toy:count01", 0)]
    bad = tmp_path / "bad.wbs"
    bad.write_bytes(b"not a session" * 50)
    assert main(["--session", str(old), "--session", str(bad)]) == 2  # refused before the screen opens
    assert "not an SQLite database" in capsys.readouterr().err and bad.read_bytes() == b"not a session" * 50


def test_a_model_other_than_the_sessions_is_refused(tmp_path, capsys):
    """Defect: `workbench --session one.wbs --model toy:recall` silently opened the session's model."""
    from workbench.cli import main

    old = tmp_path / "old.wbs"
    with Session.create(old, INFO) as s:
        s.append_run("dla", {}, TABLE)
    with pytest.raises(BadInput, match="holds runs of toy:ioi, not toy:recall"):
        open_workspaces("toy:recall", [str(old)], "toy:ioi")
    assert open_workspaces("toy:ioi", [str(old)], "toy:ioi")[0].spec == "toy:ioi"  # the same model is fine
    assert main(["--session", str(old), "--model", "toy:recall"]) == 2
    assert "holds runs of toy:ioi" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["no-such-dir/x.wbs", "a-file/x.wbs"])
def test_a_session_in_a_folder_that_is_not_there_is_refused_up_front(tmp_path, capsys, where):
    """Defect: the TUI stayed "loading" forever and the CLI gave a traceback after loading the model."""
    from workbench.cli import main

    (tmp_path / "a-file").write_text("x")
    path = str(tmp_path / where)
    assert main(["--session", path]) == 2
    assert "x.wbs" in capsys.readouterr().err
    code = main(["run", "dla", "--model", "toy:nope", "--prompt", "a", "--answer", "b", "--session", path])
    assert code == 2 and "x.wbs" in capsys.readouterr().err  # before the (unknown) model is even looked up


def test_form_memory_keeps_each_analysiss_values_and_shares_only_the_inputs():
    from analyses.registry import analyses
    from analyses.registry.defaults import ModelFacts
    from sessions.workspace import FormMemory

    a = analyses()
    before, loaded = ModelFacts("mamba", None, "ioi-abc"), ModelFacts("mamba", 2, "ioi-abc")
    memory = FormMemory()
    memory.keep(a["count-attention"], loaded, {**memory.opening(a["count-attention"], loaded), "n": "100"})
    assert memory.opening(a["count-heads"], loaded)["n"] == 400  # the same name, not the same parameter
    assert memory.opening(a["count-attention"], loaded)["n"] == "100"
    memory.keep(a["name-arith"], before, memory.opening(a["name-arith"], before))  # layer unknown yet: blank
    assert memory.opening(a["name-arith"], loaded)["layer"] == 1  # the default follows the model once loaded
    patch = {**memory.opening(a["patch"], loaded), "clean": "a b", "n": "32"}
    memory.keep(a["patch"], loaded, patch, "task sample")
    assert memory.opening(a["attrib"], loaded)["n"] == "32" and memory.opening(a["attrib"], loaded)["clean"] == "a b"
    assert memory.source(a["attrib"]) == "task sample" and memory.source(a["eval"]) is None
    assert memory.opening(a["eval"], loaded)["n"] == 500  # eval's n is its own

"""Nothing the user wrote is overwritten: training refuses a non-empty output folder unless asked
(`--force` on the CLI, a confirm dialog in the TUI). Seen: `workbench train count01 --steps 5
--out DIR` silently replaced a model trained earlier and a user's own config.json."""

from __future__ import annotations

from pilot import choose, ready, status, wait_for

from screens.dialogs import ConfirmDialog
from workbench.app import WorkbenchApp
from workbench.cli import main

USER_CONFIG = '{"mine": true}\n'


def _users_folder(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.json").write_text(USER_CONFIG)
    return out


def test_train_refuses_a_folder_with_the_users_files(tmp_path, capsys):
    out = _users_folder(tmp_path)
    assert main(["train", "count01", "--steps", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--out {out} is not empty (it holds config.json)" in err and "--force" in err
    assert (out / "config.json").read_text() == USER_CONFIG
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]


def test_train_refuses_a_model_trained_earlier_unless_forced(tmp_path, capsys):
    out = tmp_path / "c01"
    assert main(["train", "count01", "--steps", "2", "--out", str(out)]) == 0  # a new folder: fine
    weights = (out / "model.safetensors").read_bytes()
    assert main(["train", "count01", "--steps", "2", "--seed", "3", "--out", str(out)]) == 2
    assert (out / "model.safetensors").read_bytes() == weights
    assert main(["train", "count01", "--steps", "2", "--seed", "3", "--out", str(out), "--force"]) == 0
    assert (out / "model.safetensors").read_bytes() != weights


def test_run_train_toy_refuses_before_loading_the_model(tmp_path, capsys):
    out = _users_folder(tmp_path)
    argv = ["run", "train-toy", "--model", "toy:nope", "--steps", "2", "--out", str(out)]
    assert main(argv) == 2  # refused before toy:nope (which does not exist) is looked for
    assert "is not empty" in capsys.readouterr().err
    assert main(["run", "train-toy", "--model", "toy:count01", "--steps", "2", "--out", str(out), "--force"]) == 0
    assert (out / "model.safetensors").is_file()


async def test_the_model_tab_asks_before_training_into_a_full_folder(tmp_path):
    out = _users_folder(tmp_path)
    app = WorkbenchApp("toy:count01", device="cpu")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        runs = len(app.ws.runs)
        choose(app, "model", "train-toy", steps="2", out=str(out), eval_every="1")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("n")  # no: nothing runs, nothing is written
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmDialog))
        assert "left as it was" in status(app) and len(app.ws.runs) == runs
        assert sorted(p.name for p in out.iterdir()) == ["config.json"]
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")  # yes: trains, writing over config.json
        await wait_for(pilot, lambda: len(app.ws.runs) == runs + 1, steps=2400)
        assert app.ws.runs[-1].params["force"] is True and (out / "model.safetensors").is_file()

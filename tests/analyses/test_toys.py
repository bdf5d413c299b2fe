"""Toy models: training lowers the loss; every shipped checkpoint loads and meets its bar."""

from __future__ import annotations

import pytest
import torch

from analyses.registry import run_analysis
from analyses.toys import SHIPPED
from analyses.toys.train import RECIPES, train
from sessions.loading import load


def test_a_short_training_run_lowers_the_loss(tmp_path):
    losses = []
    path = train("count01", tmp_path / "c01", steps=60, progress=lambda s, n, loss: losses.append(loss))
    assert (path / "config.json").is_file() and (path / "tokenizer.json").is_file()
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3
    lm = load(str(path), device="cpu")  # the loader accepts what training writes
    assert lm.info["model_type"] == "gpt2"


@pytest.mark.parametrize("name", list(RECIPES))
def test_shipped_checkpoint_meets_its_bar(name):
    assert (SHIPPED / name / "model.safetensors").is_file(), f"toy:{name} is not shipped"
    lm = load(f"toy:{name}", device="cpu")
    table = run_analysis(lm, "eval", task=RECIPES[name].task, n=300, seed=7, split="test")
    assert table.meta["accuracy"] >= RECIPES[name].bar, table.meta
    by = table.meta["by_variant"]
    if name in ("recall", "laundry"):  # accuracy must visibly fall with list length
        assert by["len2"]["accuracy"] - by["len10"]["accuracy"] >= 0.2
    else:  # no variant may be solved by a shortcut that fails another
        assert min(v["accuracy"] for v in by.values()) >= RECIPES[name].bar - 0.05
    if name == "count01":
        assert table.meta["target_accuracy"] >= 0.95
        assert lm.hooked.model.transformer.h[0].mlp.c_fc.weight.abs().sum() == 0  # attention only


def test_shipped_package_stays_small():
    total = sum(f.stat().st_size for f in SHIPPED.rglob("*") if f.is_file())
    assert total < 4 * 2**20, total


def _unwritable_places(tmp_path):
    import os

    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    places = [a_file / "out", a_file]  # under a file; a file itself
    if os.geteuid() != 0:  # root writes into read-only folders anyway
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        places += [locked, locked / "out"]
    return places


def test_training_into_an_unwritable_place_is_refused_before_training(tmp_path):
    from analyses.errors import BadInput

    for out in _unwritable_places(tmp_path):
        steps = []
        with pytest.raises(BadInput, match=f"--out {out}: cannot write the checkpoint there"):
            train("count01", out, steps=1, progress=lambda s, n, loss: steps.append(s))
        assert steps == []  # refused before the first step


def test_head_count_and_seed_overrides_give_a_loadable_checkpoint(tmp_path):
    from safetensors.torch import load_file

    a = train("count01", tmp_path / "h2s1", steps=3, heads=2, seed=1)
    b = train("count01", tmp_path / "h2s2", steps=3, heads=2, seed=2)
    lm = load(str(a), device="cpu")
    assert (lm.hooked.shape.n_heads, lm.hooked.shape.d_head, lm.hooked.shape.d_model) == (2, 16, 32)
    assert lm.hooked.model.transformer.h[0].mlp.c_fc.weight.abs().sum() == 0  # still attention only
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert not torch.equal(wa["transformer.wte.weight"], wb["transformer.wte.weight"])  # the seed moved the init


def test_a_stop_request_writes_the_checkpoint_so_far_and_reports_it(tmp_path):
    from analyses.toys.train import train_with_curve

    asked = []

    def should_stop() -> bool:  # asked once before every step: true before the 8th
        asked.append(1)
        return len(asked) > 7

    report = train_with_curve("count01", tmp_path / "stopped", steps=50, should_stop=should_stop, eval_every=5)
    assert report["cancelled"] and report["steps_done"] == 7 and report["steps"] == 50
    assert report["curve"]["step"] == [5, 7]  # the last point is where it stopped
    lm = load(report["path"], device="cpu")
    assert lm.hooked.shape.n_heads == 4


def test_the_learning_curve_has_the_requested_points_and_does_not_change_the_run(tmp_path):
    from safetensors.torch import load_file

    from analyses.evaluate import evaluate
    from analyses.tasks import task_examples
    from analyses.toys.train import HELD_OUT_N, HELD_OUT_SEED, train_with_curve

    points = []
    report = train_with_curve("count01", tmp_path / "curve", steps=25, eval_every=10, on_eval=points.append)
    curve = report["curve"]
    assert curve["step"] == [10, 20, 25] and [p["step"] for p in points] == curve["step"]
    assert report["steps_done"] == 25 and not report["cancelled"] and report["seconds"] > 0
    assert all(0 <= a <= 1 for a in curve["accuracy"] + curve["eos_accuracy"]) and all(x > 0 for x in curve["loss"])
    lm = load(report["path"], device="cpu")  # the curve's last point scores like `eval` does
    examples = task_examples("count01", HELD_OUT_N, seed=HELD_OUT_SEED, split="test")
    meta = evaluate(lm.hooked, lm.tokenizer, "count01", examples).meta
    assert (curve["accuracy"][-1], curve["eos_accuracy"][-1]) == pytest.approx((meta["accuracy"], meta["target_accuracy"]))
    plain = train("count01", tmp_path / "plain", steps=25)  # scoring draws no random numbers
    assert all(torch.equal(v, load_file(plain / "model.safetensors")[k])
               for k, v in load_file(tmp_path / "curve" / "model.safetensors").items())


@pytest.mark.parametrize("name, heads, seed, message", [
    ("count01", 3, None, "--heads 3: count01 has d_model 32, so the head count must divide it"),
    ("count01", 0, None, "--heads 0"),
    ("count01", -2, None, "--heads -2"),
    ("ioi-mamba", 2, None, "has no attention heads"),
    ("count01", None, -1, "--seed -1"),
])
def test_a_bad_head_count_or_seed_is_refused_before_anything_is_written(tmp_path, name, heads, seed, message):
    from analyses.errors import BadInput

    with pytest.raises(BadInput, match=message):
        train(name, tmp_path / "out", steps=1, heads=heads, seed=seed)
    assert not (tmp_path / "out").exists()


def test_cli_train_with_heads_seed_and_curve(capsys, tmp_path):
    import json

    from workbench.cli import main

    assert main(["train", "count01", "--heads", "3", "--out", str(tmp_path / "bad")]) == 2
    assert "must divide" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    out = tmp_path / "h1"
    assert main(["train", "count01", "--heads", "1", "--seed", "4", "--steps", "4", "--eval-every", "2",
                 "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["heads"], report["seed"], report["steps_done"], report["curve"]["step"]) == (1, 4, 4, [2, 4])
    assert load(str(out), device="cpu").hooked.shape.n_heads == 1

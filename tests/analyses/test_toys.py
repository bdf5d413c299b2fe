"""Toy models: training lowers the loss; every shipped checkpoint loads and meets its bar."""

from __future__ import annotations

import pytest

from analyses.toys import SHIPPED
from analyses.toys.train import RECIPES, train
from sessions.loading import load
from analyses.registry import run_analysis


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
    if name == "recall":  # accuracy must visibly fall with list length
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

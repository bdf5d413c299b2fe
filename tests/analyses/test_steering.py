"""Steering vectors: the mean difference against numpy, the exact change a vector makes, scale 0
changing nothing bit for bit, undo, the layer x scale sweep, and a vector kept in a session."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import CORRUPT, PROMPT, encode

from analyses.edits import EditStack, edited
from analyses.errors import BadInput
from analyses.registry import get
from analyses.steering import Steer, mean_difference, parse_steer, steer_from_result

POSITIVE = [PROMPT, "When Mary and John went to the park", "Then John gave a drink"]
NEGATIVE = [CORRUPT, "Alice went to the store"]


def _ids(lm, texts):
    return [lm.tokenizer(t)["input_ids"] for t in texts]


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa", "mamba"])
def test_mean_difference_is_numpy_over_captured_activations(name, loaded):
    lm = loaded(name)
    hooks = ["blocks.1.hook_resid_pre", "blocks.0.hook_resid_post"]
    got = mean_difference(lm.hooked, _ids(lm, POSITIVE), _ids(lm, NEGATIVE), hooks, pos=-2)

    def acts(texts, hook):
        return np.stack([lm.hooked.run(encode(lm, t), capture=[hook]).cache[hook][0, -2].numpy().astype(np.float64)
                         for t in texts])

    for h in hooks:
        want = acts(POSITIVE, h).mean(0) - acts(NEGATIVE, h).mean(0)
        np.testing.assert_allclose(got[h].numpy(), want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["gpt2", "neox", "mamba"])
def test_scale_zero_changes_nothing_bit_for_bit(name, loaded):
    lm = loaded(name)
    ids = encode(lm)
    plain = lm.hooked.run(ids).logits
    with edited(lm.hooked, [Steer(torch.randn(lm.hooked.shape.d_model), "blocks.1.hook_resid_pre", 0.0)]):
        assert torch.equal(lm.hooked.run(ids).logits, plain)


@pytest.mark.parametrize("name", ["gpt2", "mamba"])
def test_steering_adds_exactly_scale_times_v_to_the_residual_from_its_position(name, loaded):
    lm = loaded(name)
    ids, hook = encode(lm), "blocks.1.hook_resid_pre"
    v = torch.randn(lm.hooked.shape.d_model)
    before = lm.hooked.run(ids, capture=[hook]).cache[hook][0]
    stack = EditStack(lm.hooked)
    stack.apply(Steer(v, hook, 2.5, start=4))
    after = lm.hooked.run(ids, capture=[hook]).cache[hook][0]
    assert torch.equal(after[:4], before[:4])
    torch.testing.assert_close(after[4:] - before[4:], (2.5 * v).expand(len(after) - 4, -1), rtol=0, atol=1e-5)
    assert stack.undo().text == f"steer:v*2.5@{hook}:from4"
    assert lm.hooked.standing == ()
    assert torch.equal(lm.hooked.run(ids, capture=[hook]).cache[hook][0], before)


def test_a_steer_is_checked_against_the_model(loaded):
    lm = loaded("gpt2")
    with pytest.raises(BadInput, match="dimensions"):
        EditStack(lm.hooked).apply(Steer(torch.ones(3), "blocks.0.hook_resid_pre", 1.0))
    with pytest.raises(BadInput, match="no hook"):
        EditStack(lm.hooked).apply(Steer(torch.ones(lm.hooked.shape.d_model), "blocks.9.hook_resid_pre", 1.0))
    s = parse_steer("-2@1:from-1", torch.ones(4), "run3", "blocks.0.hook_resid_pre")
    assert (s.scale, s.hook, s.start, s.text) == (-2.0, "blocks.1.hook_resid_pre", -1,
                                                   "steer:run3*-2@blocks.1.hook_resid_pre:from-1")
    assert parse_steer("3", torch.ones(4), "v", "blocks.0.hook_resid_mid").hook == "blocks.0.hook_resid_mid"
    with pytest.raises(BadInput, match="write"):
        parse_steer("x@1", torch.ones(4), "v", "h")


def test_a_steering_vector_survives_the_session_and_steers_the_same(loaded, tmp_path):
    from sessions.store import Session

    lm = loaded("gpt2")
    result = get("steering-vector")(lm, {"clean": PROMPT, "corrupt": CORRUPT, "answer": " Mary",
                                         "distractor": " Alice", "layer": 1})
    v = mean_difference(lm.hooked, _ids(lm, [PROMPT]), _ids(lm, [CORRUPT]), ["blocks.1.hook_resid_pre"])
    assert result.values == v["blocks.1.hook_resid_pre"].tolist()
    assert result.meta["norm"] == pytest.approx(float(v["blocks.1.hook_resid_pre"].norm()))
    with Session.create(tmp_path / "s.wbs", {"spec": "gpt2", "revision": "r"}) as s:
        run = s.append_run("steering-vector", {}, result)
    with Session.open(tmp_path / "s.wbs") as s:
        stored = next(r for r in s.runs() if r.id == run).result
    fresh, back = (steer_from_result(r, "run1", "3", 2) for r in (result, stored))
    assert torch.equal(fresh.vector, back.vector) and back.hook == "blocks.1.hook_resid_pre"
    ids = encode(lm)
    with edited(lm.hooked, [fresh]):
        a = lm.hooked.run(ids).logits
    with edited(lm.hooked, [back]):
        assert torch.equal(lm.hooked.run(ids).logits, a)


@pytest.mark.parametrize("name", ["gpt2", "mamba"])
def test_the_sweep_cells_are_steered_runs_and_scale_zero_is_the_corrupted_run(name, loaded):
    from analyses.inputs import pairs_input
    from analyses.metrics import Metric

    lm = loaded(name)
    pair = {"clean": PROMPT, "corrupt": CORRUPT, "answer": " Mary", "distractor": " Alice"}
    grid = get("steering-sweep")(lm, {**pair, "scales": "0,3", "start": 2})
    x = pairs_input(lm, **pair)
    metric = Metric("logit_diff", torch.tensor([x.corrupt.shape[1] - 1]), x.answer, x.distractor)
    assert grid.axes == ["layer", "scale"] and grid.labels["scale"] == ["0", "3"]
    corrupt = float(metric(lm.hooked.run(x.corrupt).logits)[0])
    hook = "blocks.1.hook_resid_pre"
    v = mean_difference(lm.hooked, x.clean.tolist(), x.corrupt.tolist(), [hook])[hook]
    with edited(lm.hooked, [Steer(v, hook, 3.0, start=2)]):
        steered = float(metric(lm.hooked.run(x.corrupt).logits)[0])
    assert grid.values[0][0] == pytest.approx(corrupt, abs=1e-5)
    assert grid.values[1][1] == pytest.approx(steered, abs=1e-5)


def test_the_cli_steers_with_a_sessions_vector_and_refuses_what_it_cannot_find(capsys, tmp_path, checkpoints):
    import json

    from workbench.cli import main

    model, session = ["--model", str(checkpoints["gpt2"])], str(tmp_path / "s.wbs")
    pair = ["--clean", PROMPT, "--corrupt", CORRUPT, "--answer", " Mary", "--distractor", " Alice"]
    assert main(["run", "steering-vector", *model, *pair, "--layer", "1", "--session", session]) == 0
    capsys.readouterr()
    gen = ["run", "generate", *model, "--prompt", PROMPT, "--max-tokens", "3", "--json"]
    assert main([*gen, "--session", session, "--steer", "1*40@1:from2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["edits"] == ["steer:run1*40@blocks.1.hook_resid_pre:from2"] and "continuation_edited" in out
    assert main([*gen, "--steer", "1*4"]) == 2 and "--session" in capsys.readouterr().err
    assert main([*gen, "--session", session, "--steer", "7*4"]) == 2 and "no run 7" in capsys.readouterr().err
    assert main([*gen, "--session", session, "--steer", "1*4@9"]) == 2 and "layers 0..1" in capsys.readouterr().err

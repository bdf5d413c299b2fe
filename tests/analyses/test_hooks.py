"""Intervention semantics on plain tensors."""

from __future__ import annotations

import pytest
import torch

from analyses.errors import BadInput
from analyses.models.hooks import Hooks, Intervention


def test_replace_with_full_shape_value_patches_the_same_cells():
    act, clean = torch.zeros(2, 5, 3, 4), torch.randn(2, 5, 3, 4)
    out = Intervention("blocks.0.attn.hook_z", value=clean, pos=[1, 3], head=2).apply(act)
    assert torch.equal(out[:, [1, 3], 2], clean[:, [1, 3], 2])
    out[:, [1, 3], 2] = 0
    assert torch.all(out == 0)
    assert torch.all(act == 0)  # the input is never edited in place


def test_pattern_indexes_heads_on_axis_1_and_queries_on_axis_2():
    act = torch.zeros(1, 4, 6, 6)
    out = Intervention("blocks.0.attn.hook_pattern", value=torch.tensor(1.0), pos=5, head=[0, 3]).apply(act)
    assert out.sum() == 2 * 6 and torch.all(out[0, [0, 3], 5] == 1)


def test_add_zero_mean_and_batch_rows():
    act = torch.arange(24.0).view(2, 3, 4)
    assert torch.equal(Intervention("x.hook_resid_pre", "add", torch.ones(4), pos=0).apply(act)[:, 0], act[:, 0] + 1)
    assert torch.all(Intervention("x.hook_resid_pre", "zero", batch=1).apply(act)[1] == 0)
    mean = Intervention("x.hook_resid_pre", "mean").apply(act)
    assert torch.equal(mean[0], act.mean(0)) and torch.equal(mean[1], act.mean(0))
    ref = torch.randn(7, 3, 4)
    assert torch.allclose(Intervention("x.hook_resid_pre", "mean", ref).apply(act)[1], ref.mean(0))
    doubled = Intervention("x.hook_resid_pre", "fn", fn=lambda t: 2 * t).apply(act)
    assert torch.equal(doubled, 2 * act)


def test_bad_interventions_are_rejected():
    with pytest.raises(BadInput, match="head axis"):
        Intervention("blocks.0.hook_resid_pre", "zero", head=1)
    with pytest.raises(BadInput, match="needs a value"):
        Intervention("blocks.0.hook_resid_pre", "replace")
    with pytest.raises(BadInput, match="unknown intervention op"):
        Intervention("blocks.0.hook_resid_pre", "scale")


def test_hooks_capture_after_edits_and_tap_gradients():
    hooks = Hooks(capture=["a"], interventions=[Intervention("a", "add", torch.tensor(1.0))], grad_names=["a"])
    x = torch.zeros(1, 2, 3)
    y = hooks("a", x)
    assert torch.all(hooks.cache["a"] == 1) and "a" in hooks.taps
    y.sum().backward()
    assert torch.all(hooks.taps["a"].grad == 1)
    assert hooks("b", x) is x  # nothing asked for "b": untouched


def test_positions_count_from_the_start_of_the_prompt_in_runs_over_part_of_it():
    """An edit at prompt position 3 lands on activation position 1 of a run over positions 2..5,
    on the rows narrowed to position 3, and nowhere in a run that no longer covers it."""
    iv = Intervention("blocks.0.hook_attn_out", "add", torch.ones(2), pos=3, label="edit X")
    hooks = Hooks(interventions=[iv])
    hooks.frame(6, start=2)
    out = hooks("blocks.0.hook_attn_out", torch.zeros(2, 4, 2))
    assert torch.all(out[:, 1] == 1) and out.sum() == 2 * 2
    hooks.frame(6, start=4)
    assert torch.all(hooks("blocks.0.hook_attn_out", torch.zeros(2, 2, 2)) == 0)
    hooks.frame(6, at=torch.tensor([3, 5]))  # one position per row
    out = hooks("blocks.0.hook_attn_out", torch.zeros(2, 1, 2))
    assert torch.all(out[0] == 1) and torch.all(out[1] == 0)
    with pytest.raises(BadInput, match="edit X: position 7 is outside the run's 6 positions"):
        h = Hooks(interventions=[Intervention("b.hook_attn_out", "zero", pos=7, label="edit X")])
        h.frame(6, start=2)
        h("b.hook_attn_out", torch.zeros(1, 4, 2))


def test_fn_with_positions_keeps_its_change_there_only():
    act = torch.zeros(2, 5, 3)
    out = Intervention("x.hook_attn_out", "fn", fn=lambda a: a + 1, pos=[-1, 1]).apply(act)
    assert torch.all(out[:, [1, 4]] == 1) and out.sum() == 2 * 2 * 3

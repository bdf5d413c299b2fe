"""The Mamba IOI analyses (Ensign & Garriga-Alonso 2024) and the Mamba adapter's fast scan and
conv-slice hooks, on a small random Mamba checkpoint."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import encode

from analyses import mamba as M
from analyses.errors import BadInput
from analyses.inputs import pairs_input
from analyses.models.hooks import Intervention
from analyses.models.mamba import chunked_scan, parallel_scan, selective_scan
from analyses.patching import MAMBA_SITES, activation_patching
from workbench.cli import main


@pytest.fixture(scope="module")
def mamba_path():
    """The shipped 2-layer Mamba trained on three-name IOI: small, and its accuracy is not 0, so
    the greedy searches have something to keep."""
    return "toy:ioi-mamba"


@pytest.fixture(scope="module")
def mamba(mamba_path):
    from sessions.loading import load

    return load(mamba_path, device="cpu")


@pytest.fixture(scope="module")
def pairs(mamba):
    return pairs_input(mamba, task="ioi-abc", n=8, seed=0)


@pytest.fixture(scope="module")
def task(mamba, pairs):
    capture = [M.IN_PROJ.format(layer) for layer in range(mamba.hooked.shape.n_layers)]
    return M.Task.build(mamba.hooked, *pairs.args, names=M.name_token_ids(mamba.tokenizer), capture=capture)


# ---- the adapter: fast scan, conv slices ------------------------------------------------------


def _recurrence(a, b):
    h, out = torch.zeros_like(b[:, 0]), []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        out.append(h)
    return torch.stack(out, 1)


def test_parallel_and_chunked_scans_equal_the_recurrence():
    torch.manual_seed(0)
    a, b = torch.rand(2, 11, 3, 4), torch.randn(2, 11, 3, 4)
    ref = _recurrence(a, b)
    assert torch.allclose(parallel_scan(a, b), ref, atol=1e-5)
    assert torch.allclose(chunked_scan(a, b, chunk=4), ref, atol=1e-5)  # 3 chunks, the last short
    delta, A = torch.rand(2, 11, 3), -torch.rand(3, 4)
    B, C, u = torch.randn(2, 11, 4), torch.randn(2, 11, 4), torch.randn(2, 11, 3)
    y_ref = torch.einsum("bsen,bsn->bse", _recurrence(torch.exp(delta[..., None] * A),
                                                      delta[..., None] * B[:, :, None] * u[..., None]), C)
    with torch.no_grad():
        assert torch.allclose(selective_scan(delta, A, B, u, C, torch.float32), y_ref, atol=1e-5)
    assert torch.allclose(selective_scan(delta, A, B, u, C, torch.float32), y_ref, atol=1e-5)  # the autograd path


def test_the_fast_scan_equals_the_hooked_sequential_one(mamba):
    """Looking at hook_h switches to the step-by-step scan: same logits, same gradients."""
    hm = mamba.hooked
    ids = encode(mamba)
    fast = hm.run(ids).logits
    states = [f"blocks.{layer}.mixer.hook_h" for layer in range(hm.shape.n_layers)]
    slow = hm.run(ids, capture=states).logits
    assert (fast - slow).abs().max() < 1e-5
    metric = lambda logits: logits[0, -1].logsumexp(-1)
    _, g_fast, _ = hm.gradients(ids, metric, ["hook_embed"])
    _, g_slow, _ = hm.gradients(ids, metric, ["hook_embed"], capture=states)
    assert (g_fast["hook_embed"] - g_slow["hook_embed"]).abs().max() < 1e-5


def test_conv_slices_sum_to_the_conv_output(mamba):
    hm = mamba.hooked
    ids = encode(mamba)
    p = "blocks.1.mixer."
    slices = [f"{p}hook_conv_slice.{k}" for k in (-3, -2, -1, 0)]
    assert all(s in hm.hook_names() for s in slices)
    run = hm.run(ids, capture=slices + [p + "hook_conv", p + "hook_in_proj"])
    plain = hm.run(ids, capture=[p + "hook_conv"])
    conv = hm.model.backbone.layers[1].mixer.conv1d
    total = sum(run.cache[s] for s in slices) + conv.bias
    assert (total - plain.cache[p + "hook_conv"]).abs().max() < 1e-5
    assert (run.logits - plain.logits).abs().max() < 1e-5  # computing by slices changes nothing
    x = run.cache[p + "hook_in_proj"]
    # slice -1 at position 5 is w_{-1} * x[4]; slice -3 at position 1 reaches before the prompt: 0
    assert torch.allclose(run.cache[f"{p}hook_conv_slice.-1"][0, 5], conv.weight[:, 0, 2] * x[0, 4], atol=1e-6)
    assert torch.all(run.cache[f"{p}hook_conv_slice.-3"][0, :3] == 0)


def test_patching_one_slice_changes_only_its_term(mamba):
    hm = mamba.hooked
    ids = encode(mamba)
    p = "blocks.0.mixer."
    s = f"{p}hook_conv_slice.-1"
    base = hm.run(ids, capture=[p + "hook_conv", s])
    edited = hm.run(ids, capture=[p + "hook_conv"], interventions=[Intervention(s, op="zero", pos=5)])
    delta = edited.cache[p + "hook_conv"] - base.cache[p + "hook_conv"]
    assert torch.allclose(delta[0, 5], -base.cache[s][0, 5], atol=1e-6)
    delta[0, 5] = 0
    assert delta.abs().max() == 0


# ---- layer removal and greedy searches --------------------------------------------------------


def test_removal_of_no_layer_is_the_clean_run(task):
    table = M.layer_removal(task)
    assert table.labels == ["none", "L0", "L1"]
    none = table.rows()[0]
    clean = task.scores(task.model.run(task.clean).logits)
    assert clean["accuracy"] > 0.5  # the toy does the task
    assert none["accuracy"] == clean["accuracy"] and none["nld"] == pytest.approx(1.0, abs=1e-5)
    assert none["logit_diff"] == pytest.approx(task.metric.clean, abs=1e-5)
    # removing L1 by hand: its whole write is zero
    by_hand = task.scores(task.model.run(task.clean, interventions=[Intervention(M.OUT.format(1), op="zero")]).logits)
    assert table.rows()[2]["nld"] == pytest.approx(by_hand["nld"], abs=1e-6)


def test_accuracy_is_over_the_prompt_names(task, mamba):
    """The candidates are the answer, the distractor and the names in the prompt."""
    names = M.name_token_ids(mamba.tokenizer)
    row = task.cands[0].tolist()
    assert row[0] == int(task.answer[0]) and row[1] == int(task.distractor[0])
    in_prompt = {t for t in task.clean[0].tolist() if t in names}
    assert in_prompt <= set(row) and set(row) <= in_prompt | {row[0], row[1]}


@pytest.mark.parametrize("target", [0.0, 0.5, 1.0])
def test_greedy_removal_returns_a_set_meeting_its_target(task, target):
    clean_acc = task.run()["accuracy"]
    if clean_acc < target:
        with pytest.raises(BadInput, match="below the target"):
            M.greedy_removal(task, target)
        return
    reports: list[tuple[int, int]] = []
    out = M.greedy_removal(task, target, progress=lambda done, total: reports.append((done, total)))
    n = task.model.shape.n_layers
    assert [d for d, _ in reports] == list(range(1, len(reports) + 1)) and {t for _, t in reports} == {n * (n + 1) // 2}
    kept = [int(x[1:]) for x in out.meta["kept"]]
    removed = [x for x in range(task.model.shape.n_layers) if x not in kept]
    again = task.run(M.removal_edits(removed))
    assert again["accuracy"] >= target and again["accuracy"] == out.meta["accuracy"]
    if target == 0.0:
        assert kept == []  # with no target every layer can go


def test_crosstalk_search_meets_its_target(task):
    target = task.run()["accuracy"]
    out = M.greedy_crosstalk(task, target)
    kept = [int(x[1:]) for x in out.meta["kept"]]
    ablated = [x for x in range(task.model.shape.n_layers) if x not in kept]
    assert task.run(M.crosstalk_edits(task, ablated))["accuracy"] >= target
    # ablating every layer's in_proj is not the clean run; ablating none is
    everything = task.run(M.crosstalk_edits(task, [0, 1]))
    assert out.lines["accuracy"][0] == everything["accuracy"]
    assert task.run(M.crosstalk_edits(task, []))["nld"] == pytest.approx(1.0, abs=1e-6)


# ---- conv-slice patching, resample ablation -------------------------------------------------


def test_conv_slice_patching_cell_is_that_patch(task, pairs):
    grid = M.conv_slice_patching(task, layers=[1], token_labels=pairs.tokens)
    assert grid.labels["slice"] == ["L1 k=-3", "L1 k=-2", "L1 k=-1", "L1 k=0"]
    assert len(grid.values[0]) == pairs.clean.shape[1]
    name = M.SLICE.format(1, -1)
    src = task.model.run(task.corrupt, capture=[name]).cache[name]
    by_hand = task.metric(task.model.run(task.clean, interventions=[Intervention(name, value=src, pos=6)]).logits)
    assert grid.values[2][6] == pytest.approx(float(by_hand[0]), abs=1e-5)
    assert all(v == pytest.approx(1.0, abs=1e-6) for v in grid.values[0][:3])  # slice -3 is empty at positions 0-2


@pytest.mark.parametrize("site", ["layer_in", "conv", "ssm_in", "out_proj"])
def test_resample_ablation_per_layer_and_position_at_mamba_sites(mamba, pairs, site):
    """The `patch` analysis already does E4.1: --direction resample at the Mamba sites."""
    grid = activation_patching(mamba.hooked, *pairs.args, site, metric="nld", method="resample", positions=[4])
    hook = f"blocks.1.{MAMBA_SITES[site]}"
    clean = mamba.hooked.run(pairs.clean, capture=[hook])
    value = clean.cache[hook].roll(1, dims=0)
    task = M.Task.build(mamba.hooked, *pairs.args)
    by_hand = task.metric(mamba.hooked.run(pairs.clean, interventions=[Intervention(hook, value=value, pos=4)]).logits)
    assert grid.values[1][0] == pytest.approx(float(by_hand[0]), abs=1e-5)


# ---- name arithmetic ------------------------------------------------------------------------


def test_subtract_and_add_with_old_equal_new_changes_nothing(mamba):
    hm = mamba.hooked
    ids = torch.cat([encode(mamba)] * 2)
    d = hm.shape.d_inner
    vec = torch.randn(2, d)
    pos = torch.tensor([3, 5])
    plain = hm.run(ids).logits[:, -1]
    same = M.intervene(hm, ids, 1, pos, vec, vec, "subtract-add")
    assert (same - plain).abs().max() < 1e-5
    moved = M.intervene(hm, ids, 1, pos, vec, vec + 1.0, "subtract-add")
    assert (moved - plain).abs().max() > 1e-4
    # replace with the activation it already has changes nothing either
    act = hm.run(ids, capture=[M.SSM_IN.format(1)]).cache[M.SSM_IN.format(1)][torch.arange(2), pos]
    assert (M.intervene(hm, ids, 1, pos, vec, act, "replace") - plain).abs().max() < 1e-5


def test_name_arithmetic_grid(mamba):
    grid = M.name_arithmetic(mamba.hooked, mamba.tokenizer, 1, "subtract-add", n_avg=120, n=30)
    assert grid.axes == ["slot", "avg slot"] and len(grid.values) == 5 and all(len(r) == 5 for r in grid.values)
    counts = grid.meta["prompts_per_cell"]
    for r, c in zip(grid.values, counts):
        for v, k in zip(r, c):
            assert (0.0 <= v <= 1.0) if k else math.isnan(v)
    assert sum(map(sum, counts)) > 0
    assert M.name_slots([5, 7, 5], {5}) == [0, 2]
    with pytest.raises(BadInput, match="--offset"):
        M.name_arithmetic(mamba.hooked, mamba.tokenizer, 1, "replace", n_avg=20, n=5, offset=4)


# ---- positional EAP view and circuit search -------------------------------------------------


def test_positional_eap_grid_rows_sum_to_the_edge_score(mamba, pairs):
    from analyses.attribution import edge_attribution

    table = edge_attribution(mamba.hooked, *pairs.args, metric="nld", positional=True, token_labels=pairs.tokens)
    grid = M.eap_positions(table, top=4)
    assert grid.axes == ["edge", "pos"] and len(grid.labels["edge"]) == 4
    for label, row in zip(grid.labels["edge"], grid.values):
        assert sum(row) == pytest.approx(table.values[table.labels.index(label)], abs=1e-5)
    totals = [abs(table.values[table.labels.index(e)]) for e in grid.labels["edge"]]
    assert totals == sorted(totals, reverse=True)


def test_circuit_search_meets_its_target(task, pairs):
    from analyses.attribution import edge_attribution

    table = edge_attribution(task.model, *pairs.args, metric="nld")
    target = task.run()["accuracy"]
    out = M.circuit_search(task, table, target)
    k = out.meta["edges"]
    assert out.meta["accuracy"] >= target and k in out.x
    assert out.lines["accuracy"][out.x.index(k)] >= target
    if k - 1 in out.x:
        assert out.lines["accuracy"][out.x.index(k - 1)] < target
    assert len(out.meta["circuit"]) == k
    with pytest.raises(BadInput, match="below the target"):
        M.circuit_search(task, table, 1.01)


# ---- the CLI --------------------------------------------------------------------------------


def test_cli_layer_removal_json(capsys, mamba_path):
    code = main(["run", "mamba-removal", "--model", str(mamba_path), "--task", "ioi-abc", "--n", "4", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and [r["label"] for r in out["rows"]] == ["none", "L0", "L1"]
    assert out["rows"][0]["nld"] == pytest.approx(1.0, abs=1e-6)


def test_cli_conv_slices_and_name_arith_json(capsys, mamba_path):
    code = main(["run", "conv-slices", "--model", str(mamba_path), "--task", "ioi-abc", "--n", "2",
                 "--layers", "0", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["axes"] == ["slice", "pos"] and len(out["grid"]) == 4
    code = main(["run", "name-arith", "--model", str(mamba_path), "--n-avg", "40", "--n", "10",
                 "--mode", "replace", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["mode"] == "replace" and len(out["grid"]) == 5


def test_cli_refuses_non_mamba_models_and_bad_targets(capsys, checkpoints):
    code = main(["run", "mamba-removal", "--model", str(checkpoints["gpt2"]), "--task", "ioi-abc", "--n", "2"])
    assert code == 2 and "needs a Mamba model" in capsys.readouterr().err
    code = main(["run", "mamba-greedy", "--model", "toy:nope", "--task", "ioi-abc", "--target", "2"])
    assert code == 2 and "between 0 and 1" in capsys.readouterr().err
    code = main(["run", "eap-circuit", "--model", "toy:nope", "--target", "0.5"])
    assert code == 2 and "--task NAME" in capsys.readouterr().err


def test_conv_slices_are_a_site_of_the_patching_sweep(task, pairs):
    """The sweep patches every slice of a layer through one stacked hook, from the patched layer
    on: equal to one full forward per cell, and a cancelled conv-slice run keeps what it measured
    (it raised before)."""
    args = (task.model, task.clean, task.corrupt, task.answer, task.distractor, "conv_slice")
    fast = activation_patching(*args, metric="nld", method="noise", rows_per_forward=5, layers=[1])
    slow = activation_patching(*args, metric="nld", method="noise", batched=False, layers=[1])
    assert fast.axes == ["layer", "pos", "slice"] and fast.labels["slice"] == ["k=-3", "k=-2", "k=-1", "k=0"]
    assert torch.allclose(torch.tensor(fast.values), torch.tensor(slow.values), atol=1e-5)
    grid = M.conv_slice_patching(task, layers=[1])
    assert torch.allclose(torch.tensor(grid.values), torch.tensor(fast.values)[0].T, atol=1e-5)
    calls = iter(range(10**6))
    part = M.conv_slice_patching(task, layers=[0, 1], should_stop=lambda: next(calls) >= 1)
    values = torch.tensor(part.values)
    assert part.meta["partial"] and 0 < part.meta["cells_done"] < part.meta["cells_total"] == values.numel()
    assert values.isnan().sum() == values.numel() - part.meta["cells_done"]

"""Counting heads on Count01: the statistics on hand-made scores, DLA completeness of the per-head
contributions, the attention interventions, and the exact linear decomposition, on the shipped
toy:count01 (real model, no mocks)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from analyses.counting import (
    attention_sweep,
    auc_and_sign,
    contributions,
    head_combination,
    head_metrics,
    probe_accuracy,
    ratio_rows,
    roc_auc,
    separation_accuracy,
    set_pattern_row,
    swap_ablation,
)
from analyses.counting.batch import prepare as _prepare
from analyses.counting.interventions import partners as _partners
from analyses.dla import dla
from analyses.errors import BadInput
from analyses.evaluate import evaluate
from analyses.tasks import Example, task_examples
from analyses.tokens import encode_prompt, resolve_token

N = 160


@pytest.fixture(scope="module")
def toy():
    from sessions.loading import load

    return load("toy:count01", device="cpu")


@pytest.fixture(scope="module")
def examples():
    return task_examples("count01", N, seed=1, split="test")


# ---- statistics on hand-made scores ------------------------------------------------------------


def test_auc_and_separation_accuracy_on_hand_made_scores():
    y = [0, 0, 0, 1, 1, 1]
    up = [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]
    assert auc_and_sign(up, y) == (1.0, 1.0)
    assert separation_accuracy(up, y) == 1.0
    down = [-s for s in up]
    assert roc_auc(down, y) == 0.0
    assert auc_and_sign(down, y) == (1.0, -1.0)
    assert separation_accuracy(down, y) == 1.0  # free sign
    assert separation_accuracy(down, y, both_signs=False) == 0.5  # fixed sign: best is "all one class"
    # Mixed: pairs (pos, neg) won 3 of 4; best threshold gets 3 of 4 right.
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert separation_accuracy([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    # Ties count one half: pos {1, 2} vs neg {0, 1}: 1 + 0.5 + 1 + 1 of 4.
    assert roc_auc([0, 1, 1, 2], [0, 0, 1, 1]) == pytest.approx(0.875)
    assert separation_accuracy([0, 1, 1, 2], [0, 0, 1, 1]) == pytest.approx(0.75)
    auc, sign = auc_and_sign([1, 1, 1], [0, 1, 1])
    assert auc == 0.5 and sign == 1.0
    assert all(math.isnan(v) for v in auc_and_sign([1, 2], [1, 1]))  # one class: NaN


def test_auc_and_separation_accuracy_match_brute_force():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 6, (40,), generator=g).double()  # many ties
    y = torch.rand(40, generator=g) < 0.5
    pos, neg = scores[y].tolist(), scores[~y].tolist()
    wins = sum((p > q) + 0.5 * (p == q) for p, q in itertools.product(pos, neg))
    assert roc_auc(scores, y) == pytest.approx(wins / (len(pos) * len(neg)))
    best = 0.0
    for tau in [-1.0, *scores.unique().tolist()]:
        acc = float(((scores > tau) == y).double().mean())
        best = max(best, acc, 1 - acc)
    assert separation_accuracy(scores, y) == pytest.approx(best)


def test_probe_on_a_linearly_separable_set_is_near_perfect():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 16, generator=g) * torch.linspace(0.1, 10.0, 16)  # features on very different scales
    w = torch.randn(16, generator=g)
    margin = (x / torch.linspace(0.1, 10.0, 16)) @ w
    keep = margin.abs() > 0.3
    x, y = x[keep], margin[keep] > 0
    assert probe_accuracy(x, y, seed=0) >= 0.97
    assert probe_accuracy(x, y, seed=0) == probe_accuracy(x, y, seed=0)  # deterministic
    with pytest.raises(BadInput):
        probe_accuracy(x[:2], y[:2])


# ---- the toy model ----------------------------------------------------------------------------


def test_head_contributions_are_a_complete_dla(toy, examples):
    con = contributions(toy.hooked, toy.tokenizer, examples)
    assert con.s.shape == (N, toy.hooked.shape.n_heads)
    err = (con.s.sum(1) + con.rest - con.ld).abs()
    assert float((err / con.ld.abs().clamp(min=1.0)).max()) <= 1e-4
    # s_h is the attention-weighted sum of the per-key value contributions.
    assert torch.allclose((con.pattern * con.g).sum(-1), con.s, atol=1e-4)
    # The same numbers as analyses.dla's per-head DLA on single prompts.
    yes, no = resolve_token(toy.tokenizer, " yes"), resolve_token(toy.tokenizer, " no")
    for i in range(3):
        ids = encode_prompt(toy.tokenizer, examples[i].prompt)
        rows = dla(toy.hooked, ids, yes, no, by="head")
        table = dict(zip(rows.labels, rows.values))
        heads = [table[f"L0H{h}"] for h in range(toy.hooked.shape.n_heads)]
        assert con.s[i].tolist() == pytest.approx(heads, abs=1e-4)
        assert float(con.rest[i]) == pytest.approx(sum(table.values()) - sum(heads), abs=1e-4)
        assert float(con.ld[i]) == pytest.approx(sum(table.values()), abs=1e-4)


def test_set_pattern_row_with_the_own_pattern_changes_nothing(toy, examples):
    model = toy.hooked
    data = _prepare(model, toy.tokenizer, examples[:40], 0)
    name = "blocks.0.attn.hook_pattern"
    clean = model.run(data.ids, attention_mask=data.mask, capture=[name])
    rows = clean.cache[name][torch.arange(40), :, data.dec]  # [b, H, keys]
    same = model.run(data.ids, attention_mask=data.mask, capture=[name],
                     interventions=[set_pattern_row(0, rows, data.dec)])
    assert torch.allclose(same.logits, clean.logits, atol=1e-5)
    # One head given a different row: that row is what the model used, and the logits move.
    flat = torch.zeros(40, data.ids.shape[1])
    flat[torch.arange(40), data.dec] = 1.0  # attend to "=" only
    moved = model.run(data.ids, attention_mask=data.mask, capture=[name],
                      interventions=[set_pattern_row(0, flat, data.dec, heads=[2])])
    used = moved.cache[name][torch.arange(40), 2, data.dec]
    assert torch.equal(used, flat)
    assert not torch.allclose(moved.logits, clean.logits, atol=1e-3)
    assert torch.equal(moved.cache[name][:, 1], clean.cache[name][:, 1])  # other heads untouched


def test_ratio_rows_by_hand():
    pattern = torch.tensor([[[0.1, 0.2, 0.3, 0.4, 0.0]]])  # one example, one head
    kind = torch.tensor([[0, 1, 2, -1, -2]])  # 0, 1, 2, "=", answer
    new = ratio_rows(pattern, kind, 2.0, 0.0)
    assert new[0, 0].tolist() == pytest.approx([0.2, 0.4, 0.0, 0.4, 0.0])
    assert ratio_rows(pattern, kind, 1.0, 1.0)[0, 0].tolist() == pytest.approx([0.2, 0.2, 0.2, 0.4, 0.0])
    only_ones = torch.tensor([[1, 1, -1, -2, -2]])
    assert torch.equal(ratio_rows(pattern, only_ones, 0.0, 0.0), pattern)  # nothing to weigh: kept


def test_attention_sweep_without_edited_heads_is_the_base_accuracy(toy, examples):
    base = evaluate(toy.hooked, toy.tokenizer, "count01", examples).meta["accuracy"]
    grid = attention_sweep(toy.hooked, toy.tokenizer, examples, [1.0], [1.0], heads=[])
    assert grid.values == [[pytest.approx(base)]]
    assert grid.meta["base_accuracy"] == pytest.approx(base)
    grid = attention_sweep(toy.hooked, toy.tokenizer, examples[:40], [0.5, 1.0], [0.0, 0.5, 2.0], heads=[0, -1])
    assert grid.axes == ["w01", "w02"]
    assert grid.labels == {"w01": ["w01=0.5", "w01=1"], "w02": ["0", "0.5", "2"]}
    assert len(grid.values) == 2 and all(len(r) == 3 for r in grid.values)
    assert all(0.0 <= v <= 1.0 for r in grid.values for v in r)
    assert grid.meta["heads"] == [0, 3]
    with pytest.raises(BadInput):
        attention_sweep(toy.hooked, toy.tokenizer, examples[:10], [-1.0], [0.0])


def test_head_combination_least_squares_is_the_exact_decomposition(toy, examples):
    table = head_combination(toy.hooked, toy.tokenizer, examples)
    assert table.labels == ["model", "least squares", "uniform"]
    rows = {r["label"]: r for r in table.rows()}
    heads = [f"w_L0H{h}" for h in range(toy.hooked.shape.n_heads)]
    assert [rows["least squares"][k] for k in heads] == pytest.approx([1.0] * len(heads), abs=1e-3)
    assert rows["least squares"]["r2"] == pytest.approx(1.0, abs=1e-6)
    assert table.meta["beta_rest"] == pytest.approx(1.0, abs=1e-3)
    assert [rows["model"][k] for k in heads] == [1.0] * len(heads)
    ev = evaluate(toy.hooked, toy.tokenizer, "count01", examples).meta
    assert rows["model"]["acc"] == pytest.approx(ev["accuracy"])
    assert rows["model"]["eos_acc"] == pytest.approx(ev["target_accuracy"])
    # Uniform: every head scaled to the mean spread.
    sigma = torch.tensor(table.meta["scale"])
    assert [rows["uniform"][k] for k in heads] == pytest.approx((sigma.mean() / sigma).tolist())
    assert math.isnan(rows["model"]["r2"])  # NaN outside least squares


def test_head_metrics_rows_columns_and_attention_ratios(toy, examples):
    table = head_metrics(toy.hooked, toy.tokenizer, examples, seed=0)
    n_heads = toy.hooked.shape.n_heads
    assert table.labels == [f"L0H{h}" for h in range(n_heads)] + ["model"]
    assert list(table.columns) == ["auc", "auc_sign", "s_acc", "s_acc_one_dir", "l_acc", "w01", "w02", "w01_eff",
                                   "w02_eff", "own_acc", "scale"]
    rows = {r["label"]: r for r in table.rows()}
    for r in table.rows():
        assert 0.5 <= r["auc"] <= 1.0 and r["auc_sign"] in (1.0, -1.0)
        assert 0.5 <= r["s_acc"] <= 1.0 and 0.0 <= r["l_acc"] <= 1.0 and 0.0 <= r["own_acc"] <= 1.0
        assert r["s_acc_one_dir"] <= r["s_acc"]  # one of the two directions
    assert rows["model"]["own_acc"] == pytest.approx(table.meta["accuracy"])
    own_best = table.meta["own_acc_best_threshold"]
    assert len(own_best) == n_heads
    assert all(b >= rows[f"L0H{h}"]["own_acc"] for h, b in enumerate(own_best))  # tau = 0 is one threshold
    assert math.isnan(rows["model"]["w01"])
    # w01 and w01_eff of head 1, recomputed by a plain loop from the clean run.
    con = contributions(toy.hooked, toy.tokenizer, examples)
    data = _prepare(toy.hooked, toy.tokenizer, examples, 0)
    a1 = a0 = t1 = t0 = 0.0
    for i in range(N):
        ones = [k for k in range(data.ids.shape[1]) if data.kind[i, k] == 1]
        zeros = [k for k in range(data.ids.shape[1]) if data.kind[i, k] == 0]
        if ones and zeros:
            a1 += sum(float(con.pattern[i, 1, k]) for k in ones) / len(ones)
            a0 += sum(float(con.pattern[i, 1, k]) for k in zeros) / len(zeros)
            t1 += sum(float(con.pattern[i, 1, k] * con.g[i, 1, k]) for k in ones) / len(ones)
            t0 += sum(float(con.pattern[i, 1, k] * con.g[i, 1, k]) for k in zeros) / len(zeros)
    assert rows["L0H1"]["w01"] == pytest.approx(a1 / a0, rel=1e-5)
    assert rows["L0H1"]["w01_eff"] == pytest.approx(t1 / -t0, rel=1e-5)
    assert rows["L0H1"]["scale"] == pytest.approx(float(con.s[:, 1].std()), rel=1e-5)


def test_swap_ablation_partners_and_shape(toy, examples):
    data = _prepare(toy.hooked, toy.tokenizer, examples, 0)
    partner = _partners(data, seed=0)
    assert torch.equal(data.dec[partner], data.dec)  # same length
    lengths = data.dec.tolist()
    alone = {n for n in lengths if lengths.count(n) == 1}
    assert all((int(partner[i]) == i) == (lengths[i] in alone) for i in range(N))
    table = swap_ablation(toy.hooked, toy.tokenizer, examples[:60], seed=0)
    assert table.labels == [f"L0H{h}" for h in range(toy.hooked.shape.n_heads)]
    assert list(table.columns) == ["base_acc", "pattern_resampled_acc", "values_resampled_acc", "pattern_mean_acc"]
    assert all(0.0 <= v <= 1.0 for col in table.columns.values() for v in col)


def test_bad_inputs_are_refused(toy, examples):
    with pytest.raises(BadInput):
        head_metrics(toy.hooked, toy.tokenizer, [], seed=0)
    with pytest.raises(BadInput):
        head_combination(toy.hooked, toy.tokenizer, examples[:10], layer=3)
    with pytest.raises(BadInput):
        head_metrics(toy.hooked, toy.tokenizer, [Example("1 0 =", " 1", " 0", "len2")])

"""Count01 with the paper's end-of-sequence rule: the generator, the EOS readout of the counting
analyses, s-acc in its one-direction form, and the finding on the shipped toy:count01-eos (real
model, no mocks): rescaling each head to equal spread breaks the EOS decision."""

from __future__ import annotations

import random

import pytest
import torch

from analyses.counting import contributions, head_metrics, separation_accuracy
from analyses.counting.batch import EOS_Q
from analyses.errors import BadInput
from analyses.registry import get, run_analysis
from analyses.registry.defaults import ModelFacts, resolve_defaults
from analyses.tasks import in_split, task_examples
from analyses.tasks.count01_eos import MAX_LEN, Q, allowed, generate, sequence_batch
from analyses.tokens import pad_batch

N = 200


@pytest.fixture(scope="module")
def toy():
    from sessions.loading import load

    return load("toy:count01-eos", device="cpu")


@pytest.fixture(scope="module")
def examples():
    return task_examples("count01-eos", N, seed=1, split="test")


# ---- the task -----------------------------------------------------------------------------------


def test_generator_ends_only_where_eos_is_allowed_and_stops_at_rate_q():
    rng = random.Random(0)
    stops = chances = 0
    for _ in range(3000):
        symbols, ends = generate(rng)
        assert 1 <= len(symbols) <= MAX_LEN and set(symbols) <= {"0", "1", "2"}
        assert ends == allowed(symbols)  # ends only where allowed; goes on, or is cut off, where not
        if not ends:
            assert len(symbols) == MAX_LEN and not allowed(symbols)  # cut off at the cap
        for t in range(len(symbols)):  # every earlier prefix that allowed EOS went on
            chances += allowed(symbols[:t])
        stops += ends and len(symbols) < MAX_LEN
        chances += ends and len(symbols) < MAX_LEN
    # A stop is a Bernoulli(Q) draw at each allowed prefix: 4 standard errors of slack.
    se = (Q * (1 - Q) / chances) ** 0.5
    assert abs(stops / chances - Q) < 4 * se, (stops, chances)


def test_examples_are_labelled_by_the_rule():
    ex = task_examples("count01-eos", 300, seed=2, split="all")
    assert {e.variant for e in ex} == {"allowed", "barred"}
    for e in ex:
        symbols = e.prompt.split()
        assert e.variant == ("allowed" if allowed(symbols) else "barred")
        if e.variant == "allowed":
            assert (e.answer, e.distractor) == ("[EOS]", "=")
        else:
            assert e.answer in {"0", "1", "2"} and e.distractor == "[EOS]"


def test_training_batches_are_whole_train_strings_with_every_next_token(toy):
    tok = toy.tokenizer
    ids, mask, rows, cols, toks = sequence_batch(tok, 64, seed=5)
    eos, sym = tok.eos_token_id, {tok.convert_tokens_to_ids(s): s for s in "012"}
    for r in range(64):
        n = int(mask[r].sum())
        seq = ids[r, :n].tolist()
        assert seq[0] == tok.bos_token_id
        body = seq[1:-1] if seq[-1] == eos else seq[1:]
        text = [sym[t] for t in body]
        assert in_split(" ".join(text), "train")
        assert (seq[-1] == eos) == allowed(text)
        mine = sorted((int(c), int(t)) for rr, c, t in zip(rows, cols, toks) if rr == r)
        assert mine == [(i, seq[i + 1]) for i in range(n - 1)]  # the loss on every next token


def test_the_recipe_reproduces_from_its_seed(tmp_path):
    from safetensors.torch import load_file

    from analyses.toys.train import train

    a = train("count01-eos", tmp_path / "a", steps=12)
    b = train("count01-eos", tmp_path / "b", steps=12)
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(a)
    assert (config.n_layer, config.n_head, config.n_embd, config.tie_word_embeddings) == (1, 4, 64, False)
    assert AutoTokenizer.from_pretrained(a)("1 0")["input_ids"][0] == config.bos_token_id  # [BOS] w [EOS]


# ---- s-acc, both forms --------------------------------------------------------------------------


def test_s_acc_one_direction_and_best_of_both_by_hand():
    # y = 1 when score > tau, over tau in {-inf, 0, 1, 2, 3, 5}: 3/5, 2/5, 1/5, 2/5, 3/5, 2/5 -> 0.6.
    # Best of both directions also tries score <= tau: 1 - 1/5 = 0.8.
    scores, y = [0, 1, 5, 2, 3], [1, 1, 1, 0, 0]
    assert separation_accuracy(scores, y, both_signs=False) == pytest.approx(0.6)
    assert separation_accuracy(scores, y) == pytest.approx(0.8)


def test_head_metrics_report_both_s_acc_forms(toy, examples):
    table = head_metrics(toy.hooked, toy.tokenizer, examples, readout="eos")
    con = contributions(toy.hooked, toy.tokenizer, examples, readout="eos")
    rows = {r["label"]: r for r in table.rows()}
    for h in range(toy.hooked.shape.n_heads):
        s = con.s[:, h]
        r = rows[f"L0H{h}"]
        assert r["s_acc_one_dir"] == pytest.approx(separation_accuracy(s, con.y, both_signs=False))
        assert r["s_acc"] == pytest.approx(max(r["s_acc_one_dir"], separation_accuracy(-s, con.y, both_signs=False)))
    # L0H0 of the shipped toy counts backwards (AUC sign -1): only best-of-both sees it separate.
    anti = rows["L0H0"]
    assert anti["auc_sign"] == -1.0 and anti["s_acc"] - anti["s_acc_one_dir"] >= 0.15


# ---- the EOS readout ----------------------------------------------------------------------------


def test_eos_readout_is_exact_and_its_accuracy_is_the_rule(toy, examples):
    con = contributions(toy.hooked, toy.tokenizer, examples, readout="eos")
    tok = toy.tokenizer
    eos, syms = tok.eos_token_id, [tok.convert_tokens_to_ids(s) for s in "012"]
    seqs = [tok(e.prompt)["input_ids"] for e in examples]
    assert all(ids[0] == tok.bos_token_id for ids in seqs)
    ids, mask = pad_batch(seqs, tok.pad_token_id)  # right-padded: causal, so the pads change nothing
    logits = toy.hooked.run(ids, attention_mask=mask).logits.double()
    right = []
    for i, e in enumerate(examples):
        last = logits[i, len(seqs[i]) - 1]
        assert float(con.ld[i]) == pytest.approx(float(last[eos] - last[syms].mean()), abs=1e-4)
        assert bool(con.y[i]) == allowed(e.prompt.split())
        right.append((float(torch.softmax(last, -1)[eos]) > EOS_Q / 2) == allowed(e.prompt.split()))
    assert con.accuracy == pytest.approx(sum(right) / len(right))
    assert con.eos_accuracy == con.accuracy  # the decision is the EOS decision
    # DLA completeness: heads + rest = LD, per example.
    assert torch.allclose(con.s.sum(1) + con.rest, con.ld, atol=1e-3)


def test_counting_analyses_refuse_another_task_before_loading():
    with pytest.raises(BadInput, match="count01, count01-eos"):
        get("count-combine").bind({"task": "ioi"})


# ---- the finding, at the analyses' default settings ---------------------------------------------


def _defaults(name: str, toy) -> dict:
    """What `workbench run NAME --model toy:count01-eos` runs with no option given."""
    return resolve_defaults(get(name), ModelFacts.of("toy:count01-eos", toy.hooked))


def test_uniform_weighting_breaks_eos_on_the_shipped_toy(toy):
    params = _defaults("count-combine", toy)
    assert params["task"] == "count01-eos" and params["split"] == "test"
    table = run_analysis(toy, "count-combine", **params)
    assert table.meta["readout"] == "eos"
    eos = dict(zip(table.labels, table.columns["eos_acc"]))
    assert eos["model"] >= 0.9, eos
    assert eos["model"] - eos["uniform"] >= 0.05, eos  # measured 0.988 -> 0.675


def test_the_shipped_toy_is_a_pseudo_ensemble_at_default_settings(toy):
    table = run_analysis(toy, "count-heads", **_defaults("count-heads", toy))
    heads = [r for r in table.rows() if r["label"] != "model"]
    assert table.meta["accuracy"] >= 0.9  # EOS-decision accuracy, held out
    assert all(r["auc"] >= 0.85 for r in heads), [r["auc"] for r in heads]  # measured 0.94-0.97

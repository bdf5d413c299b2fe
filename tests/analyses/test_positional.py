"""The positional subspace (Talking Heads E3.4, E3.6a) and the Laundry List task (E3.5): hand-computed
values, invariants of the replacement on a real tiny model, and the CLI's refusals."""

from __future__ import annotations

import pytest
import torch

from analyses.tasks import task_examples
from analyses.tasks import laundry
from workbench.cli import main


def test_replace_projection_by_hand():
    """x = (1, 2, 3), P = e0 and e2, c = (5, 7): x' = (5, 2, 7)."""
    from analyses.talking_heads.positional import replace_projection

    P = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    out = replace_projection(torch.tensor([[1.0, 2.0, 3.0]]), P, torch.tensor([[5.0, 7.0]]))
    assert out.tolist() == [[5.0, 2.0, 7.0]]


def test_fit_subspace_by_hand():
    """Four points in D = 3 along a single sender direction e1 (+ noise along e2, outside the span):
    P = ±e1, centroids are the label means of x·e1, and the labels explain all of that variance."""
    from analyses.talking_heads.positional import fit_subspace

    x = torch.tensor([[0.0, 1.0, 9.0], [0.0, 3.0, -9.0], [0.0, 5.0, 4.0], [0.0, 7.0, 0.0]])
    sub = fit_subspace(x, torch.tensor([[0.0, 2.0, 0.0]]), [0, 0, 1, 1], dims=3, components=["L0H0.c0"])
    assert sub.P.shape == (3, 1)  # dims capped at the span's dimension
    sign = float(sub.P[1, 0])
    assert abs(abs(sign) - 1) < 1e-6 and float(sub.P[0, 0]) == 0 and float(sub.P[2, 0]) == 0
    assert torch.allclose(sub.centroids[:, 0] * sign, torch.tensor([2.0, 6.0]))
    assert sub.counts == [2, 2]
    assert sub.explained == pytest.approx([1.0])


def test_fit_subspace_orthonormal_and_centroid_means():
    """P has orthonormal columns in span(directions); c_k is the mean of Pᵀx over label k."""
    from analyses.talking_heads.positional import fit_subspace

    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 8, generator=g)
    dirs = torch.randn(4, 8, generator=g)
    labels = [i % 3 for i in range(40)]
    sub = fit_subspace(x, dirs, labels, dims=3, components=[])
    assert torch.allclose(sub.P.T @ sub.P, torch.eye(3), atol=1e-5)
    residual = sub.P - dirs.T @ torch.linalg.lstsq(dirs.T, sub.P).solution
    assert float(residual.abs().max()) < 1e-4
    z = x @ sub.P
    for k in range(3):
        assert torch.allclose(sub.centroids[k], z[[i for i in range(40) if labels[i] == k]].mean(0), atol=1e-5)
    assert sum(sub.explained) <= 1 + 1e-6


@pytest.fixture(scope="module")
def laundry_model(tmp_path_factory):
    """A tiny random GPT-2 whose word vocabulary has the Laundry List's words, loaded as a user's."""
    from analyses.tasks import vocabulary
    from analyses.toys.checkpoints import build_checkpoint
    from sessions.loading import load

    words = list(dict.fromkeys(vocabulary() + laundry.WORDS))
    path = build_checkpoint(tmp_path_factory.mktemp("laundry"), "gpt2", words=words, seed=3, jitter=0.1,
                            d_model=32, n_layers=2, n_heads=4, n_ctx=96)
    return load(str(path), device="cpu")


def test_replacement_sets_the_projection_and_keeps_the_rest(laundry_model):
    """Run with the replacement: at END of the receiver's input, Pᵀx' is the prompt's centroid and
    the part of x outside span(P) is unchanged; other positions are untouched."""
    from analyses.talking_heads.positional import _replacement, end_resid, fitted, list_prompts

    lm = laundry_model
    fit = task_examples("laundry", 40, 0, "train")
    sub, _, _ = fitted(lm.hooked, lm.tokenizer, fit, ["L0H0", "L0H2"], "L1H1", comps=2, dims=3)
    prompts = list_prompts(lm.hooked, lm.tokenizer, task_examples("laundry", 20, 0, "test"))
    prompts = [p for p in prompts if sub.counts[p.k]]  # positions the fitting sample saw
    x = end_resid(lm.hooked, prompts, 1)
    ks = [p.k for p in prompts]
    x2 = end_resid(lm.hooked, prompts, 1, lambda idx: [_replacement(1, sub.P, sub.centroids[[ks[i] for i in idx]])])
    assert torch.allclose(x2 @ sub.P, sub.centroids[ks], atol=1e-4)
    outside = torch.eye(x.shape[1]) - sub.P @ sub.P.T
    assert torch.allclose(x2 @ outside, x @ outside, atol=1e-4)


def test_traversal_clean_row_is_the_receivers_attention(laundry_model):
    """The grid's clean row is the receiver's mean attention from END to each list position."""
    from analyses.talking_heads.positional import centroid_traversal, list_prompts

    lm = laundry_model
    held = task_examples("laundry", 12, 1, "test")
    g = centroid_traversal(lm.hooked, lm.tokenizer, task_examples("laundry", 40, 1, "train"), held, ["L0H1"], "L1H3")
    prompts = list_prompts(lm.hooked, lm.tokenizer, held)
    want = []
    for p in prompts:
        pat = lm.hooked.run(torch.tensor([p.ids]), capture=["blocks.1.attn.hook_pattern"]).cache[
            "blocks.1.attn.hook_pattern"][0, 3, -1]
        want.append(float(pat[p.items[0]]))
    assert g.values[0][0] == pytest.approx(sum(want) / len(want), abs=1e-5)
    assert g.labels["centroid"][0] == "clean" and len(g.values) == 1 + len(g.meta["hit_rate"])
    assert all(sum(v for v in row if v == v) <= 1 + 1e-5 for row in g.values[:1])


def test_centroid_replace_counts_and_gain(laundry_model):
    """Rows per list length and 'all'; gain = after - before; n adds up."""
    from analyses.talking_heads.positional import centroid_replace

    lm = laundry_model
    t = centroid_replace(lm.hooked, lm.tokenizer, task_examples("laundry", 60, 2, "train"),
                         task_examples("laundry", 30, 2, "test"), ["L0H0", "L0H3"], "L1H0", task="laundry")
    assert t.labels[-1] == "all" and t.labels[0] == "len2"
    assert sum(t.columns["n"][:-1]) == t.columns["n"][-1] == 30
    for g, a, b in zip(t.columns["gain"], t.columns["before"], t.columns["after"]):
        assert g == pytest.approx(b - a)


def test_laundry_examples_have_one_missing_item():
    """Every list item but the answer is mentioned again; the answer once; the distractor is a
    bought item; lengths 2..10 all occur."""
    from analyses.tasks.recall import ITEMS

    ex = task_examples("laundry", 90, 0)
    assert {e.variant for e in ex} == {f"len{n}" for n in range(2, 11)}
    for e in ex:
        head, tail = e.prompt.split(" I already bought ")
        words = [w.strip(",.") for w in head.split()]
        listed = [w for w in words if w in ITEMS]
        bought = [w.strip(",.") for w in tail.split() if w.strip(",.") in ITEMS]
        assert len(listed) == int(e.variant[3:]) and len(set(listed)) == len(listed)
        assert sorted(bought + [e.answer.strip()]) == sorted(listed)
        assert e.distractor.strip() in bought
        assert e.prompt.endswith("so I still need the")
    assert task_examples("laundry", 30, 5) == task_examples("laundry", 30, 5)


def test_laundry_in_eval_and_edit_accuracy_per_length(laundry_model):
    """eval reports accuracy per list length, and an edit changes the run it is given to."""
    from analyses.edits import edited
    from analyses.evaluate import evaluate

    lm = laundry_model
    ex = task_examples("laundry", 45, 0, "test")
    before = evaluate(lm.hooked, lm.tokenizer, "laundry", ex)
    assert before.labels == [f"len{n}" for n in range(2, 11)] + ["all"]
    with edited(lm.hooked, ["L1H0:ov:0=0"]):
        after = evaluate(lm.hooked, lm.tokenizer, "laundry", ex)
    assert after.columns["mean_logit_diff"] != before.columns["mean_logit_diff"]


@pytest.mark.parametrize("args, message", [
    (["--senders", "L1H0", "--receiver", "L1H2"], "before the receiver"),
    (["--senders", "L0H0,Q7", "--receiver", "L1H2"], "--senders"),
    (["--senders", "L0H0", "--receiver", "head"], "--receiver"),
])
@pytest.mark.parametrize("name", ["positional-subspace", "centroid-traversal", "centroid-replace"])
def test_bad_heads_refused_before_loading(name, args, message, capsys):
    """Exit 2 with the reason, on a model that does not exist (so nothing was loaded)."""
    assert main(["run", name, "--model", "/nonexistent/model", *args]) == 2
    assert message in capsys.readouterr().err

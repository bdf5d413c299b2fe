"""Linear probes: the fit against a numpy Newton solver of the same penalised logistic regression
(sklearn is not installed here), the held-out split, activations collected at the asked positions
only, the series over layers on a real model, and the direction projected out."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from analyses.errors import BadInput
from analyses.probes import collect, fit_probe, labelled_texts, probe_layers, split
from analyses.steering import ProjectOut


def _newton(z: np.ndarray, y: np.ndarray, l2: float, steps: int = 50) -> np.ndarray:
    """argmin mean BCE + l2/2 |w|^2 (bias unpenalised) by Newton's method: the exact optimum."""
    n, d = z.shape
    a = np.hstack([z, np.ones((n, 1))])
    theta = np.zeros(d + 1)
    pen = np.r_[np.full(d, l2), 0.0]
    for _ in range(steps):
        p = 1 / (1 + np.exp(-a @ theta))
        grad = a.T @ (p - y) / n + pen * theta
        hess = (a * (p * (1 - p))[:, None]).T @ a / n + np.diag(pen)
        theta -= np.linalg.solve(hess, grad)
    return theta


@pytest.mark.parametrize("l2", [1e-2, 1e-1])
def test_the_probe_matches_a_numpy_newton_solver(l2):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 6, generator=g) * torch.tensor([1.0, 3, 0.5, 2, 1, 1]) + 2.0
    y = ((x[:, 0] - 0.5 * x[:, 1] + torch.randn(300, generator=g)) > 1.0).long()
    probe = fit_probe(x, y, ["a", "b"], l2)
    z = ((x.double() - x.double().mean(0)) / x.double().std(0, unbiased=False)).numpy()
    theta = _newton(z, y.double().numpy(), l2)
    np.testing.assert_allclose(probe.W[:, 0].numpy(), theta[:-1], atol=1e-5)
    np.testing.assert_allclose(probe.b.numpy(), theta[-1:], atol=1e-5)
    assert torch.equal(probe.predict(x), torch.from_numpy((z @ theta[:-1] + theta[-1] > 0).astype(np.int64)))


def test_a_multiclass_probe_separates_separable_classes():
    g = torch.Generator().manual_seed(1)
    centres = torch.randn(4, 5, generator=g) * 5
    y = torch.arange(200) % 4
    x = centres[y] + torch.randn(200, 5, generator=g) * 0.3
    probe = fit_probe(x, y, list("abcd"), 1e-3)
    assert float((probe.predict(x) == y).double().mean()) == 1.0 and probe.W.shape == (5, 4)


def test_the_split_is_fixed_by_its_seed_and_disjoint():
    tr, te = split(100, 0.25, 3)
    tr2, te2 = split(100, 0.25, 3)
    assert torch.equal(tr, tr2) and torch.equal(te, te2) and len(te) == 25
    assert not set(tr.tolist()) & set(te.tolist()) and len(set(tr.tolist()) | set(te.tolist())) == 100
    with pytest.raises(BadInput):
        split(100, 1.5, 0)


def test_collect_keeps_only_the_asked_positions_of_each_text(loaded):
    lm = loaded("gpt2")
    texts = ["When Mary and John went", "Alice went", "the store , John gave a drink to"]
    hook = "blocks.0.hook_resid_post"
    acts = collect(lm.hooked, lm.tokenizer, texts, [hook], [-1, 0], batch=2)
    assert acts.shape == (1, 2, 3, lm.hooked.shape.d_model)
    for i, t in enumerate(texts):
        full = lm.hooked.run(torch.tensor([lm.tokenizer(t)["input_ids"]]), capture=[hook]).cache[hook][0]
        assert torch.allclose(acts[0, 0, i], full[-1], atol=1e-5) and torch.allclose(acts[0, 1, i], full[0], atol=1e-5)


def test_a_probe_series_over_layers_reads_a_planted_label(loaded, tmp_path):
    lm = loaded("gpt2")
    rows = [{"text": f"{name} went to the {place}", "label": "M" if name == "Mary" else "J"}
            for name in ("Mary", "John") for place in ("store", "park", "school", "office") * 6]
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows))
    texts, labels = labelled_texts(None, str(data), "variant", 1000, 0)
    series = probe_layers(lm.hooked, lm.tokenizer, texts, labels, "resid_post", [0, -1], None, 0.25, 0, 1e-3, 16)
    assert series.x == ["0", "1"] and set(series.lines) == {"pos 0", "pos -1"}
    assert series.lines["pos 0"] == [1.0, 1.0]  # the name is the first token: any layer reads it
    assert series.meta["n_test"] == 12 and len(series.meta["direction"]["vector"]) == lm.hooked.shape.d_model


def test_bad_probe_data_is_a_clear_error(loaded, tmp_path):
    lm = loaded("gpt2")
    with pytest.raises(BadInput, match="one labelled dataset"):
        labelled_texts(None, None, "variant", 10, 0)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a"}\n')
    with pytest.raises(BadInput, match="needs a \"text\" string and a \"label\""):
        labelled_texts(None, str(bad), "variant", 10, 0)
    with pytest.raises(BadInput, match="two or more"):
        probe_layers(lm.hooked, lm.tokenizer, ["a b", "c d"], ["x", "x"], "resid_post", [-1], None, 0.5, 0, 1e-3, 2)
    with pytest.raises(BadInput, match="no blocks.0.hook_resid_mid"):
        probe_layers(loaded("mamba").hooked, lm.tokenizer, ["a b"] * 4, ["x", "y"] * 2, "resid_mid", [-1], None,
                     0.5, 0, 1e-3, 2)


def test_projecting_out_a_direction_leaves_no_component_along_it(loaded):
    lm = loaded("gpt2")
    hook = "blocks.0.hook_resid_post"
    ids = torch.tensor([lm.tokenizer("When Mary and John went")["input_ids"]])
    u = torch.randn(lm.hooked.shape.d_model)
    (iv,) = ProjectOut(u, hook).interventions(lm.hooked)
    run = lm.hooked.run(ids, interventions=[iv], capture=[hook])
    seen = run.cache[hook]
    assert float((seen @ (u / u.norm())).abs().max()) < 1e-4

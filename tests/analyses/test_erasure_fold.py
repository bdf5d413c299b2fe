"""Erasure in the paper's setting (``--fold tl``: TransformerLens's processing): component outputs
centred, the value bias (with the norm's bias) folded out of every head, W_U centred over the
vocabulary. Checked by hand on the tiny random GPT-2 of the test fixtures, whose biases and norm
weights are not the zeros and ones of a fresh init, so raw and folded differ."""

from __future__ import annotations

import json

import pytest
import torch

from analyses.erasure import PromptSet, causal_check, dla_vs_effect, projection_ratios, writer_eraser_scatter
from analyses.erasure.measure import Measure
from analyses.labels import Node
from workbench.cli import main

TEXTS = ["When Mary and John went to the store , John gave a drink to Mary",
         "Then Alice and Bob went to the park , Bob gave a book to Alice",
         "When Tom and Anna went to the school , Anna gave a ring to Tom"]


@pytest.fixture(scope="module")
def gpt2(loaded, tmp_path_factory):
    corpus = tmp_path_factory.mktemp("fold") / "texts.txt"
    corpus.write_text("\n".join(TEXTS) + "\n")
    return loaded("gpt2"), str(corpus)


def _batch(lm):
    from analyses.corpus import CorpusLoop

    loop = CorpusLoop.over(lm.hooked, lm.tokenizer, PromptSet(task="ioi", n=4), None, None)
    return next(iter(loop))


def test_a_folded_head_output_is_the_value_bias_free_write_centred(gpt2):
    """By hand from the pattern, the normalised input and the HF weights: sum_j a_qj
    (n_j * gamma) W_V W_O, centred over d_model; raw minus folded (before centring) is exactly
    (b_ln W_V + b_V) W_O, since attention sums to 1."""
    lm, _ = gpt2
    model, hf = lm.hooked, lm.hooked.model
    layer, head = 1, 2
    m_raw, m_tl = Measure(model, fold="raw"), Measure(model, fold="tl")
    batch = _batch(lm)
    names = m_tl.capture() + [f"blocks.{layer}.attn.hook_pattern", f"blocks.{layer}.ln1.hook_normalized"]
    cache = model.run(batch.ids, capture=names).cache
    block = hf.transformer.h[layer]
    d, dh = hf.config.n_embd, hf.config.n_embd // hf.config.n_head
    w_v = block.attn.c_attn.weight[:, 2 * d + head * dh: 2 * d + (head + 1) * dh].detach()
    b_v = block.attn.c_attn.bias[2 * d + head * dh: 2 * d + (head + 1) * dh].detach()
    w_o = block.attn.c_proj.weight[head * dh: (head + 1) * dh].detach()
    gamma, beta = block.ln_1.weight.detach(), block.ln_1.bias.detach()
    v = (cache[f"blocks.{layer}.ln1.hook_normalized"].float() * gamma) @ w_v  # [b, s, dh], no bias at all
    pattern = cache[f"blocks.{layer}.attn.hook_pattern"][:, head].float()  # [b, q, k]
    by_hand = (pattern @ v) @ w_o
    by_hand = by_hand - by_hand.mean(-1, keepdim=True)
    node = Node(layer, head)
    folded, raw = m_tl.full_output(cache, node), m_raw.full_output(cache, node)
    assert torch.allclose(folded, by_hand, atol=1e-5)
    assert folded.sum(-1).abs().max() < 1e-5  # centred: sums to zero over d_model
    bias_write = (beta @ w_v + b_v) @ w_o  # what folding takes out, the same at every position
    assert bias_write.norm() > 0.1  # the fixture's biases are not zero: the test can fail
    raw_centred = raw - raw.mean(-1, keepdim=True)
    assert torch.allclose(raw_centred - folded, (bias_write - bias_write.mean()).expand_as(folded), atol=1e-5)
    mlp = Node(layer)  # an MLP keeps its output bias, centred (TL's hook_mlp_out)
    out = cache[f"blocks.{layer}.hook_mlp_out"].float()
    assert torch.allclose(m_tl.full_output(cache, mlp), out - out.mean(-1, keepdim=True), atol=1e-5)
    assert torch.allclose(m_raw.full_output(cache, mlp), out - block.mlp.c_proj.bias.detach(), atol=1e-5)


def test_centred_unembedding_keeps_logit_differences_and_sums_to_zero(gpt2):
    """Under fold tl the readout u_t is W_U[:, t]'s minus the vocabulary mean's: DLA toward a
    token differs from raw by the same amount for every token (differences are invariant), the
    per-token readouts sum to zero over the vocabulary, and the true token's logit is centred."""
    lm, _ = gpt2
    model = lm.hooked
    batch = _batch(lm)
    runs = {fold: Measure(model, fold=fold).run(batch, ["ln_final.hook_scale"]) for fold in ("raw", "tl")}
    shift = runs["raw"].u - runs["tl"].u  # [N, d]: one vector, the mean column's readout
    assert torch.allclose(shift, shift[:1].expand_as(shift), atol=1e-6) and shift.norm() > 0
    all_u = Measure(model, fold="tl")
    from analyses.dla import readout

    cols = model.unembed_columns(range(model.shape.d_vocab))[0].float()
    assert (readout(model, cols) - all_u.u_mean[:, None]).sum(1).abs().max() < 1e-4
    logits = runs["raw"].logits.float()
    r = runs["raw"]
    expected = r.next_logits() - logits[r.rows, r.cols].mean(-1)
    assert torch.allclose(runs["tl"].next_logits(), expected, atol=1e-5)


def test_every_erasure_analysis_records_its_fold_and_the_folds_differ(gpt2):
    lm, corpus = gpt2
    prompts = PromptSet(corpus=corpus)
    tables = {fold: projection_ratios(lm.hooked, lm.tokenizer, prompts, "L0H0", fold=fold)[0]
              for fold in ("raw", "tl")}
    assert tables["raw"].meta["fold"] == "raw" and tables["tl"].meta["fold"] == "tl"
    raw, tl = (dict(zip(t.labels, t.columns["median"])) for t in tables.values())
    assert raw["L0H0"] == pytest.approx(1.0) and tl["L0H0"] == pytest.approx(1.0)
    assert max(abs(raw[k] - tl[k]) for k in raw) > 0.05  # biases matter on this model
    assert writer_eraser_scatter(lm.hooked, lm.tokenizer, prompts, "L0H0", erasers=["L1H0"],
                                 fold="tl").meta["fold"] == "tl"
    assert causal_check(lm.hooked, lm.tokenizer, prompts, "L0H0", fold="tl").meta["fold"] == "tl"
    assert dla_vs_effect(lm.hooked, lm.tokenizer, prompts, fold="tl").meta["fold"] == "tl"


def test_cli_takes_fold_records_it_and_refuses_a_bad_one_before_loading(gpt2, checkpoints, capsys):
    _, corpus = gpt2
    code = main(["run", "erasure-pr", "--model", str(checkpoints["gpt2"]), "--corpus", corpus, "--fold", "tl",
                 "--json"])
    out = capsys.readouterr().out
    assert code == 0
    assert json.loads(out)["fold"] == "tl"
    with pytest.raises(SystemExit) as refused:  # argparse's choice check: nothing is loaded
        main(["run", "erasure-pr", "--model", "toy:nope", "--task", "ioi", "--fold", "ln"])
    assert refused.value.code == 2 and "--fold" in capsys.readouterr().err

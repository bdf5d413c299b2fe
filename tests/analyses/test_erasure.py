"""Erasure: projection ratios, the writer-vs-eraser scatter, the causal value-input check, DLA vs
total effect and the adversarial prefix search, on a hand-built model whose eraser exactly cancels
its writer (every number computed by hand) and on the random tiny checkpoints of every family."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch
from conftest import PROMPT

from analyses.dla import dla
from analyses.erasure import (
    PromptSet,
    adversarial_prompts,
    causal_check,
    dla_vs_effect,
    parse_node,
    projection_ratios,
    writer_eraser_scatter,
)
from analyses.errors import BadInput
from analyses.results import Scatter
from workbench.cli import main

# Twelve zero-mean vectors of equal norm sqrt(2) in four dimensions: e_i - e_j and their negatives.
PAIRS = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
F = [v for i, j in PAIRS for v in (np.eye(4)[i] - np.eye(4)[j], np.eye(4)[j] - np.eye(4)[i])]
WORDS = [f"w{i}" for i in range(12)]
B, D, G = 2.0, 3.0, 100.0  # writer gain, unembedding gain on the written dims, attention sharpness
EPS = 1e-5
S0 = math.sqrt(2 / 8 + EPS)  # LayerNorm scale of an embedding [f, 0] (d_model 8)
S1 = math.sqrt(2 * (1 + B * B) / 8 + EPS)  # ... and of [f, B f] after the writer
# Texts without repeated tokens, so each head's attention to "the same token" is attention to itself.
TEXTS = ["w0 w2 w4 w6 w8", "w1 w3 w5 w7 w9", "w10 w0 w3 w5 w11", "w2 w1 w0 w11 w4"]


@pytest.fixture(scope="module")
def exact(tmp_path_factory):
    """GPT-2, 2 layers, 2 heads of d_head 4, d_model 8, no MLPs. Token t embeds as [f_t, 0].
    L0H0 attends to itself and writes B f_t into dims 4..7; L1H0 attends to itself, reads dims
    4..7 and writes -B f_t: it erases the writer exactly. The unembedding of t reads
    [f_t, D f_t], so the writer has a large DLA and no effect."""
    return build_exact(tmp_path_factory.mktemp("exact"))


def build_exact(out, decoy: bool = False):
    """``exact``'s model in ``out``; with ``decoy``, L1H1 also attends to itself but reads the
    token's own embedding (dims 0..3, not the writer's output) and writes -B f_t: a head at
    median PR -1 onto the writer that never read it (no OV image of it, nothing for the causal
    check to remove)."""
    from transformers import AutoModelForCausalLM

    from analyses.toys.checkpoints import build_checkpoint
    from sessions.loading import load

    build_checkpoint(out, "gpt2", words=WORDS, d_model=8, n_layers=2, n_heads=2, n_ctx=16,
                     tie_word_embeddings=False, layer_norm_epsilon=EPS)
    model = AutoModelForCausalLM.from_pretrained(out)
    sd = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    for name, value in sd.items():
        if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
            value.fill_(1.0)
    vocab = model.config.vocab_size
    wte, lm_head = torch.zeros(vocab, 8), torch.zeros(vocab, 8)
    for i, w in enumerate(WORDS):
        t = 4 + i  # after the four special tokens
        f = torch.tensor(F[i], dtype=torch.float32)
        wte[t, :4] = f
        lm_head[t, :4], lm_head[t, 4:] = f, D * f
    wte[:4, :4] = torch.tensor(F[0], dtype=torch.float32)  # specials: never in the texts
    sd["transformer.wte.weight"], sd["lm_head.weight"] = wte, lm_head
    eye = torch.eye(4)
    for layer, (reads, gain) in enumerate([(slice(0, 4), B * S0), (slice(4, 8), -S1)]):
        qkv = torch.zeros(8, 24)  # Conv1D [in, out]: q | k | v, head 0 = the first 4 of each
        qkv[:4, 0:4] = G * eye
        qkv[:4, 8:12] = eye
        qkv[reads, 16:20] = eye
        proj = torch.zeros(8, 8)
        proj[0:4, 4:8] = gain * eye
        if decoy and layer == 1:  # head 1: q | k | v columns 4..7, 12..15, 20..23; W_O rows 4..7
            qkv[:4, 4:8], qkv[:4, 12:16], qkv[:4, 20:24] = G * eye, eye, eye
            proj[4:8, 4:8] = -B * S1 * eye
        sd[f"transformer.h.{layer}.attn.c_attn.weight"] = qkv
        sd[f"transformer.h.{layer}.attn.c_proj.weight"] = proj
    model.load_state_dict(sd)
    model.save_pretrained(out)
    corpus = out / "texts.txt"
    corpus.write_text("\n".join(TEXTS) + "\n")
    return load(str(out), device="cpu"), str(corpus)


def _expected_points():
    """(writer DLA toward the true next token) at every position that has one, by hand."""
    xs = []
    for text in TEXTS:
        idx = [WORDS.index(w) for w in text.split()]
        for a, b in itertools.pairwise(idx):
            xs.append(B * D * float(F[a] @ F[b]) / S0)
    return xs


def test_exact_eraser_projection_ratios_are_hand_computed(exact):
    lm, corpus = exact
    table, series = projection_ratios(lm.hooked, lm.tokenizer, PromptSet(corpus=corpus), "L0H0")
    pr = dict(zip(table.labels, table.columns["median"]))
    assert pr["L0H0"] == pytest.approx(1.0, abs=1e-5)
    assert pr["L1H0"] == pytest.approx(-1.0, abs=1e-5)
    for other in ("L0H1", "L0MLP", "L1H1", "L1MLP"):
        assert pr[other] == pytest.approx(0.0, abs=1e-6)
    assert table.meta["erasers"] == ["L1H0"] and table.meta["points"] == 4 * 5 - 4
    eraser = table.columns["eraser"]
    assert eraser[table.labels.index("L1H0")] == "yes" and eraser.count("yes") == 1
    assert series.x == ["resid_pre0", "resid_mid0", "resid_post0", "resid_pre1", "resid_mid1", "resid_post1"]
    assert series.lines["median"] == pytest.approx([0, 1, 1, 1, 0, 0], abs=1e-5)
    assert series.meta["ordered"] is True


def test_exact_eraser_scatter_has_slope_minus_one_and_hand_computed_dla(exact):
    lm, corpus = exact
    for mode in ("ov", "actual"):
        sc = writer_eraser_scatter(lm.hooked, lm.tokenizer, PromptSet(corpus=corpus), "L0H0", mode=mode)
        assert sc.meta["erasers"] == ["L1H0"]
        assert sc.x == pytest.approx(_expected_points(), abs=1e-3)  # B D (f_t . f_next) / s0
        assert {round(x) for x in sc.x} == {-24, -12, 0, 12}  # f_t . f_next is -2, -1, 0 or 1 here
        assert sc.y == pytest.approx([-x for x in sc.x], abs=1e-3)
        fit = sc.fit()
        assert fit["r"] == pytest.approx(-1.0, abs=1e-6) and fit["slope"] == pytest.approx(-1.0, abs=1e-5)


def test_exact_eraser_writer_has_large_dla_and_no_total_effect(exact):
    lm, corpus = exact
    table = dla_vs_effect(lm.hooked, lm.tokenizer, PromptSet(corpus=corpus, batch=4), factor=2.0)
    rows = {r["label"]: r for r in table.rows()}
    xs = _expected_points()
    assert rows["L0H0"]["dla"] == pytest.approx(sum(xs) / len(xs), abs=1e-3)
    assert rows["L0H0"]["effect"] == pytest.approx(0.0, abs=1e-4)
    assert rows["L1H0"]["dla"] == pytest.approx(-rows["L0H0"]["dla"], abs=1e-3)
    assert abs(rows["L1H0"]["effect"]) > 0.1  # the eraser does matter: without it the writer would act
    assert rows["L0H0"]["flag"] == "factor" and "L0H0" in table.meta["flagged"]


def test_dla_vs_effect_stops_within_a_batch_and_keeps_the_batches_it_finished(exact):
    """One forward per component per batch: on GPT-2 small a batch ran minutes past Escape, since the
    stop was checked only between batches. A batch cut short counts for nothing."""
    from analyses.errors import Cancelled

    lm, corpus = exact
    prompts = PromptSet(corpus=corpus, batch=2)  # two batches
    whole = dla_vs_effect(lm.hooked, lm.tokenizer, prompts)
    checks = itertools.count()
    with pytest.raises(Cancelled):  # stopped inside the first batch: nothing to show
        dla_vs_effect(lm.hooked, lm.tokenizer, prompts, should_stop=lambda: next(checks) >= 2)
    per_batch = 1 + len(whole.labels)  # the loop's check before the batch, then one per component
    checks = itertools.count()
    cut = dla_vs_effect(lm.hooked, lm.tokenizer, prompts, should_stop=lambda: next(checks) >= per_batch + 3)
    assert cut.meta["partial"] and 0 < cut.meta["points"] < whole.meta["points"]
    first = dla_vs_effect(lm.hooked, lm.tokenizer, PromptSet(corpus=corpus, batch=2, n=2))
    assert cut.rows() == first.rows()  # exactly the first batch's numbers


def test_exact_eraser_stops_erasing_when_its_value_input_loses_the_writer(exact):
    lm, corpus = exact
    table = causal_check(lm.hooked, lm.tokenizer, PromptSet(corpus=corpus), "L0H0", layer=1)
    rows = {r["label"]: r for r in table.rows()}
    assert rows["L1H0"]["pr_before"] == pytest.approx(-1.0, abs=1e-5)
    assert rows["L1H0"]["pr_after"] == pytest.approx(0.0, abs=1e-5)
    assert rows["resid_post1"]["pr_before"] == pytest.approx(0.0, abs=1e-5)
    assert rows["resid_post1"]["pr_after"] == pytest.approx(1.0, abs=1e-5)
    assert rows["L1H0"]["dla_after"] == pytest.approx(0.0, abs=1e-4)
    assert rows["L0H0"]["dla_after"] == pytest.approx(rows["L0H0"]["dla_before"])  # upstream: unchanged
    xs = _expected_points()
    assert table.meta["writer_dla"] == pytest.approx(sum(xs) / len(xs), abs=1e-3)


def test_adversarial_search_finds_the_writers_tokens_with_no_effect(exact):
    lm, corpus = exact
    table = adversarial_prompts(lm.hooked, lm.tokenizer, PromptSet(corpus=corpus, batch=4), "L0H0", k=3, limit=5)
    assert len(table.meta["top_tokens"]) == 3 and table.labels
    for row in table.rows():
        assert row["effect"] == pytest.approx(0.0, abs=1e-4)
        assert row["score"] == pytest.approx(row["writer_dla"] - row["effect"])
        assert row["next"] in [t["token"] for t in table.meta["top_tokens"]]
    assert table.columns["score"] == sorted(table.columns["score"], reverse=True)


@pytest.mark.parametrize("name", ["gpt2", "neox", "llama-gqa", "qwen2"])
def test_dla_per_component_matches_dla_py_at_one_position(name, loaded, tmp_path):
    """With one text and --start at its last position, the per-component DLA toward the true next
    token is the `dla --by head` row of that token at that position."""
    lm = loaded(name)
    ids = lm.tokenizer(PROMPT)["input_ids"]
    corpus = tmp_path / "one.txt"
    corpus.write_text(PROMPT + "\n")
    p = len(ids) - 2
    table = causal_check(lm.hooked, lm.tokenizer, PromptSet(corpus=str(corpus)), "L0H1", start=p)
    ref = dla(lm.hooked, ids, ids[p + 1], by="head", pos=p)
    ref_rows = dict(zip(ref.labels, ref.values))
    for label, value in zip(table.labels, table.columns["dla_before"]):
        if label in ref_rows:
            assert value == pytest.approx(ref_rows[label], abs=1e-5), label
    assert table.columns["pr_before"][table.labels.index("L0H1")] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa"])
def test_pr_and_ov_image_against_a_direct_computation(name, loaded, tmp_path):
    """PR of L1H0 onto L0H1 and the OV image of L0H1 through all layer-1 heads, recomputed from the
    HF modules' own weights at one position."""
    lm = loaded(name)
    hm = lm.hooked
    ids = lm.tokenizer(PROMPT)["input_ids"]
    corpus = tmp_path / "one.txt"
    corpus.write_text(PROMPT + "\n")
    p = len(ids) - 2
    cap = ["blocks.0.attn.hook_z", "blocks.1.attn.hook_z", "blocks.1.ln1.hook_scale", "ln_final.hook_scale"]
    cache = hm.run(torch.tensor([ids]), capture=cap).cache
    body = hm.model.transformer if name == "gpt2" else hm.model.model
    layer0, layer1 = (body.h[0], body.h[1]) if name == "gpt2" else (body.layers[0], body.layers[1])
    heads, dh = hm.shape.n_heads, hm.shape.d_head

    def w_o(layer, h):  # [dh, d]
        if name == "gpt2":
            return layer.attn.c_proj.weight[h * dh:(h + 1) * dh]
        return layer.self_attn.o_proj.weight[:, h * dh:(h + 1) * dh].T

    w = cache["blocks.0.attn.hook_z"][0, p, 1] @ w_o(layer0, 1)
    e = cache["blocks.1.attn.hook_z"][0, p, 0] @ w_o(layer1, 0)
    table, _ = projection_ratios(hm, lm.tokenizer, PromptSet(corpus=str(corpus)), "L0H1", start=p)
    assert table.columns["median"][table.labels.index("L1H0")] == pytest.approx(float(e @ w / (w @ w)), abs=1e-5)
    # the OV image: norm at its cached scale (weight, no bias), W_V, W_O, then DLA with the clean s_f
    s1 = cache["blocks.1.ln1.hook_scale"][0, p, 0]
    if name == "gpt2":
        a = (w - w.mean()) / s1 * layer1.ln_1.weight
        w_v = layer1.attn.c_attn.weight[:, 2 * hm.shape.d_model:]  # [d, heads*dh]
        v = a @ w_v
        lnf, u = body.ln_f.weight, hm.model.lm_head.weight[ids[p + 1]]
        readout = lnf * u - (lnf * u).mean()
    else:
        a = w / s1 * layer1.input_layernorm.weight
        v_kv = (a @ layer1.self_attn.v_proj.weight.T).view(-1, dh)
        v = v_kv.repeat_interleave(heads // v_kv.shape[0], 0).reshape(-1)
        readout = body.norm.weight * hm.model.lm_head.weight[ids[p + 1]]
    out = sum(v[h * dh:(h + 1) * dh] @ w_o(layer1, h) for h in range(heads))
    expected = float(out @ readout / cache["ln_final.hook_scale"][0, p, 0])
    erasers = [f"L1H{h}" for h in range(heads)]
    sc = writer_eraser_scatter(hm, lm.tokenizer, PromptSet(corpus=str(corpus)), "L0H1", erasers=erasers, start=p)
    assert sc.y == pytest.approx([expected], abs=1e-5)
    assert sc.x == pytest.approx([float(w @ readout / cache["ln_final.hook_scale"][0, p, 0])], abs=1e-5)


def test_scatter_fit_agrees_with_numpy(loaded):
    lm = loaded("gpt2")
    sc = writer_eraser_scatter(lm.hooked, lm.tokenizer, PromptSet(task="ioi", n=8), "L0H0",
                               erasers=["L1H0", "L1H2"], mode="actual")
    x, y = np.array(sc.x), np.array(sc.y)
    fit = sc.fit()
    slope, intercept = np.polyfit(x, y, 1)
    assert fit["n"] == len(x) > 50
    assert fit["r"] == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-9)
    assert fit["slope"] == pytest.approx(slope, abs=1e-9) and fit["intercept"] == pytest.approx(intercept, abs=1e-9)
    resid = y - (slope * x + intercept)
    se = math.sqrt((resid @ resid) / (len(x) - 2) / ((x - x.mean()) @ (x - x.mean())))
    assert fit["slope_se"] == pytest.approx(se, rel=1e-6)
    # the points cap keeps evenly spaced points and fits those
    capped = writer_eraser_scatter(lm.hooked, lm.tokenizer, PromptSet(task="ioi", n=8), "L0H0",
                                   erasers=["L1H0", "L1H2"], mode="actual", points=10)
    assert len(capped.x) == 10 and capped.meta["points_total"] == len(x)
    assert isinstance(capped, Scatter)


def test_a_cancelled_run_returns_what_it_measured(loaded):
    lm = loaded("gpt2")
    calls = []
    table, _ = projection_ratios(lm.hooked, lm.tokenizer, PromptSet(task="ioi", n=8, batch=2), "L0H0",
                                 progress=lambda d, t: calls.append((d, t)), should_stop=lambda: len(calls) >= 2)
    assert table.meta["partial"] is True and table.meta["texts"] == 4 and calls == [(2, 8), (4, 8)]


def test_bad_nodes_and_layers_are_named(loaded):
    lm = loaded("gpt2")
    for text, message in [("L0X", "not a node"), ("L9H0", "layers 0..1"), ("L0H9", "heads 0..3")]:
        with pytest.raises(BadInput, match=message):
            parse_node(text, lm.hooked)
    with pytest.raises(BadInput, match="--value-layer must be after"):
        causal_check(lm.hooked, lm.tokenizer, PromptSet(task="ioi", n=2), "L1H0")
    with pytest.raises(BadInput, match="last layer"):
        writer_eraser_scatter(lm.hooked, lm.tokenizer, PromptSet(task="ioi", n=2), "L1H0")
    with pytest.raises(BadInput, match="Mamba"):
        parse_node("L0H0", loaded("mamba").hooked)


def test_cli_runs_with_json_and_refuses_bad_input(capsys, exact):
    lm, corpus = exact
    model_dir = lm.info["path"]
    code = main(["run", "erasure-pr", "--model", model_dir, "--corpus", corpus, "--writer", "L0H0", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["erasers"] == ["L1H0"] and out["rows"][0]["label"] == "L0H0"
    code = main(["run", "erasure-scatter", "--model", model_dir, "--corpus", corpus, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["fit"]["slope"] == pytest.approx(-1.0, abs=1e-5)
    for argv, message in [
        (["erasure-pr", "--task", "ioi", "--writer", "L0Q1"], "not a node"),
        (["erasure-pr", "--task", "ioi", "--corpus", corpus], "not both"),
        (["erasure-pr", "--task", "ioi", "--band", "150"], "--band"),
        (["erasure-scatter", "--task", "ioi", "--erasers", "L1H0,zz"], "not a node"),
        (["erasure-effect", "--task", "ioi", "--factor", "0.5"], "--factor must be at least 1"),
    ]:
        code = main(["run", argv[0], "--model", "toy:nope", *argv[1:]])  # never loaded
        err = capsys.readouterr().err
        assert code == 2 and message in err, err


def test_the_erasure_toy_writer_is_erased_and_the_causal_check_undoes_it():
    """toy:erasure-planted (a test fixture, analyses/toys/planted.py): a frozen writer L0H0 and a frozen eraser L1H0, the
    rest trained on IOI. The figures quoted in docs/erasure.md, with margins."""
    from sessions.loading import load

    lm = load("toy:erasure-planted", device="cpu")
    prompts = PromptSet(task="ioi", n=64)
    table, series = projection_ratios(lm.hooked, lm.tokenizer, prompts, "L0H0")
    assert "L1H0" in table.meta["erasers"]
    assert table.columns["median"][table.labels.index("L1H0")] < -0.5  # -0.67
    stream = dict(zip(series.x, series.lines["median"]))
    assert stream["resid_post0"] > 0.95 and stream["resid_post2"] < 0.5  # 1.00 and 0.38
    for mode in ("ov", "actual"):
        fit = writer_eraser_scatter(lm.hooked, lm.tokenizer, prompts, "L0H0", erasers=["L1H0"], mode=mode).fit()
        assert fit["r"] < -0.8 and fit["slope"] < -0.5, (mode, fit)  # ov: -0.975, -0.655; actual: -0.874, -0.606
    causal = {r["label"]: r for r in causal_check(lm.hooked, lm.tokenizer, prompts, "L0H0").rows()}
    assert causal["L1H0"]["pr_after"] > -0.1 and causal["resid_post2"]["pr_after"] > 0.9

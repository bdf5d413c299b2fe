"""DLA: completeness for every family and granularity, and values computed by hand."""

from __future__ import annotations

import pytest
import torch
from conftest import TRANSFORMERS, VARIANTS, encode

from analyses.dla import dla, logit_lens
from analyses.errors import BadInput


def _ids(lm):
    tok = lm.tokenizer
    return encode(lm)[0].tolist(), tok.convert_tokens_to_ids("Mary"), tok.convert_tokens_to_ids("John")


def _granularities(name):
    return ["layer"] if VARIANTS[name][0] == "mamba" else ["layer", "head", "neuron"]


@pytest.mark.parametrize("name", list(VARIANTS))
def test_rows_sum_to_logit_and_logit_difference(name, loaded):
    lm = loaded(name)
    ids, mary, john = _ids(lm)
    with torch.no_grad():
        logits = lm.hooked.run(torch.tensor([ids])).logits[0, -1]
    for by in _granularities(name):
        for distractor in (None, john):
            table = dla(lm.hooked, ids, mary, distractor, by=by)
            expected = float(logits[mary] - (logits[john] if distractor is not None else 0))
            assert table.meta["logit"] == pytest.approx(expected, abs=1e-6)
            total = sum(table.values)
            assert abs(total - expected) <= 1e-4 * max(1.0, abs(expected)), (by, distractor)


@pytest.mark.parametrize("name", TRANSFORMERS)
def test_finer_rows_add_up_to_coarser_rows(name, loaded):
    lm = loaded(name)
    ids, mary, john = _ids(lm)
    layer = dla(lm.hooked, ids, mary, john, by="layer")
    head = dla(lm.hooked, ids, mary, john, by="head")
    neuron = dla(lm.hooked, ids, mary, john, by="neuron")
    lv, hv, nv = (dict(zip(t.labels, t.values)) for t in (layer, head, neuron))
    for l_ in range(lm.hooked.shape.n_layers):
        heads = sum(v for k, v in hv.items() if k.startswith(f"L{l_}H"))
        neurons = sum(v for k, v in nv.items() if k.startswith(f"L{l_}N"))
        assert heads == pytest.approx(lv[f"L{l_}ATTN"], abs=1e-5)
        assert neurons == pytest.approx(lv[f"L{l_}MLP"], abs=1e-5)
    assert lv["bias"] == pytest.approx(hv["bias"]) == pytest.approx(nv["bias"])
    assert len(neuron.labels) == 1 + ("pos_embed" in lv) + lm.hooked.shape.n_layers * (
        lm.hooked.shape.n_heads + lm.hooked.shape.d_mlp
    ) + 1


def test_gpt2_values_by_hand(loaded, hf_model):
    """Per-layer DLA on GPT-2 from HF's own modules, written out independently of our code."""
    lm = loaded("gpt2")
    ids, mary, john = _ids(lm)
    hf = hf_model("gpt2")
    t = hf.transformer
    x = torch.tensor([ids])
    n = len(ids)
    causal = torch.full((n, n), torch.finfo(torch.float32).min).triu(1)[None, None]  # HF builds it per model
    with torch.no_grad():
        embed = t.wte(x)
        resid = embed + t.wpe(torch.arange(len(ids)))[None]
        parts = {"embed": embed, "pos_embed": resid - embed}
        for i, block in enumerate(t.h):
            attn = block.attn(block.ln_1(resid), attention_mask=causal)[0]
            parts[f"L{i}ATTN"] = attn - block.attn.c_proj.bias
            resid = resid + attn
            mlp = block.mlp(block.ln_2(resid))
            parts[f"L{i}MLP"] = mlp - block.mlp.c_proj.bias
            resid = resid + mlp
        final = resid[0, -1]
        centred = final - final.mean()
        scale = (centred.pow(2).mean() + t.ln_f.eps).sqrt()
        d = hf.lm_head.weight[mary] - hf.lm_head.weight[john]
        expected = {
            k: float(((v[0, -1] - v[0, -1].mean()) / scale) @ (t.ln_f.weight * d)) for k, v in parts.items()
        }
    table = dla(lm.hooked, ids, mary, john)
    got = dict(zip(table.labels, table.values))
    for k, v in expected.items():
        assert got[k] == pytest.approx(v, abs=1e-5), k
    # With non-zero biases (jittered weights) the bias row is real and carries b_O, b_out, b_lnf.
    assert abs(got["bias"]) > 1e-3


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa", "mamba"])
def test_logit_lens_ends_at_the_model_output(name, loaded):
    lm = loaded(name)
    ids, mary, john = _ids(lm)
    table = logit_lens(lm.hooked, ids, mary, john, decode=lambda i: lm.tokenizer.decode([i]))
    logits = lm.hooked.run(torch.tensor([ids])).logits[0, -1]
    assert table.labels[0] == "embed" and len(table.labels) == lm.hooked.shape.n_layers + 1
    assert table.values[-1] == pytest.approx(float(logits[mary] - logits[john]), abs=1e-5)
    assert table.columns["top_token"][-1] == lm.tokenizer.decode([int(logits.argmax())])
    assert table.columns["answer_rank"][-1] == int((logits > logits[mary]).sum())


def test_dla_at_an_earlier_position_and_bad_arguments(loaded):
    lm = loaded("gpt2")
    ids, mary, john = _ids(lm)
    logits = lm.hooked.run(torch.tensor([ids])).logits[0, 3]
    table = dla(lm.hooked, ids, mary, john, pos=3)
    assert sum(table.values) == pytest.approx(float(logits[mary] - logits[john]), abs=1e-4)
    with pytest.raises(BadInput, match="outside"):
        dla(lm.hooked, ids, mary, pos=len(ids))
    with pytest.raises(BadInput, match="--by"):
        dla(lm.hooked, ids, mary, by="token")
    with pytest.raises(BadInput, match="Mamba"):
        dla(loaded("mamba").hooked, ids, mary, by="head")

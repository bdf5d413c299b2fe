"""The hooked forward pass against the plain HF forward, for every family and variant."""

from __future__ import annotations

import pytest
import torch
from conftest import CORRUPT, TRANSFORMERS, VARIANTS, encode

from analyses.errors import BadInput
from analyses.models import Intervention

ALL = list(VARIANTS)


def _hf_logits(hf_model, name, ids, mask=None):
    with torch.no_grad():
        return hf_model(name)(ids, attention_mask=mask).logits


@pytest.mark.parametrize("name", ALL)
def test_unhooked_run_matches_hf(name, loaded, hf_model):
    lm = loaded(name)
    ids = encode(lm)
    ref = _hf_logits(hf_model, name, ids)
    plain = lm.hooked.run(ids).logits
    assert (plain - ref).abs().max() < 1e-5
    # Capturing everything switches attention to the explicit (eager) path: still the same.
    everything = lm.hooked.run(ids, capture=lambda n: True)
    assert (everything.logits - ref).abs().max() < 1e-5
    assert set(everything.cache) == set(lm.hooked.hook_names())


@pytest.mark.parametrize("name", ALL)
def test_right_padded_batch_matches_hf(name, loaded, hf_model):
    lm = loaded(name)
    long, short = encode(lm)[0], encode(lm, "Then Mary went to the park")[0]
    ids = torch.full((2, len(long)), lm.tokenizer.pad_token_id)
    ids[0], ids[1, : len(short)] = long, short
    mask = (torch.arange(len(long))[None] < torch.tensor([[len(long)], [len(short)]])).long()
    ours = lm.hooked.run(ids, attention_mask=mask).logits
    ref = _hf_logits(hf_model, name, ids, mask)
    assert (ours[0] - ref[0]).abs().max() < 1e-5
    assert (ours[1, : len(short)] - ref[1, : len(short)]).abs().max() < 1e-5


@pytest.mark.parametrize("name", ALL)
def test_logits_at_chosen_positions_and_tokens_are_those_of_the_full_run(name, loaded):
    """``logit_pos`` (the last block then runs its queries at that position only, keys and values
    everywhere) and ``vocab`` (only those columns of the unembedding) change no value; with the
    last block hooked it runs in full."""
    lm = loaded(name)
    long, short = encode(lm)[0], encode(lm, "Then Mary went to the park")[0]
    ids = torch.full((2, len(long)), lm.tokenizer.pad_token_id)
    ids[0], ids[1, : len(short)] = long, short
    mask = (torch.arange(len(long))[None] < torch.tensor([[len(long)], [len(short)]])).long()
    full = lm.hooked.run(ids, attention_mask=mask).logits
    pos, vocab = torch.tensor([len(long) - 1, len(short) - 1]), torch.tensor([7, 3, 5])
    want = full[torch.arange(2), pos][:, None][..., vocab]
    got = lm.hooked.run(ids, attention_mask=mask, logit_pos=pos, vocab=vocab)
    assert got.logits.shape == (2, 1, 3) and (got.logits - want).abs().max() < 1e-5
    last = f"blocks.{lm.hooked.shape.n_layers - 1}.hook_resid_pre"
    hooked = lm.hooked.run(ids, attention_mask=mask, logit_pos=pos, vocab=vocab, capture=[last])
    assert (hooked.logits - want).abs().max() < 1e-5 and hooked.cache[last].shape[1] == len(long)


@pytest.mark.parametrize("name", ALL)
def test_start_at_layer_equals_full_run(name, loaded):
    hm = loaded(name).hooked
    ids = encode(loaded(name))
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(hm.shape.n_layers)]
    full = hm.run(ids, capture=names)
    for layer in range(hm.shape.n_layers):
        resumed = hm.run(ids, start_at_layer=layer, resid=full.cache[names[layer]])
        assert (resumed.logits - full.logits).abs().max() < 1e-6
    stopped = hm.run(ids, stop_at_layer=1)
    assert stopped.logits is None
    assert torch.equal(stopped.resid, full.cache[names[1]])


@pytest.mark.parametrize("name", ALL)
def test_patching_every_position_restores_clean(name, loaded):
    """Denoising: a clean activation written at every position of the corrupted run gives back
    the clean logits, at any layer of the residual stream and for all sublayer outputs at once."""
    lm = loaded(name)
    hm = lm.hooked
    clean, corrupt = encode(lm), encode(lm, CORRUPT)
    assert clean.shape == corrupt.shape
    is_mamba = hm.shape.family == "mamba"
    writers = ["mixer.hook_out_proj"] if is_mamba else ["hook_attn_out", "hook_mlp_out"]
    sites = [f"blocks.{layer}.{w}" for layer in range(hm.shape.n_layers) for w in writers]
    resid = [f"blocks.{layer}.hook_resid_pre" for layer in range(hm.shape.n_layers)]
    run = hm.run(clean, capture=sites + resid)
    corrupted = hm.run(corrupt).logits
    assert (corrupted - run.logits).abs().max() > 1e-3  # the corruption matters
    for name_ in resid:
        patched = hm.run(corrupt, interventions=[Intervention(name_, value=run.cache[name_])])
        assert (patched.logits - run.logits).abs().max() < 1e-5
    # Sublayer outputs alone do not carry the embeddings: patch the embedding too.
    embed = hm.run(clean, capture=["hook_embed"] + (["hook_pos_embed"] if hm.shape.has_pos_embed else []))
    ivs = [Intervention(n, value=run.cache[n]) for n in sites]
    ivs += [Intervention(n, value=t) for n, t in embed.cache.items()]
    assert (hm.run(corrupt, interventions=ivs).logits - run.logits).abs().max() < 1e-5


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa", "mamba"])
def test_gradients_match_autograd_through_hf(name, loaded, hf_model):
    """d logit / d hook_embed equals the gradient HF computes w.r.t. inputs_embeds."""
    lm = loaded(name)
    ids = encode(lm)
    answer = lm.tokenizer.convert_tokens_to_ids("Mary")
    metric = lambda logits: logits[0, -1, answer]  # noqa: E731
    value, grads, _ = lm.hooked.gradients(ids, metric, ["hook_embed", "blocks.1.hook_resid_pre"])
    hf = hf_model(name)
    embeds = hf.get_input_embeddings()(ids).detach().requires_grad_(True)
    ref_value = hf(inputs_embeds=embeds).logits[0, -1, answer]
    ref_value.backward()
    assert abs(float(value) - float(ref_value.detach())) < 1e-5
    assert (grads["hook_embed"] - embeds.grad).abs().max() < 1e-5
    # A later tap does not cut the graph for the earlier one, and is itself non-trivial.
    assert grads["blocks.1.hook_resid_pre"].abs().sum() > 0


@pytest.mark.parametrize("name", TRANSFORMERS)
def test_zeroing_a_head_removes_exactly_its_output(name, loaded):
    lm = loaded(name)
    hm = lm.hooked
    ids = encode(lm)
    site, z = "blocks.1.hook_attn_out", "blocks.1.attn.hook_z"
    base = hm.run(ids, capture=[site, z])
    ablated = hm.run(ids, capture=[site], interventions=[Intervention(z, op="zero", head=2)])
    w_o = hm.writer_weights(1)[0]  # [heads, d_head, d_model]
    expected = base.cache[site] - base.cache[z][0, :, 2] @ w_o[2]
    assert (ablated.cache[site] - expected).abs().max() < 1e-5


@pytest.mark.parametrize("name", TRANSFORMERS)
def test_pattern_hooks_are_consistent(name, loaded):
    lm = loaded(name)
    hm = lm.hooked
    ids = encode(lm)
    c = hm.run(ids, capture=["blocks.0.attn.hook_pattern", "blocks.0.attn.hook_v", "blocks.0.attn.hook_z"]).cache
    pattern, v, z = c["blocks.0.attn.hook_pattern"], c["blocks.0.attn.hook_v"], c["blocks.0.attn.hook_z"]
    assert torch.allclose(pattern.sum(-1), torch.ones(()), atol=1e-6)
    assert torch.all(pattern.triu(1) == 0)  # causal
    v = v.repeat_interleave(hm.shape.n_heads // hm.shape.n_kv_heads, dim=2)
    assert torch.allclose(torch.einsum("bhqk,bkhd->bqhd", pattern, v), z, atol=1e-6)
    if name == "mistral-window":
        assert torch.all(pattern[0, :, 6, :3] == 0)  # keys 4 or more back fall outside the window


def test_mamba_internals_recompose(loaded):
    """The captured internals satisfy the model's equations: y = C.h + D u and the SSM input is
    SiLU(conv); patching the conv output everywhere restores the clean run."""
    lm = loaded("mamba")
    hm = lm.hooked
    ids = encode(lm)
    p = "blocks.1.mixer."
    c = hm.run(ids, capture=[p + n for n in ("hook_conv", "hook_ssm_in", "hook_h", "hook_C", "hook_y")]).cache
    mixer = hm.model.backbone.layers[1].mixer
    assert torch.allclose(c[p + "hook_ssm_in"], torch.nn.functional.silu(c[p + "hook_conv"]))
    y = torch.einsum("bsen,bsn->bse", c[p + "hook_h"], c[p + "hook_C"]) + c[p + "hook_ssm_in"] * mixer.D
    assert torch.allclose(c[p + "hook_y"], y, atol=1e-5)
    assert c[p + "hook_h"].shape == (1, ids.shape[1], hm.shape.d_inner, hm.shape.d_state)
    clean, corrupt = ids, encode(lm, CORRUPT)
    run = hm.run(clean, capture=[p + "hook_conv", "blocks.0.hook_resid_post"])
    ivs = [Intervention("blocks.1.hook_resid_pre", value=run.cache["blocks.0.hook_resid_post"])]
    patched = hm.run(corrupt, interventions=ivs)
    assert (patched.logits - run.logits).abs().max() < 1e-5
    # hook_layer_in feeds only its own layer: patching it at the last layer changes the output
    # but leaves that layer's residual input as it was.
    ivs = [Intervention("blocks.1.hook_layer_in", value=run.cache["blocks.0.hook_resid_post"])]
    edited = hm.run(corrupt, interventions=ivs, capture=["blocks.1.hook_resid_pre"])
    plain = hm.run(corrupt, capture=["blocks.1.hook_resid_pre"])
    assert torch.equal(edited.cache["blocks.1.hook_resid_pre"], plain.cache["blocks.1.hook_resid_pre"])
    assert (edited.logits - plain.logits).abs().max() > 1e-4


def test_hook_name_sets_follow_the_architecture(loaded):
    gpt2, neox, neox_seq, llama = (loaded(n).hooked.hook_names() for n in ("gpt2", "neox", "neox-seq", "llama-gqa"))
    assert "blocks.0.hook_resid_mid" in gpt2 and "hook_pos_embed" in gpt2
    assert "blocks.0.hook_resid_mid" not in neox  # parallel attention + MLP
    assert "blocks.0.hook_resid_mid" in neox_seq
    assert "blocks.0.attn.hook_rot_q" in llama and "blocks.0.mlp.hook_pre_linear" in llama
    mamba = loaded("mamba").hooked.hook_names()
    assert not any("attn" in n or "mlp" in n for n in mamba)
    assert "blocks.1.mixer.hook_ssm_in" in mamba


def test_gqa_key_value_heads(loaded):
    lm = loaded("llama-gqa")
    c = lm.hooked.run(encode(lm), capture=["blocks.0.attn.hook_k", "blocks.0.attn.hook_q"]).cache
    assert c["blocks.0.attn.hook_q"].shape[2] == 4 and c["blocks.0.attn.hook_k"].shape[2] == 2


def test_unknown_hook_name_is_a_clear_error(loaded):
    lm = loaded("neox")
    with pytest.raises(BadInput, match="blocks.0.hook_resid_mid"):
        lm.hooked.run(encode(lm), capture=["blocks.0.hook_resid_mid"])


@pytest.mark.parametrize("name", ["gpt2", "neox", "llama-gqa", "mamba"])
def test_bfloat16_runs_match_hf_bfloat16(name, checkpoints):
    """Reduced precision follows HF's own casts (Mamba keeps an fp32 residual): agreement to bf16
    rounding, and DLA (computed in fp32 from bf16 activations) still sums to the logit."""
    from transformers import AutoModelForCausalLM

    from analyses.dla import dla
    from sessions.loading import load

    lm = load(str(checkpoints[name]), device="cpu", dtype="bfloat16")
    kw = {} if VARIANTS[name][0] == "mamba" else {"attn_implementation": "eager"}
    hf = AutoModelForCausalLM.from_pretrained(checkpoints[name], dtype=torch.bfloat16, **kw).eval()
    ids = encode(lm)
    with torch.no_grad():
        ref = hf(ids).logits.float()
    ours = lm.hooked.run(ids).logits.float()
    assert ours.dtype == torch.float32 and (ours - ref).abs().max() <= 0.02 * ref.abs().max()
    tok = lm.tokenizer
    table = dla(lm.hooked, ids[0].tolist(), tok.convert_tokens_to_ids("Mary"), tok.convert_tokens_to_ids("John"))
    assert sum(table.values) == pytest.approx(table.meta["logit"], abs=0.02 * max(1, abs(table.meta["logit"])))


@pytest.mark.parametrize("name", TRANSFORMERS)
def test_split_qkv_inputs_reproduce_the_run_and_reach_one_head(name, loaded):
    """With per-head q/k/v inputs switched on the run is unchanged; editing one head's key input
    changes only that (key/value) head's keys."""
    lm = loaded(name)
    hm = lm.hooked
    ids = encode(lm)
    names = [f"blocks.1.hook_{x}_input" for x in "qkv"] + ["blocks.1.ln1.hook_scale", "blocks.1.hook_mlp_in"]
    split = hm.run(ids, capture=names + ["blocks.1.attn.hook_k"])
    plain = hm.run(ids, capture=["blocks.1.attn.hook_k", "blocks.1.ln1.hook_scale"])
    assert (split.logits - plain.logits).abs().max() < 1e-5
    assert split.cache["blocks.1.hook_k_input"].shape[2] == hm.shape.n_kv_heads
    assert split.cache["blocks.1.ln1.hook_scale"].shape == plain.cache["blocks.1.ln1.hook_scale"].shape
    edited = hm.run(ids, capture=["blocks.1.attn.hook_k"], interventions=[
        Intervention("blocks.1.hook_k_input", op="add", value=torch.randn(hm.shape.d_model), head=1)])
    delta = (edited.cache["blocks.1.attn.hook_k"] - plain.cache["blocks.1.attn.hook_k"]).abs().amax(dim=(0, 1, 3))
    assert delta[1] > 1e-3 and all(delta[h] < 1e-6 for h in range(len(delta)) if h != 1)


@pytest.mark.parametrize("name", TRANSFORMERS)
def test_gradients_at_per_head_inputs_equal_those_through_per_head_copies(name, loaded):
    """Differentiated only, the per-head q/k/v inputs take their gradient from the head's output
    gradient through the norm's Jacobian; capturing them too runs one normalised copy per head:
    both gradients agree, and so do the values."""
    lm = loaded(name)
    hm = lm.hooked
    ids = torch.cat([encode(lm), encode(lm, CORRUPT)])
    names = [f"blocks.{layer}.hook_{x}_input" for layer in range(hm.shape.n_layers) for x in "qkv"]
    names.append("blocks.0.hook_mlp_in")

    def metric(logits):
        return logits[:, -1, 3].sum() - logits[:, -1, 5].pow(2).sum()

    value, fast, _ = hm.gradients(ids, metric, names)
    ref_value, ref, _ = hm.gradients(ids, metric, names, capture=names)
    assert abs(float(value - ref_value)) < 1e-5
    for n in names:
        assert fast[n].shape == ref[n].shape
        assert (fast[n] - ref[n]).abs().max() <= 1e-5 * max(1.0, float(ref[n].abs().max())), n


@pytest.mark.parametrize("name", TRANSFORMERS)
def test_a_stopped_run_at_chosen_positions_is_that_slice_of_the_stream(name, loaded):
    """``stop_at_layer`` with ``logit_pos``: the last block run computes one position per row (what
    a sweep of a position-local site needs) and its residual equals the full run's there."""
    lm = loaded(name)
    hm = lm.hooked
    ids = torch.cat([encode(lm), encode(lm, CORRUPT)])
    full = hm.run(ids, capture=["blocks.1.hook_resid_pre"])
    pos = torch.tensor([3, ids.shape[1] - 1])
    got = hm.run(ids, stop_at_layer=1, logit_pos=pos).resid
    assert got.shape == (2, 1, hm.shape.d_model)
    assert (got[:, 0] - full.cache["blocks.1.hook_resid_pre"][torch.arange(2), pos]).abs().max() < 1e-5


@pytest.mark.parametrize("name", ["gpt2", "neox", "llama-gqa"])
def test_block_accessors_read_what_the_hf_modules_hold(loaded, name):
    """What analyses read of a block comes from the adapter (no HF module above analyses/models/):
    MLP input columns, the MLP norm, q/k/v weights and W_U rows equal the HF modules' own."""
    m = loaded(name).hooked
    ln1, attn, ln2, mlp = m._parts(1)
    proj = m._mlp_in_proj(mlp)
    w_in = proj.weight if m.conv1d else proj.weight.T  # [d_model, d_mlp]
    assert torch.equal(m.mlp_in_columns(1, [3, 0]), w_in[:, [3, 0]])
    assert torch.equal(m.mlp_norm_params(1)[0], ln2.weight.float() + m.shape.norm_offset)
    assert torch.equal(m.attn_norm_params(1)[0], ln1.weight.float() + m.shape.norm_offset)
    qkv = m.qkv_weights(1)
    assert [w.shape for w, _ in qkv] == [(m.shape.d_model, n, m.shape.d_head)
                                         for n in (m.shape.n_heads, m.shape.n_kv_heads, m.shape.n_kv_heads)]
    assert torch.equal(qkv[2][0], m.value_weights(1)[0])
    assert torch.equal(m.unembed_rows(2, 5), m.unembed_module().weight[2:5])
    before = m.writer_weights(1)[0]
    with m.head_out_weight(1, 1) as (weight, block):
        assert torch.equal(block, before[1])
        saved = weight.detach().clone()
        with torch.no_grad():
            block.mul_(2)
        after = m.writer_weights(1)[0]
        assert torch.equal(after[1], 2 * before[1]) and torch.equal(after[0], before[0])
        with torch.no_grad():
            weight.copy_(saved)
    assert torch.equal(m.writer_weights(1)[0], before)


def test_mamba_shape_names_its_conv_width(loaded):
    """Conv-slice analyses read the kernel width from the shape, not from the HF config."""
    m = loaded("mamba").hooked
    assert m.shape.d_conv == m.blocks()[0].mixer.conv1d.weight.shape[-1] > 1

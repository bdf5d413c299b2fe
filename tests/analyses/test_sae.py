"""SAEs: the formulas against numpy for each architecture, the SAELens-layout loader (and its clear
errors), the error-term invariant on real models of every family, feature DLA completeness, and
the streamed corpus statistics against a direct computation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from analyses.errors import BadInput
from analyses.sae.model import SAE, load_sae, save_sae
from tests.conftest import PROMPT, encode


def _write(folder, cfg, tensors):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cfg.json").write_text(json.dumps(cfg))
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / "sae_weights.safetensors"))
    return folder


def _weights(d_in=8, d_sae=16, seed=0, threshold=False):
    g = torch.Generator().manual_seed(seed)
    t = {"W_enc": torch.randn(d_in, d_sae, generator=g), "b_enc": torch.randn(d_sae, generator=g) * 0.3,
         "W_dec": torch.randn(d_sae, d_in, generator=g), "b_dec": torch.randn(d_in, generator=g) * 0.3}
    if threshold:
        t["threshold"] = torch.rand(d_sae, generator=g)
    return t


def _numpy_features(t, x, arch, k=None, b_dec_in=False):
    W_enc, b_enc, b_dec = (t[n].double().numpy() for n in ("W_enc", "b_enc", "b_dec"))
    pre = ((x - b_dec) if b_dec_in else x) @ W_enc + b_enc
    if arch == "relu":
        return np.maximum(pre, 0)
    if arch == "jumprelu":
        return np.where(pre > t["threshold"].double().numpy(), np.maximum(pre, 0), 0.0)
    out = np.zeros_like(pre)
    for r in range(pre.shape[0]):
        top = np.argsort(-pre[r])[:k]
        out[r, top] = np.maximum(pre[r, top], 0)
    return out


@pytest.mark.parametrize("arch,cfg", [
    ("relu", {"architecture": "standard"}),
    ("relu", {"activation_fn_str": "relu", "apply_b_dec_to_input": True}),
    ("jumprelu", {"architecture": "jumprelu"}),
    ("topk", {"architecture": "topk", "k": 3}),
    ("topk", {"architecture": "standard", "activation_fn_str": "topk", "activation_fn_kwargs": {"k": 4}}),
])
def test_encode_and_decode_match_the_formulas_in_numpy(tmp_path, arch, cfg):
    t = _weights(threshold=arch == "jumprelu")
    folder = _write(tmp_path / "sae", {"d_in": 8, "d_sae": 16, "hook_name": "blocks.0.hook_resid_pre", **cfg}, t)
    sae = load_sae(folder)
    assert sae.architecture == arch
    x = torch.randn(20, 8, generator=torch.Generator().manual_seed(1))
    k = cfg.get("k", (cfg.get("activation_fn_kwargs") or {}).get("k"))
    want = _numpy_features(t, x.double().numpy(), arch, k, cfg.get("apply_b_dec_to_input", False))
    f = sae.encode(x)
    np.testing.assert_allclose(f.double().numpy(), want, rtol=1e-5, atol=1e-5)
    recon = want @ t["W_dec"].double().numpy() + t["b_dec"].double().numpy()
    np.testing.assert_allclose(sae.decode(f).double().numpy(), recon, rtol=1e-5, atol=1e-4)
    if arch == "topk":
        assert int((f > 0).sum(1).max()) <= k


def test_log_threshold_is_read_as_its_exponential(tmp_path):
    t = _weights(threshold=True)
    t["log_threshold"] = t.pop("threshold").log()
    sae = load_sae(_write(tmp_path / "s", {"architecture": "jumprelu", "hook_name": "h"}, t))
    assert torch.allclose(sae.threshold, t["log_threshold"].exp())


@pytest.mark.parametrize("cfg,tensors,message", [
    ({"architecture": "gated", "hook_name": "h"}, None, "architecture 'gated' is not supported"),
    ({"architecture": "standard", "hook_name": "h", "normalize_activations": "expected_average_only_in"}, None,
     "normalize_activations"),
    ({"architecture": "jumprelu", "hook_name": "h"}, None, "needs a threshold"),
    ({"architecture": "topk", "hook_name": "h"}, None, "needs a whole k"),
    ({"architecture": "standard"}, None, "no hook_name"),
    ({"architecture": "standard", "hook_name": "h", "d_sae": 99}, None, "cfg.json says d_sae 99"),
    ({"architecture": "standard", "hook_name": "h"}, {"W_enc": torch.zeros(8, 16)}, "lacks b_enc, W_dec, b_dec"),
    ({"architecture": "standard", "hook_name": "h"}, {**_weights(), "W_dec": torch.zeros(16, 7)}, "W_dec has shape"),
])
def test_a_bad_sae_folder_is_a_clear_error(tmp_path, cfg, tensors, message):
    folder = _write(tmp_path / "bad", cfg, _weights() if tensors is None else tensors)
    with pytest.raises(BadInput, match=message):
        load_sae(folder)


def test_missing_files_and_broken_json_are_clear_errors(tmp_path):
    with pytest.raises(BadInput, match="no such folder"):
        load_sae(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInput, match="no cfg.json"):
        load_sae(tmp_path / "empty")
    folder = _write(tmp_path / "broken", {}, _weights())
    (folder / "cfg.json").write_text("{not json")
    with pytest.raises(BadInput, match="not JSON"):
        load_sae(folder)
    (folder / "cfg.json").write_text("{}")
    (folder / "sae_weights.safetensors").write_bytes(b"garbage")
    with pytest.raises(BadInput, match="cannot be read"):
        load_sae(folder)


def test_save_then_load_gives_the_same_sae(tmp_path):
    t = _weights(threshold=True)
    sae = SAE(**{n: t[n] for n in ("W_enc", "b_enc", "W_dec", "b_dec")}, hook_name="blocks.1.hook_resid_pre",
              architecture="jumprelu", threshold=t["threshold"])
    back = load_sae(save_sae(sae, tmp_path / "s"))
    x = torch.randn(5, 8)
    assert torch.equal(back.encode(x), sae.encode(x)) and back.hook_name == sae.hook_name


def _model_sae(lm, hook, seed=0, arch="relu"):
    d = lm.hooked.shape.d_model
    t = _weights(d, 4 * d, seed)
    return SAE(t["W_enc"] / d ** 0.5, t["b_enc"], t["W_dec"], t["b_dec"], hook, arch, k=5 if arch == "topk" else None)


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa", "mamba"])
@pytest.mark.parametrize("arch", ["relu", "topk"])
def test_an_sae_spliced_in_with_no_edit_changes_no_logit(loaded, name, arch):
    from analyses.sae.intervene import splice

    lm = loaded(name)
    ids = encode(lm)
    plain = lm.hooked.run(ids).logits
    sae = _model_sae(lm, "blocks.1.hook_resid_pre", arch=arch)
    spliced = lm.hooked.run(ids, interventions=[splice(sae)]).logits
    assert torch.equal(spliced, plain)  # bit for bit: the error term is kept
    # A feature set to the value it has already changes nothing either; ablating an active one does.
    f = sae.encode(lm.hooked.run(ids, capture=[sae.hook_name]).cache[sae.hook_name])
    feature = int(f[0, -1].argmax())
    ablated = lm.hooked.run(ids, interventions=[splice(sae, {feature: 0.0}, pos=-1)]).logits
    assert not torch.equal(ablated[0, -1], plain[0, -1])
    assert torch.equal(ablated[0, :-1], plain[0, :-1])  # only the last position was edited


def test_an_edit_changes_the_activation_by_the_features_decoder_rows(loaded):
    from analyses.sae.intervene import splice

    lm = loaded("gpt2")
    ids = encode(lm)
    sae = _model_sae(lm, "blocks.1.hook_resid_pre")
    x = lm.hooked.run(ids, capture=[sae.hook_name]).cache[sae.hook_name]
    f = sae.encode(x)
    edited = splice(sae, {3: 2.5, 7: 0.0}).fn(x)
    want = x + (2.5 - f[..., 3:4]) * sae.W_dec[3] + (0.0 - f[..., 7:8]) * sae.W_dec[7]
    assert torch.allclose(edited, want, atol=1e-5)


def test_a_feature_edit_is_a_standing_edit_undone_after_the_run(loaded, tmp_path):
    from analyses.edits import edited

    lm = loaded("gpt2")
    ids = encode(lm)
    folder = save_sae(_model_sae(lm, "blocks.1.hook_resid_pre"), tmp_path / "sae")
    plain = lm.hooked.run(ids).logits
    with edited(lm.hooked, [f"sae:{folder}:0,1,2,3,4,5=0"]) as stack:
        assert stack.texts() == [f"sae:{folder}:0,1,2,3,4,5=0"]
        changed = lm.hooked.run(ids).logits
    assert not torch.equal(changed, plain)
    assert torch.equal(lm.hooked.run(ids).logits, plain) and lm.hooked.standing == ()
    with pytest.raises(BadInput, match="no feature 9999"):
        with edited(lm.hooked, [f"sae:{folder}:9999=0"]):
            pass


def test_feature_dla_rows_sum_to_the_hooks_direct_share(loaded):
    from analyses.dla import _direction
    from analyses.sae.features import feature_dla

    lm = loaded("gpt2")
    ids = encode(lm)
    hook = f"blocks.{lm.hooked.shape.n_layers - 1}.hook_resid_post"
    sae = _model_sae(lm, hook)
    a, b = lm.tokenizer(" Mary")["input_ids"][-1], lm.tokenizer(" John")["input_ids"][-1]
    table = feature_dla(lm.hooked, ids, sae, a, b, -1, top=3)
    assert abs(sum(table.values) - table.meta["hook_dla"]) < 1e-4
    assert table.labels[-2:] == ["b_dec", "error"]
    # The last layer's resid_post is the whole residual: its direct share plus the constant is the logit diff.
    _, _, const = _direction(lm.hooked, a, b)
    assert abs(table.meta["hook_dla"] + const - table.meta["logit"]) < 1e-3


def test_corpus_stats_streamed_in_batches_match_one_pass_over_every_text(loaded):
    from analyses.corpus import CorpusLoop, corpus_batches
    from analyses.sae.corpus import corpus_stats

    lm = loaded("gpt2")
    sae = _model_sae(lm, "blocks.0.hook_resid_post")
    texts = [PROMPT, "Alice went to the park", "John gave a book", PROMPT + " Mary", "the store"]
    def loop(batch):
        return CorpusLoop(corpus_batches(lm.tokenizer, texts, batch, 64), len(texts))
    small, whole = corpus_stats(lm.hooked, sae, loop(2), k=2), corpus_stats(lm.hooked, sae, loop(5), k=2)
    assert torch.equal(small.active, whole.active) and small.tokens == whole.tokens
    assert torch.allclose(small.top_values, whole.top_values, atol=1e-5)
    # Direct: every text alone.
    maxes = []
    for t in texts:
        x = lm.hooked.run(torch.tensor([lm.tokenizer(t)["input_ids"]]), capture=[sae.hook_name]).cache[sae.hook_name]
        maxes.append(sae.encode(x)[0].amax(0))
    direct = torch.stack(maxes).T.topk(2, dim=1).values.clamp(min=0)
    assert torch.allclose(small.top_values, direct, atol=1e-5)


def test_the_shipped_ioi_sae_loads_and_reconstructs_the_toy(tmp_path):
    from analyses.sae.features import SHIPPED_SAES
    from analyses.sae.train import fve, held_out
    from sessions.loading import load

    sae = load_sae(SHIPPED_SAES / "ioi")
    lm = load("toy:ioi", device="cpu")
    assert sae.hook_name in lm.hooked.hook_names() and sae.architecture == "topk"
    assert fve(sae, held_out(lm.hooked, lm.tokenizer, sae.hook_name, "ioi", 64)) > 0.95


def test_train_sae_learns_a_reconstruction_and_refuses_bad_options():
    from analyses.sae.train import SaeRecipe, fve, train_sae

    torch.manual_seed(0)
    basis = torch.randn(12, 6)
    codes = torch.relu(torch.randn(2000, 12) - 1.0)
    acts = codes @ basis
    for recipe in (SaeRecipe(d_sae=24, steps=300, l1=1e-3), SaeRecipe(d_sae=24, sparsity="topk", k=4, steps=300)):
        sae = train_sae(acts, "h", recipe)
        assert fve(sae, acts) > 0.8
    with pytest.raises(BadInput, match="--k"):
        train_sae(acts, "h", SaeRecipe(d_sae=4, sparsity="topk", k=9))


@pytest.mark.parametrize("arch", ["relu", "jumprelu", "topk"])
def test_one_features_scan_reads_what_the_full_encoder_gives(loaded, arch):
    from analyses.sae.corpus import feature_reader

    lm = loaded("gpt2")
    ids = encode(lm)
    sae = _model_sae(lm, "blocks.0.hook_resid_post", arch=arch)
    if arch == "jumprelu":
        sae.threshold = torch.full((sae.d_sae,), 0.2)
    x = lm.hooked.run(ids, capture=[sae.hook_name]).cache[sae.hook_name]
    full = sae.encode(x)
    for feature in (0, 5, sae.d_sae - 1):
        assert torch.allclose(feature_reader(lm.hooked, sae, feature)(ids), full[..., feature], atol=1e-5)
    with pytest.raises(BadInput, match="--feature"):
        feature_reader(lm.hooked, sae, sae.d_sae)

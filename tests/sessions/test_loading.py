"""Loading model specs: checkpoints, toys, the hub cache, dispatched models, and clear refusals."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import encode

from analyses.dla import dla
from analyses.errors import BadInput
from sessions.loading import fingerprint, load


def test_toy_builds_once_and_loads_through_the_checkpoint_path():
    a = load("toy:random-neox", device="cpu")
    b = load("toy:random-neox", device="cpu")
    assert a.info["model_type"] == "gpt_neox" and a.info["path"] == b.info["path"]
    assert a.info["revision"] == b.info["revision"].strip() and a.info["revision"].startswith("sha256:")
    assert torch.equal(a.hooked.run(encode(a)).logits, b.hooked.run(encode(b)).logits)  # deterministic


def test_unknown_model_and_toy(tmp_path):
    with pytest.raises(BadInput, match="unknown model 'nobody/no-such-model'.*never downloads"):
        load("nobody/no-such-model", device="cpu")
    with pytest.raises(BadInput, match="unknown toy 'nope'.*toy:ioi"):
        load("toy:nope", device="cpu")
    with pytest.raises(BadInput, match="no such directory"):
        load(str(tmp_path / "missing"), device="cpu")
    with pytest.raises(BadInput, match="no config.json"):
        load(str(tmp_path), device="cpu")


def test_unsupported_architecture_lists_supported(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    with pytest.raises(BadInput, match="unsupported architecture 'bert'; supported: gpt2, gpt_neox, llama"):
        load(str(tmp_path), device="cpu")


def test_bad_device_and_dtype(checkpoints):
    with pytest.raises(BadInput, match="--dtype"):
        load(str(checkpoints["gpt2"]), device="cpu", dtype="int8")
    if not torch.cuda.is_available():
        with pytest.raises(BadInput, match="no CUDA device"):
            load(str(checkpoints["gpt2"]), device="cuda")


def test_hub_id_loads_from_the_local_cache(checkpoints, tmp_path, monkeypatch):
    """A hub id resolves to its cached snapshot, with the commit as the revision, and no network."""
    import os
    import shutil

    hub = tmp_path / "hub"
    repo = hub / "models--someone--tiny-gpt2"
    snap = repo / "snapshots" / ("a" * 40)
    shutil.copytree(checkpoints["gpt2"], snap)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(hub))
    lm = load("someone/tiny-gpt2", device="cpu")
    assert lm.info["revision"] == "a" * 40 and os.path.samefile(lm.info["path"], snap)


def test_fingerprint_changes_with_the_weights(checkpoints, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(checkpoints["gpt2"], copy)
    assert fingerprint(copy) == fingerprint(checkpoints["gpt2"])
    cfg = json.loads((copy / "config.json").read_text())
    cfg["layer_norm_epsilon"] = 1e-3
    (copy / "config.json").write_text(json.dumps(cfg))
    assert fingerprint(copy) != fingerprint(checkpoints["gpt2"])


def test_model_too_large_for_memory_is_refused(checkpoints, monkeypatch):
    import analyses.cost as cost

    monkeypatch.setattr(cost, "device_free", lambda device: 1000)
    with pytest.raises(BadInput, match="GiB of available RAM"):
        load(str(checkpoints["gpt2"]), device="cpu")


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa", "mamba"])
def test_hooks_work_on_a_dispatched_model_with_offloaded_layers(name, checkpoints, loaded, tmp_path):
    """accelerate device_map with the last block on disk and the rest on CPU: same logits, same
    captures, same DLA as the plain model."""
    body = {"gpt2": "transformer", "llama-gqa": "model", "mamba": "backbone"}[name]
    plain = loaded(name)
    blocks = "h" if name == "gpt2" else "layers"
    device_map = {}
    for child, module in plain.hooked.model.named_children():
        for sub, _ in module.named_children() if child == body else [(None, None)]:
            prefix = child if sub is None else f"{child}.{sub}"
            if sub == blocks:
                device_map |= {f"{prefix}.{i}": "cpu" for i in range(plain.hooked.shape.n_layers)}
            else:
                device_map[prefix] = "cpu"
    device_map[f"{body}.{blocks}.1"] = "disk"
    lm = load(str(checkpoints[name]), device="cpu", device_map=device_map, offload_folder=str(tmp_path))
    block = getattr(getattr(lm.hooked.model, body), blocks)[1]
    assert any(getattr(getattr(m, "_hf_hook", None), "offload", False) for m in block.modules())
    ids = encode(plain)
    capture = ["blocks.1.hook_resid_post"]
    ours, ref = lm.hooked.run(ids, capture=capture), plain.hooked.run(ids, capture=capture)
    assert (ours.logits - ref.logits).abs().max() < 1e-5
    assert torch.allclose(ours.cache[capture[0]], ref.cache[capture[0]], atol=1e-5)
    tok = plain.tokenizer
    mary, john = tok.convert_tokens_to_ids("Mary"), tok.convert_tokens_to_ids("John")
    by = "layer" if name == "mamba" else "neuron"
    a, b = dla(lm.hooked, ids[0].tolist(), mary, john, by=by), dla(plain.hooked, ids[0].tolist(), mary, john, by=by)
    assert a.values == pytest.approx(b.values, abs=1e-5)


@pytest.mark.parametrize("device_map", ["weird", "cpu", "", 3])
def test_unknown_device_map_is_refused_before_loading(device_map, checkpoints):
    with pytest.raises(BadInput, match="--device-map must be one of auto, balanced, balanced_low_0, sequential"):
        load(str(checkpoints["gpt2"]), device="cpu", device_map=device_map)
    with pytest.raises(BadInput, match="--device-map"):  # checked before the checkpoint is even looked for
        load("nobody/no-such-model", device="cpu", device_map=device_map)


@pytest.mark.parametrize("device_map", ["auto", "sequential"])
def test_accelerate_strategies_load(device_map, checkpoints, loaded):
    lm = load(str(checkpoints["gpt2"]), device="cpu", device_map=device_map)
    ids = encode(lm)
    assert lm.info["device"] == f"map:{device_map}"
    assert (lm.hooked.run(ids).logits - loaded("gpt2").hooked.run(ids).logits).abs().max() < 1e-5

"""Shared fixtures: small real HF checkpoints of every family, written to a temp dir and loaded
through the same loader a user's checkpoint takes. Nothing is downloaded."""

from __future__ import annotations

import os

import pytest

# Before anything imports huggingface_hub: an empty private cache, never the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

# name -> (family, build options). Covers GQA, parallel and sequential residuals, sliding-window
# attention, q/k/v biases (Qwen2) and a BOS-prepending tokenizer (the Llama-style ones).
VARIANTS = {
    "gpt2": ("gpt2", {}),
    "neox": ("gpt_neox", {}),
    "neox-seq": ("gpt_neox", {"use_parallel_residual": False}),
    "llama-gqa": ("llama", {"num_key_value_heads": 2}),
    "mistral-window": ("mistral", {"sliding_window": 4}),
    "qwen2": ("qwen2", {}),
    "mamba": ("mamba", {}),
}
TRANSFORMERS = [v for v in VARIANTS if VARIANTS[v][0] != "mamba"]
PROMPT = "When Mary and John went to the store , John gave a drink to"
CORRUPT = "When Alice and Bob went to the store , Bob gave a drink to"


@pytest.fixture(scope="session", autouse=True)
def _private_caches(tmp_path_factory):
    root = tmp_path_factory.mktemp("caches")
    os.environ["HF_HOME"] = str(root / "hf")
    os.environ["WORKBENCH_CACHE"] = str(root / "workbench")


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """Variant name -> checkpoint directory (built once per test session)."""
    from analyses.toys.checkpoints import build_checkpoint

    root = tmp_path_factory.mktemp("checkpoints")
    return {
        name: build_checkpoint(root / name, family, seed=i, jitter=0.1, **opts)
        for i, (name, (family, opts)) in enumerate(VARIANTS.items())
    }


@pytest.fixture(scope="session")
def loaded(checkpoints):
    """Variant name -> LoadedModel, loaded on CPU in fp32."""
    from sessions.loading import load

    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = load(str(checkpoints[name]), device="cpu")
        return cache[name]

    return get


@pytest.fixture(scope="session")
def hf_model(checkpoints):
    """Variant name -> the plain HF model (eager attention), the reference for parity."""
    from transformers import AutoModelForCausalLM

    cache = {}

    def get(name):
        if name not in cache:
            kw = {} if VARIANTS[name][0] == "mamba" else {"attn_implementation": "eager"}
            cache[name] = AutoModelForCausalLM.from_pretrained(checkpoints[name], **kw).eval()
        return cache[name]

    return get


def encode(lm, text=PROMPT):
    import torch

    return torch.tensor([lm.tokenizer(text)["input_ids"]])

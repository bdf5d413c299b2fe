"""Adapters that hook HF architectures behind one HookedModel interface."""

from __future__ import annotations

import importlib

from torch import nn

from analyses.errors import BadInput
from analyses.models.base import HookedModel, ModelShape, RunResult
from analyses.models.hooks import Intervention

# HF `model_type` -> (adapter module, class). Imported on demand: each pulls in its HF modeling file.
FAMILIES: dict[str, tuple[str, str]] = {
    "gpt2": ("analyses.models.gpt2", "GPT2Adapter"),
    "gpt_neox": ("analyses.models.neox", "NeoXAdapter"),
    "llama": ("analyses.models.llama", "LlamaAdapter"),
    "mistral": ("analyses.models.llama", "LlamaAdapter"),
    "qwen2": ("analyses.models.llama", "LlamaAdapter"),
    "mamba": ("analyses.models.mamba", "MambaAdapter"),
}


def check_supported(model_type: str) -> None:
    if model_type not in FAMILIES:
        raise BadInput(
            f"unsupported architecture {model_type!r}; supported: {', '.join(sorted(FAMILIES))}"
        )


def hooked(model: nn.Module) -> HookedModel:
    """Wrap a loaded HF causal LM (in place, no weight copy) in its family's adapter."""
    model_type = model.config.model_type
    check_supported(model_type)
    module, cls = FAMILIES[model_type]
    return getattr(importlib.import_module(module), cls)(model)


__all__ = ["FAMILIES", "HookedModel", "Intervention", "ModelShape", "RunResult", "check_supported", "hooked"]

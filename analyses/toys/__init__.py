"""Built-in toy models, loadable as ``toy:NAME`` through the ordinary checkpoint loader.

Until the trained toys exist (issue 3), each is a small random checkpoint that
``checkpoints.build_checkpoint`` writes deterministically from the arguments below.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Toy:
    family: str
    about: str
    shape: dict = field(default_factory=dict)
    seed: int = 0


TOYS: dict[str, Toy] = {
    "ioi": Toy("gpt2", "GPT-2, 2 layers, 4 heads, IOI vocabulary (random weights until trained)", {"d_model": 64}),
    "random-gpt2": Toy("gpt2", "GPT-2, 2 layers, 4 heads, d_model 32, random"),
    "random-neox": Toy("gpt_neox", "GPT-NeoX (parallel residual, rotary 25%), 2 layers, random"),
    "random-llama": Toy("llama", "Llama (RMSNorm, gated MLP, GQA 4q/2kv), 2 layers, random"),
    "random-mamba": Toy("mamba", "Mamba v1, 2 layers, d_model 32, d_state 8, random"),
}
DEFAULT_MODEL = "toy:ioi"
DEFAULT_PROMPT = "When Mary and John went to the store , John gave a drink to"
DEFAULT_ANSWER, DEFAULT_DISTRACTOR = " Mary", " John"

"""Built-in toy models, loadable as ``toy:NAME`` through the ordinary checkpoint loader.

Trained toys (``toys.recipes.RECIPES``) ship as real HF checkpoints under ``shipped/NAME``, written
by ``workbench train NAME``. The ``random-*`` toys are small random checkpoints, one per family,
that ``checkpoints.build_checkpoint`` writes deterministically on first use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from analyses.errors import WouldOverwrite

SHIPPED = Path(__file__).parent / "shipped"


@dataclass(frozen=True)
class RandomToy:
    family: str
    about: str
    shape: dict = field(default_factory=dict)
    seed: int = 0


RANDOM_TOYS: dict[str, RandomToy] = {
    "random-gpt2": RandomToy("gpt2", "GPT-2, 2 layers, 4 heads, d_model 32, random weights"),
    "random-neox": RandomToy("gpt_neox", "GPT-NeoX (parallel residual, rotary 25%), 2 layers, random weights"),
    "random-llama": RandomToy("llama", "Llama (RMSNorm, gated MLP, GQA 4q/2kv), 2 layers, random weights"),
    "random-mamba": RandomToy("mamba", "Mamba v1, 2 layers, d_model 32, d_state 8, random weights"),
}
DEFAULT_MODEL = "toy:ioi"
DEFAULT_PROMPT = "When Mary and John went to the store, John gave a drink to"
DEFAULT_ANSWER, DEFAULT_DISTRACTOR = " Mary", " John"


def toy_names() -> list[str]:
    from analyses.toys.recipes import RECIPES

    return list(RECIPES) + list(RANDOM_TOYS)


def toy_task(spec: str | None) -> str | None:
    """The task a trained toy was trained on (``toy:count01`` -> ``count01``); None otherwise."""
    from analyses.toys.recipes import RECIPES

    recipe = RECIPES.get((spec or "").removeprefix("toy:")) if (spec or "").startswith("toy:") else None
    return recipe.task if recipe is not None else None


def check_out_folder(out: str | Path, force: bool = False) -> None:
    """Refuse (WouldOverwrite) to train into a folder that already holds something (a model
    trained earlier, a user's own config.json) unless ``force``: nothing the user wrote is
    replaced without being asked. A missing or empty folder is fine."""
    path = Path(out)
    if force or not path.is_dir():  # a file in the way is refused where the folder is made
        return
    entries = sorted(p.name for p in path.iterdir())
    if entries:
        shown = ", ".join(entries[:4]) + (f" and {len(entries) - 4} more" if len(entries) > 4 else "")
        raise WouldOverwrite(f"--out {out} is not empty (it holds {shown}); choose a new folder, or --force "
                             "to write the checkpoint over what is there", str(out), shown)

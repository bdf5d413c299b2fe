"""The check made on every load: does the hooked model compute what the plain HF model computes?

A hooked adapter re-runs the forward pass from the modules' own weights; a family quirk it misses
(a new norm offset, a cast, a kernel the plain model takes on a GPU) would make every number of
every analysis quietly wrong. One short forward of each on the same tokens, compared by the
largest logit difference relative to the largest logit, costs two forwards of a dozen tokens and
catches it at load, before any analysis runs.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch-free at import: the app's status bar formats the check before any model loads
    import torch

    from analyses.models.base import HookedModel

PARITY_TEXT = "When Mary and John went to the store, John gave a drink to"
# Largest logit difference, relative to the largest logit, that still counts as parity: SPEC's 1e-5
# in float32; reduced precision rounds each layer's output (bf16 keeps 8 bits of mantissa, fp16 11),
# so its bound is that rounding grown over a model's depth (tests/analyses/test_models.py's bf16 bound).
TOLERANCE = {"float32": 1e-5, "bfloat16": 2e-2, "float16": 5e-3}


def parity_ids(tokenizer: Any, vocab: int) -> torch.Tensor:
    """[1, t] token ids of the parity prompt as the tokenizer spells it; a tokenizer that gives
    fewer than two tokens (a toy vocabulary) gets a fixed run of ids instead."""
    try:
        ids = list(tokenizer(PARITY_TEXT)["input_ids"])
    except Exception:  # a tokenizer that cannot read plain English (a digits-only toy) still gets a check
        ids = []
    if len(ids) < 2 or max(ids) >= vocab:
        ids = [(7 * i + 3) % vocab for i in range(12)]
    import torch

    return torch.tensor([ids[:32]])


def check_parity(hooked: HookedModel, tokenizer: Any, dtype: str) -> dict[str, Any]:
    """The hooked run's logits against the plain HF forward's on the parity prompt: ``max_abs``
    (largest absolute difference), ``relative`` (that over the largest |logit|), the dtype's
    ``tolerance``, ``ok`` and the seconds both forwards took."""
    import torch

    from analyses.models.base import exec_device

    t0 = time.perf_counter()
    ids = parity_ids(tokenizer, hooked.shape.d_vocab)
    ids = ids.to(exec_device(hooked.model.get_input_embeddings()))
    forwards = hooked.forwards
    with torch.no_grad():
        plain = hooked.model(ids).logits.float()
    ours = hooked.run(ids).logits.float().to(plain.device)
    hooked.forwards = forwards  # the check is the loader's, not any analysis's
    max_abs = float((ours - plain).abs().max())
    scale = max(float(plain.abs().max()), 1.0)
    relative = max_abs / scale
    tolerance = TOLERANCE.get(dtype, TOLERANCE["float32"])
    ok = relative <= tolerance  # NaN (a broken forward) is never ok
    return {"ok": ok, "relative": relative, "max_abs": max_abs, "tolerance": tolerance, "tokens": int(ids.shape[1]),
            "seconds": round(time.perf_counter() - t0, 4)}


def parity_text(parity: dict[str, Any] | None) -> str:
    """A short line for a status bar: ``parity ok`` or ``PARITY 3.1e-02 > 1e-05``."""
    if not parity:
        return "parity unchecked"
    if parity["ok"]:
        return "parity ok"
    return f"PARITY {parity['relative']:.1e} > {parity['tolerance']:.0e}"


def parity_warning(info: dict[str, Any]) -> str | None:
    """The warning shown when a loaded model fails the check; None when it passes."""
    parity = info.get("parity")
    if not parity or parity["ok"]:
        return None
    return (f"{info.get('spec')} ({info.get('dtype')} on {info.get('device')}): the hooked model's logits differ "
            f"from the plain Hugging Face forward's by {parity['relative']:.2e} of the largest logit "
            f"(max |diff| {parity['max_abs']:.3g}), above the {parity['tolerance']:.0e} allowed in "
            f"{info.get('dtype')}. "
            "Every number an analysis gives may be off by as much; each run's record carries this check. "
            "Try --dtype float32, or report the model's family.")

"""Features ablated or clamped during runs, the SAE's reconstruction error kept.

At the SAE's hook the activation ``x`` becomes ``decode(f') + (x - decode(f))`` with ``f`` its
features and ``f'`` them edited: the error term keeps everything the SAE does not explain, so
only the edited features change the run. It is computed as ``x + (f' - f) @ W_dec`` (the same
value), which is ``x`` bit for bit when no feature changes: an SAE spliced in with no edit leaves
every logit as it was.

An edit's text (the form the TUI's edit list and ``--edit`` take) is

    sae:FOLDER:12=0        ablate feature 12 of the SAE in FOLDER at every position
    sae:FOLDER:3,7=5@-1    clamp features 3 and 7 to 5, only at the last position
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from analyses.errors import BadInput
from analyses.models.hooks import Intervention
from analyses.sae.edit_spec import FeatureEdit
from analyses.sae.model import SAE, load_sae


def splice(sae: SAE, values: dict[int, float] | None = None, pos: int | None = None, label: str = "") -> Intervention:
    """The intervention at ``sae.hook_name`` that sets features ``values`` (feature -> value; none:
    the SAE spliced in, changing nothing), keeping the error term."""
    values = dict(values or {})
    bad = [f for f in values if not 0 <= f < sae.d_sae]
    if bad:
        raise BadInput(f"{label or 'sae'}: no feature {bad[0]} (the SAE has {sae.d_sae}: 0..{sae.d_sae - 1})")
    feats = torch.tensor(sorted(values), dtype=torch.long)
    target = torch.tensor([values[f] for f in sorted(values)], dtype=torch.float32)

    def edit(x: Tensor) -> Tensor:
        if x.shape[-1] != sae.d_in:
            raise BadInput(f"{label or 'sae'}: {sae.hook_name} has width {x.shape[-1]}, the SAE reads {sae.d_in}")
        s = sae.to(x.device)
        f = s.encode(x)
        idx = feats.to(x.device)
        new = f.clone()
        new[..., idx] = target.to(x.device)
        delta = (new - f) @ s.W_dec  # zero where nothing changed: x comes back as it was
        return x + delta.to(x.dtype)

    return Intervention(sae.hook_name, "fn", fn=edit, pos=pos, label=label or f"sae {sae.hook_name}")


def feature_interventions(model, edit: FeatureEdit) -> tuple[Intervention, ...]:
    """The run-time interventions of a standing feature edit (its SAE read once per weights file)."""
    sae = cached_sae(edit.folder)
    if sae.hook_name not in model.hook_names():
        raise BadInput(f"edit {edit.text}: the model has no hook {sae.hook_name}")
    return (splice(sae, {f: edit.value for f in edit.features}, edit.pos, f"edit {edit.text}"),)


_loaded: dict[tuple, SAE] = {}


def cached_sae(folder: str) -> SAE:
    """The SAE in ``folder``, read once per version of its weights file (edits reapply every run)."""
    try:
        stat = os.stat(os.path.join(folder, "sae_weights.safetensors"))
        key = (os.path.abspath(folder), stat.st_size, stat.st_mtime_ns)
    except OSError:
        return load_sae(folder)  # it names what is missing
    if key not in _loaded:
        if len(_loaded) >= 4:
            _loaded.pop(next(iter(_loaded)))
        _loaded[key] = load_sae(folder)
    return _loaded[key]

"""The text form of a standing SAE feature edit (torch-free: checked before a model loads).

    sae:FOLDER:12=0        ablate feature 12 of the SAE in FOLDER at every position
    sae:FOLDER:3,7=5@-1    clamp features 3 and 7 to 5, only at the last position

Applied by ``analyses.sae.intervene`` with the SAE's reconstruction error kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from analyses.edit_spec import finite_value
from analyses.errors import BadInput

_PATTERN = re.compile(r"^sae:(.+):(\d+(?:,\d+)*)=([^@:]+)(?:@(-?\d+))?$", re.IGNORECASE)
SYNTAX = "sae:FOLDER:F=VALUE[@POS] (F: feature numbers, e.g. 12 or 3,7; VALUE 0 ablates)"


@dataclass(frozen=True)
class FeatureEdit:
    """A standing edit of SAE features: ``features`` of the SAE in ``folder`` set to ``value``."""

    folder: str
    features: tuple[int, ...]
    value: float
    pos: int | None = None

    @property
    def text(self) -> str:
        where = "" if self.pos is None else f"@{self.pos}"
        return f"sae:{self.folder}:{','.join(map(str, self.features))}={self.value:g}{where}"

    def interventions(self, model) -> tuple:
        """The SAE spliced in at its hook with these features set (``edits.Standing``)."""
        from analyses.sae.intervene import feature_interventions

        return feature_interventions(model, self)


def parse_feature_edit(text: str) -> FeatureEdit:
    """``"sae:FOLDER:12=0@-1"`` -> FeatureEdit (the folder is checked when the edit is applied)."""
    m = _PATTERN.match(str(text).strip())
    if not m:
        raise BadInput(f"--edit {text!r}: write {SYNTAX}")
    folder, feats, value, pos = m.groups()
    x = finite_value(text, value)
    features = tuple(int(f) for f in feats.split(","))
    if len(set(features)) != len(features):
        raise BadInput(f"--edit {text!r}: a feature is named twice")
    return FeatureEdit(folder, features, x, None if pos is None else int(pos))



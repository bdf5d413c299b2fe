"""The text form of an edit of one head's SVD components (torch-free: checked before a model loads).

    L1H2:ov:0=0        weights: scale OV component 0 of head L1H2 by 0 (removes it; 2 doubles it)
    L1H2:out:0,1=0@-1  activations: scale components 0 and 1 of the head's output by 0 (project them
                       out), only at position -1 (without @: every position)
    L1H2:out:0+=3      activations: move the head's output 3 units along the unit write direction v_0

Components are numbered by decreasing singular value of the head's OV circuit (W_V W_O with the
preceding norm's weight folded in and, on LayerNorm models, W_O centred: analyses.talking_heads.composition's
``fold="tl"``), computed from the weights as they are when the edit is applied.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from analyses.errors import BadInput

TARGETS = ("ov", "out")
_PATTERN = re.compile(r"^L(\d+)H(\d+):(ov|out):(\d+(?:,\d+)*)(\+=|=)([^@]+)(?:@(-?\d+))?$")
SYNTAX = "LxHy:ov:I=SCALE, LxHy:out:I=SCALE[@POS] or LxHy:out:I+=DISTANCE[@POS] (I: component numbers, e.g. 0 or 0,1)"


@dataclass(frozen=True)
class Edit:
    """One edit: of head ``head`` in ``layer``, components ``comps``; ``op`` "=" scales them by
    ``value`` and "+=" moves the output ``value`` units along each direction; ``target`` "ov"
    edits W_O, "out" the head's output during runs (at ``pos`` only, when given)."""

    layer: int
    head: int
    target: str
    comps: tuple[int, ...]
    op: str
    value: float
    pos: int | None = None

    @property
    def text(self) -> str:
        comps = ",".join(str(c) for c in self.comps)
        where = "" if self.pos is None else f"@{self.pos}"
        return f"L{self.layer}H{self.head}:{self.target}:{comps}{self.op}{self.value:g}{where}"

    @property
    def head_label(self) -> str:
        return f"L{self.layer}H{self.head}"


def finite_value(text: str, value: str) -> float:
    """An edit's number, or a BadInput naming the edit (NaN and infinities are no edit)."""
    try:
        x = float(value)
    except ValueError:
        x = math.nan
    if not math.isfinite(x):
        raise BadInput(f"--edit {text!r}: {value!r} is not a finite number")
    return x


def parse_edit(text: str) -> Edit:
    """``"L1H2:ov:0=0"`` -> Edit (``"sae:DIR:F=V"``: an SAE feature edit, analyses.sae.edit_spec);
    a BadInput names what is wrong."""
    if str(text).strip().lower().startswith("sae:"):
        from analyses.sae.edit_spec import parse_feature_edit

        return parse_feature_edit(text)
    t = str(text).strip().replace(" ", "")
    m = _PATTERN.match(t.upper().replace("OV", "ov").replace("OUT", "out"))
    if not m:
        raise BadInput(f"--edit {text!r}: write {SYNTAX}")
    layer, head, target, comps, op, value, pos = m.groups()
    x = finite_value(text, value)
    if target == "ov" and (op != "=" or pos is not None):
        raise BadInput(f"--edit {text!r}: a weight edit (ov) only scales (=) and applies at every position; "
                       "use out for += or @POS")
    comp_list = tuple(int(c) for c in comps.split(","))
    if len(set(comp_list)) != len(comp_list):
        raise BadInput(f"--edit {text!r}: a component is named twice")
    return Edit(int(layer), int(head), target, comp_list, op, x, None if pos is None else int(pos))


def parse_edits(texts) -> list:
    """Edits from the repeatable option (None or [] -> none); standing interventions already made
    (steering, a projection: ``analyses.edits.Standing``) pass as they are."""
    return [parse_edit(t) if isinstance(t, str) else t for t in (texts or []) if not isinstance(t, str) or t.strip()]

"""Head and node labels, written and read in one place: ``L{layer}H{head}`` for a head and
``L{layer}MLP`` for a layer's MLP (the TransformerLens convention of SPEC.md). Labels are read
case-blind (``l0h1`` is ``L0H1``) and written upper-case.

Torch-free, so that the registry's checks can read a label before a model loads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from analyses.errors import BadInput

if TYPE_CHECKING:
    from analyses.models.base import HookedModel

_NODE = re.compile(r"^L(\d+)(?:H(\d+)|(MLP))$", re.ASCII)


def head_label(layer: int, head: int) -> str:
    return f"L{layer}H{head}"


def mlp_label(layer: int) -> str:
    return f"L{layer}MLP"


@dataclass(frozen=True)
class Node:
    """A head (``L0H2``) or a layer's MLP (``L1MLP``)."""

    layer: int
    head: int | None = None

    @property
    def label(self) -> str:
        return mlp_label(self.layer) if self.head is None else head_label(self.layer, self.head)


def match_node(text: str | None) -> Node | None:
    """The node a label names, or None when it is not written like one (no model check)."""
    m = _NODE.match((text or "").strip().upper())
    if not m:
        return None
    return Node(int(m.group(1)), None if m.group(2) is None else int(m.group(2)))


def parse_node(text: str, model: HookedModel | None = None) -> Node:
    """``L{l}H{h}`` or ``L{l}MLP``, checked against the model's sizes when one is given."""
    node = match_node(text)
    if node is None:
        raise BadInput(f"{text!r} is not a node: give L{{layer}}H{{head}} or L{{layer}}MLP, e.g. L0H2")
    if model is not None:
        shape = model.shape
        if shape.family == "mamba":
            raise BadInput("Mamba has no attention heads or MLPs to measure erasure on")
        if node.layer >= shape.n_layers:
            raise BadInput(f"{node.label}: the model has layers 0..{shape.n_layers - 1}")
        if node.head is not None and node.head >= shape.n_heads:
            raise BadInput(f"{node.label}: the model has heads 0..{shape.n_heads - 1}")
    return node


def check_head_syntax(value: str | None, flag: str) -> None:
    """An option naming a head (empty allowed) is written like one: checked before a model loads."""
    text = (value or "").strip()
    if text and (match_node(text) is None or match_node(text).head is None):
        raise BadInput(f"{flag}: a head is written like L1H2 (got {value!r})")


def parse_head(text: str, n_layers: int, n_heads: int) -> tuple[int, int, str]:
    """ "L1H2" -> (1, 2, "L1H2"), checked against the model's sizes."""
    node = match_node(text)
    if node is None or node.head is None:
        raise BadInput(f"a head is written like L1H2 (got {text!r})")
    if not (0 <= node.layer < n_layers and 0 <= node.head < n_heads):
        raise BadInput(f"head {text!r} is not in this model ({n_layers} layers x {n_heads} heads)")
    return node.layer, node.head, node.label

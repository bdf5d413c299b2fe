"""Erasure: when direct logit attribution misleads (Janiak et al. 2023, "memory management in
GELU-4L"). A *writer* (a head, or an MLP) writes a direction with a large direct effect on the
logits, and later *erasers* write it back out, so its DLA is large while its total effect is small.

Conventions (docs/erasure.md has the reasoning):

- A component's output is what ``dla.py`` attributes: a head's ``z_h . W_O[h]`` (value bias inside
  ``z``, no ``b_O``), an MLP's output without its output bias. Residual points are the stream as is.
- ``PR(a, b) = a . b / |b|^2`` per (text, position), with ``b`` the writer's output there; positions
  where the writer writes nothing are skipped.
- DLA toward the true next token ``t``: ``((x - mean x) / s_f) . (w_lnf * W_U[:, t])`` with ``s_f``
  the final norm's scale of the *clean* run (``dla.readout``; no centring for RMSNorm).
- The OV image of the writer through a later head: the writer's output through that layer's norm
  with the norm's *cached* scale (weight applied, no bias), then ``W_V[h] W_O[h]``, no attention
  weighting and no value bias.
- Resample ablation: a component's output at each position is replaced by the same position's
  output on the next text of the batch (row i takes row i+1's, the last row the first's). Only
  positions that exist in both texts count.

Everything streams over a prompt set (``analyses.corpus``) batch by batch, with progress and cancel;
a cancelled run returns what it measured so far (``partial``).
"""

from __future__ import annotations

from analyses.corpus import PromptSet
from analyses.erasure.effects import adversarial_prompts, causal_check, dla_vs_effect
from analyses.erasure.ratios import MODES, check_band, projection_ratios, writer_eraser_scatter
from analyses.labels import Node, parse_node

__all__ = ["MODES", "Node", "PromptSet", "adversarial_prompts", "causal_check", "check_band", "dla_vs_effect",
           "parse_node", "projection_ratios", "writer_eraser_scatter"]

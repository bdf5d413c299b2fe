"""The IOI circuit in Mamba (Ensign & Garriga-Alonso 2024): layer removal, greedy minimal layer
sets, cross-talk removal, conv-slice patching and SSM-input name arithmetic.

Definitions (docs/mamba.md has them in full):

- *accuracy*: the fraction of clean prompts whose answer has the largest logit among the
  candidate names: the names in the prompt (tokens that are some pair's answer or distractor, or a
  name of the IOI task) plus that pair's corrupted answer, as the paper's "softmax over the three
  prompt names and the corruption name".
- *NLD*: ``(LD - LD_corrupt) / |LD_clean - LD_corrupt|`` (``analyses.metrics``), 1 = clean.
- *removing* a layer zeroes its whole write (``mixer.hook_out_proj``, bias included);
  *cross-talk ablation* of a layer writes the corrupted prompts' ``mixer.hook_in_proj`` at every
  position (its conv and SSM then read only the corrupted tokens; the gate is untouched).

Where each lives: ``analyses.mamba.task`` (the task, accuracy and NLD), ``analyses.mamba.layers``
(layer removal, the greedy searches), ``analyses.mamba.mixer`` (conv slices, name arithmetic),
``analyses.eap`` (``eap_positions``) and ``analyses.edge_patching`` (``circuit_search``); this
module names them all.
"""

from analyses.eap import eap_positions  # noqa: F401
from analyses.edge_patching import circuit_search  # noqa: F401
from analyses.mamba.layers import (  # noqa: F401
    REMOVE,
    RESTORE,
    crosstalk_edits,
    greedy_crosstalk,
    greedy_layers,
    greedy_removal,
    layer_removal,
    removal_edits,
)
from analyses.mamba.mixer import (  # noqa: F401
    MODES,
    conv_slice_patching,
    conv_width,
    intervene,
    name_arithmetic,
    name_averages,
    name_slots,
)
from analyses.mamba.task import IN_PROJ, OUT, SLICE, SSM_IN, Task, candidates, name_token_ids, require_mamba  # noqa: F401

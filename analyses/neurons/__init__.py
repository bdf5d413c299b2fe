"""Next-token neurons and the heads that drive them (Neo, Cohen & Barez 2024, "Interpreting
Context Look-ups in Transformers"; wave2-specs.md section 2). Definitions (docs/neurons.md):

- **Congruence** of neuron n of layer l with token t: ``W_out[n]' . (w_lnf * W_U[:, t])`` minus its
  mean over the vocabulary, where ``W_out[n]'`` is centred over d_model for LayerNorm models (the
  final norm removes that mean anyway) and ``w_lnf`` is the final norm's weight: the neuron's
  direct logit effect per unit of activation at norm scale 1, the DLA convention of ``dla.py``.
  Subtracting the vocabulary mean (TransformerLens's ``center_unembed``) changes no argmax. The
  vocabulary is walked in chunks, so no [d_mlp, vocab] matrix is built on large vocabularies.
- **Word token**: for BPE/SentencePiece vocabularies (some token starts with ``Ġ`` or ``▁``), a
  token that starts with that space marker and is longer than 2 characters (the marker counts:
  ``Ġan`` is a word), the paper's rule; for word-level vocabularies (no marker anywhere, our toys)
  every token that is not a special token.
- **Trimming**: cut a text just after its max-activating position p, then keep the suffix that
  starts at the *latest* index s whose activation at the last token (position p of the text) is
  still >= ratio x the original; starts are tried from p downwards, so no monotonicity is assumed.
- **Head -> neuron attribution** at the last token: ``((h - mean h) / s_ln2) . (w_ln2 * W_in[:, n])``
  with ``h = z_h @ W_O[h]``, ``s_ln2`` the MLP input norm's scale cached on that prompt (no centring
  for RMSNorm): the part of the neuron's pre-activation that the head writes, linear in the head's
  output once the scale is frozen. On gated MLPs ``W_in`` is the gate projection. Heads of layers
  before the neuron's count, and those of its own layer where the MLP reads after attention.
  A head is **active** on a prompt when its attribution exceeds mean + 2 sigma (population sigma)
  over the counted heads of that prompt.
"""

from __future__ import annotations

from analyses.neurons.ablation import ablation_table, ks_2samp, token_prob
from analyses.neurons.congruence import (
    check_neuron,
    congruence_table,
    neuron_congruence,
    predicted_token,
    word_token_mask,
)
from analyses.neurons.explain import Rule, balanced_accuracy, explain_heads, fit_rule, shuffled_baseline
from analyses.neurons.heads import (
    active_heads,
    head_attribution,
    head_labels,
    heads_table,
    prompts_attribution,
    selected_heads,
)
from analyses.neurons.max_acts import (
    Trimmed,
    corpus_prompts,
    latest_start,
    max_acts_result,
    max_activating,
    neuron_activations,
    top_documents,
    trim,
)

__all__ = ["Rule", "Trimmed", "ablation_table", "active_heads", "balanced_accuracy", "check_neuron",
           "congruence_table", "corpus_prompts", "explain_heads", "fit_rule", "head_attribution", "head_labels",
           "heads_table", "ks_2samp", "latest_start", "max_acts_result", "max_activating", "neuron_activations",
           "neuron_congruence", "predicted_token", "prompts_attribution", "selected_heads", "shuffled_baseline",
           "token_prob", "top_documents", "trim", "word_token_mask"]

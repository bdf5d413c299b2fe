"""Counting heads on Count01 (Zsámboki et al. 2025): does each attention head of a layer solve
"more 1s than 0s?" on its own (a *pseudo-ensemble*), or do the heads split the work (*division of
labour*), and how does the model combine them?

The paper's code is not public: everything below is our definition, adapted from
``research/wave2-specs.md`` §5 to our task format (``analyses/tasks/count01.py``).

Setting
-------
A prompt is ``"1 0 2 1 ="``; the model should answer ``" yes"`` (more 1s than 0s) or ``" no"``,
then ``[EOS]``. Each example is tokenised as prompt + answer (teacher forcing) and right-padded into
one batch; padding never reaches a position we read (attention is causal and the pads come last).

- Decision position ``p``: the last prompt token (``=``). EOS position ``e = p + 1``: the answer
  token's position, where the model must predict the example's ``target`` (``[EOS]``).
- Label ``y = 1`` when the answer is ``" yes"``.
- Symbol tokens: prompt tokens whose text, stripped of spaces, is ``0``, ``1`` or ``2``; their class
  ``x_k`` is that digit. Every other prompt token (``=``, a BOS if the tokenizer adds one) is a
  non-symbol token.
- Readout ``u = W_U[yes] - W_U[no]``. The decision logit difference is ``LD = logit_yes - logit_no``
  at ``p``. *Decision accuracy* is the fraction of examples whose answer logit beats the distractor
  logit at ``p`` (``analyses.evaluate``'s accuracy).
- A head's contribution ``s_h`` (per example): the direct logit attribution of the head's output at
  ``p``, ``o_h = z_h . W_O[h]`` (``z_h`` from ``blocks.{layer}.attn.hook_z``, value bias included,
  ``b_O`` excluded), toward ``u`` with the final norm's scale ``s_final`` frozen from the clean run,
  exactly as ``analyses.dla`` computes per-head DLA: ``s_h = o_h . u'`` with
  ``u' = centre(w_lnf * u) / s_final`` (no centring for RMSNorm). Completeness:
  ``LD = sum_h s_h + rest``, where ``rest`` is the DLA of everything else (embeddings, other layers,
  ``b_O``) plus the constant ``b_lnf . u + b_U[yes] - b_U[no]`` (``contributions`` returns both, per
  example).
- A head's value contribution per key ``g_h(k) = (v_h(k) . W_O[h]) . u'`` with ``v_h(k)`` the value
  vector of key ``k`` as the model computed it (``hook_v``: through the model's own ``ln_1``,
  position embedding included, value bias included). Then ``s_h = sum_k a_h(p, k) g_h(k)`` exactly,
  ``a_h(p, .)`` being the head's attention row at ``p`` (``hook_pattern``).

Readout ``eos`` (task ``count01-eos``, ``analyses/tasks/count01_eos.py``)
-----------------------------------------------------------------------
The paper's end-of-sequence rule: a prompt is a prefix ``"1 0 2 1"`` (the toy's tokenizer adds
``[BOS]``), read at its last token ``p`` (and ``e = p``: nothing is appended). ``y = 1`` when the
prefix holds more 1s than 0s (EOS allowed next). ``u = W_U[EOS] - mean_{c in 0,1,2} W_U[c]``,
``LD = logit_EOS - mean_c logit_c`` (its constant: ``b_lnf . u + b_U[EOS] - mean_c b_U[c]``). The
decision (``acc``, ``own_acc``, the sweep's cells; ``eos_acc`` is the same number): the model
*allows* EOS when ``softmax(logits)[EOS] > q/2`` (q = 0.2, the generator's stop probability), and
is right when that equals ``y``. Everything else below reads ``s_h`` and ``LD`` the same way.

Per-head metrics (``head_metrics``)
-----------------------------------
- ``auc``: ROC AUC of ``s_h`` as a score for ``y`` (Mann-Whitney, ties count one half):
  ``A = P(s_h(yes) > s_h(no)) + P(equal)/2`` over all yes/no pairs; reported as ``max(A, 1 - A)``,
  with ``auc_sign = +1`` when ``A >= 0.5`` (``s_h`` larger for yes) else ``-1``. NaN when a class
  is missing.
- ``s_acc`` (separation accuracy, best of both directions): the best accuracy of a one-threshold
  rule on ``s_h`` alone, ``max over tau and sign σ of mean 1[(σ s_h > tau) == y]``, thresholds at
  every distinct value (and below all). Free sign, like ``auc``: it measures separability, not
  orientation.
- ``s_acc_one_dir`` (the spec's one-direction form, ``research/wave2-specs.md`` §5):
  ``max over tau of mean 1[(s_h > tau) == y]``, sign fixed: a head whose contribution pushes the
  wrong way (``auc_sign = -1``) scores low here however well it separates. ``s_acc`` is the larger
  of this and the same on ``-s_h``.
- ``l_acc`` (linear-probe accuracy): held-out accuracy of an L2-regularised logistic regression on the
  head's full output vector ``o_h`` (d_model numbers) at ``p``. The examples are split 80/20 by a
  permutation drawn from ``seed``; features are standardised with the training part's mean and
  standard deviation; the loss is mean binary cross-entropy + ``l2/2 * |w|^2`` (bias unpenalised,
  ``l2 = 1e-2``), minimised with L-BFGS in float64 (``probe_accuracy``).
- ``w01``, ``w02`` (raw attention ratios): per example ``i`` and class ``c``,
  ``ā_c(i) = mean over keys k <= p with x_k = c of a_h(p, k)`` (attention per c-token). Pooled over
  the examples that contain both kinds: ``w01 = Σ_i ā_1(i) / Σ_i ā_0(i)`` over examples with at least
  one 1 and one 0; ``w02 = Σ_i ā_2(i) / Σ_i ā_0(i)`` over examples with at least one 2 and one 0.
  ``w01 = 1``: a 1 is read as much as a 0; ``w02 = 0``: the noise is ignored.
- ``w01_eff``, ``w02_eff`` (value-weighted ratios): with ``v_c(i) . u'`` defined as the
  attention-weighted mean of ``g_h(k)`` over the c-tokens of example ``i``, the push of one c-token
  on ``s_h`` is ``t_c(i) = ā_c(i) (v_c(i) . u') = mean over c-tokens of a_h(p, k) g_h(k)``, so that
  ``s_h = Σ_c n_c t_c + (non-symbol keys)`` exactly. ``w01_eff = Σ_i t_1(i) / (-Σ_i t_0(i))`` and
  ``w02_eff = Σ_i t_2(i) / (-Σ_i t_0(i))`` over the same example sets as ``w01``/``w02``.
  ``w01_eff = 1`` means a 1 pushes toward yes exactly as hard as a 0 pushes toward no (the head counts
  ``n_1 - n_0``); ``w02_eff = 0`` means the 2s do not move it. Negative ``w01_eff``: 1s and 0s push the
  same way (the head does not count).
- ``own_acc``: decision accuracy when every *other* head of ``layer`` has its output at ``p``
  replaced by its mean over the examples (``hook_z`` at each example's own ``p``): head ``h`` alone
  through the model's real readout (final norm recomputed, bias, unembedding).
  ``meta["own_acc_best_threshold"]``: the same run's ``LD`` with the best threshold (yes when
  ``LD > tau``), which separates "the head cannot decide" from "its decision sits off zero".
- ``scale``: the standard deviation (n - 1) of ``s_h`` over the examples.
- Row ``model``: the same statistics of ``LD`` itself (``auc``, ``s_acc``, ``scale``), ``l_acc`` of a
  probe on the layer's summed head output ``Σ_h o_h``, ``own_acc`` = the model's decision accuracy;
  attention ratios NaN.

Interventions
-------------
- ``set_pattern_row``: replace the attention row at query ``pos[b]`` of the chosen heads by a given
  row (used as given, not renormalised); ``hook_z`` is then computed from the edited pattern, so the
  values are untouched.
- ``attention_sweep``: for the chosen heads, the row at ``p`` becomes
  ``a'(k) = a(k)`` for non-symbol keys and ``a'(k) = M c[x_k] / Σ_{k' symbol} c[x_k']`` for symbol keys,
  with ``c_0 = 1, c_1 = w01, c_2 = w02`` and ``M = Σ_{k symbol} a(k)`` the symbols' original share
  (so the row still sums to 1). An example whose symbols all get weight 0 keeps its row. Each cell is
  the decision accuracy; ``meta["base_accuracy"]`` the unedited one.
- ``swap_ablation``: each example gets a partner of the same token length (a random cyclic order
  within each length, drawn from ``seed``; a length seen once is its own partner). For head ``h`` at
  ``p`` only: ``pattern_resampled`` uses the partner's attention row with the example's own values;
  ``values_resampled`` uses its own row with the partner's value vectors at the same key positions
  (``z' = Σ_k a(p, k) v_partner(k)``, written into ``hook_z``); ``pattern_mean`` uses the mean row over
  all examples of that length.
- ``head_combination``: every head's ``z_h`` at ``p`` and at ``e`` is multiplied by a weight ``w_h``
  and the model runs through its real final norm and unembedding. Rows: ``model`` (all 1);
  ``least squares``: ``LD ≈ Σ_h β_h s_h + β_rest rest + c`` by ordinary least squares, weights
  ``β_h`` (``β_rest``, ``c`` in meta), ``r2`` its R^2 — an exact identity when the final scale is
  frozen, so β ≈ 1 and R^2 ≈ 1 measure nothing but that; meta also holds the heads-only fit
  ``LD ≈ Σ β_h s_h + c`` (no ``rest``), whose R^2 is informative; ``uniform``: ``w_h = σ̄ / σ_h``
  (``σ_h`` = ``scale`` of head h, ``σ̄`` their mean), every head's contribution scaled to the same
  spread. Columns: ``acc`` (threshold 0, i.e. answer above distractor), ``acc_best_threshold`` (the
  best threshold on the edited ``LD``, yes when ``LD > tau``, fixed sign), ``eos_acc`` (argmax at
  ``e`` is the target), ``r2``. Only those two positions are scaled: in a one-layer model they are
  all that reaches the logits read there.

Other models
------------
Every function takes the heads of one ``layer`` of any attention model (GPT-2, NeoX, Llama-style;
under GQA a head's values are those of its key/value head). Other layers are part of ``rest``;
``own_acc`` mean-ablates the other heads of the same layer only; all edits are at ``p`` (and ``e``)
only. Examples are run in chunks of ``CHUNK`` per forward pass, every intervention vectorised over
the chunk.
"""

from __future__ import annotations

from analyses.counting.batch import Contributions, contributions
from analyses.counting.combine import head_combination
from analyses.counting.heads import head_metrics
from analyses.counting.interventions import attention_sweep, ratio_rows, set_pattern_row, swap_ablation
from analyses.counting.stats import auc_and_sign, probe_accuracy, roc_auc, separation_accuracy

__all__ = ["Contributions", "attention_sweep", "auc_and_sign", "contributions", "head_combination", "head_metrics",
           "probe_accuracy", "ratio_rows", "roc_auc", "separation_accuracy", "set_pattern_row", "swap_ablation"]

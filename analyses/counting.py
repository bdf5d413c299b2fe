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

Per-head metrics (``head_metrics``)
-----------------------------------
- ``auc``: ROC AUC of ``s_h`` as a score for ``y`` (Mann-Whitney, ties count one half):
  ``A = P(s_h(yes) > s_h(no)) + P(equal)/2`` over all yes/no pairs; reported as ``max(A, 1 - A)``,
  with ``auc_sign = +1`` when ``A >= 0.5`` (``s_h`` larger for yes) else ``-1``. NaN when a class
  is missing.
- ``s_acc`` (separation accuracy): the best accuracy of a one-threshold rule on ``s_h`` alone,
  ``max over tau and sign σ of mean 1[(σ s_h > tau) == y]``, thresholds at every distinct value
  (and below all). Free sign, like ``auc``: it measures separability, not orientation.
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

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from analyses.dla import _direction
from analyses.errors import BadInput
from analyses.models.base import HookedModel
from analyses.models.hooks import Intervention
from analyses.results import Grid, Table
from analyses.tasks import Example
from analyses.tokens import encode_prompt, pad_batch, resolve_token, token_strings

YES, NO = " yes", " no"
SYMBOLS = ("0", "1", "2")
CHUNK = 512  # examples per forward pass
L2 = 1e-2


# ---- statistics on scores ----------------------------------------------------------------------


def _scores_labels(scores, y) -> tuple[Tensor, Tensor]:
    s = torch.as_tensor(scores, dtype=torch.float64).flatten()
    lab = torch.as_tensor(y).flatten().bool()
    if s.numel() != lab.numel():
        raise BadInput(f"{s.numel()} scores for {lab.numel()} labels")
    if s.numel() == 0:
        raise BadInput("no scores")
    return s, lab


def roc_auc(scores, y) -> float:
    """``P(score of a positive > score of a negative) + P(equal) / 2`` (unfolded: may be < 0.5);
    NaN when a class is missing."""
    s, lab = _scores_labels(scores, y)
    n_pos, n_neg = int(lab.sum()), int((~lab).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inv, counts = torch.unique(s, return_inverse=True, return_counts=True)
    below = torch.cumsum(counts, 0) - counts  # values strictly below each distinct value
    ranks = (below + (counts + 1) / 2.0)[inv]  # average 1-based ranks
    return float((ranks[lab].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def auc_and_sign(scores, y) -> tuple[float, float]:
    """``(max(A, 1 - A), +1 if A >= 0.5 else -1)`` with ``A = roc_auc(scores, y)``; NaNs when a
    class is missing."""
    a = roc_auc(scores, y)
    if math.isnan(a):
        return a, a
    return max(a, 1.0 - a), 1.0 if a >= 0.5 else -1.0


def separation_accuracy(scores, y, both_signs: bool = True) -> float:
    """Best accuracy of ``predict y = 1 when score > tau`` over all thresholds (and, with
    ``both_signs``, of ``score <= tau`` too)."""
    s, lab = _scores_labels(scores, y)
    n = s.numel()
    vals, inv = torch.unique(s, return_inverse=True)
    pos = torch.bincount(inv, weights=lab.double(), minlength=len(vals))
    neg = torch.bincount(inv, weights=(~lab).double(), minlength=len(vals))
    zero = torch.zeros(1, dtype=torch.float64)
    neg_le = torch.cat([zero, torch.cumsum(neg, 0)])  # tau = -inf, vals[0], vals[1], ...
    pos_gt = pos.sum() - torch.cat([zero, torch.cumsum(pos, 0)])
    correct = neg_le + pos_gt
    best = correct.max()
    if both_signs:
        best = torch.maximum(best, (n - correct).max())
    return float(best / n)


def probe_accuracy(features, y, seed: int = 0, l2: float = L2, train_frac: float = 0.8) -> float:
    """Held-out accuracy of an L2-regularised logistic-regression probe (module docstring, l_acc)."""
    x = torch.as_tensor(features, dtype=torch.float64)
    lab = torch.as_tensor(y).flatten().bool()
    if x.ndim != 2 or x.shape[0] != lab.numel():
        raise BadInput(f"probe: features must be [examples, dims] for {lab.numel()} labels; got {list(x.shape)}")
    n = x.shape[0]
    n_train = round(train_frac * n)
    if n_train < 2 or n_train >= n:
        raise BadInput(f"probe: {n} examples are too few for a {train_frac:.0%} / {1 - train_frac:.0%} split")
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)
    tr, te = perm[:n_train], perm[n_train:]
    mu = x[tr].mean(0)
    sd = x[tr].std(0, unbiased=False)
    sd = torch.where(sd > 1e-12, sd, torch.ones_like(sd))
    xs = (x - mu) / sd
    t = lab.double()
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=500, tolerance_grad=1e-10, tolerance_change=1e-14,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        z = xs[tr] @ w + b
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z, t[tr]) + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        pred = (xs[te] @ w + b) > 0
    return float((pred == lab[te]).double().mean())


# ---- the examples as one padded batch ----------------------------------------------------------


@dataclass
class _Data:
    ids: Tensor  # [n, s] prompt + answer, right-padded
    mask: Tensor  # [n, s]
    dec: Tensor  # [n] decision position (the last prompt token)
    eos: Tensor  # [n] the answer's position (where the target should be predicted)
    kind: Tensor  # [n, s] 0/1/2 for symbol tokens, -1 for other prompt tokens, -2 for answer and pads
    y: Tensor  # [n] bool, answer is yes
    answer: Tensor  # [n]
    distractor: Tensor  # [n]
    target: Tensor | None  # [n] end-of-sequence token, or None when no example has one
    yes: int
    no: int
    layer: int

    @property
    def n(self) -> int:
        return self.ids.shape[0]


def _prepare(model: HookedModel, tokenizer, examples: Sequence[Example], layer: int) -> _Data:
    shape = model.shape
    if shape.n_heads == 0:
        raise BadInput(f"counting heads needs an attention model; {shape.family} has no attention heads")
    if not -shape.n_layers <= layer < shape.n_layers:
        raise BadInput(f"layer must be between 0 and {shape.n_layers - 1}; got {layer}")
    layer %= shape.n_layers
    if not examples:
        raise BadInput("no examples")
    yes, no = resolve_token(tokenizer, YES), resolve_token(tokenizer, NO)
    targets = {e.target for e in examples}
    if len(targets) > 1 and None in targets:
        raise BadInput("some examples have an end-of-sequence target and some do not")
    seqs, dec, kinds, y, ans, dis, tgt = [], [], [], [], [], [], []
    for e in examples:
        if {e.answer, e.distractor} != {YES, NO}:
            raise BadInput(f"Count01 examples answer {YES!r} or {NO!r}; got {e.answer!r} / {e.distractor!r}")
        prompt = encode_prompt(tokenizer, e.prompt, n_ctx=None)
        a = resolve_token(tokenizer, e.answer)
        seq = prompt + [a]
        if shape.n_ctx is not None and len(seq) > shape.n_ctx:
            raise BadInput(f"prompt + answer is {len(seq)} tokens; the model's context is {shape.n_ctx}")
        texts = token_strings(tokenizer, prompt)
        kinds.append([SYMBOLS.index(t.strip()) if t.strip() in SYMBOLS else -1 for t in texts])
        seqs.append(seq)
        dec.append(len(prompt) - 1)
        y.append(e.answer == YES)
        ans.append(a)
        dis.append(resolve_token(tokenizer, e.distractor))
        if e.target is not None:
            tgt.append(resolve_token(tokenizer, e.target))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids, mask = pad_batch(seqs, pad)
    kind = torch.full(ids.shape, -2, dtype=torch.long)
    for i, k in enumerate(kinds):
        kind[i, : len(k)] = torch.tensor(k)
    dec_t = torch.tensor(dec)
    return _Data(ids, mask, dec_t, dec_t + 1, kind, torch.tensor(y), torch.tensor(ans), torch.tensor(dis),
                 torch.tensor(tgt) if tgt else None, yes, no, layer)


@dataclass
class _Out:
    ld: Tensor  # [n] logit yes - no at the decision position
    margin: Tensor  # [n] answer - distractor logit there
    eos_ok: Tensor | None  # [n] the target is the argmax at the EOS position
    cache: dict[str, Tensor]  # what ``keep`` returned, concatenated over chunks

    def accuracy(self) -> float:
        return float((self.margin > 0).double().mean())

    def eos_accuracy(self) -> float:
        return float("nan") if self.eos_ok is None else float(self.eos_ok.double().mean())


def _forward(
    model: HookedModel,
    data: _Data,
    edits: Callable[[Tensor], list[Intervention]] = lambda idx: [],
    capture: Sequence[str] = (),
    keep: Callable[[dict[str, Tensor], Tensor], dict[str, Tensor]] | None = None,
) -> _Out:
    """One forward per chunk of examples. ``edits(idx)`` gives the chunk's interventions (``idx``:
    the chunk's example indices); ``keep(cache, idx)`` picks what to return from the capture."""
    final = f"blocks.{model.shape.n_layers - 1}.hook_resid_post"
    ld, margin, eos_ok, kept = [], [], [], {}
    for start in range(0, data.n, CHUNK):
        idx = torch.arange(start, min(start + CHUNK, data.n))
        dec = data.dec[idx]
        res = model.run(data.ids[idx], attention_mask=data.mask[idx], capture=[*capture, final],
                        interventions=edits(idx), logit_pos=dec)
        logits = res.logits[:, 0].float().cpu()
        rows = torch.arange(len(idx))
        ld.append(logits[:, data.yes] - logits[:, data.no])
        margin.append(logits[rows, data.answer[idx]] - logits[rows, data.distractor[idx]])
        if data.target is not None:
            resid = res.cache[final]
            at_eos = resid[torch.arange(len(idx), device=resid.device), data.eos[idx].to(resid.device)]
            eos_logits = model.unembed(at_eos[:, None])[:, 0].float().cpu()
            eos_ok.append(eos_logits.argmax(-1) == data.target[idx])
        if keep is not None:
            for k, v in keep(res.cache, idx).items():
                kept.setdefault(k, []).append(v.detach().float().cpu())
    return _Out(torch.cat(ld), torch.cat(margin), torch.cat(eos_ok) if eos_ok else None,
                {k: torch.cat(v) for k, v in kept.items()})


# ---- the clean run: contributions, patterns, values ------------------------------------------


@dataclass
class Contributions:
    """The clean run's per-example quantities at the decision position (module docstring)."""

    s: Tensor  # [n, heads] s_h
    rest: Tensor  # [n] LD - Σ_h s_h, computed from the other components (not by subtraction)
    ld: Tensor  # [n] the model's LD
    y: Tensor  # [n] bool
    accuracy: float
    eos_accuracy: float
    outputs: Tensor  # [n, heads, d_model] o_h
    z: Tensor  # [n, heads, d_head]
    pattern: Tensor  # [n, heads, s] attention row at the decision position
    g: Tensor  # [n, heads, s] per-key value contribution g_h(k)
    v: Tensor  # [n, s, heads, d_head] value vectors (kv heads repeated to query heads)


def _readout(model: HookedModel, data: _Data) -> tuple[Tensor, Tensor, Tensor, float]:
    """(W_O [heads, d_head, d_model], W_O[h] u~ [heads, d_head], u~, constant) with u~ the centred
    ``w_lnf * u`` that a component is dotted with before dividing by the final scale."""
    _, v, const = _direction(model, data.yes, data.no)
    w_o = model.writer_weights(data.layer)[0].float().cpu()
    v = v.float().cpu()
    return w_o, w_o @ v, v, const


def _kv_to_heads(x: Tensor, n_heads: int) -> Tensor:
    """[b, s, kv, d] -> [b, s, heads, d] (GQA: each query head reads its key/value head)."""
    return x if x.shape[2] == n_heads else x.repeat_interleave(n_heads // x.shape[2], dim=2)


def contributions(model: HookedModel, tokenizer, examples: list[Example], layer: int = 0) -> Contributions:
    """One clean run (one forward per chunk) with everything the metrics need."""
    data = _prepare(model, tokenizer, examples, layer)
    return _contributions(model, data)


def _contributions(model: HookedModel, data: _Data) -> Contributions:
    p = f"blocks.{data.layer}.attn."
    final = f"blocks.{model.shape.n_layers - 1}.hook_resid_post"
    n_heads = model.shape.n_heads

    def keep(cache, idx):
        rows = torch.arange(len(idx))
        dec = data.dec[idx]
        return {
            "z": cache[p + "hook_z"].float().cpu()[rows, dec],  # [b, H, dh]
            "pattern": cache[p + "hook_pattern"].float().cpu()[rows, :, dec],  # [b, H, s]
            "v": _kv_to_heads(cache[p + "hook_v"].float().cpu(), n_heads),
            "scale": cache["ln_final.hook_scale"].float().cpu()[:, 0, 0],  # logit_pos: [b, 1, 1]
            "resid": cache[final].float().cpu()[rows, dec],
        }

    out = _forward(model, data, capture=[p + "hook_z", p + "hook_pattern", p + "hook_v", "ln_final.hook_scale"],
                   keep=keep)
    c = out.cache
    w_o, wv, v_dir, const = _readout(model, data)
    scale = c["scale"]
    s = (c["z"] * wv).sum(-1) / scale[:, None]
    outputs = torch.einsum("bhd,hdm->bhm", c["z"], w_o)
    rest = (c["resid"] - outputs.sum(1)) @ v_dir / scale + const
    g = torch.einsum("bshd,hd->bhs", c["v"], wv) / scale[:, None, None]
    return Contributions(s, rest, out.ld, data.y, out.accuracy(), out.eos_accuracy(), outputs, c["z"],
                         c["pattern"], g, c["v"])


# ---- per-head metrics ---------------------------------------------------------------------------


def _class_stats(data: _Data, pattern: Tensor, g: Tensor) -> dict[str, Tensor]:
    """Per example and head: ā_c and t_c for c = 0, 1, 2 ([n, H] each), and n_c ([n])."""
    out = {}
    for c in range(3):
        m = (data.kind == c).double()  # [n, s]
        n_c = m.sum(-1)
        denom = n_c.clamp(min=1)[:, None]
        out[f"n{c}"] = n_c
        out[f"a{c}"] = (pattern.double() * m[:, None]).sum(-1) / denom
        out[f"t{c}"] = (pattern.double() * g.double() * m[:, None]).sum(-1) / denom
    return out


def _ratios(stats: dict[str, Tensor], c: int) -> tuple[Tensor, Tensor]:
    """(raw, value-weighted) pooled ratio of class c to class 0 per head (module docstring)."""
    both = (stats[f"n{c}"] > 0) & (stats["n0"] > 0)
    if not both.any():
        nan = torch.full((stats["a0"].shape[1],), float("nan"), dtype=torch.float64)
        return nan, nan
    raw = stats[f"a{c}"][both].sum(0) / stats["a0"][both].sum(0)
    eff = stats[f"t{c}"][both].sum(0) / -stats["t0"][both].sum(0)
    return raw, eff


def _own_run(model: HookedModel, data: _Data, z: Tensor, head: int) -> _Out:
    """The run with every other head's z at the decision position set to its mean."""
    mean = z.mean(0)  # [H, dh]
    others = [h for h in range(model.shape.n_heads) if h != head]
    name = f"blocks.{data.layer}.attn.hook_z"

    def edits(idx):
        dec = data.dec[idx]

        def fn(act):
            out = act.clone()
            rows = torch.arange(act.shape[0], device=act.device)[:, None]
            hs = torch.tensor(others, device=act.device)[None, :]
            out[rows, dec.to(act.device)[:, None], hs] = mean[others].to(act.device, act.dtype)
            return out

        return [Intervention(name, op="fn", fn=fn)] if others else []

    return _forward(model, data, edits)


def head_metrics(model: HookedModel, tokenizer, examples: list[Example], layer: int = 0, seed: int = 0) -> Table:
    """Per head of ``layer``: auc, auc_sign, s_acc, l_acc, w01, w02, w01_eff, w02_eff, own_acc,
    scale; then a ``model`` row (module docstring)."""
    data = _prepare(model, tokenizer, examples, layer)
    con = _contributions(model, data)
    n_heads = model.shape.n_heads
    stats = _class_stats(data, con.pattern, con.g)
    w01, w01_eff = _ratios(stats, 1)
    w02, w02_eff = _ratios(stats, 2)
    cols: dict[str, list] = {k: [] for k in ("auc", "auc_sign", "s_acc", "l_acc", "w01", "w02", "w01_eff",
                                             "w02_eff", "own_acc", "scale")}
    scores = [con.s[:, h] for h in range(n_heads)] + [con.ld]
    feats = [con.outputs[:, h] for h in range(n_heads)] + [con.outputs.sum(1)]
    own_best: list[float] = []
    for i, (sc, ft) in enumerate(zip(scores, feats)):
        auc, sign = auc_and_sign(sc, con.y)
        cols["auc"].append(auc)
        cols["auc_sign"].append(sign)
        cols["s_acc"].append(separation_accuracy(sc, con.y))
        cols["l_acc"].append(probe_accuracy(ft, con.y, seed=seed))
        is_head = i < n_heads
        for key, t in (("w01", w01), ("w02", w02), ("w01_eff", w01_eff), ("w02_eff", w02_eff)):
            cols[key].append(float(t[i]) if is_head else float("nan"))
        if is_head:
            own = _own_run(model, data, con.z, i)
            cols["own_acc"].append(own.accuracy())
            own_best.append(separation_accuracy(own.ld, data.y, both_signs=False))
        else:
            cols["own_acc"].append(con.accuracy)
        cols["scale"].append(float(sc.double().std()) if len(sc) > 1 else float("nan"))
    labels = [f"L{data.layer}H{h}" for h in range(n_heads)] + ["model"]
    meta = {"layer": data.layer, "n": data.n, "accuracy": con.accuracy, "eos_accuracy": con.eos_accuracy,
            "positives": int(con.y.sum()), "seed": seed, "l2": L2, "own_acc_best_threshold": own_best}
    return Table("count_heads", labels, cols, meta)


# ---- attention interventions -------------------------------------------------------------------


def set_pattern_row(layer: int, rows: Tensor, pos, heads: Sequence[int] | None = None) -> Intervention:
    """An intervention writing ``rows`` into ``blocks.{layer}.attn.hook_pattern`` at query position
    ``pos[b]`` of each example ``b``, for ``heads`` (default all, in order).

    ``rows``: [batch, len(heads), keys] or [batch, keys] (the same row for every chosen head), used
    as given (not renormalised); a row narrower than the pattern is zero-padded on the right. The
    head's output ``z`` is computed from the edited pattern and its own values."""
    rows = torch.as_tensor(rows)
    pos_t = torch.as_tensor(pos, dtype=torch.long).flatten()

    def fn(pattern: Tensor) -> Tensor:
        b, n_heads, _, k = pattern.shape
        hs = torch.arange(n_heads) if heads is None else torch.as_tensor(list(heads), dtype=torch.long)
        if len(hs) == 0:
            return pattern
        r = rows if rows.ndim == 3 else rows[:, None, :].expand(-1, len(hs), -1)
        if r.shape[0] != b or r.shape[1] != len(hs) or pos_t.numel() != b:
            raise BadInput(f"set_pattern_row: rows {list(rows.shape)} and {pos_t.numel()} positions for a batch "
                           f"of {b} and {len(hs)} heads")
        if r.shape[2] > k:
            raise BadInput(f"set_pattern_row: rows have {r.shape[2]} keys; the pattern has {k}")
        if r.shape[2] < k:
            r = torch.nn.functional.pad(r, (0, k - r.shape[2]))
        out = pattern.clone()
        dev = pattern.device
        out[torch.arange(b, device=dev)[:, None], hs.to(dev)[None, :], pos_t.to(dev)[:, None]] = r.to(dev, pattern.dtype)
        return out

    return Intervention(f"blocks.{layer}.attn.hook_pattern", op="fn", fn=fn)


def _check_heads(model: HookedModel, heads: Sequence[int] | None) -> list[int]:
    n = model.shape.n_heads
    if heads is None:
        return list(range(n))
    out = []
    for h in heads:
        if not -n <= h < n:
            raise BadInput(f"head must be between 0 and {n - 1}; got {h}")
        out.append(h % n)
    return list(dict.fromkeys(out))


def ratio_rows(pattern: Tensor, kind: Tensor, w01: float, w02: float) -> Tensor:
    """Attention rows [n, H, s] with the symbols' share redistributed as ``c[x_k]`` (``kind``:
    [n, s] class per key, negative for non-symbols); rows whose symbols all weigh 0 are kept."""
    c = torch.tensor([1.0, float(w01), float(w02)], dtype=torch.float64)
    sym = kind >= 0
    weight = torch.where(sym, c[kind.clamp(min=0)], torch.zeros((), dtype=torch.float64))  # [n, s]
    total = weight.sum(-1)  # [n]
    p = pattern.double()
    mass = (p * sym[:, None]).sum(-1, keepdim=True)  # [n, H, 1]
    new = p * (~sym)[:, None] + mass * weight[:, None] / total.clamp(min=1e-300)[:, None, None]
    keep = (total <= 0)[:, None, None]
    return torch.where(keep, p, new).to(pattern.dtype)


def attention_sweep(model: HookedModel, tokenizer, examples: list[Example], w01s: list[float], w02s: list[float],
                    heads: list[int] | None = None, layer: int = 0) -> Grid:
    """Decision accuracy on a w01 x w02 grid, the chosen heads' attention row at ``=`` set to the
    ratios ``c_0 = 1, c_1 = w01, c_2 = w02`` over symbol tokens (module docstring)."""
    if not w01s or not w02s:
        raise BadInput("attention_sweep needs at least one w01 and one w02")
    for w in [*w01s, *w02s]:
        if not w >= 0 or w == float("inf"):
            raise BadInput(f"attention ratios must be finite and >= 0; got {w}")
    data = _prepare(model, tokenizer, examples, layer)
    hs = _check_heads(model, heads)
    con = _contributions(model, data)
    pattern = con.pattern[:, hs]
    grid, diffs = [], []
    for a in w01s:
        row, drow = [], []
        for b in w02s:
            new = ratio_rows(pattern, data.kind, a, b)
            out = _forward(model, data, lambda idx, new=new: [set_pattern_row(data.layer, new[idx], data.dec[idx], hs)])
            row.append(out.accuracy())
            drow.append(float(out.margin.mean()))
        grid.append(row)
        diffs.append(drow)
    labels = {"w01": [f"w01={a:g}" for a in w01s], "w02": [f"{b:g}" for b in w02s]}  # the header names the axis
    meta = {"layer": data.layer, "heads": hs, "n": data.n, "base_accuracy": con.accuracy, "metric": "accuracy",
            "mean_margin": diffs}
    return Grid("count_attention", ["w01", "w02"], labels, grid, meta)


def _partners(data: _Data, seed: int) -> Tensor:
    """Each example's partner: the next one in a random cyclic order among the examples of the same
    token length (itself when its length occurs once)."""
    g = torch.Generator().manual_seed(seed)
    partner = torch.arange(data.n)
    for length in data.dec.unique():
        members = (data.dec == length).nonzero().flatten()
        order = members[torch.randperm(len(members), generator=g)]
        partner[order] = order.roll(-1)
    return partner


def swap_ablation(model: HookedModel, tokenizer, examples: list[Example], layer: int = 0, seed: int = 0) -> Table:
    """Per head: decision accuracy with its attention row at ``=`` resampled from a same-length
    partner (its own values kept), with its values resampled (its own row kept), and with the mean
    row of that length (module docstring)."""
    data = _prepare(model, tokenizer, examples, layer)
    con = _contributions(model, data)
    partner = _partners(data, seed)
    mean_rows = torch.zeros_like(con.pattern)
    for length in data.dec.unique():
        members = data.dec == length
        mean_rows[members] = con.pattern[members].mean(0)
    name = f"blocks.{data.layer}.attn.hook_z"
    cols: dict[str, list] = {"base_acc": [], "pattern_resampled_acc": [], "values_resampled_acc": [],
                             "pattern_mean_acc": []}
    for h in range(model.shape.n_heads):
        pat = _forward(model, data, lambda idx, h=h: [set_pattern_row(data.layer, con.pattern[partner[idx], h],
                                                                        data.dec[idx], [h])])
        mean = _forward(model, data, lambda idx, h=h: [set_pattern_row(data.layer, mean_rows[idx, h],
                                                                         data.dec[idx], [h])])
        z_swap = torch.einsum("bs,bsd->bd", con.pattern[:, h], con.v[partner, :, h])  # [n, dh]

        def edits(idx, z_swap=z_swap, h=h):
            def fn(act):
                out = act.clone()
                rows = torch.arange(act.shape[0], device=act.device)
                out[rows, data.dec[idx].to(act.device), h] = z_swap[idx].to(act.device, act.dtype)
                return out

            return [Intervention(name, op="fn", fn=fn)]

        val = _forward(model, data, edits)
        cols["base_acc"].append(con.accuracy)
        cols["pattern_resampled_acc"].append(pat.accuracy())
        cols["values_resampled_acc"].append(val.accuracy())
        cols["pattern_mean_acc"].append(mean.accuracy())
    labels = [f"L{data.layer}H{h}" for h in range(model.shape.n_heads)]
    meta = {"layer": data.layer, "n": data.n, "seed": seed, "accuracy": con.accuracy,
            "self_partnered": int((partner == torch.arange(data.n)).sum())}
    return Table("count_swap", labels, cols, meta)


# ---- how the heads are combined ----------------------------------------------------------------


def _lstsq(x: Tensor, target: Tensor) -> tuple[Tensor, float]:
    """Ordinary least squares with an intercept column appended: (coefficients, R^2)."""
    x = torch.cat([x.double(), torch.ones(x.shape[0], 1, dtype=torch.float64)], 1)
    t = target.double()[:, None]
    beta = torch.linalg.lstsq(x, t, driver="gelsd").solution[:, 0]
    resid = t[:, 0] - x @ beta
    ss_tot = float(((t[:, 0] - t.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else float("nan")
    return beta, r2


def _weighted_run(model: HookedModel, data: _Data, weights: Tensor) -> tuple[float, float, float]:
    """(acc, acc_best_threshold, eos_acc) with every head's z at the decision and EOS positions
    scaled by ``weights`` [heads]."""
    name = f"blocks.{data.layer}.attn.hook_z"

    def edits(idx):
        def fn(act):
            out = act.clone()
            rows = torch.arange(act.shape[0], device=act.device)
            w = weights.to(act.device, act.dtype)
            for pos in (data.dec[idx], data.eos[idx]):
                pos = pos.to(act.device)
                out[rows, pos] = act[rows, pos] * w[:, None]
            return out

        return [Intervention(name, op="fn", fn=fn)]

    out = _forward(model, data, edits)
    return out.accuracy(), separation_accuracy(out.ld, data.y, both_signs=False), out.eos_accuracy()


def head_combination(model: HookedModel, tokenizer, examples: list[Example], layer: int = 0) -> Table:
    """Rows ``model``, ``least squares``, ``uniform``: per-head weights and the accuracy of the
    model with its heads so weighted (module docstring)."""
    data = _prepare(model, tokenizer, examples, layer)
    con = _contributions(model, data)
    n_heads = model.shape.n_heads
    beta, r2 = _lstsq(torch.cat([con.s, con.rest[:, None]], 1), con.ld)
    beta_heads, r2_heads = _lstsq(con.s, con.ld)
    sigma = con.s.double().std(0)
    uniform = sigma.mean() / sigma.clamp(min=1e-300)
    rows = {"model": (torch.ones(n_heads, dtype=torch.float64), float("nan")),
            "least squares": (beta[:n_heads], r2),
            "uniform": (uniform, float("nan"))}
    cols: dict[str, list] = {f"w_L{data.layer}H{h}": [] for h in range(n_heads)}
    cols.update({"acc": [], "acc_best_threshold": [], "eos_acc": [], "r2": []})
    for weights, fit in rows.values():
        for h in range(n_heads):
            cols[f"w_L{data.layer}H{h}"].append(float(weights[h]))
        acc, best, eos = _weighted_run(model, data, weights.float())
        cols["acc"].append(acc)
        cols["acc_best_threshold"].append(best)
        cols["eos_acc"].append(eos)
        cols["r2"].append(fit)
    meta = {"layer": data.layer, "n": data.n, "accuracy": con.accuracy, "eos_accuracy": con.eos_accuracy,
            "beta_rest": float(beta[n_heads]), "intercept": float(beta[n_heads + 1]),
            "heads_only_beta": [float(b) for b in beta_heads[:n_heads]], "heads_only_intercept": float(beta_heads[-1]),
            "heads_only_r2": r2_heads, "scale": [float(s) for s in sigma]}
    return Table("count_combine", list(rows), cols, meta)

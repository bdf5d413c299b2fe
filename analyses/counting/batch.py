"""Count01 examples as one padded batch, the forward pass over it in chunks, and the clean run's
per-head contributions (definitions: ``analyses.counting``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from analyses.dla import readout as _readout_vectors
from analyses.errors import BadInput
from analyses.models.base import HookedModel
from analyses.models.hooks import Intervention
from analyses.tasks import Example
from analyses.tokens import encode_prompt, pad_batch, padding_id, resolve_token, token_strings

YES, NO = " yes", " no"
SYMBOLS = ("0", "1", "2")
CHUNK = 512  # examples per forward pass
READOUTS = ("answer", "eos")  # yes - no at '=' (task count01); EOS - mean symbol at the prefix's end (count01-eos)
EOS_TOKEN = "[EOS]"
EOS_Q = 0.2  # count01-eos's stop probability: EOS is "allowed" by the model when p(EOS) > EOS_Q / 2


@dataclass
class Data:
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
    readout: str = "answer"
    reads: Tensor | None = None  # [k] token ids whose logits make LD ...
    weights: Tensor | None = None  # [k] ... with these weights (yes, no: +1, -1)

    @property
    def n(self) -> int:
        return self.ids.shape[0]


def prepare(model: HookedModel, tokenizer, examples: Sequence[Example], layer: int, readout: str = "answer") -> Data:
    """The batch for ``readout`` ``answer`` (prompt + answer, decision at ``=``) or ``eos`` (the
    prefix alone, decision at its last token; module docstring of ``analyses.counting``)."""
    if readout not in READOUTS:
        raise BadInput(f"readout must be one of {', '.join(READOUTS)}; got {readout!r}")
    layer = _check(model, examples, layer)
    if readout == "eos":
        return _prepare_eos(model, tokenizer, examples, layer)
    shape = model.shape
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
    ids, mask = pad_batch(seqs, padding_id(tokenizer))
    kind = torch.full(ids.shape, -2, dtype=torch.long)
    for i, k in enumerate(kinds):
        kind[i, : len(k)] = torch.tensor(k)
    dec_t = torch.tensor(dec)
    return Data(ids, mask, dec_t, dec_t + 1, kind, torch.tensor(y), torch.tensor(ans), torch.tensor(dis),
                torch.tensor(tgt) if tgt else None, yes, no, layer, "answer", torch.tensor([yes, no]),
                torch.tensor([1.0, -1.0]))


def _check(model: HookedModel, examples: Sequence[Example], layer: int) -> int:
    shape = model.shape
    if shape.n_heads == 0:
        raise BadInput(f"counting heads needs an attention model; {shape.family} has no attention heads")
    if not -shape.n_layers <= layer < shape.n_layers:
        raise BadInput(f"layer must be between 0 and {shape.n_layers - 1}; got {layer}")
    if not examples:
        raise BadInput("no examples")
    return layer % shape.n_layers


def _prepare_eos(model: HookedModel, tokenizer, examples: Sequence[Example], layer: int) -> Data:
    """Each prompt alone, read at its last token; y = more 1s than 0s in it (EOS allowed next);
    LD = logit_EOS minus the mean of the symbols' logits. The examples' answers are not read
    (``answer`` / ``distractor`` hold EOS and the symbol 0 for completeness); ``eos`` is ``dec``."""
    eos = resolve_token(tokenizer, EOS_TOKEN)
    symbols = [resolve_token(tokenizer, s) for s in SYMBOLS]
    seqs, dec, kinds, y = [], [], [], []
    for e in examples:
        prompt = encode_prompt(tokenizer, e.prompt, n_ctx=model.shape.n_ctx)
        texts = token_strings(tokenizer, prompt)
        k = [SYMBOLS.index(t.strip()) if t.strip() in SYMBOLS else -1 for t in texts]
        if not any(c >= 0 for c in k):
            raise BadInput(f"count01-eos prompts are strings of 0, 1 and 2; {e.prompt!r} has none")
        seqs.append(prompt)
        kinds.append(k)
        dec.append(len(prompt) - 1)
        y.append(k.count(1) > k.count(0))
    ids, mask = pad_batch(seqs, padding_id(tokenizer))
    kind = torch.full(ids.shape, -2, dtype=torch.long)
    for i, k in enumerate(kinds):
        kind[i, : len(k)] = torch.tensor(k)
    dec_t, y_t = torch.tensor(dec), torch.tensor(y)
    n = len(seqs)
    return Data(ids, mask, dec_t, dec_t, kind, y_t, torch.full((n,), eos), torch.full((n,), symbols[0]), None,
                eos, symbols[0], layer, "eos", torch.tensor([eos, *symbols]), torch.tensor([1.0, -1 / 3, -1 / 3, -1 / 3]))


@dataclass
class Out:
    ld: Tensor  # [n] logit yes - no at the decision position
    margin: Tensor  # [n] answer - distractor logit there
    eos_ok: Tensor | None  # [n] the target is the argmax at the EOS position
    cache: dict[str, Tensor]  # what ``keep`` returned, concatenated over chunks

    def accuracy(self) -> float:
        return float((self.margin > 0).double().mean())

    def eos_accuracy(self) -> float:
        return float("nan") if self.eos_ok is None else float(self.eos_ok.double().mean())


def forward(
    model: HookedModel,
    data: Data,
    edits: Callable[[Tensor], list[Intervention]] = lambda idx: [],
    capture: Sequence[str] = (),
    keep: Callable[[dict[str, Tensor], Tensor], dict[str, Tensor]] | None = None,
) -> Out:
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
        ld.append(logits[:, data.reads] @ data.weights)
        if data.readout == "eos":  # log p(EOS) against log(q/2), signed so that > 0 is right
            above = torch.log_softmax(logits.double(), -1)[:, data.yes] - math.log(EOS_Q / 2)
            margin.append((torch.where(data.y[idx], above, -above)).float())
        else:
            margin.append(logits[rows, data.answer[idx]] - logits[rows, data.distractor[idx]])
        if data.target is not None:
            resid = res.cache[final]
            at_eos = resid[torch.arange(len(idx), device=resid.device), data.eos[idx].to(resid.device)]
            eos_logits = model.unembed(at_eos[:, None])[:, 0].float().cpu()
            eos_ok.append(eos_logits.argmax(-1) == data.target[idx])
        if keep is not None:
            for k, v in keep(res.cache, idx).items():
                kept.setdefault(k, []).append(v.detach().float().cpu())
    margin_t = torch.cat(margin)
    if data.readout == "eos":  # the decision is the EOS decision
        eos_ok = [margin_t > 0]
    return Out(torch.cat(ld), margin_t, torch.cat(eos_ok) if eos_ok else None,
               {k: torch.cat(v) for k, v in kept.items()})


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


def _readout(model: HookedModel, data: Data) -> tuple[Tensor, Tensor, Tensor, float]:
    """(W_O [heads, d_head, d_model], W_O[h] u~ [heads, d_head], u~, constant) with u~ the centred
    ``w_lnf * u`` that a component is dotted with before dividing by the final scale, u the
    readout direction ``W_U[reads] @ weights``, and the constant ``b_lnf . u + b_U[reads] @ weights``."""
    cols, b_u = model.unembed_columns(data.reads.tolist())
    w = data.weights.to(cols.device)
    d = cols.float() @ w
    v = _readout_vectors(model, d[:, None])[:, 0]
    b = model.final_norm_params()[1]
    const = 0.0 if b is None else float(b.float().to(d.device) @ d)
    if b_u is not None:
        const += float(b_u.float() @ w.to(b_u.device))
    w_o = model.writer_weights(data.layer)[0].float().cpu()
    v = v.float().cpu()
    return w_o, w_o @ v, v, const


def _kv_to_heads(x: Tensor, n_heads: int) -> Tensor:
    """[b, s, kv, d] -> [b, s, heads, d] (GQA: each query head reads its key/value head)."""
    return x if x.shape[2] == n_heads else x.repeat_interleave(n_heads // x.shape[2], dim=2)


def contributions(model: HookedModel, tokenizer, examples: list[Example], layer: int = 0,
                  readout: str = "answer") -> Contributions:
    """One clean run (one forward per chunk) with everything the metrics need."""
    data = prepare(model, tokenizer, examples, layer, readout)
    return clean_run(model, data)


def clean_run(model: HookedModel, data: Data) -> Contributions:
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

    out = forward(model, data, capture=[p + "hook_z", p + "hook_pattern", p + "hook_v", "ln_final.hook_scale"],
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

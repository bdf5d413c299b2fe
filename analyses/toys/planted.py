"""Toys whose mechanism is planted by hand before training, then trained around (``train.py``
calls ``plant`` on the freshly built model of every recipe; only the recipes named here change).

``erasure-planted`` (a test fixture for paper 1, docs/erasure.md; never offered as showing the
finding), a 3-layer attention-only GPT-2:

- the token and position embeddings (tied to the unembedding) start at a larger scale than
  GPT-2's init (token norm about 2, position about 1), so the writer's input is not negligible;
- layer 0 is frozen: its head 0 is the *writer*. It attends to positions holding its own token
  (query = key = the first d_head dims of the normalised stream, gain 8) and writes ``gain`` times a
  fixed random map of what it reads: a large, token-dependent write that the task did not ask for
  (later layers may still read it). Its other heads and the MLP write nothing;
- L1H0 is a planted, frozen *eraser*: it attends to positions like its own (query = key = a fixed
  random projection of the normalised stream, gain 8), and its OV circuit maps the writer's output
  subspace back onto minus itself (W_V = pinv(writer W_O) times the typical layer-1 norm scale,
  W_O = -writer W_O).

Everything else (the embeddings, layer 1's other heads, layer 2, the norms' weights) is trained on
IOI around them. What we tried first is in docs/erasure.md: with no planted eraser, or one left
trainable, layers 1-2 learn to erase part of the writer at the answer position, but not in
proportion to what it writes (scatter r about -0.2).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

WRITER_GAIN = 3.0  # the writer's output norm relative to a unit-variance input
EMBED_SCALE = 2.0  # token embedding norm (about); positions have norm about 1
QK_GAIN = 8.0


def _layer1_scale(model: nn.Module, seed: int) -> float:
    """The mean scale of layer 1's first norm on random token sequences (writer planted)."""
    g = torch.Generator().manual_seed(seed)
    c = model.config
    ids = torch.randint(4, c.vocab_size, (32, min(16, c.n_positions)), generator=g)
    with torch.no_grad():
        x = model(input_ids=ids, output_hidden_states=True).hidden_states[1]
    x = x - x.mean(-1, keepdim=True)
    return float((x.pow(2).mean(-1) + model.transformer.h[1].ln_1.eps).sqrt().mean())


def plant_erasure(model: nn.Module, seed: int) -> None:
    """The ``erasure`` toy's planted writer L0H0 and eraser L1H0, both frozen (see the module doc)."""
    c = model.config
    d, heads = c.n_embd, c.n_head
    dh = d // heads
    t = model.transformer
    block = t.h[0]
    g = torch.Generator().manual_seed(10_007 + seed)
    # Conv1D weights are [in, out]; c_attn's outputs are q | k | v, head 0 first in each.
    head0 = [slice(0, dh), slice(d, d + dh), slice(2 * d, 2 * d + dh)]
    with torch.no_grad():
        t.wte.weight.copy_(torch.randn(t.wte.weight.shape, generator=g) * EMBED_SCALE / math.sqrt(d))
        t.wpe.weight.copy_(torch.randn(t.wpe.weight.shape, generator=g) / math.sqrt(d))
        for p in block.parameters():
            p.zero_()
        block.ln_1.weight.fill_(1.0)
        block.ln_2.weight.fill_(1.0)
        w = block.attn.c_attn.weight
        w[:, head0[0]] = torch.eye(d)[:, :dh] * QK_GAIN
        w[:, head0[1]] = torch.eye(d)[:, :dh]
        w[:, head0[2]] = torch.randn(d, dh, generator=g) / math.sqrt(d)
        block.attn.c_proj.weight[:dh] = torch.randn(dh, d, generator=g) * WRITER_GAIN / math.sqrt(dh)
    for p in block.parameters():
        p.requires_grad_(False)
    writer_out = block.attn.c_proj.weight[:dh].clone()  # [dh, d]
    scale = _layer1_scale(model, seed)
    e = t.h[1].attn
    probe = torch.randn(d, dh, generator=g) / math.sqrt(dh)
    with torch.no_grad():
        e.c_attn.weight[:, head0[0]] = probe * QK_GAIN
        e.c_attn.weight[:, head0[1]] = probe
        e.c_attn.weight[:, head0[2]] = torch.linalg.pinv(writer_out) * scale
        for cols in head0:
            e.c_attn.bias[cols] = 0.0
        e.c_proj.weight[:dh] = -writer_out
    # Frozen too: its gradient is masked (Adam then leaves it; weight decay shrinks it ~3 %).
    attn_mask = torch.zeros_like(e.c_attn.weight)
    bias_mask = torch.zeros_like(e.c_attn.bias)
    for cols in head0:
        attn_mask[:, cols] = 1.0
        bias_mask[cols] = 1.0
    proj_mask = torch.zeros_like(e.c_proj.weight)
    proj_mask[:dh] = 1.0
    for param, mask in ((e.c_attn.weight, attn_mask), (e.c_attn.bias, bias_mask), (e.c_proj.weight, proj_mask)):
        param.register_hook(lambda grad, keep=1.0 - mask: grad * keep)


PLANTS: dict[str, Callable[[nn.Module, int], None]] = {
    "erasure-planted": plant_erasure,
}


def plant(name: str, model: nn.Module, seed: int) -> None:
    """Plant recipe ``name``'s mechanism in ``model`` (nothing for the other recipes)."""
    if name in PLANTS:
        PLANTS[name](model, seed)

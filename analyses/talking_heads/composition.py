"""Communication channels between heads (Elhage et al. 2021; Merullo et al. 2024, "Talking Heads").

Every head has an OV circuit ``OV = W_V W_O`` and a QK circuit ``QK = W_Q W_Kᵀ`` (D x D, row
convention: a head writes ``x OV``; a query ``x_q`` scores a key ``x_k`` as ``x_q QK x_kᵀ``).
The composition score of a sender's OV (L) with a later receiver's R is
``‖L R‖_F / (‖L‖_F ‖R‖_F)`` with R = QK (Q-composition), QKᵀ (K-composition) or OV
(V-composition), as TransformerLens's ``all_composition_scores`` defines it.

Nothing D x D is ever formed: with L = A B (A = W_V, B = W_O) and R = C E, QR factors
A = Q_a R_a and Eᵀ = Q_e R_e give ``‖L R‖_F = ‖(R_a B)(C R_eᵀ)‖_F``, a d_head x d_head product
per pair, batched per sender layer into one matmul. The SVD of a head's OV is the SVD of the
d_head x D matrix ``R_a B`` (write directions v_i are its right singular vectors), and the
composition of one component ``s_i u_i v_iᵀ`` is ``CS_i = ‖v_iᵀ R‖ / ‖R‖_F`` in closed form.

Weights are read "as TransformerLens's from_pretrained processes them" by default (``fold="tl"``):
the preceding norm's weight folded into W_Q, W_K, W_V; for LayerNorm models the reading weights
centred over d_model (fold_ln) and W_O centred over d_model (center_writing_weights). Biases play
no part (TL's scores use weights only). See docs/composition.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from analyses.errors import BadInput
from analyses.labels import head_label, parse_head
from analyses.models.base import HookedModel
from analyses.results import Grid, Series, Table

FOLDS = ("tl", "ln", "raw")
MODES = ("Q", "K", "V")


@dataclass
class HeadWeights:
    """Per-head weights of every layer, fp32 on CPU: W_Q, W_K, W_V [L, H, D, d_head] (key and
    value heads repeated onto their query heads on GQA models) and W_O [L, H, d_head, D]."""

    W_Q: Tensor
    W_K: Tensor
    W_V: Tensor
    W_O: Tensor
    fold: str

    @property
    def n_layers(self) -> int:
        return self.W_Q.shape[0]

    @property
    def n_heads(self) -> int:
        return self.W_Q.shape[1]

    def labels(self) -> list[str]:
        return [head_label(l, h) for l in range(self.n_layers) for h in range(self.n_heads)]


def _check_attention(model: HookedModel) -> None:
    if model.shape.n_heads == 0 or not hasattr(model, "qkv_weights"):
        raise BadInput(f"composition needs attention heads; {model.shape.family} has none")


def head_weights(model: HookedModel, fold: str = "tl", layers: list[int] | None = None) -> HeadWeights:
    """Read every head's W_Q, W_K, W_V, W_O (of ``layers``, default all) from the model, in fp32 on CPU."""
    if fold not in FOLDS:
        raise BadInput(f"--fold must be one of {', '.join(FOLDS)} (got {fold!r})")
    _check_attention(model)
    shape = model.shape
    group = shape.n_heads // shape.n_kv_heads
    qs, ks, vs, os_ = [], [], [], []
    for layer in range(shape.n_layers) if layers is None else layers:
        ws = [w.float().cpu().permute(1, 0, 2) for w, _ in model.qkv_weights(layer)]  # [heads, D, dh]
        ln_w = model.attn_norm_params(layer)[0].cpu()
        w_q, w_k, w_v = ws[0], ws[1].repeat_interleave(group, 0), ws[2].repeat_interleave(group, 0)
        w_o = model.writer_weights(layer)[0].float().cpu()
        if fold != "raw":
            w_q, w_k, w_v = (w * ln_w[None, :, None] for w in (w_q, w_k, w_v))
        if fold == "tl" and shape.norm == "layernorm":
            w_q, w_k, w_v = (w - w.mean(1, keepdim=True) for w in (w_q, w_k, w_v))
            w_o = w_o - w_o.mean(-1, keepdim=True)
        qs.append(w_q), ks.append(w_k), vs.append(w_v), os_.append(w_o)
    return HeadWeights(torch.stack(qs), torch.stack(ks), torch.stack(vs), torch.stack(os_), fold)


def _r_factor(a: Tensor) -> Tensor:
    """R of a = QR over the last two axes ([.., D, k] -> [.., k, k]): ‖a X‖ = ‖R X‖ for any X."""
    return torch.linalg.qr(a, mode="r")[1]


def sender_factors(w: HeadWeights) -> Tensor:
    """P [L, H, d_head, D] with ‖x OV‖ = ‖y P‖ for y = x Q_a: the OV circuit with its orthogonal
    left factor removed (same singular values and write directions)."""
    return _r_factor(w.W_V) @ w.W_O


def receiver_factors(w: HeadWeights, mode: str) -> Tensor:
    """Q [L, H, D, d_head] with ‖X R‖_F = ‖X Q‖_F for every X: R with its orthogonal right factor removed."""
    if mode not in MODES:
        raise BadInput(f"--mode must be one of {', '.join(MODES)} (got {mode!r})")
    c, e_t = {"Q": (w.W_Q, w.W_K), "K": (w.W_K, w.W_Q), "V": (w.W_V, w.W_O.transpose(-1, -2))}[mode]
    return c @ _r_factor(e_t).transpose(-1, -2)


def composition_scores(w: HeadWeights, mode: str) -> Tensor:
    """[L, H, L, H] scores sender (l1, h1) -> receiver (l2, h2), zero unless l1 < l2: equal to
    TransformerLens's ``all_composition_scores(mode)`` on the same weights."""
    p, q = sender_factors(w), receiver_factors(w, mode)
    n, h, dh, d = p.shape
    out = torch.zeros(n, h, n, h)
    p_norm = p.flatten(-2).norm(dim=-1)  # [L, H]
    q_norm = q.flatten(-2).norm(dim=-1)
    for l1 in range(n - 1):
        later = q[l1 + 1 :]  # [L', H, D, dh]
        prod = p[l1].reshape(h * dh, d) @ later.permute(2, 0, 1, 3).reshape(d, -1)  # [H dh, L' H dh]
        norms = prod.view(h, dh, n - l1 - 1, h, dh).pow(2).sum((1, 4)).sqrt()  # [H, L', H]
        out[l1, :, l1 + 1 :] = norms / p_norm[l1][:, None, None] / q_norm[l1 + 1 :][None]
    return out


def ov_svd(w: HeadWeights) -> tuple[Tensor, Tensor]:
    """(singular values [L, H, d_head], write directions v_i as rows [L, H, d_head, D]) of every OV."""
    _, s, vh = torch.linalg.svd(sender_factors(w), full_matrices=False)
    return s, vh


def qk_spectrum(w: HeadWeights) -> Tensor:
    """Singular values [L, H, d_head] of every QK = W_Q W_Kᵀ."""
    return torch.linalg.svdvals(_r_factor(w.W_Q) @ _r_factor(w.W_K).transpose(-1, -2))


def component_scores(write: Tensor, q: Tensor) -> Tensor:
    """CS_i = ‖v_iᵀ R‖ / ‖R‖_F for unit rows ``write`` [.., k, D] against every receiver factor
    ``q`` [L, H, D, dh] -> [.., k, L, H]."""
    lead = write.shape[:-1]
    n, h, d, dh = q.shape
    prod = write.reshape(-1, d) @ q.permute(2, 0, 1, 3).reshape(d, -1)
    norms = prod.view(-1, n, h, dh).norm(dim=-1) / q.flatten(-2).norm(dim=-1)
    return norms.view(*lead, n, h)


def random_baseline(d_model: int, d_head: int, q: Tensor, draws: int = 20, seed: int = 0) -> tuple[Tensor, Tensor]:
    """CS_i of the write directions of random sender factors (A [D, dh], B [dh, D], standard
    Gaussian) against every receiver: (mean, std) over ``draws``, each [d_head, L, H]."""
    g = torch.Generator().manual_seed(seed)
    vals = []
    for _ in range(draws):
        a, b = torch.randn(d_model, d_head, generator=g), torch.randn(d_head, d_model, generator=g)
        _, _, vh = torch.linalg.svd(_r_factor(a) @ b, full_matrices=False)
        vals.append(component_scores(vh, q))
    stack = torch.stack(vals)
    return stack.mean(0), stack.std(0)


# ---- the analyses -------------------------------------------------------------------------------


def composition_grid(model: HookedModel, mode: str = "Q", fold: str = "tl") -> Grid:
    """Sender x receiver heatmap of mode-composition scores (zero where the receiver is not later)."""
    w = head_weights(model, fold)
    scores = composition_scores(w, mode)
    n, h = w.n_layers, w.n_heads
    labels = w.labels()
    flat = scores.reshape(n * h, n * h)
    # Random senders against these receivers: the score of a D x D product of Gaussian factors.
    q = receiver_factors(w, mode)
    d, dh = w.W_O.shape[-1], w.W_O.shape[-2]
    g = torch.Generator().manual_seed(0)
    null = []
    for _ in range(20):
        p = _r_factor(torch.randn(d, dh, generator=g)) @ torch.randn(dh, d, generator=g)
        null.append(((p @ q).flatten(-2).norm(dim=-1) / p.norm() / q.flatten(-2).norm(dim=-1)).flatten())
    null_t = torch.stack(null)
    meta = {"mode": mode, "fold": fold, "null_mean": float(null_t.mean()), "null_std": float(null_t.std()),
            "max": float(flat.max()), "argmax": _pair_label(labels, int(flat.argmax()), n * h)}
    return Grid("composition", ["sender", "receiver"], {"sender": labels, "receiver": list(labels)},
                flat.tolist(), meta)


def _pair_label(labels: list[str], flat_index: int, size: int) -> str:
    return f"{labels[flat_index // size]} -> {labels[flat_index % size]}"


def spectra(model: HookedModel, circuit: str = "ov", fold: str = "tl", heads: list[str] | None = None) -> Series:
    """Singular values of every head's OV or QK circuit against the component index."""
    w = head_weights(model, fold)
    if circuit not in ("ov", "qk"):
        raise BadInput(f"--circuit must be ov or qk (got {circuit!r})")
    s = ov_svd(w)[0] if circuit == "ov" else qk_spectrum(w)
    labels = w.labels()
    wanted = labels if not heads else [parse_head(x, w.n_layers, w.n_heads)[2] for x in heads]
    flat = s.reshape(len(labels), -1)
    lines = {lab: flat[labels.index(lab)].tolist() for lab in wanted}
    meta = {"circuit": circuit, "fold": fold, "ordered": True}
    return Series("spectra", list(range(flat.shape[1])), lines, "component", meta)


def channels(model: HookedModel, mode: str = "Q", fold: str = "tl", top: int = 30, sender: str | None = None,
             receiver: str | None = None, draws: int = 20) -> Table:
    """The strongest channels "sender component i -> later receiver": CS_i against the random
    baseline (z = (CS_i - mean) / std of random senders' component i with that receiver).
    ``sender`` / ``receiver`` restrict the rows to one head."""
    w = head_weights(model, fold)
    n, h = w.n_layers, w.n_heads
    s, vh = ov_svd(w)
    q = receiver_factors(w, mode)
    cs = torch.zeros(n, h, vh.shape[2], n, h)  # [L, H, k, L, H]: zero unless the receiver is later
    for l1 in range(n - 1):
        cs[l1, :, :, l1 + 1 :] = component_scores(vh[l1], q[l1 + 1 :])
    mean, std = random_baseline(w.W_O.shape[-1], w.W_O.shape[-2], q, draws)  # [k, L, H]
    z = (cs - mean) / std.clamp_min(1e-12)
    later = torch.arange(n)[:, None, None, None, None] < torch.arange(n)[None, None, None, :, None]
    keep = later.expand_as(cs).clone()
    if sender:
        sl, sh, _ = parse_head(sender, n, h)
        mask = torch.zeros(n, h, dtype=torch.bool)
        mask[sl, sh] = True
        keep &= mask[:, :, None, None, None]
    if receiver:
        rl, rh, _ = parse_head(receiver, n, h)
        mask = torch.zeros(n, h, dtype=torch.bool)
        mask[rl, rh] = True
        keep &= mask[None, None, None]
    # The pair's score from its components: ‖OV R‖² = Σ_i s_i² ‖v_iᵀ R‖², so CS = √(Σ s_i² CS_i²) / ‖s‖.
    pair = (s[:, :, :, None, None].pow(2) * cs.pow(2)).sum(2).sqrt() / s.norm(dim=-1)[:, :, None, None]
    idx = keep.nonzero()
    if idx.numel() == 0:
        raise BadInput("no sender/receiver pairs: the receiver must be in a later layer than the sender")
    vals = cs[keep]
    order = vals.argsort(descending=True)[: top if top > 0 else None]
    rows = idx[order].tolist()
    labels = [f"L{a}H{b}.c{i} -> L{c}H{d}" for a, b, i, c, d in rows]
    cols = {
        "cs": [float(cs[tuple(r)]) for r in rows],
        "z": [float(z[tuple(r)]) for r in rows],
        "null_mean": [float(mean[r[2], r[3], r[4]]) for r in rows],
        "null_std": [float(std[r[2], r[3], r[4]]) for r in rows],
        "sigma": [float(s[r[0], r[1], r[2]]) for r in rows],
        "pair_score": [float(pair[r[0], r[1], r[3], r[4]]) for r in rows],
    }
    meta = {"mode": mode, "fold": fold, "draws": draws, "null_1_over_sqrt_d": 1 / math.sqrt(w.W_O.shape[-1])}
    return Table("channels", labels, cols, meta)

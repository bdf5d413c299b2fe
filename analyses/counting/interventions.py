"""Attention interventions on Count01: set the heads' attention ratios, or swap a head's pattern
or values with another string's (definitions: ``analyses.counting``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from analyses.counting.batch import Data, clean_run, forward, prepare
from analyses.errors import BadInput
from analyses.labels import head_label
from analyses.models.base import HookedModel
from analyses.models.hooks import Intervention
from analyses.results import Grid, Table
from analyses.tasks import Example


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
                    heads: list[int] | None = None, layer: int = 0, readout: str = "answer") -> Grid:
    """Decision accuracy on a w01 x w02 grid, the chosen heads' attention row at ``=`` set to the
    ratios ``c_0 = 1, c_1 = w01, c_2 = w02`` over symbol tokens (module docstring)."""
    if not w01s or not w02s:
        raise BadInput("attention_sweep needs at least one w01 and one w02")
    for w in [*w01s, *w02s]:
        if not w >= 0 or w == float("inf"):
            raise BadInput(f"attention ratios must be finite and >= 0; got {w}")
    data = prepare(model, tokenizer, examples, layer, readout)
    hs = _check_heads(model, heads)
    con = clean_run(model, data)
    pattern = con.pattern[:, hs]
    grid, diffs = [], []
    for a in w01s:
        row, drow = [], []
        for b in w02s:
            new = ratio_rows(pattern, data.kind, a, b)
            out = forward(model, data, lambda idx, new=new: [set_pattern_row(data.layer, new[idx], data.dec[idx], hs)])
            row.append(out.accuracy())
            drow.append(float(out.margin.mean()))
        grid.append(row)
        diffs.append(drow)
    labels = {"w01": [f"w01={a:g}" for a in w01s], "w02": [f"{b:g}" for b in w02s]}  # the header names the axis
    meta = {"layer": data.layer, "heads": hs, "n": data.n, "base_accuracy": con.accuracy, "metric": "accuracy",
            "readout": data.readout,
            "mean_margin": diffs}
    return Grid("count_attention", ["w01", "w02"], labels, grid, meta)


def partners(data: Data, seed: int) -> Tensor:
    """Each example's partner: the next one in a random cyclic order among the examples of the same
    token length (itself when its length occurs once)."""
    g = torch.Generator().manual_seed(seed)
    partner = torch.arange(data.n)
    for length in data.dec.unique():
        members = (data.dec == length).nonzero().flatten()
        order = members[torch.randperm(len(members), generator=g)]
        partner[order] = order.roll(-1)
    return partner


def swap_ablation(model: HookedModel, tokenizer, examples: list[Example], layer: int = 0, seed: int = 0,
                 readout: str = "answer") -> Table:
    """Per head: decision accuracy with its attention row at ``=`` resampled from a same-length
    partner (its own values kept), with its values resampled (its own row kept), and with the mean
    row of that length (module docstring)."""
    data = prepare(model, tokenizer, examples, layer, readout)
    con = clean_run(model, data)
    partner = partners(data, seed)
    mean_rows = torch.zeros_like(con.pattern)
    for length in data.dec.unique():
        members = data.dec == length
        mean_rows[members] = con.pattern[members].mean(0)
    name = f"blocks.{data.layer}.attn.hook_z"
    cols: dict[str, list] = {"base_acc": [], "pattern_resampled_acc": [], "values_resampled_acc": [],
                             "pattern_mean_acc": []}
    for h in range(model.shape.n_heads):
        pat = forward(model, data, lambda idx, h=h: [set_pattern_row(data.layer, con.pattern[partner[idx], h],
                                                                        data.dec[idx], [h])])
        mean = forward(model, data, lambda idx, h=h: [set_pattern_row(data.layer, mean_rows[idx, h],
                                                                         data.dec[idx], [h])])
        z_swap = torch.einsum("bs,bsd->bd", con.pattern[:, h], con.v[partner, :, h])  # [n, dh]

        def edits(idx, z_swap=z_swap, h=h):
            def fn(act):
                out = act.clone()
                rows = torch.arange(act.shape[0], device=act.device)
                out[rows, data.dec[idx].to(act.device), h] = z_swap[idx].to(act.device, act.dtype)
                return out

            return [Intervention(name, op="fn", fn=fn)]

        val = forward(model, data, edits)
        cols["base_acc"].append(con.accuracy)
        cols["pattern_resampled_acc"].append(pat.accuracy())
        cols["values_resampled_acc"].append(val.accuracy())
        cols["pattern_mean_acc"].append(mean.accuracy())
    labels = [head_label(data.layer, h) for h in range(model.shape.n_heads)]
    meta = {"layer": data.layer, "n": data.n, "seed": seed, "accuracy": con.accuracy, "readout": data.readout,
            "self_partnered": int((partner == torch.arange(data.n)).sum())}
    return Table("count_swap", labels, cols, meta)

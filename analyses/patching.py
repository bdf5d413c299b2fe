"""Activation patching sweeps over (layer, position[, head]), batched.

Denoising (the default): run the corrupted prompts and write in the clean activation at one site
and cell; ``noise`` does the reverse; ``resample`` writes another prompt's clean activation (the
batch rolled by one) into the clean run, and ``mean`` the batch mean. Each grid cell is the metric
of that patched run.

Fast path: every cell of one layer becomes a group of rows of one batch (k patched copies of the
prompts in one forward), and each forward starts at the patched layer from the cached residual
stream of the unpatched run. A patch at position p changes only positions >= p, so on attention
models a forward also starts at the earliest patched position of its rows: the earlier positions'
keys and values at every later layer are the unpatched run's (``Prefix``), and chunks group cells
of nearby positions (padding a row back to the chunk's start wastes at most a quarter of its
work). Cells whose source activation equals the unpatched one for every prompt (positions before
the prompts' first difference) cost no forward: their value is the unpatched metric. Only the
last token's logits are unembedded (and for logit differences only the answer and distractor
columns), and the last block runs its queries at that token only. Mamba sweeps run the whole
sequence from the patched layer. Metrics stay on the device until the sweep ends.
``batched=False`` is the one-forward-per-cell reference loop the fast path is tested against.

Forwards are time-bounded: the first is small and each next one is sized from the last one's wall
time to take about a second, so a cancellation is seen within ~2 s even on large models. A
cancelled sweep returns what it computed (the rest NaN, ``meta["partial"]`` True).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from analyses.errors import BadInput, Cancelled  # noqa: F401  (Cancelled: re-exported for callers)
from analyses.metrics import Metric, logit_diff, metric_columns
from analyses.models.base import HookedModel, Prefix, RunResult
from analyses.models.hooks import Intervention, axes_of
from analyses.results import Grid

TRANSFORMER_SITES = {
    "resid_pre": "hook_resid_pre",
    "attn_out": "hook_attn_out",
    "mlp_out": "hook_mlp_out",
    "head_out": "attn.hook_z",
    "head_q": "attn.hook_q",
    "head_k": "attn.hook_k",
    "head_v": "attn.hook_v",
    "head_pattern": "attn.hook_pattern",
}
MAMBA_SITES = {
    "resid_pre": "hook_resid_pre",
    "layer_in": "hook_layer_in",
    "out_proj": "mixer.hook_out_proj",
    "conv": "mixer.hook_conv",
    "ssm_in": "mixer.hook_ssm_in",
}
# Sites a sweep patches that the `patch` analysis does not list: each layer's conv kernel slices
# (``conv-slices``), all of a layer's slices at one hook, the slice indexed like a head.
SLICE_SITES = {"conv_slice": "mixer.hook_conv_slices"}
LOCAL_SITES = ("attn.hook_z", "attn.hook_q", "attn.hook_pattern", "hook_attn_out", "hook_mlp_out")
METHODS = ("denoise", "noise", "resample", "mean")
START_ROWS = 8  # the first forward of a sweep: small, so its wall time is known quickly
TARGET_SECONDS = 1.0  # the wall time a forward is sized to, so Escape is seen within ~2 s
PAD_WASTE = 1.25  # a chunk's rows may cost this times their own suffixes (padded to its earliest position)

Progress = Callable[[int, int], None]
Cell = tuple[int | None, int | None]  # (position, head); None where the sweep has no such axis


def sites_for(model: HookedModel) -> dict[str, str]:
    return MAMBA_SITES if model.shape.family == "mamba" else TRANSFORMER_SITES


def baselines(
    model: HookedModel,
    clean: Tensor,
    corrupt: Tensor,
    answer: Tensor,
    distractor: Tensor,
    metric: str,
    token_set: Tensor | None = None,
    capture: list[str] | None = None,
) -> tuple[RunResult, RunResult, Metric]:
    """The unpatched clean and corrupted runs (capturing ``capture``) and the metric, whose
    normalisation (for ``nld``) comes from their logit differences at the last token."""
    if clean.shape != corrupt.shape:
        raise BadInput(f"clean and corrupted prompts differ in token length: {clean.shape[1]} vs {corrupt.shape[1]}")
    last = torch.full((clean.shape[0],), clean.shape[1] - 1)
    clean_run = model.run(clean, capture=capture)
    corrupt_run = model.run(corrupt, capture=capture)
    ld_clean = logit_diff(clean_run.logits, last, answer, distractor)
    ld_corrupt = logit_diff(corrupt_run.logits, last, answer, distractor)
    return clean_run, corrupt_run, Metric(metric, last, answer, distractor, token_set, ld_clean, ld_corrupt)


def _indices(chosen: Sequence[int] | None, size: int, what: str) -> list[int]:
    """Chosen indices (negative from the end) in order without repeats; all when None."""
    if chosen is None:
        return list(range(size))
    bad = [i for i in chosen if not -size <= i < size]
    if bad or not chosen:
        raise BadInput(f"{what}s must be between {-size} and {size - 1}; got {', '.join(map(str, bad)) or 'none'}")
    return list(dict.fromkeys(i % size for i in chosen))


def _patch_fn(cells: list[Cell], src: Tensor, n: int, hook: str, start: int = 0,
              narrowed: bool = False) -> Callable[[Tensor], Tensor]:
    """Rows [i*n, (i+1)*n) of the activation get ``src`` at cell i's position and head. The
    activation may cover positions ``start..`` only (a run over a suffix), or, ``narrowed``, only
    each row's patched position; ``src`` covers all."""
    pos_axis, head_axis = axes_of(hook)

    def fn(act: Tensor) -> Tensor:
        out = act.clone()
        for i, (pos, head) in enumerate(cells):
            dst = [slice(i * n, (i + 1) * n)] + [slice(None)] * (act.ndim - 1)
            from_ = [slice(None)] * act.ndim
            if pos is not None:
                dst[pos_axis], from_[pos_axis] = 0 if narrowed else pos - start, pos
            elif start:
                from_[pos_axis] = slice(start, None)
            if head is not None:
                dst[head_axis] = from_[head_axis] = head
            out[tuple(dst)] = src[tuple(from_)].to(out.dtype)
        return out

    return fn


def _same_cells(a: Tensor, b: Tensor, hook: str, by_pos: bool, by_head: bool) -> list[list[bool]]:
    """[pos][head] (a length-1 axis where the sweep has none): whether ``a`` equals ``b`` at that
    cell for every prompt, from one comparison and one transfer (not a device sync per cell)."""
    pos_axis, head_axis = axes_of(hook)
    keep = ([pos_axis] if by_pos else []) + ([head_axis] if by_head else [])
    rest = [axis for axis in range(a.ndim) if axis not in keep]
    same = (a == b).permute(*keep, *rest).flatten(len(keep)).all(-1)
    same = same.reshape(same.shape[0] if by_pos else 1, same.shape[-1] if by_head else 1)
    return same.tolist()


def next_batch_rows(rows: int, seconds: float, target: float = TARGET_SECONDS, cap: int = 256,
                    max_growth: float = 4.0) -> int:
    """Rows for the next forward so that it takes about ``target`` seconds, given that ``rows``
    rows took ``seconds``: bounded forwards let a sweep notice cancellation within ~2 s. Growth is
    at most ``max_growth``-fold per step (a quick timing may be noise); shrinking is not limited.
    Always between 1 and ``cap``."""
    grown = rows * max_growth
    guess = grown if seconds <= 0 else min(rows * target / seconds, grown)
    return max(1, min(cap, int(guess)))


def _wait(t: Tensor) -> None:
    """Block until ``t`` is computed, so that the time measured is the forward's, not its launch's."""
    if t.device.type == "cuda":
        torch.cuda.synchronize(t.device)
    elif t.device.type == "mps":
        torch.mps.synchronize()


def release_memory() -> None:
    """After an out-of-memory error: give the CUDA allocator's cached blocks back before a retry."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _sweep(
    layers: list[int],
    cells: list[Cell],
    n: int,
    cap: int,
    forward: Callable[[int, list[Cell]], tuple[Tensor, float]],
    progress: Progress | None,
    should_stop: Callable[[], bool] | None,
    chunk_end: Callable[[int, int, int], int] | None = None,
    halved: list[int] | None = None,
) -> list[Tensor]:
    """Call ``forward(layer, start, chunk)`` over ``layers`` and chunks ``cells[start:]``, sizing chunks by
    ``next_batch_rows``. ``forward`` returns the [len(chunk)] metrics and the rows it ran, in
    full-length rows (a row over a suffix of the positions counts its share). A cell costs ``n``
    rows and is never split, so a chunk holds at least one (with more prompts than ``cap`` a
    forward exceeds it); ``chunk_end(layer, start, rows)`` may choose where a chunk ends instead.
    Stops before the next forward when ``should_stop()`` says so; returns the metric tensors
    done, in sweep order.

    A forward that runs out of memory (CUDA's or the CPU's) is retried once with half the rows,
    which stay the cap from then on; a second failure in a row gives up (the caller names the run
    and how to shrink it). Each cell's patched rows are computed alone, so the numbers do not
    depend on how many share a forward. ``halved`` (if given) counts the retries."""
    total, done, rows = len(layers) * len(cells), 0, min(START_ROWS, cap)
    results: list[Tensor] = []
    retried = False
    for layer in layers:
        start = 0
        while start < len(cells):
            if should_stop is not None and should_stop():
                return results
            end = chunk_end(layer, start, rows) if chunk_end is not None else start + max(1, rows // n)
            chunk = cells[start:end]
            t0 = time.perf_counter()
            try:
                values, ran = forward(layer, start, chunk)
            except (torch.OutOfMemoryError, MemoryError):
                if retried:
                    raise
                retried = True
                release_memory()
                cap = rows = max(1, rows // 2)
                if halved is not None:
                    halved.append(rows)
                continue
            retried = False
            results.append(values)
            _wait(values)
            if ran > 0:
                per_row = (time.perf_counter() - t0) / ran
                rows = next_batch_rows(rows, per_row * rows, cap=cap)  # a short last chunk still times a full one
            start += len(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    return results


def activation_patching(
    model: HookedModel,
    clean: Tensor,
    corrupt: Tensor,
    answer: Tensor,
    distractor: Tensor,
    site: str,
    metric: str = "logit_diff",
    method: str = "denoise",
    by_pos: bool = True,
    token_set: Tensor | None = None,
    batched: bool = True,
    rows_per_forward: int = 256,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    token_labels: list[str] | None = None,
    positions: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    layers: Sequence[int] | None = None,
) -> Grid:
    """Patch ``site`` cell by cell. ``clean``/``corrupt`` are [n, pos] token ids of equal shape
    (aligned prompt pairs); ``answer``/``distractor`` [n] token ids (the clean and the corrupted
    answers). ``positions`` / ``heads`` / ``layers`` (negative counts from the end) restrict the
    sweep to those cells, which costs only their share of the full sweep. ``site`` may also be
    one of ``SLICE_SITES`` (Mamba), whose slice axis is swept like a head axis.

    ``rows_per_forward`` caps a forward's rows. When ``should_stop()`` turns True the sweep stops
    before its next forward and returns the grid so far: cells not computed are NaN. ``meta`` always
    has ``partial`` (False for a complete grid), ``cells_done`` and ``cells_total``."""
    sites = sites_for(model)
    hooks = {**sites, **SLICE_SITES} if model.shape.family == "mamba" else sites
    if site not in hooks:
        raise BadInput(f"site {site!r} is not available for {model.shape.family}; sites: {', '.join(sites)}")
    if method not in METHODS:
        raise BadInput(f"--direction must be one of {', '.join(METHODS)}")
    if method in ("resample", "mean") and clean.shape[0] < 2:
        # The mean (or another prompt) of one prompt is that prompt: every cell would be clean.
        raise BadInput(f"{method} ablation needs at least two prompts")
    n, seq = clean.shape
    hook = hooks[site]
    n_layers = model.shape.n_layers
    layer_list = _indices(layers, n_layers, "layer")
    names = {layer: f"blocks.{layer}.{hook}" for layer in layer_list}
    resid_names = [f"blocks.{layer}.hook_resid_pre" for layer in range(n_layers)]
    prefix_hooks = getattr(model, "prefix_hooks", None)
    kv_names = [prefix_hooks(layer) for layer in range(n_layers)] if prefix_hooks is not None and batched else None
    capture = list(names.values()) + resid_names + ([name for pair in kv_names for name in pair] if kv_names else [])
    clean_run, corrupt_run, m = baselines(model, clean, corrupt, answer, distractor, metric, token_set, capture)
    last = m.last
    vocab, a_col, d_col = metric_columns(metric, answer, distractor)
    at_last = Metric(metric, torch.zeros(n, dtype=torch.long), a_col, d_col, token_set, m.clean, m.corrupt)
    base_ids, base, source = (corrupt, corrupt_run, clean_run) if method == "denoise" else (clean, clean_run, corrupt_run)
    if method in ("resample", "mean"):
        source = clean_run

    def src(layer: int) -> Tensor:
        act = source.cache[names[layer]]
        if method == "resample":
            return act.roll(1, dims=0)
        if method == "mean":
            return act.mean(0, keepdim=True).expand_as(act)
        return act

    head_axis = axes_of(hook)[1]
    n_heads = None if head_axis is None else source.cache[names[layer_list[0]]].shape[head_axis]
    if heads is not None and not n_heads:
        raise BadInput(f"site {site!r} has no heads to choose from")
    if positions is not None and not by_pos:
        raise BadInput("positions can only be chosen for a per-position sweep")
    pos_list = _indices(positions, seq, "position") if by_pos else [None]
    head_list = _indices(heads, n_heads, "head") if n_heads else [None]
    cells = [(p, h) for p in pos_list for h in head_list]
    total = len(layer_list) * len(cells)
    base_value = m(base.logits)
    # Attention families resume a patched row at its position: earlier positions' keys and values
    # are the unpatched run's (a patch at p changes only p and later positions). Standing
    # activation edits (analyses.edits) still land at their positions: Hooks places them.
    suffix = by_pos and kv_names is not None
    # Sites that change only their own position within the patched layer (after its keys and
    # values): that layer runs at the patched position alone. ``narrow_at``: the site's activation
    # then has that one position (the query is taken before the narrowing).
    local = suffix and hook in LOCAL_SITES
    narrow_at = hook != "attn.hook_q"

    noop_cache: dict[int, list[bool]] = {}

    def noop(layer: int) -> list[bool]:
        """Cells whose source equals the unpatched activation for every prompt (e.g. positions
        before the first token where the prompts differ): their patched run is the unpatched run."""
        if layer not in noop_cache:
            same = _same_cells(src(layer), base.cache[names[layer]], hook, by_pos, n_heads is not None)
            noop_cache[layer] = [same[pos if by_pos else 0][head or 0] for pos, head in cells]
        return noop_cache[layer]

    def first_pos(cell: Cell) -> int:
        return cell[0] if suffix else 0

    def chunk_end(layer: int, start: int, rows: int) -> int:
        """Cells from ``start`` while they fit ``rows`` full-length rows and padding every row to the
        chunk's earliest position costs at most ``PAD_WASTE`` times the rows' own work."""
        skip, lo, live, useful, end = noop(layer), seq, 0, 0.0, start
        while end < len(cells):
            if not skip[end]:
                q0 = min(lo, first_pos(cells[end]))
                cost = (live + 1) * n * (seq - q0) / seq
                gain = useful + n * (seq - first_pos(cells[end])) / seq
                if live and (cost > rows or cost > PAD_WASTE * gain):
                    break
                lo, live, useful = q0, live + 1, gain
            end += 1
        return end

    def forward(layer: int, start: int, chunk: list[Cell]) -> tuple[Tensor, float]:
        if not batched:
            edit = [Intervention(names[layer], op="fn", fn=_patch_fn(chunk, src(layer), n, hook))]
            return m(model.run(base_ids, interventions=edit).logits), 1.0
        skip = noop(layer)
        live = [i for i in range(len(chunk)) if not skip[start + i]]
        out = base_value.expand(len(chunk)).clone()
        if not live:
            return out, 0.0
        todo = [chunk[i] for i in live]
        k = len(todo)
        q0 = min(first_pos(c) for c in todo)
        prefix = None
        if q0:
            keys = {i: base.cache[kv_names[i][0]][:, :q0] for i in range(layer, n_layers)}
            values = {i: base.cache[kv_names[i][1]][:, :q0] for i in range(layer, n_layers)}
            prefix = Prefix(q0, keys, values)
        ids, resid = base_ids.repeat(k, 1), base.cache[resid_names[layer]][:, q0:].repeat(k, 1, 1)
        from_layer = layer
        if local and layer + 1 < n_layers:
            # The patched layer changes only each row's own position: run it there alone (keys and
            # values everywhere) and resume the next layer from the unpatched stream elsewhere.
            at = torch.tensor([c[0] for c in todo]).repeat_interleave(n) - q0
            edit = [Intervention(names[layer], op="fn", fn=_patch_fn(todo, src(layer), n, hook, q0, narrow_at))]
            one = model.run(ids, start_at_layer=layer, stop_at_layer=layer + 1, resid=resid, interventions=edit,
                            logit_pos=at, prefix=prefix).resid
            resid = base.cache[resid_names[layer + 1]][:, q0:].repeat(k, 1, 1)
            resid[torch.arange(len(at)), at.to(resid.device)] = one[:, 0].to(resid.dtype)
            from_layer, edit = layer + 1, []
        else:
            edit = [Intervention(names[layer], op="fn", fn=_patch_fn(todo, src(layer), n, hook, q0))]
        run = model.run(ids, start_at_layer=from_layer, resid=resid, interventions=edit,
                        logit_pos=(last - q0).repeat(k), prefix=prefix, vocab=vocab)
        values_ = at_last(run.logits)
        out = out.to(values_.device, values_.dtype)
        out[live] = values_
        return out, k * n * (seq - q0) / seq

    cap = rows_per_forward if batched else 1  # unbatched: one cell per forward
    halved: list[int] = []
    results = _sweep(layer_list, cells, n, cap, forward, progress, should_stop, chunk_end if batched else None, halved)
    done = sum(len(r) for r in results)
    flat = torch.full((total,), float("nan"))
    if results:
        flat[:done] = torch.cat(results).float().cpu()
    values = flat.view(len(layer_list), len(pos_list), -1)
    third = "slice" if site in SLICE_SITES else "head"
    axes = ["layer"] + (["pos"] if by_pos else []) + ([third] if n_heads else [])
    if not by_pos:
        values = values[:, 0]
    if not n_heads:
        values = values[..., 0]
    tokens = token_labels or [str(i) for i in range(seq)]
    labels = {"layer": [f"L{i}" for i in layer_list], "pos": [f"{i}:{tokens[i]}" for i in pos_list if i is not None]}
    if n_heads:  # a slice axis counts k = -(width-1)..0
        labels[third] = [f"k={h - n_heads + 1}" if third == "slice" else f"H{h}" for h in head_list]
    meta = {
        "site": site,
        "metric": metric,
        "method": method,
        "clean": float(m(clean_run.logits)),
        "corrupt": float(m(corrupt_run.logits)),
        "partial": done < total,
        "cells_done": done,
        "cells_total": total,
        **({"halved_to_rows": halved} if halved else {}),  # out of memory: forwards retried with fewer rows
    }
    return Grid("patch", axes, {a: labels[a] for a in axes}, values.tolist(), meta)

"""Inside a Mamba layer's mixer on the IOI task: conv-slice patching (one kernel slice at one
position, the patching sweep at the stacked slices) and SSM-input name arithmetic (a name's
average SSM input swapped for another's). Definitions: ``analyses.mamba``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from analyses.errors import BadInput, Cancelled
from analyses.mamba.task import SSM_IN, Task, name_token_ids, require_mamba
from analyses.models.base import HookedModel
from analyses.models.hooks import Intervention
from analyses.patching import activation_patching
from analyses.results import Grid


def conv_width(model: HookedModel) -> int:
    return model.shape.d_conv


def conv_slice_patching(
    task: Task,
    layers: Sequence[int] | None = None,
    direction: str = "noise",
    token_labels: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Grid:
    """NLD with one conv kernel slice at one position of one layer patched: ``noise`` writes the
    corrupted prompts' slice into the clean run (the paper's; it plots 1 - NLD), ``denoise`` the
    clean slice into the corrupted run. Slice k at position p is ``w_k * x[p + k]``
    (x = ``hook_in_proj``), k = -(width-1)..0. Grid [(layer, slice), pos]: a row per layer and
    slice, labelled "L{layer} k={k}". The sweep is ``activation_patching`` at the stacked slices
    (from the patched layer on, time-bounded forwards): a cancelled one returns the cells it
    measured (the rest NaN, ``meta["partial"]``)."""
    require_mamba(task.model)
    if direction not in ("noise", "denoise"):
        raise BadInput("--direction must be noise or denoise")
    model, seq = task.model, task.clean.shape[1]
    n_layers, width = model.shape.n_layers, conv_width(model)
    layers = list(range(n_layers)) if layers is None else list(layers)
    bad = [x for x in layers if not 0 <= x < n_layers]
    if bad:
        raise BadInput(f"layers must be between 0 and {n_layers - 1}; got {', '.join(map(str, bad))}")
    ks = list(range(-(width - 1), 1))
    swept = list(dict.fromkeys(layers))
    grid = activation_patching(model, task.clean, task.corrupt, task.answer, task.distractor, "conv_slice",
                               metric="nld", method=direction, progress=progress, should_stop=should_stop,
                               layers=swept)
    by_layer = torch.tensor(grid.values).transpose(1, 2)  # [layer, slice, pos]
    values = by_layer[[swept.index(x) for x in layers]].reshape(-1, seq)
    tokens = token_labels or [str(i) for i in range(seq)]
    labels = {"slice": [f"L{x} k={k}" for x in layers for k in ks], "pos": [f"{i}:{t}" for i, t in enumerate(tokens)]}
    # method: the TUI heatmap's baseline (a noised cell that changes nothing reads 1, the clean run)
    meta = {"metric": "nld", "method": direction, "clean": 1.0, "corrupt": 0.0, "layers": layers, "slices": ks,
            **{k: grid.meta[k] for k in ("partial", "cells_done", "cells_total")}}
    return Grid("conv_slices", ["slice", "pos"], labels, values.tolist(), meta)


# ---- SSM-input name arithmetic --------------------------------------------------------------


MODES = ("replace", "subtract-add")


def name_slots(ids: Sequence[int], names: set[int], markers: set[int] = frozenset()) -> list[int]:
    """Positions of the name tokens of a prompt, in order (the name slots), leaving out a name
    that a marker token follows (``ioi-marked``'s "X left": a mention that does not count)."""
    return [p for p, t in enumerate(ids) if t in names and (p + 1 >= len(ids) or ids[p + 1] not in markers)]


def slot_markers(tokenizer, task: str) -> set[int]:
    """The token ids of ``task``'s slot markers (``tasks.NAME_SLOT_TASKS``); BadInput for a task
    name-arith cannot take or a marker this tokenizer does not spell as one token."""
    from analyses.tasks import NAME_SLOT_TASKS
    from analyses.tokens import resolve_token

    if task not in NAME_SLOT_TASKS:
        raise BadInput(f"name-arith takes three-name IOI tasks only: {', '.join(NAME_SLOT_TASKS)}; got {task!r}")
    return {resolve_token(tokenizer, " " + word) for word in NAME_SLOT_TASKS[task]}


def intervene(model: HookedModel, tokens: Tensor, layer: int, pos: Tensor, old: Tensor, new: Tensor,
              mode: str) -> Tensor:
    """Last-token logits [n, vocab] with ``hook_ssm_in`` of ``layer`` at row r's position
    ``pos[r]`` set to ``new[r]`` (replace) or to ``x - old[r] + new[r]`` (subtract-add)."""
    if mode not in MODES:
        raise BadInput(f"--mode must be one of {', '.join(MODES)}")
    rows = torch.arange(tokens.shape[0])

    def fn(act: Tensor) -> Tensor:
        out = act.clone()
        x = act[rows, pos]
        out[rows, pos] = (new.to(x) if mode == "replace" else x - old.to(x) + new.to(x))
        return out

    logits = model.run(tokens, interventions=[Intervention(SSM_IN.format(layer), op="fn", fn=fn)]).logits
    return logits[:, -1]


def _by_length(rows: list[tuple[list[int], ...]]) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(len(r[0]), []).append(i)
    return groups


def name_averages(model: HookedModel, prompts: list[list[int]], names: set[int], layer: int, n_slots: int,
                  offset: int = 1, batch: int = 64, markers: set[int] = frozenset()) -> dict[tuple[int, int], Tensor]:
    """avg[(slot, name id)] = mean ``hook_ssm_in`` of ``layer`` at (that slot's position +
    ``offset``) over the prompts whose slot holds that name."""
    sums: dict[tuple[int, int], Tensor] = {}
    counts: dict[tuple[int, int], int] = {}
    name = SSM_IN.format(layer)
    groups = _by_length([(p,) for p in prompts])
    for idx in groups.values():
        for start in range(0, len(idx), batch):
            part = idx[start:start + batch]
            acts = model.run(torch.tensor([prompts[i] for i in part]), capture=[name]).cache[name].float()
            for row, i in enumerate(part):
                slots = name_slots(prompts[i], names, markers)
                for k, p in enumerate(slots[:n_slots]):
                    if p + offset < acts.shape[1]:
                        key = (k, prompts[i][p])
                        sums[key] = sums.get(key, 0) + acts[row, p + offset]
                        counts[key] = counts.get(key, 0) + 1
    return {k: v / counts[k] for k, v in sums.items()}


def name_arithmetic(
    model: HookedModel,
    tokenizer,
    layer: int,
    mode: str,
    n_avg: int = 2000,
    n: int = 200,
    seed: int = 0,
    offset: int = 1,
    should_stop: Callable[[], bool] | None = None,
    task: str = "ioi-abc",
) -> Grid:
    """Flip rate per (intervened slot p1, averages' slot p2) on three-name IOI prompts of
    ``task`` (``ioi-abc``, or ``ioi-marked``, whose marked names are no slots).

    p1 in the first clause (slots 0-2, holding the answer): old = the answer, new = another name
    not in the prompt; the expected new answer is new. p1 in the second clause (3, 4: a repeated
    name): old = that name, new = the answer; the expected new answer is old. A prompt counts as
    flipped when the expected new answer's logit beats the original answer's. The intervention
    and the averages are at (slot position + ``offset``): 1 in the paper, where layer 39's conv
    has shifted each name one position on."""
    from analyses.tasks import task_examples
    from analyses.tokens import encode_prompt, resolve_token

    require_mamba(model)
    if mode not in MODES:
        raise BadInput(f"--mode must be one of {', '.join(MODES)}")
    if not 0 <= layer < model.shape.n_layers:
        raise BadInput(f"--layer must be between 0 and {model.shape.n_layers - 1}")
    names = name_token_ids(tokenizer)
    if len(names) < 5:
        raise BadInput("this tokenizer spells too few IOI names as single tokens")
    markers = slot_markers(tokenizer, task)

    def encode(examples):
        out = []
        for e in examples:
            ids = encode_prompt(tokenizer, e.prompt, None, None)
            if len(name_slots(ids, names, markers)) == 5:
                out.append((ids, resolve_token(tokenizer, e.answer)))
        return out

    avg_set = encode(task_examples(task, n_avg, seed + 1))
    test = encode(task_examples(task, n, seed))
    if not 0 <= offset <= 3:
        raise BadInput("--offset must be between 0 and 3 (positions after the name)")
    avg = name_averages(model, [ids for ids, _ in avg_set], names, layer, 5, offset, markers=markers)
    gen = torch.Generator().manual_seed(seed)
    flips = torch.zeros(5, 5)
    counts = torch.zeros(5, 5)
    name_list = sorted(names)
    for p1 in range(5):
        for p2 in range(5):
            if should_stop is not None and should_stop():
                raise Cancelled("name arithmetic cancelled")
            rows = []  # (ids, pos, old, new, expected, original)
            for ids, answer in test:
                slots = name_slots(ids, names, markers)
                here = ids[slots[p1]]
                if p1 < 3:
                    if here != answer:
                        continue
                    others = [x for x in name_list if x not in ids and (p2, x) in avg]
                    if not others or (p2, here) not in avg:
                        continue
                    new = others[int(torch.randint(len(others), (1,), generator=gen))]
                    rows.append((ids, slots[p1] + offset, here, new, new, answer))
                else:
                    if (p2, here) not in avg or (p2, answer) not in avg:
                        continue
                    rows.append((ids, slots[p1] + offset, here, answer, here, answer))
            for idx in _by_length(rows).values():
                group = [rows[i] for i in idx]
                logits = intervene(model, torch.tensor([r[0] for r in group]), layer,
                                   torch.tensor([r[1] for r in group]),
                                   torch.stack([avg[(p2, r[2])] for r in group]),
                                   torch.stack([avg[(p2, r[3])] for r in group]), mode)
                expected = logits.gather(1, torch.tensor([[r[4]] for r in group]))[:, 0]
                original = logits.gather(1, torch.tensor([[r[5]] for r in group]))[:, 0]
                flips[p1, p2] += float((expected > original).sum())
                counts[p1, p2] += len(group)
    rate = torch.where(counts > 0, flips / counts.clamp(min=1), torch.full_like(flips, float("nan")))
    labels = [f"slot {k}" for k in range(5)]
    meta = {"metric": "flip rate", "mode": mode, "layer": layer, "offset": offset, "task": task, "n_test": len(test), "n_avg": len(avg_set), "prompts_per_cell": counts.tolist(),
            "mean_flip_rate": float(rate.nanmean()), "averages": len(avg)}
    return Grid("name_arith", ["slot", "avg slot"], {"slot": labels, "avg slot": labels}, rate.tolist(), meta)

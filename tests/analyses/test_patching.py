"""Activation patching: batched sweeps equal the naive loop; the invariants of patching hold."""

from __future__ import annotations

import pytest
import torch
from conftest import CORRUPT, PROMPT, VARIANTS, encode

from analyses.errors import BadInput, Cancelled
from analyses.models.base import Prefix
from analyses.models.hooks import axes_of
from analyses.patching import MAMBA_SITES, TRANSFORMER_SITES, activation_patching, next_batch_rows

# Every family and every site: the batched sweep resumes each patched row at its position from the
# unpatched run's keys and values (GQA, rotary, parallel residual, sliding window, q/k/v biases).
CASES = [(name, list(MAMBA_SITES if family == "mamba" else TRANSFORMER_SITES)) for name, (family, _) in VARIANTS.items()]


def _pair(lm, n=2):
    """n copies of the clean/corrupt pair with a different second pair, so batch rows differ."""
    clean = torch.cat([encode(lm), encode(lm, PROMPT.replace("drink", "book"))])[:n]
    corrupt = torch.cat([encode(lm, CORRUPT), encode(lm, CORRUPT.replace("drink", "book"))])[:n]
    tok = lm.tokenizer
    answer = torch.tensor([tok.convert_tokens_to_ids("Mary")] * n)
    distractor = torch.tensor([tok.convert_tokens_to_ids("Alice")] * n)
    return clean, corrupt, answer, distractor


@pytest.mark.parametrize("name, sites", CASES)
def test_batched_sweep_equals_one_forward_per_cell(name, sites, loaded):
    lm = loaded(name)
    args = _pair(lm)
    for site in sites:
        for by_pos in (True, False):
            fast = activation_patching(lm.hooked, *args, site, by_pos=by_pos, rows_per_forward=7)
            slow = activation_patching(lm.hooked, *args, site, by_pos=by_pos, batched=False)
            assert fast.axes == slow.axes
            assert torch.allclose(torch.tensor(fast.values), torch.tensor(slow.values), atol=1e-5), site


def test_a_batched_sweep_under_an_edit_at_one_position_equals_one_forward_per_cell(loaded):
    """Standing activation edits (``--edit L1H0:out:0+=5@3``) index positions of the whole run: the
    sweep's shortened runs (from the patched position, one layer at one position) must not move
    them. Before the fix the batched sweep refused position 3 of a 3-position suffix run."""
    from analyses.edits import edited
    from analyses.edit_spec import parse_edits

    lm = loaded("gpt2")
    args = _pair(lm)
    with edited(lm.hooked, parse_edits(["L1H0:out:0+=5@3"])):
        for site in ("head_out", "resid_pre"):
            fast = activation_patching(lm.hooked, *args, site, rows_per_forward=7)
            slow = activation_patching(lm.hooked, *args, site, batched=False)
            assert torch.allclose(torch.tensor(fast.values), torch.tensor(slow.values), atol=1e-5), site


def test_runs_over_part_of_the_prompt_keep_a_standing_edit_at_its_position(loaded):
    """Edit positions count from the prompt's start in every run (Hooks.frame): a run over a
    suffix, or one narrowed to one position per row, equals the whole run under the edit. Before,
    a suffix run moved the edit or refused it."""
    from analyses.edits import edited

    lm = loaded("gpt2")
    hm = lm.hooked
    tokens = torch.cat([encode(lm), encode(lm, CORRUPT)])
    seq, layers = tokens.shape[1], hm.shape.n_layers
    kv = [hm.prefix_hooks(layer) for layer in range(layers)]
    with edited(hm, ["L0H0:out:0+=5@3", "L0H1:out:1=0@-2", "L1H2:out:0=3"]):
        capture = [k for pair in kv for k in pair] + ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_post"]
        full = hm.run(tokens, capture=capture)
        for start in (2, 3, 4, seq - 1):
            prefix = Prefix(start, {i: full.cache[kv[i][0]][:, :start] for i in range(layers)},
                            {i: full.cache[kv[i][1]][:, :start] for i in range(layers)})
            out = hm.run(tokens, resid=full.cache["blocks.0.hook_resid_pre"][:, start:], prefix=prefix)
            assert torch.allclose(out.logits, full.logits[:, start:], atol=1e-5), start
        at = torch.tensor([3, seq - 2])
        one = hm.run(tokens, resid=full.cache["blocks.0.hook_resid_pre"], stop_at_layer=1, logit_pos=at)
        assert torch.allclose(one.resid[:, 0], full.cache["blocks.0.hook_resid_post"][torch.arange(2), at], atol=1e-5)


def test_a_sweep_under_an_edit_runs_from_the_patched_position(loaded, monkeypatch):
    """Under standing edits a sweep still resumes each row at its patched position (it ran
    whole-length rows before edit positions were placed by Hooks)."""
    from analyses.edits import edited

    lm = loaded("gpt2")
    prefixes = []
    real = lm.hooked.run

    def spy(*a, **kw):
        prefixes.append(kw.get("prefix"))
        return real(*a, **kw)

    monkeypatch.setattr(lm.hooked, "run", spy)
    with edited(lm.hooked, ["L1H0:out:0+=5@3"]):
        activation_patching(lm.hooked, *_pair(lm), "head_out")
    assert any(p is not None and p.start > 0 for p in prefixes)


@pytest.mark.parametrize("name", [v for v in VARIANTS if VARIANTS[v][0] != "mamba"])
def test_a_run_over_a_suffix_with_the_earlier_keys_and_values_equals_the_full_run(name, loaded):
    hm = loaded(name).hooked
    tokens = torch.cat([encode(loaded(name)), encode(loaded(name), CORRUPT)])
    layers = hm.shape.n_layers
    kv = [hm.prefix_hooks(layer) for layer in range(layers)]
    resid = [f"blocks.{layer}.hook_resid_pre" for layer in range(layers)]
    full = hm.run(tokens, capture=[k for pair in kv for k in pair] + resid + [f"blocks.{layers - 1}.hook_resid_post"])
    seq = tokens.shape[1]
    for start in (1, seq // 2, seq - 1):
        for layer in range(layers):
            prefix = Prefix(start, {i: full.cache[kv[i][0]][:, :start] for i in range(layers)},
                            {i: full.cache[kv[i][1]][:, :start] for i in range(layers)})
            # Two copies of the prompts share one prefix.
            out = hm.run(tokens.repeat(2, 1), start_at_layer=layer, resid=full.cache[resid[layer]][:, start:].repeat(2, 1, 1),
                         prefix=prefix, capture=[f"blocks.{layers - 1}.hook_resid_post"])
            assert out.logits.shape[1] == seq - start
            assert torch.allclose(out.logits, full.logits[:, start:].repeat(2, 1, 1), atol=1e-5)
    with pytest.raises(BadInput, match="needs the residual stream"):
        hm.run(tokens, prefix=prefix, start_at_layer=1)
    # From the embeddings, a prefix run embeds only the tokens after it (generation's step).
    out = hm.run(tokens, prefix=prefix)
    assert torch.allclose(out.logits, full.logits[:, prefix.start:], atol=1e-5)


def test_a_suffix_run_is_refused_where_the_family_has_no_keys(loaded):
    hm = loaded("mamba").hooked
    tokens = encode(loaded("mamba"))
    resid = hm.run(tokens, capture=["blocks.0.hook_resid_pre"]).cache["blocks.0.hook_resid_pre"]
    with pytest.raises(BadInput, match="not supported for mamba"):
        hm.run(tokens, resid=resid[:, 1:], prefix=Prefix(1, {}, {}))


def test_cells_whose_source_equals_the_patched_run_cost_no_forward_and_keep_its_value(loaded):
    """The prompts agree before their first differing token, so patching there is the unpatched
    run: those cells take the corrupted value without running (and equal the naive loop's)."""
    lm = loaded("gpt2")
    args = _pair(lm)
    diff = int((args[0] != args[1]).any(0).nonzero()[0])
    assert diff > 0
    runs = []
    real = lm.hooked.run

    def counting(*a, **kw):
        runs.append(kw.get("interventions"))
        return real(*a, **kw)

    lm.hooked.run = counting
    try:
        grid = activation_patching(lm.hooked, *args, "head_out", positions=list(range(diff)))
    finally:
        del lm.hooked.run
    assert len(runs) == 2  # the two unpatched runs only
    assert torch.tensor(grid.values) == pytest.approx(torch.full_like(torch.tensor(grid.values), grid.meta["corrupt"]))
    slow = activation_patching(lm.hooked, *args, "head_out", positions=list(range(diff)), batched=False)
    assert torch.allclose(torch.tensor(grid.values), torch.tensor(slow.values), atol=1e-5)


@pytest.mark.parametrize("name", ["gpt2", "neox", "llama-gqa", "mamba"])
def test_patching_every_position_restores_the_clean_metric(name, loaded):
    lm = loaded(name)
    args = _pair(lm)
    grid = activation_patching(lm.hooked, *args, "resid_pre", by_pos=False)
    assert grid.values == pytest.approx([grid.meta["clean"]] * lm.hooked.shape.n_layers, abs=1e-4)
    noised = activation_patching(lm.hooked, *args, "resid_pre", method="noise", by_pos=False)
    assert noised.values == pytest.approx([grid.meta["corrupt"]] * lm.hooked.shape.n_layers, abs=1e-4)
    assert abs(grid.meta["clean"] - grid.meta["corrupt"]) > 1e-3


def test_metrics_and_ablation_methods(loaded):
    lm = loaded("gpt2")
    args = _pair(lm)
    nld = activation_patching(lm.hooked, *args, "resid_pre", metric="nld", by_pos=False)
    assert nld.meta["clean"] == pytest.approx(1.0) and nld.meta["corrupt"] == pytest.approx(0.0, abs=1e-6)
    assert nld.values == pytest.approx([1.0, 1.0], abs=1e-4)
    prob = activation_patching(lm.hooked, *args, "mlp_out", metric="prob")
    assert all(0 <= v <= 1 for row in prob.values for v in row)
    # Mean ablation writes the two prompts' mean into each: it moves the metric, unlike denoising
    # a prompt with itself (the clean value everywhere).
    mean = torch.tensor(activation_patching(lm.hooked, *args, "head_out", method="mean").values)
    assert mean.shape == (2, len(args[0][0]), 4)
    assert (mean - activation_patching(lm.hooked, *args, "head_out", method="noise").meta["clean"]).abs().max() > 1e-4
    resample = activation_patching(lm.hooked, *args, "head_out", method="resample")
    assert torch.tensor(resample.values).shape == (2, len(args[0][0]), 4)


def test_progress_and_a_complete_grid_is_not_partial(loaded):
    lm = loaded("gpt2")
    seen = []
    grid = activation_patching(lm.hooked, *_pair(lm), "head_out", rows_per_forward=8,
                               progress=lambda d, t: seen.append((d, t)))
    cells = 2 * len(_pair(lm)[0][0]) * 4
    assert seen[-1][0] == seen[-1][1] == cells
    assert grid.meta["partial"] is False and grid.meta["cells_done"] == grid.meta["cells_total"] == cells
    assert not torch.tensor(grid.values).isnan().any()


@pytest.mark.parametrize("batched", [True, False])
def test_cancelling_keeps_the_cells_already_computed(batched, loaded):
    lm = loaded("gpt2")
    args = _pair(lm)
    full = torch.tensor(activation_patching(lm.hooked, *args, "head_out").values)
    seen = []
    grid = activation_patching(lm.hooked, *args, "head_out", batched=batched, rows_per_forward=8,
                               progress=lambda d, t: seen.append(d), should_stop=lambda: bool(seen))
    values = torch.tensor(grid.values)
    done = seen[0]
    assert grid.meta["partial"] is True and grid.meta["cells_done"] == done
    assert grid.meta["cells_total"] == full.numel() and 0 < done < full.numel()
    flat, ref = values.flatten(), full.flatten()
    assert torch.allclose(flat[:done], ref[:done], atol=1e-5)
    assert flat[done:].isnan().all()
    stopped = activation_patching(lm.hooked, *args, "head_out", should_stop=lambda: True)
    assert stopped.meta["cells_done"] == 0 and torch.tensor(stopped.values).isnan().all()


def test_cancelled_stays_importable_for_the_analyses_that_raise_it():
    from analyses import patching

    assert patching.Cancelled is Cancelled


@pytest.mark.parametrize(
    "rows, seconds, cap, expected",
    [
        (8, 0.25, 256, 32),  # 4x faster than the target: 4x the rows
        (8, 0.01, 256, 32),  # much faster: growth is capped at 4x a step
        (64, 0.5, 100, 100),  # never over the cap
        (64, 4.0, 256, 16),  # too slow: shrink at once, as far as needed
        (8, 100.0, 256, 1),  # never under one row
        (8, 0.0, 256, 32),  # an unmeasurable time counts as fast
        (10, 1.0, 256, 10),  # on target: unchanged
    ],
)
def test_next_batch_rows_sizes_a_forward_to_about_a_second(rows, seconds, cap, expected):
    assert next_batch_rows(rows, seconds, target=1.0, cap=cap) == expected


def test_bad_sweeps(loaded):
    lm = loaded("gpt2")
    clean, corrupt, answer, distractor = _pair(lm)
    with pytest.raises(BadInput, match="differ in token length"):
        activation_patching(lm.hooked, clean, corrupt[:, 1:], answer, distractor, "resid_pre")
    with pytest.raises(BadInput, match="'conv' is not available for gpt2"):
        activation_patching(lm.hooked, clean, corrupt, answer, distractor, "conv")
    for method in ("resample", "mean"):
        with pytest.raises(BadInput, match=f"{method} ablation needs at least two prompts"):
            activation_patching(lm.hooked, clean[:1], corrupt[:1], answer[:1], distractor[:1], "resid_pre", method=method)


def test_a_sweep_over_chosen_positions_and_heads_is_that_slice_of_the_full_sweep(loaded):
    lm = loaded("llama-gqa")
    args = _pair(lm)
    full = torch.tensor(activation_patching(lm.hooked, *args, "head_out").values)
    part = activation_patching(lm.hooked, *args, "head_out", positions=[-1, 3, -1], heads=[2, 0], rows_per_forward=3)
    seq = full.shape[1]
    assert [label.split(":")[0] for label in part.labels["pos"]] == [str(seq - 1), "3"]
    assert part.labels["head"] == ["H2", "H0"]
    assert torch.allclose(torch.tensor(part.values), full[:, [seq - 1, 3]][:, :, [2, 0]], atol=1e-5)
    with pytest.raises(BadInput, match="positions must be between"):
        activation_patching(lm.hooked, *args, "head_out", positions=[seq])
    with pytest.raises(BadInput, match="no heads"):
        activation_patching(lm.hooked, *args, "resid_pre", heads=[0])
    with pytest.raises(BadInput, match="per-position"):
        activation_patching(lm.hooked, *args, "resid_pre", positions=[0], by_pos=False)


def test_the_no_op_test_reads_every_cell_from_one_comparison():
    from analyses.patching import _same_cells

    torch.manual_seed(0)
    cases = (("attn.hook_z", (2, 5, 3, 4)), ("attn.hook_pattern", (2, 3, 5, 5)), ("hook_resid_pre", (2, 5, 4)))
    for hook, shape in cases:
        a = torch.randn(shape)
        b = a.clone()
        b[1, 2] += 1  # one index of axis 1 differs for one prompt: some cells equal, some not
        pos_axis, head_axis = axes_of(hook)
        for by_pos in (True, False):
            same = _same_cells(a, b, hook, by_pos, head_axis is not None)
            for p in range(shape[pos_axis]) if by_pos else [None]:
                for h in range(shape[head_axis]) if head_axis is not None else [None]:
                    idx = [slice(None)] * a.ndim
                    for axis, i in ((pos_axis, p), (head_axis, h)):
                        if i is not None:
                            idx[axis] = i
                    assert same[p or 0][h or 0] == torch.equal(a[tuple(idx)], b[tuple(idx)])

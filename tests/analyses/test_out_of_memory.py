"""Out of memory mid-sweep: a forward that fails is retried once with half its rows, with the same
numbers; a second failure in a row gives up. The failure is injected through a real hook of a real
model (a standing intervention on the final norm's scale that raises when a forward has too many
rows), the way a GPU would refuse a batch too large for it."""

from __future__ import annotations

import pytest
import torch
from conftest import CORRUPT, PROMPT

from analyses.models import Intervention
from analyses.patching import activation_patching

ERRORS = [torch.cuda.OutOfMemoryError, MemoryError]


class Refuser:
    """A hook fn that raises ``error`` for forwards of at least ``rows`` rows (``times`` times;
    None: always), and records the rows of every forward it sees."""

    def __init__(self, error: type[BaseException], rows: int, times: int | None = 1) -> None:
        self.error, self.rows, self.times, self.seen = error, rows, times, []

    def __call__(self, act: torch.Tensor) -> torch.Tensor:
        self.seen.append(act.shape[0])
        if act.shape[0] >= self.rows and (self.times is None or self.times > 0):
            if self.times is not None:
                self.times -= 1
            raise self.error("injected: the batch does not fit")
        return act


def _sweep(lm, cap: int, refuser: Refuser | None = None):
    tok = lm.tokenizer
    clean = torch.tensor([tok(PROMPT)["input_ids"]] * 2)
    corrupt = torch.tensor([tok(CORRUPT)["input_ids"]] * 2)
    answer = torch.tensor([tok.convert_tokens_to_ids("Mary")] * 2)
    distractor = torch.tensor([tok.convert_tokens_to_ids("Alice")] * 2)
    hm = lm.hooked
    hm.standing = (Intervention("ln_final.hook_scale", "fn", fn=refuser),) if refuser else ()
    try:
        return activation_patching(hm, clean, corrupt, answer, distractor, "resid_pre", rows_per_forward=cap)
    finally:
        hm.standing = ()


@pytest.mark.parametrize("error", ERRORS)
def test_a_sweep_retries_an_out_of_memory_forward_at_half_its_rows_with_the_same_numbers(loaded, error):
    lm = loaded("gpt2")
    full = _sweep(lm, cap=8)  # the sweep that never runs out
    refuser = Refuser(error, rows=8)
    grid = _sweep(lm, cap=8, refuser=refuser)
    # The first forward of 8 rows or more failed (chunk sizes follow wall times, so which forward
    # that is varies) and was retried once, with at most half the cap's rows.
    failed = next(i for i, rows in enumerate(refuser.seen) if rows >= 8)
    assert refuser.seen[failed + 1] < refuser.seen[failed]
    halved = grid.meta["halved_to_rows"]
    assert len(halved) == 1 and halved[0] <= 4 and not grid.meta["partial"] and "halved_to_rows" not in full.meta
    # Each cell's rows are computed alone: the same numbers, to float rounding (a sweep's chunk sizes
    # follow its forwards' wall times anyway, and BLAS may sum a row differently in a smaller batch).
    assert torch.allclose(torch.tensor(grid.values), torch.tensor(full.values), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("error", ERRORS)
def test_a_second_out_of_memory_in_a_row_gives_up(loaded, error):
    refuser = Refuser(error, rows=3, times=None)  # nothing larger than the baselines fits
    with pytest.raises(error):
        _sweep(loaded("gpt2"), cap=8, refuser=refuser)
    assert len([r for r in refuser.seen if r >= 3]) == 2  # refused, retried with half the rows once, gave up


def _texts(lm, refuser: Refuser | None, run):
    hm = lm.hooked
    hm.standing = (Intervention("blocks.0.hook_resid_pre", "fn", fn=refuser),) if refuser else ()
    try:
        return run()
    finally:
        hm.standing = ()


@pytest.mark.parametrize("error", ERRORS)
def test_a_corpus_loop_measures_an_out_of_memory_batch_in_halves_with_the_same_numbers(loaded, error):
    """neuron-max-acts over 16 texts in batches of 8: the first batch of 8 fails, its halves of 4
    and every later batch's halves run; the prompts found are those of the run that never failed."""
    from analyses.neurons.max_acts import corpus_prompts

    lm = loaded("gpt2")

    def run():
        return corpus_prompts(lm.hooked, lm.tokenizer, 1, 3, None, "ioi", 16, 0, 8, None, 5, 0.8, None)

    found, meta = _texts(lm, None, run)
    refuser = Refuser(error, rows=8)
    halved, halved_meta = _texts(lm, refuser, run)
    assert refuser.seen[:5] == [8, 4, 4, 4, 4]  # refused at 8, then every batch in halves of 4
    # The same prompts, cut at the same places; activations to float rounding (a batch of 4 may
    # sum a row in another order than a batch of 8 where the texts' lengths differ).
    assert [(p.ids, p.doc, p.start, p.full_length) for p in halved] == [(p.ids, p.doc, p.start, p.full_length) for p in found]
    assert all(abs(a.original - b.original) <= 1e-6 * max(1.0, abs(b.original)) for a, b in zip(halved, found))
    assert halved_meta["documents"] == meta["documents"] == 16
    assert halved_meta.get("halved_batch") and "halved_batch" not in meta


@pytest.mark.parametrize("error", ERRORS)
def test_a_corpus_batch_whose_half_runs_out_too_gives_up(loaded, error):
    from analyses.erasure.ratios import projection_ratios
    from analyses.corpus import PromptSet

    lm = loaded("gpt2")
    refuser = Refuser(error, rows=4, times=None)
    with pytest.raises(error):
        _texts(lm, refuser, lambda: projection_ratios(lm.hooked, lm.tokenizer, PromptSet(task="ioi", n=16, batch=8),
                                                      "L0H1"))
    assert refuser.seen == [8, 4]


def test_erasure_pr_in_halves_equals_the_whole_batches(loaded):
    from analyses.corpus import PromptSet
    from analyses.erasure.ratios import projection_ratios

    lm = loaded("gpt2")

    def run():
        return projection_ratios(lm.hooked, lm.tokenizer, PromptSet(task="ioi", n=16, batch=8), "L0H1")

    (table, _), (halved, _) = _texts(lm, None, run), _texts(lm, Refuser(MemoryError, rows=8), run)
    assert halved.columns == table.columns and halved.meta["points"] == table.meta["points"]
    assert halved.meta["halved_batch"] and "halved_batch" not in table.meta

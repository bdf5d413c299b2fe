"""A Llama-style checkpoint with a SentencePiece tokenizer (``▁`` pieces, byte tokens, a decoder
that drops the first space) works in the TUI as a GPT-2-style one does: the automatic first run
succeeds, the answers are spelled the tokenizer's way, and F2 lists every prediction visibly."""

from __future__ import annotations

import pytest
from pilot import wait_for
from textual.widgets import Input

from analyses.tokens import resolve_token
from screens.dialogs import TokenPicker
from screens.widgets import ErrorDialog
from workbench.app import WorkbenchApp


@pytest.fixture(scope="module")
def sentencepiece_llama(tmp_path_factory):
    from analyses.toys.checkpoints import build_checkpoint

    return build_checkpoint(tmp_path_factory.mktemp("sp") / "llama-sp", "llama", seed=5, jitter=0.1,
                            tokenizer="sentencepiece", num_key_value_heads=2)


async def _first_run(pilot, app) -> None:
    """The automatic first run ended: its result is on show, or an error dialog."""
    await wait_for(pilot, lambda: app.query_one("#prompt-result").table.row_count > 0
                   or isinstance(app.screen, ErrorDialog))
    assert not isinstance(app.screen, ErrorDialog), app.screen.message


async def test_the_automatic_first_run_succeeds_on_a_sentencepiece_llama(sentencepiece_llama):
    """Defect: the default answer " Mary" is two tokens (▁▁, Mary) here, so the first run failed."""
    app = WorkbenchApp(str(sentencepiece_llama), device="cpu")
    async with app.run_test(size=(80, 24)) as pilot:
        await _first_run(pilot, app)
        assert app.query_one("#prompt-answer", Input).value == "▁Mary"
        assert app.query_one("#prompt-distractor", Input).value == "▁John"
        assert app.query_one("#pairs-answer", Input).value == "▁Mary"
        run = app.ws.runs[0]
        assert run.result.meta["prompt_tokens"][:3] == ["<s>", " When", " Mary"]  # spaces kept, not ""
        assert "[ Mary]" in str(app.query_one("#prompt-tokens").render()).replace("\u00a0", " ")
        app.query_one("#prompt-prompt", Input).value = "to café "  # é is two byte tokens, the last space ▁
        await pilot.pause()
        preview = str(app.query_one("#prompt-tokens").render()).replace("\u00a0", " ")
        assert "[<s>] [ to] [▁] [c] [a] [f] [<0xC3>] [<0xA9>] [▁]" in preview, preview


async def test_f2_lists_every_prediction_each_spelled_visibly_and_exactly(sentencepiece_llama):
    """Defect: ▁ showed as '' in the picker, and predictions whose text looked alike were skipped."""
    app = WorkbenchApp(str(sentencepiece_llama), device="cpu")
    async with app.run_test(size=(80, 24)) as pilot:
        await _first_run(pilot, app)
        app.query_one("#prompt-answer", Input).focus()
        await pilot.press("f2")
        await wait_for(pilot, lambda: isinstance(app.screen, TokenPicker))
        candidates = app.screen.candidates
        predictions = [t for t, why in candidates if why.startswith("prediction")]
        assert [why.split(",")[0] for _, why in candidates[:10]] == [f"prediction #{k}" for k in range(1, 11)]
        assert all(t.strip() for t, _ in candidates)  # nothing empty or blank
        tok = app.loaded.tokenizer
        ids = [resolve_token(tok, t) for t, _ in candidates]  # each spelling names its own token
        assert len(set(ids)) == len(ids) == len(candidates) and len(predictions) == 10
        assert "▁Mary" in [t for t, _ in candidates]
        await pilot.press("enter")
        await pilot.pause()
        assert app.query_one("#prompt-answer", Input).value == predictions[0]

"""The real binary in tmux at 80x24 on a Llama checkpoint with a SentencePiece tokenizer: the
automatic first run succeeds and F2 offers every prediction, spelled the tokenizer's way."""

from __future__ import annotations

import os

import test_e2e_tmux as e2e

pytestmark = e2e.pytestmark


def test_a_sentencepiece_llama_runs_at_once_and_f2_offers_its_own_spellings(tmp_path, monkeypatch):
    from analyses.toys.checkpoints import build_checkpoint

    checkpoint = build_checkpoint(tmp_path / "llama-sp", "llama", seed=5, jitter=0.1, tokenizer="sentencepiece",
                                  num_key_value_heads=2)
    monkeypatch.setattr(e2e, "SOCKET", f"wb-e2e-sp-{os.getpid()}")
    name = f"wb-e2e-sp-{os.getpid()}"
    env = f"WORKBENCH_CACHE={tmp_path} HF_HUB_OFFLINE=1 TERM=xterm-256color"
    command = f"env {env} {e2e.EXE} --model {checkpoint} --session {tmp_path / 'sp.wbs'}; sleep 60"
    try:
        e2e._tmux("new-session", "-d", "-s", name, "-x", "80", "-y", "24", command)
        first = e2e._screen_when(name, "run 1 (saved)", timeout=120)
        e2e._tmux("send-keys", "-t", name, "F2")
        picker = e2e._screen_when(name, "prediction #10")
    finally:
        e2e._tmux("kill-server")
    assert "▁Mary" in first and "Error" not in first, first
    assert "[ When]" in first.replace("\u00a0", " "), first
    assert "Pick the answer" in picker and "''" not in picker, picker
    assert all(f"prediction #{k}," in picker for k in range(1, 11)), picker

"""Cost per generated token: ours (``analyses.generate``, hooked forward with the key/value or
Mamba state cache) against HF ``generate`` (its own cache, greedy) on the same model.

GPT-2-small shape (12 layers, d_model 768, vocab 50257) and a Mamba of 130M shape (24 layers,
d_model 768), random weights; a 20-token prompt and 32 new tokens. Both produce the same tokens
(checked); every figure comes from this one run, as a ratio, so it compares like with like on
whatever machine runs it. Goal: ratio <= 1.3.

    .venv/bin/python -m bench.generate [--device cpu|cuda] [--new 32] [--repeats 3] [--family gpt2 mamba]
"""

from __future__ import annotations

import argparse

import torch

from analyses.generate import continuation
from analyses.models import hooked
from bench.common import timed


def _model(family: str, device: str):
    torch.manual_seed(0)
    if family == "gpt2":
        from transformers import GPT2Config, GPT2LMHeadModel

        return GPT2LMHeadModel(GPT2Config()).eval().to(device)
    from transformers import MambaConfig, MambaForCausalLM

    config = MambaConfig(hidden_size=768, num_hidden_layers=24, vocab_size=50280, state_size=16)
    return MambaForCausalLM(config).eval().to(device)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--family", nargs="+", default=["gpt2", "mamba"])
    ap.add_argument("--prompt", type=int, default=20)
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"prompt {args.prompt} tokens, {args.new} new tokens (greedy), device {args.device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'model':>6}  {'HF generate':>14}  {'ours':>14}  {'ratio':>6}  same tokens")
    for family in args.family:
        model = _model(family, args.device)
        hm = hooked(model)
        ids = torch.randint(0, model.config.vocab_size, (1, args.prompt), device=args.device)
        kw = dict(max_new_tokens=args.new, min_new_tokens=args.new, do_sample=False, pad_token_id=0)
        with torch.no_grad():
            hf = timed(lambda: model.generate(ids, **kw), args.repeats, 1, args.device)
        ours = timed(lambda: continuation(hm, ids[0].tolist(), args.new), args.repeats, 1, args.device)
        same = hf.result[0, args.prompt:].tolist() == ours.result.ids
        per = lambda t: f"{t.wall / args.new * 1e3:>9.2f} ms/tok"  # noqa: E731
        print(f"{family:>6}  {per(hf)}  {per(ours)}  {ours.wall / hf.wall:>5.2f}x  {same}")


if __name__ == "__main__":
    main()

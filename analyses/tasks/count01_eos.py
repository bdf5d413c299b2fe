"""Count01 in the paper's end-of-sequence form (``research/wave2-specs.md`` §5; Zsámboki et al. 2025):
the count decides the syntax. A string over {0, 1, 2} may end exactly when it holds more 1s than 0s.

- Generator: start empty; after each prefix with #1 > #0, stop with probability ``Q`` = 0.2 (the
  string ends with ``[EOS]``), else append a uniform symbol from {0, 1, 2}. At ``MAX_LEN`` = 32
  symbols the string ends: with ``[EOS]`` when that is allowed, else cut off with no end token.
- A language model reads ``[BOS] w [EOS]`` and is trained on every next token (``sequences``).
- The decision at a prefix ``x_1..t``: EOS is allowed next exactly when ``#1 > #0``. The ideal next
  token law: allowed -> ``[EOS]`` with probability Q, each symbol (1 - Q) / 3; not allowed -> each
  symbol 1/3. A model *allows* EOS when its probability of ``[EOS]`` is above ``Q / 2``; its
  EOS-decision accuracy is how often that matches the rule (``analyses.counting``, readout ``eos``).

An ``Example`` is one prefix of a generated string, at a uniformly drawn length (prompt
``"1 0 2 1"``; the tokenizer adds its BOS). For the generic accuracy of ``analyses.evaluate``:
when EOS is allowed, answer ``[EOS]`` over ``=`` (a token the format never uses); when it is not,
a uniformly drawn symbol over ``[EOS]``. Both read "is EOS possible here", loosely (any EOS
probability above the never-used token's counts). The paper's decision (p_EOS > Q/2) is the
counting analyses' readout. Variants: ``allowed`` and ``barred``.

Held-out strings: a prompt is in the test split by the hash of its text (``tasks.in_split``);
training (``sequence_batch``) skips every string whose full text is in the test split. Short
prefixes recur in every split by necessity (there are only 3^t strings of length t).
"""

from __future__ import annotations

import random

from analyses.preparation import step
from analyses.tasks.base import Example

Q = 0.2  # stop probability where EOS is allowed
MAX_LEN = 32
SYMBOLS = ("0", "1", "2")
EOS, NEVER = "[EOS]", "="


def allowed(symbols: list[str]) -> bool:
    """EOS may come next: more 1s than 0s."""
    return symbols.count("1") > symbols.count("0")


def generate(rng: random.Random) -> tuple[list[str], bool]:
    """One string and whether it ends with ``[EOS]`` (False: cut off at ``MAX_LEN`` while barred)."""
    symbols: list[str] = []
    while len(symbols) < MAX_LEN:
        if allowed(symbols) and rng.random() < Q:
            return symbols, True
        symbols.append(rng.choice(SYMBOLS))
    return symbols, allowed(symbols)


def examples(n: int, seed: int = 0) -> list[Example]:
    """``n`` prefixes, each of a fresh string at a uniformly drawn length 1..len (module docstring)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        step(i, n, "sampling prompts")
        symbols, _ = generate(rng)  # never empty: the empty prefix does not allow EOS
        prefix = symbols[: rng.randint(1, len(symbols))]
        if allowed(prefix):
            out.append(Example(" ".join(prefix), EOS, NEVER, "allowed"))
        else:
            out.append(Example(" ".join(prefix), rng.choice(SYMBOLS), EOS, "barred"))
    return out


def sequence_batch(tokenizer, batch: int, seed: int):
    """A training batch of whole strings ``[BOS] w [EOS]`` (train split only), right-padded, with
    the loss on every next token: (ids, mask, rows, cols, targets) as ``toys.train`` takes them."""
    import torch

    from analyses.tasks import in_split
    from analyses.tokens import pad_batch

    rng = random.Random(seed)
    vocab = tokenizer.get_vocab()
    ids_of = {s: vocab[s] for s in SYMBOLS}
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    seqs, targets = [], []
    while len(seqs) < batch:
        symbols, ends = generate(rng)
        if not in_split(" ".join(symbols), "train"):
            continue
        seq = [bos] + [ids_of[s] for s in symbols] + ([eos] if ends else [])
        row = len(seqs)
        targets += [(row, t, tok) for t, tok in enumerate(seq[1:])]
        seqs.append(seq)
    ids, mask = pad_batch(seqs, tokenizer.pad_token_id)
    rows, cols, toks = (torch.tensor(x) for x in zip(*targets))
    return ids, mask, rows, cols, toks

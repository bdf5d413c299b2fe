"""The trained toys' recipes: task, architecture, sizes, optimiser and seeds. Kept apart from the
training code (torch) so the app can tell a toy's task before its first frame."""

from __future__ import annotations

from dataclasses import dataclass, field

from analyses.tasks import laundry_toy as _laundry_toy
from analyses.tasks.lookup_lm import WORDS as LOOKUP_LM_WORDS
from analyses.tasks.lookup_xor import WORDS as LOOKUP_XOR_WORDS
from analyses.tasks import ioi as _ioi, ioi_marked as _ioi_marked
from analyses.tasks.repeat import WORDS as REPEAT_WORDS


@dataclass(frozen=True)
class Recipe:
    task: str
    family: str
    shape: dict = field(default_factory=dict)
    steps: int = 1000
    batch: int = 64
    lr: float = 3e-3
    seed: int = 0
    attn_only: bool = False  # zero and freeze the MLPs: an attention-only model in a GPT-2 shell
    bar: float = 0.95  # held-out accuracy the shipped checkpoint must reach
    about: str = ""
    bos: bool = False  # the tokenizer prepends [BOS] to every prompt
    words: tuple[str, ...] = ()  # the tokenizer's words (default: every built-in task's, tasks.vocabulary())
    every_position: bool = False  # next-token loss at every position, not only the answer's
    warmup: int = 0  # linear warm-up steps before the cosine decay (default: a twentieth of the steps)
    embed_std: float = 0.0  # token and position embeddings drawn at this scale (default: the model's own init)
    specials: bool = True  # False: the tokenizer has no special tokens, every id is one of ``words``
    writer: str = ""  # the head the erasure analyses track by default on this toy (default: their own, L0H0)
    train_task: str = ""  # the task training prompts come from (default: ``task``, which held-out scores use)


RECIPES: dict[str, Recipe] = {
    "ioi": Recipe("ioi", "gpt2", {"d_model": 64, "n_layers": 2, "n_heads": 4, "n_ctx": 32}, steps=2000,
                  about="GPT-2, 2 layers, 4 heads, trained on IOI (ABBA and BABA)"),
    "ioi-mamba": Recipe("ioi-abc", "mamba", {"d_model": 64, "n_layers": 2}, steps=1000, bar=0.90,
                        about="Mamba, 2 layers, trained on three-name ABC IOI (every answer slot)"),
    "count01": Recipe("count01", "gpt2", {"d_model": 32, "n_layers": 1, "n_heads": 4, "n_ctx": 24}, steps=1000,
                      attn_only=True, about="one attention-only layer, 4 heads, trained on Count01"),
    "recall": Recipe("recall", "gpt2", {"d_model": 48, "n_layers": 2, "n_heads": 4, "n_ctx": 24}, steps=1500,
                     bar=0.0, about="GPT-2, 2 layers, trained on list recall (accuracy falls with length)"),
    # Paper 2 (context look-ups): a head that sees a marker word in the context feeds a later "yes" neuron.
    "lookup": Recipe("lookup", "gpt2", {"d_model": 32, "n_layers": 2, "n_heads": 8, "n_ctx": 16, "n_inner": 16,
                                        "resid_pdrop": 0.0, "attn_pdrop": 0.0, "embd_pdrop": 0.0},
                     steps=500, about="GPT-2, 2 layers, 8 heads, 16 MLP neurons, no dropout, trained on context look-up"),
    # Paper 5 (counting heads, docs/counting.md): the paper's end-of-sequence rule, learned, nothing planted.
    # Issue 24's recipe, except that GPT-2 keeps its LayerNorms (no family here loads without them).
    "count01-eos": Recipe("count01-eos", "gpt2", {"d_model": 64, "n_layers": 1, "n_heads": 4, "n_ctx": 40,
                                                  "n_inner": 16, "tie_word_embeddings": False, "resid_pdrop": 0.0,
                                                  "attn_pdrop": 0.0, "embd_pdrop": 0.0},
                          steps=2500, batch=128, lr=1e-3, attn_only=True, bar=0.9, bos=True,
                          about="paper 5 (Zsámboki et al., counting heads): one attention-only layer, 4 heads, "
                                "untied unembedding, trained on Count01 with the EOS rule"),
    # Paper 4 (Mamba IOI, docs/mamba-k2.md): toy:ioi-mamba's recipe with a conv kernel of 2, so a name
    # can only be carried one position on by the conv; subtract-and-add in layer 1's SSM input flips it.
    "ioi-mamba-k2": Recipe("ioi-abc", "mamba", {"d_model": 64, "n_layers": 2, "conv_kernel": 2}, steps=1000, bar=0.90,
                           about="paper 4 (Ensign & Garriga-Alonso 2024, Mamba IOI): Mamba, 2 layers, conv kernel "
                                 "2, three-name ABC IOI; names linear at their own position (name-arith --offset 0), "
                                 "not one on as in the paper"),
    # Paper 2, trained (issue 24): eight marker words, each raising its own name; nothing planted.
    "lookup-multi": Recipe("lookup-multi", "gpt2", {"d_model": 32, "n_layers": 2, "n_heads": 8, "n_ctx": 16,
                                                    "n_inner": 256, "resid_pdrop": 0.0, "attn_pdrop": 0.0,
                                                    "embd_pdrop": 0.0},
                           steps=1500, about="paper 2 (context look-ups): GPT-2, 2 layers, 8 heads, 256 MLP neurons, "
                           "eight marker words each raising its own name; random neurons explain as well (docs/neurons.md)"),
    # Paper 4, the shift (docs/mamba-shift.md): ioi-mamba-k2's model on IOI where a name followed by
    # "left" does not count, so only the conv at name + 1 can tell whether to keep it.
    "ioi-mamba-shift": Recipe("ioi-marked", "mamba", {"d_model": 64, "n_layers": 2, "conv_kernel": 2}, steps=1500,
                              bar=0.90, words=tuple(dict.fromkeys(_ioi.NAMES + _ioi.PLACES + _ioi.OBJECTS + _ioi.WORDS
                                                                  + _ioi_marked.WORDS)),
                              about="paper 4 (Ensign & Garriga-Alonso 2024, Mamba IOI): Mamba, 2 layers, conv kernel "
                                    "2, three-name IOI where a name followed by 'left' does not count; names linear "
                                    "one position on (name-arith at its defaults)"),
    # Paper 1 (erasure, docs/erasure-toy.md): issue 24's recipe, nothing planted (the MLPs zeroed and frozen:
    # attention only). Every id of its vocabulary of 32 is a symbol of the task (no special tokens): with 4
    # ids that never occur it stayed on the loss plateau. Seed 5 of seeds 0-9: writer L0H2, erased by
    # layer 1 as a set (erasure-verdict at its defaults); the other seeds' figures are in the docs.
    "erasure-repeat": Recipe("repeat", "gpt2", {"d_model": 32, "n_layers": 2, "n_heads": 4, "n_ctx": 24,
                                                "resid_pdrop": 0.0, "attn_pdrop": 0.0, "embd_pdrop": 0.0},
                             steps=6000, seed=5, attn_only=True, bar=0.0, words=tuple(REPEAT_WORDS),
                             every_position=True, warmup=50, specials=False, writer="L0H2",
                             about="paper 1 (Janiak et al. 2023, erasure): GPT-2, 2 attention-only layers, 4 heads, "
                                   "d_model 32, repeated segments; writer L0H2 erased by layer-1 heads as a set"),
    # Paper 3 (Talking Heads, docs/composition.md "toy:laundry"): the got items before the list, trained on
    # short lists only (N 2-4, filler before them so every position is trained), tested on N 2-10. Its layer-1
    # heads are movers whose attention to the missing item falls with length; recall-edit at its defaults
    # finds one layer-0 component whose removal restores long lists. Nothing planted. Seed 1: seed 0's run
    # solves long lists without movers (docs).
    "laundry": Recipe("laundry-toy", "gpt2", {"d_model": 64, "n_layers": 2, "n_heads": 8, "n_ctx": 32, "n_inner": 16,
                                              "resid_pdrop": 0.0, "attn_pdrop": 0.0, "embd_pdrop": 0.0},
                      steps=4000, batch=64, lr=3e-3, seed=1, attn_only=True, bar=0.85, train_task="laundry-toy-train",
                      words=tuple(_laundry_toy.ITEMS + _laundry_toy.WORDS),
                      about="paper 3 (Merullo et al., Talking Heads): GPT-2, 2 attention-only layers, 8 heads, trained "
                            "on lists of 2-4 items; movers crowd on longer lists and one component's edit restores them"),
}

# Recipes ``workbench train`` knows but that are not shipped as ``toy:NAME`` (studies train them
# into their own folders).
STUDY_RECIPES: dict[str, Recipe] = {
    # count01 trained to its plateau: same model, data, optimiser and batch, 20x the steps. Measured
    # (4 heads, seed 0, held-out loss on 256 test prompts, dropout off): 0.021 at step 500, 0.004-0.010
    # over 3k-7k, 0.0016-0.0036 from 9k on, 0.0020 at 20k; accuracy and EOS accuracy are 1.0 from step
    # 500. About 6 minutes on one CPU thread (60 steps/s).
    "count01-full": Recipe("count01", "gpt2", {"d_model": 32, "n_layers": 1, "n_heads": 4, "n_ctx": 24}, steps=20000,
                           attn_only=True, about="toy:count01's model trained 20k steps, to its loss plateau"),
    # Paper 2, trained among many features (issue 24): a language model's loss at every position over
    # topic-coloured filler, eight markers each raising its own name at the query; nothing planted. The
    # fourth of four designs; none shows next-token neurons explained better than random ones, since the
    # name neurons fire most on filler and no head is active on 25-75 % of their texts. Not shipped;
    # docs/neurons.md, "A language model's many features: toy lookup-lm (not shipped)".
    "lookup-lm": Recipe("lookup-lm", "gpt2", {"d_model": 32, "n_layers": 2, "n_heads": 8, "n_ctx": 24,
                                              "n_inner": 256, "resid_pdrop": 0.0, "attn_pdrop": 0.0,
                                              "embd_pdrop": 0.0},
                        steps=2000, words=LOOKUP_LM_WORDS, every_position=True,
                        about="paper 2 attempt: GPT-2, 2 layers, 8 heads, 256 MLP neurons, a language model's "
                              "loss over topic filler with eight markers each raising its own name; next-token "
                              "neurons not explained better than random ones (docs/neurons.md)"),
    # Paper 2, the XOR look-up (issue 24): lookup-lm's topic filler with a loss at every position, every
    # text holding a marker, and two queries whose name is the XOR of marker and query, so MLP neurons
    # must finish the look-up; nothing planted. Learns (held-out accuracy 1.000), but its next-token
    # neurons are dense and its margin over random neurons is a draw of the sample (+0.155 at k 8,
    # -0.225 at k 20). Not shipped; docs/neurons.md, "A language model's many features".
    "lookup-xor": Recipe("lookup-xor", "gpt2", {"d_model": 64, "n_layers": 2, "n_heads": 8, "n_ctx": 24,
                                                "n_inner": 512, "resid_pdrop": 0.0, "attn_pdrop": 0.0,
                                                "embd_pdrop": 0.0},
                         steps=6000, words=LOOKUP_XOR_WORDS, every_position=True,
                         about="paper 2 attempt: GPT-2, 2 layers, 8 heads, d_model 64, 512 MLP neurons, topic "
                               "filler, eight markers whose name depends on the query (XOR); next-token neurons "
                               "not explained better than random ones (docs/neurons.md)"),
}

# Test fixtures: shipped (``toy:NAME`` loads them) but not listed by ``workbench models``, because what
# they show was put there by hand (toys/planted.py), not learned.
FIXTURE_RECIPES: dict[str, Recipe] = {
    # A planted, frozen writer head L0H0 and a planted, frozen eraser L1H0; the rest of the 3-layer
    # attention-only model is trained on IOI around them. Its r = -0.975 holds by construction.
    "erasure-planted": Recipe("ioi", "gpt2", {"d_model": 48, "n_layers": 3, "n_heads": 4, "n_ctx": 32}, steps=2000,
                              attn_only=True, bar=0.9,
                              about="TEST FIXTURE, not a finding: GPT-2, 3 attention-only layers, IOI, a writer "
                                    "L0H0 and an eraser L1H0 planted by hand"),
}

TRAIN_RECIPES: dict[str, Recipe] = {**RECIPES, **STUDY_RECIPES, **FIXTURE_RECIPES}


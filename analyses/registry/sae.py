"""Sparse-autoencoder features (docs/sae.md): an SAE in the SAELens layout read from disk, its
features on a prompt, their direct logit attribution, and their top-activating texts over a corpus.
Ablating or clamping a feature is an edit (``sae:FOLDER:F=V``) that every run applies."""

from __future__ import annotations

from typing import Any

from analyses.registry import Analysis, Param, declare
from analyses.registry._facts import num, rate, top_row
from analyses.registry.corpus import CORPUS, check_corpus
from analyses.registry.prompt import BOS, POS, PROMPT

SAE = Param("sae", "path", "an SAE folder in the SAELens layout (cfg.json + sae_weights.safetensors); default: the "
            "SAE shipped with the toy (toy:ioi)", metavar="DIR", label="SAE folder")
FEATURE = Param("feature", "int", "the feature's index in the SAE", required=True, minimum=0)
TEXTS = (
    Param("top", "int", "the feature's top-activating texts to keep", default=20, minimum=1),
    Param("ratio", "float", "trim each text to its shortest suffix keeping this share of the activation",
          default=0.8, minimum=0.01),
    Param("max_len", "int", "drop trimmed texts longer than this many tokens", default=100, minimum=1,
          label="max length"),
)


def _sae(lm, folder: str | None):
    from analyses.sae.features import resolve_sae

    return resolve_sae(folder, lm.info.get("spec") if hasattr(lm, "info") else None)


def run_features(lm, prompt: str, sae: str | None, top: int, prepend_bos: bool | None):
    from analyses.inputs import prompt_input
    from analyses.sae.features import top_features

    x = prompt_input(lm, prompt, None, None, prepend_bos)
    grid = top_features(lm.hooked, x.ids, _sae(lm, sae), x.meta["prompt_tokens"], top)
    grid.meta = {"prompt_tokens": x.meta["prompt_tokens"], **grid.meta}
    return grid


def run_dla(lm, prompt: str, answer: str, distractor: str | None, sae: str | None, top: int, pos: int,
            prepend_bos: bool | None):
    from analyses.inputs import prompt_input
    from analyses.sae.features import feature_dla

    x = prompt_input(lm, prompt, answer, distractor, prepend_bos)
    table = feature_dla(lm.hooked, x.ids, _sae(lm, sae), x.answer, x.distractor, pos, top)
    table.meta = {**x.meta, **table.meta}
    return table


def _loop(lm, corpus, task, n, seed, batch, prepend_bos, progress, should_stop):
    from analyses.corpus import CorpusLoop, PromptSet

    prompts = PromptSet(corpus, task, n, seed, batch, prepend_bos)
    return CorpusLoop.over(lm.hooked, lm.tokenizer, prompts, progress, should_stop), prompts


def run_max_acts(lm, sae, feature, corpus, task, n, seed, batch, prepend_bos, top, ratio, max_len,
                 progress=None, should_stop=None):
    from analyses.sae.corpus import feature_texts

    model = _sae(lm, sae)
    loop, prompts = _loop(lm, corpus, task, n, seed, batch, prepend_bos, progress, should_stop)
    result = feature_texts(lm.hooked, lm.tokenizer, model, feature, loop, top, ratio, max_len)
    result.meta["source"] = prompts.source()
    return result


def run_corpus(lm, sae, corpus, task, n, seed, batch, prepend_bos, top, by, progress=None, should_stop=None):
    from analyses.sae.corpus import corpus_stats, stats_table

    model = _sae(lm, sae)
    loop, prompts = _loop(lm, corpus, task, n, seed, batch, prepend_bos, progress, should_stop)
    stats = corpus_stats(lm.hooked, model, loop)
    return stats_table(stats, model, top, by, {**loop.meta(), "source": prompts.source()})


def _check_texts(p: dict[str, Any]) -> None:
    check_corpus(p)
    if p.get("ratio") is not None and p["ratio"] > 1:
        from analyses.errors import BadInput

        raise BadInput(f"--ratio {p['ratio']:g}: a share of the activation, at most 1")


def features_facts(grid: Any) -> list[str]:
    """The SAE, and the strongest feature on the prompt."""
    m = grid.meta
    feats = grid.labels.get("feature", [])
    best = ""
    if feats:
        col = [row[0] for row in grid.values]
        i = max(range(len(col)), key=lambda j: col[j])
        best = f"; strongest F{feats[0][1:]} {num(col[i], sign=False)} at {grid.labels['pos'][i]!r}"
    mean = sum(m.get("active_per_token", [0])) / max(len(m.get("active_per_token", [])), 1)
    return [f"{m.get('sae')}: {mean:.1f} active features per token{best}"]


def dla_facts(table: Any) -> list[str]:
    """The logit (difference), and the feature that moves it most."""
    m = table.meta
    feats = [(lab, v) for lab, v in zip(table.labels, table.values) if lab.startswith("F")]
    best = max(feats, key=lambda lv: abs(lv[1]), default=None)
    facts = [f"logit {'diff ' if m.get('distractor') else ''}{num(m.get('logit'), 4)}; {m.get('hook')}'s direct "
             f"share {num(m.get('hook_dla'))} = features + b_dec + error ({m.get('active')} active)"]
    if best is not None:
        facts.append(f"largest feature {best[0]} {num(best[1])}")
    return facts


def max_acts_facts(result: Any) -> list[str]:
    m = result.meta
    prompts = m.get("prompts", [])
    best = (f"top activation {num(prompts[0]['max_act'], sign=False)} (doc {prompts[0]['doc']})" if prompts
            else "no text")
    return [f"F{m.get('feature')}: {best}; {len(result.labels)} texts shown of {m.get('documents')} "
            f"({m.get('source')})"]


def corpus_facts(table: Any) -> list[str]:
    m = table.meta
    top = top_row(table, "frequency", largest=True)
    head = f"; most frequent {top[0]} ({rate(top[1])} of tokens)" if top else ""
    return [f"{m.get('sae')}: {m.get('dead_features')} of {m.get('features')} features never fire on "
            f"{m.get('tokens')} tokens{head}"]


DOC_DLA = ("Through W_dec: f_i (W_dec[i] . w_lnf * d) / s_final (centred for LayerNorm); rows sum to the hook "
           "activation's direct share. Needs an SAE on a residual-width hook.")
declare(Analysis(
    "sae-features", "SAE: features per token", "the top active SAE features at each token of a prompt", (
        PROMPT[0], SAE,
        Param("top", "int", "features kept per token (the columns are their union)", default=5, minimum=1),
        BOS,
    ), run_features, "grid", "prompt", key=("sae", "top"), headline=features_facts,
    doc="A token x feature grid of activations. Ablate or clamp one with an edit: sae:DIR:F=VALUE[@POS].",
))
declare(Analysis(
    "sae-dla", "SAE: feature DLA", "each active SAE feature's direct logit attribution toward the answer", (
        *PROMPT, SAE, Param("top", "int", "features listed (the rest are summed in one row)", default=20, minimum=1),
        POS, BOS,
    ), run_dla, "table", "prompt", key=("sae", "pos"), headline=dla_facts, doc=DOC_DLA,
))
declare(Analysis(
    "sae-max-acts", "SAE: feature's top texts", "an SAE feature's top-activating texts, trimmed, coloured by "
    "its activation", (SAE, FEATURE, *CORPUS, *TEXTS), run_max_acts, "tokens", "model", cancellable=True,
    check=_check_texts, key=("feature", "top"), headline=max_acts_facts,
    doc="Streamed: only the feature's column of W_enc is read per batch; texts trimmed like neurons'.",
))
declare(Analysis(
    "sae-corpus", "SAE: features over a corpus", "every SAE feature's firing rate, largest activation and top "
    "documents over a corpus", (
        SAE, *CORPUS,
        Param("top", "int", "features listed", default=30, minimum=1),
        Param("by", "choice", "rank features by", default="frequency", choices=("frequency", "max")),
    ), run_corpus, "table", "model", cancellable=True, check=check_corpus, key=("by", "top"),
    headline=corpus_facts,
    doc="Streamed in batches: per-feature counts and a running top-5 of documents, never a texts x positions x "
        "features tensor.",
))

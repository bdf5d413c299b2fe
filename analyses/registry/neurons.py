"""Next-token neurons and the heads that drive them (Neo, Cohen & Barez 2024): which neurons
write a token, which texts make them fire, which heads feed them, when those heads are active,
and what ablating a head does to the neuron's token (docs/neurons.md)."""

from __future__ import annotations

from typing import Any

from analyses.registry import Analysis, Param, declare, int_list, names_list
from analyses.registry._facts import names, num, rate, top_row
from analyses.registry.corpus import CORPUS, check_corpus

NEURON = (
    Param("layer", "int", "the neuron's layer (negative counts from the end)", default=-1),
    Param("neuron", "int", "the neuron's index in the MLP", required=True, minimum=0),
)
PROMPTS = (
    Param("top", "int", "the neuron's top-activating texts to keep", default=40, minimum=1),
    Param("ratio", "float", "trim each text to its shortest suffix keeping this share of the activation",
          default=0.8, minimum=0.01),
    Param("max_len", "int", "drop trimmed prompts longer than this many tokens", default=100, minimum=1,
          label="max length"),
)
HEAD_TAGS = ("layer", "neuron", "top")


def _prompts(lm, layer: int, neuron: int, corpus, task, n, seed, batch, prepend_bos, top, ratio, max_len,
             progress=None, should_stop=None):
    from analyses.neurons import corpus_prompts

    return corpus_prompts(lm.hooked, lm.tokenizer, layer, neuron, corpus, task, n, seed, batch, prepend_bos, top,
                          ratio, max_len, progress, should_stop)


def _check(p: dict[str, Any]) -> None:
    check_corpus(p)
    if p.get("ratio") is not None and p["ratio"] > 1:
        from analyses.errors import BadInput

        raise BadInput(f"--ratio {p['ratio']:g}: a share of the activation, at most 1")


def run_congruence(lm, layers: str | None, top: int, all_tokens: bool):
    from analyses.neurons import congruence_table

    return congruence_table(lm.hooked, lm.tokenizer, int_list(layers, "--layers"), top, words_only=not all_tokens)


def run_max_acts(lm, layer, neuron, corpus, task, n, seed, batch, prepend_bos, top, ratio, max_len,
                 progress=None, should_stop=None):
    from analyses.neurons import max_acts_result

    prompts, meta = _prompts(lm, layer, neuron, corpus, task, n, seed, batch, prepend_bos, top, ratio, max_len,
                             progress, should_stop)
    return max_acts_result(lm.tokenizer, prompts, meta)


def run_heads(lm, layer, neuron, corpus, task, n, seed, batch, prepend_bos, top, ratio, max_len,
              progress=None, should_stop=None):
    from analyses.neurons import heads_table, prompts_attribution

    prompts, meta = _prompts(lm, layer, neuron, corpus, task, n, seed, batch, prepend_bos, top, ratio, max_len,
                             progress, should_stop)
    layer = meta["layer"]
    attr = prompts_attribution(lm.hooked, [p.ids for p in prompts], layer, neuron, batch)
    return heads_table(lm.hooked, attr, layer, neuron, meta=meta)


def run_explain(lm, layer, neuron, corpus, task, n, seed, batch, prepend_bos, top, ratio, max_len, test_share,
                max_n, endpoint, llm_model, key_env, progress=None, should_stop=None):
    from analyses.llm import Explainer
    from analyses.neurons import explain_heads

    prompts, meta = _prompts(lm, layer, neuron, corpus, task, n, seed, batch, prepend_bos, top, ratio, max_len,
                             progress, should_stop)
    llm = Explainer(endpoint, llm_model, key_env) if endpoint else None
    table = explain_heads(lm.hooked, lm.tokenizer, prompts, meta["layer"], neuron, test_share, seed, max_n, llm)
    table.meta = {**meta, **table.meta}
    return table


def run_ablation(lm, layer, neuron, corpus, task, n, seed, batch, prepend_bos, top, ratio, max_len, token, heads,
                 progress=None, should_stop=None):
    from analyses.neurons import ablation_table, predicted_token
    from analyses.tokens import resolve_token

    prompts, meta = _prompts(lm, layer, neuron, corpus, task, n, seed, batch, prepend_bos, top, ratio, max_len,
                             progress, should_stop)
    tok = resolve_token(lm.tokenizer, token) if token else predicted_token(lm.hooked, meta["layer"], neuron)
    table = ablation_table(lm.hooked, prompts, meta["layer"], neuron, tok, names_list(heads) or None)
    table.meta = {**meta, **table.meta,
                  "token": lm.tokenizer.decode([tok], clean_up_tokenization_spaces=False)}
    return table


def _neuron(m: dict[str, Any]) -> str:
    token = f" (token {m['token']!r})" if m.get("token") else ""
    return f"L{m.get('layer')}N{m.get('neuron')}{token}"


def congruence_facts(table: Any) -> list[str]:
    """The most congruent neuron and the token it predicts."""
    top = top_row(table, largest=True)
    token = table.columns["token"][table.labels.index(top[0])]
    return [f"most congruent neuron {top[0]} -> {token!r} ({num(top[1])}); "
            f"{table.meta.get('word_tokens')} word tokens ranked"]


def max_acts_facts(result: Any) -> list[str]:
    """The strongest activation found, over how many texts."""
    m = result.meta
    prompts = m.get("prompts", [])
    best = f"top activation {num(prompts[0]['max_act'])} (doc {prompts[0]['doc']})" if prompts else "no text"
    return [f"{_neuron(m)}: {best}; {len(result.labels)} texts shown of {m.get('documents')} ({m.get('source')})"]


def heads_facts(table: Any) -> list[str]:
    """The heads selected for explanation (active on 25-75 % of the texts)."""
    m = table.meta
    chosen = [lab for lab, s in zip(table.labels, table.columns["selected"]) if s]
    rates = dict(zip(table.labels, table.columns["active_rate"]))
    shown = [f"{h} ({rate(rates[h])} active)" for h in chosen]
    return [f"{_neuron(m)}: selected heads {names(shown, 6)} over {m.get('n_prompts')} texts ({m.get('source')})"]


def explain_facts(table: Any) -> list[str]:
    """Each head's explanation and its held-out balanced accuracy."""
    cols = table.columns
    facts = [f"{_neuron(table.meta)}: {len(table.labels)} head(s) explained, scored on held-out texts"]
    for i, head in enumerate(table.labels[:4]):
        facts.append(f"{head}: {cols['explanation'][i]}, balanced accuracy {rate(cols['balanced_accuracy'][i])} "
                     f"(shuffled {rate(cols['shuffled_baseline'][i])}, p {num(cols['p_shuffled'][i], kind='p')})")
    return facts


def ablation_facts(table: Any) -> list[str]:
    """Each ablated head's KS test between active and inactive texts."""
    cols = table.columns
    facts = [f"{_neuron(table.meta)}: mean p(token) {rate(table.meta.get('clean_p_mean'))} clean"]
    for i, head in enumerate(table.labels[:4]):
        facts.append(f"{head}: KS D {rate(cols['ks_d'][i])}, p {num(cols['ks_p'][i], kind='p')} "
                     f"({num(cols['n_active'][i], kind='count')} active, "
                     f"{num(cols['n_inactive'][i], kind='count')} inactive texts)")
    return facts


def heads_prompt_facts(table: Any) -> list[str]:
    """The heads active on this prompt."""
    active = [lab for lab, a in zip(table.labels, table.columns["active"]) if a]
    top = top_row(table)
    return [f"{_neuron(table.meta)}: active heads {names(active)}; largest attribution {top[0]} {num(top[1])}"]


CORPUS_DOC = " Texts: the neuron's top-activating texts of a corpus file or a task, each trimmed to its shortest " \
             "suffix keeping --ratio of the activation."
declare(Analysis(
    "neuron-congruence", "neurons: next-token congruence", "next-token neurons: each neuron's best "
    "W_out[n] . W_U[:, t] and the token t", (
        Param("layers", "ints", "layers to rank (default: all)", metavar="LIST"),
        Param("top", "int", "neurons to list per layer", default=20, minimum=1),
        Param("all_tokens", "flag", "rank over every token, not only word tokens", label="all tokens"),
    ), run_congruence, "table", "model", tasks=("lookup",), key=("layers", "top"), excludes=("mamba",),
    headline=congruence_facts,
    doc="Final-norm weight folded in, W_out centred for LayerNorm, the vocabulary mean subtracted; word tokens: "
        "'Ġ'/'▁'-prefixed and longer than 2 characters on BPE vocabularies, every non-special token on word-level ones.",
))
declare(Analysis(
    "neuron-max-acts", "neurons: max-activating texts", "a neuron's top-activating texts, trimmed, coloured by "
    "its activation", (*NEURON, *CORPUS, *PROMPTS), run_max_acts, "tokens", "model", cancellable=True,
    check=_check, key=HEAD_TAGS, excludes=("mamba",),
    headline=max_acts_facts,
    doc="Only the neuron's column is kept by the hook and the run stops after its layer." + CORPUS_DOC,
))
declare(Analysis(
    "neuron-heads", "neurons: head attribution", "which heads feed a neuron at the last token of its "
    "top-activating texts", (*NEURON, *CORPUS, *PROMPTS), run_heads, "table", "model", cancellable=True,
    check=_check, key=HEAD_TAGS, excludes=("mamba",),
    headline=heads_facts,
    doc="Per head: mean of head_out . W_in[:, n] through the MLP norm at its cached scale, the share of texts where "
        "it is active (> mean + 2 sd over heads), selected when that share is 25-75 %." + CORPUS_DOC,
))
declare(Analysis(
    "neuron-explain", "neurons: explain heads", "when is each selected head active? An n-gram rule (and "
    "optionally an LLM), scored on held-out texts", (
        *NEURON, *CORPUS, *PROMPTS,
        Param("test_share", "float", "share of the texts held out for scoring", default=0.5, minimum=0.05,
              label="test share"),
        Param("max_n", "int", "longest n-gram the rule explainer tries", default=2, minimum=1, label="max n"),
        Param("endpoint", "text", "an OpenAI-compatible API base URL (e.g. https://api.openai.com/v1); "
              "off by default", metavar="URL"),
        Param("llm_model", "text", "the endpoint's model name", default="gpt-4-1106-preview", metavar="NAME",
              label="LLM model"),
        Param("key_env", "text", "environment variable holding the endpoint's API key", default="OPENAI_API_KEY",
              metavar="VAR", label="key variable"),
    ), run_explain, "table", "model", cancellable=True, check=_check, key=HEAD_TAGS, excludes=("mamba",),
    headline=explain_facts,
    doc="Balanced accuracy (TPR+TNR)/2 on the held-out texts, the mean over shuffled labels and a permutation p."
        + CORPUS_DOC,
))
declare(Analysis(
    "neuron-ablation", "neurons: head ablation", "zero a head: change in the neuron's token probability where "
    "the head is active vs not, with a KS test", (
        *NEURON, *CORPUS, *PROMPTS,
        Param("token", "token", "the token whose probability is measured (default: the neuron's congruence token)"),
        Param("heads", "nodes", "heads to ablate, e.g. L0H1,L1H2 (default: the selected ones)", metavar="LIST"),
    ), run_ablation, "table", "model", cancellable=True, check=_check, key=HEAD_TAGS, excludes=("mamba",),
    headline=ablation_facts,
    doc="Δp = p(token) clean - p(token) with the head's z zeroed, at the last token; two-sample KS between the "
        "active and the inactive texts' Δp, per head and pooled (row 'all')." + CORPUS_DOC,
))


def run_heads_prompt(lm, prompt: str, layer: int, neuron: int, prepend_bos: bool | None):
    from analyses.inputs import prompt_input
    from analyses.neurons import active_heads, check_neuron, head_attribution, head_labels
    from analyses.results import Table

    x = prompt_input(lm, prompt, None, None, prepend_bos)
    layer, neuron = check_neuron(lm.hooked, layer, neuron)
    attr = head_attribution(lm.hooked, x.ids, [x.ids.shape[1]], layer, neuron)
    active = active_heads(attr)[0].tolist()
    labels = head_labels(lm.hooked, layer)
    meta = {**x.meta, "layer": layer, "neuron": neuron}
    return Table("neuron-heads-prompt", labels, {"attribution": attr[0].tolist(), "active": active}, meta)


declare(Analysis(
    "neuron-heads-prompt", "neurons: heads on a prompt", "each head's attribution to a neuron's pre-activation "
    "at a prompt's last token", (
        Param("prompt", "prompt", "the prompt", required=True),
        Param("layer", "int", "the neuron's layer (negative counts from the end)", default=0),
        Param("neuron", "int", "the neuron's index in the MLP", default=0, minimum=0),
        Param("prepend_bos", "bos", "prepend the tokenizer's BOS token (default: as the tokenizer does)", label="BOS"),
    ), run_heads_prompt, "table", "prompt", key=("layer", "neuron"), excludes=("mamba",),
    headline=heads_prompt_facts,
    doc="head_out . W_in[:, n] through the MLP norm at its cached scale; 'active' when > mean + 2 sd over heads.",
))

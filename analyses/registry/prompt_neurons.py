"""Next-token neurons on one prompt: each head's attribution to a neuron (docs/neurons.md).

A module of its own, named after ``prompt``, so that the Prompt tab's first analysis (what the app
opens on) stays DLA: the registry's modules are imported in name order.
"""

from __future__ import annotations

from analyses.registry import Analysis, Param, declare


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
    doc="head_out . W_in[:, n] through the MLP norm at its cached scale; 'active' when > mean + 2 sd over heads.",
))

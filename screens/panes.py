"""The workbench's tabs: DLA, patching and history. Layout only; the app runs the analyses."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import ContentSwitcher, DataTable, Input, ProgressBar, Select, Static

from analyses.toys import DEFAULT_ANSWER, DEFAULT_DISTRACTOR, DEFAULT_PROMPT
from screens.widgets import Heatmap, ResultTable

TRANSFORMER_SITES = ["resid_pre", "attn_out", "mlp_out", "head_out", "head_q", "head_k", "head_v", "head_pattern"]
MAMBA_SITES = ["resid_pre", "layer_in", "out_proj", "conv", "ssm_in"]
DEFAULT_CORRUPT = DEFAULT_PROMPT.replace("John gave", "Mary gave")


def token_preview(tokens: list[str] | None, other: list[str] | None = None) -> str:
    """Token boundaries made visible: ``3 tokens: [When][ Mary][ and]``; with a second prompt,
    whether the two have the same length (patching needs it)."""
    if tokens is None:
        return "tokens appear here once the model's tokenizer is loaded"
    text = f"{len(tokens)} tokens: " + "".join(f"[{t}]" for t in tokens)
    if other is not None:
        same = len(other) == len(tokens)
        text += f"   corrupt: {len(other)} tokens " + ("(same length)" if same else "(LENGTHS DIFFER: patching needs equal lengths)")
    return text


class Controls(Horizontal):
    DEFAULT_CSS = """
    Controls { height: auto; margin-bottom: 1; }
    Controls > Input { width: 1fr; margin-right: 1; }
    Controls > Select { width: 1fr; margin-right: 1; }
    Controls > #prompt, Controls > #clean, Controls > #corrupt { width: 3fr; }
    """


class DLAPane(Vertical):
    """Prompt, answer / distractor, granularity, filters; the result as a table or a head map."""

    def compose(self) -> ComposeResult:
        with Controls():
            yield Input(DEFAULT_PROMPT, placeholder="prompt", id="prompt", compact=True)
            yield Input(DEFAULT_ANSWER, placeholder="answer token", id="answer", compact=True)
            yield Input(DEFAULT_DISTRACTOR, placeholder="distractor (optional)", id="distractor", compact=True)
        with Controls():
            yield Select([("by layer", "layer"), ("by head", "head"), ("by neuron", "neuron"), ("logit lens", "lens")],
                         value="layer", allow_blank=False, compact=True, id="by")
            yield Input(placeholder="filter labels", id="filter", compact=True)
            yield Input(placeholder="top k", id="topk", type="integer", compact=True)
        yield Static(token_preview(None), id="tokens", markup=False)
        with ContentSwitcher(initial="result", id="dla_view"):
            yield ResultTable(id="result")
            yield Heatmap(id="head_map")


class PatchPane(Vertical):
    """A clean/corrupt pair, the site and direction; the sweep as a heatmap."""

    def compose(self) -> ComposeResult:
        with Controls():
            yield Input(DEFAULT_PROMPT, placeholder="clean prompt", id="clean", compact=True)
            yield Input(DEFAULT_CORRUPT, placeholder="corrupted prompt", id="corrupt", compact=True)
        with Controls():
            yield Input(DEFAULT_ANSWER, placeholder="clean answer", id="p_answer", compact=True)
            yield Input(DEFAULT_DISTRACTOR, placeholder="corrupted answer", id="p_distractor", compact=True)
        with Controls():
            yield Select([(s, s) for s in dict.fromkeys(TRANSFORMER_SITES + MAMBA_SITES)], value="head_out",
                         allow_blank=False, compact=True, id="site")
            yield Select([(d, d) for d in ("denoise", "noise", "resample", "mean")], value="denoise",
                         allow_blank=False, compact=True, id="direction")
            yield Select([(m, m) for m in ("logit_diff", "nld", "prob")], value="logit_diff", allow_blank=False, compact=True, id="metric")
        yield Static(token_preview(None), id="pair_tokens", markup=False)
        yield ProgressBar(id="progress", show_eta=True)
        yield Heatmap(id="patch_map")


class HistoryPane(Vertical):
    """Every run of the session, newest last; Enter reopens one, ctrl+e exports it."""

    def compose(self) -> ComposeResult:
        yield Static("Enter: reopen a run   ctrl+e: export it to JSON and CSV", markup=False)
        table = DataTable(id="history", cursor_type="row", zebra_stripes=True)
        table.add_columns("run", "analysis", "summary")
        yield table

"""The workbench's tabs: DLA, patching, plot, prompts, history and sessions. Layout only; the app
runs the analyses. Each pane's HELP is what F1 shows while focus is inside it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import ContentSwitcher, DataTable, Input, ProgressBar, Select, Static

from analyses.toys import DEFAULT_ANSWER, DEFAULT_DISTRACTOR, DEFAULT_PROMPT
from screens.plots import ResultPlot
from screens.widgets import Heatmap, ResultTable

# Before a model has loaded (the real lists come from its adapter, via ``set_sites``):
TRANSFORMER_SITES = ["resid_pre", "attn_out", "mlp_out", "head_out", "head_q", "head_k", "head_v", "head_pattern"]
MAMBA_SITES = ["resid_pre", "layer_in", "out_proj", "conv", "ssm_in"]
PREFERRED_SITES = ("head_out", "out_proj")


def dla_options(has_heads: bool = True) -> list[tuple[str, str]]:
    """DLA granularities: heads and neurons only where the model has them (not Mamba)."""
    return [("by layer", "layer"), *([("by head", "head"), ("by neuron", "neuron")] if has_heads else []),
            ("logit lens", "lens")]
DEFAULT_CORRUPT = DEFAULT_PROMPT.replace("John gave", "Mary gave")
METHODS = [("act. patching", "patch"), ("attrib. patching", "attrib"), ("EAP", "eap"),
           ("EAP-IG 5 steps", "eap-ig"), ("path patching", "path-patch")]
METHOD_FIELDS = {"patch": ("positions", "heads"), "attrib": (), "eap": ("edges_top",), "eap-ig": ("edges_top",),
                 "path-patch": ("senders", "receivers")}  # the inputs of the method row each method uses


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

    HELP = """### Direct logit attribution
Type a prompt; the token preview shows how the model's tokenizer splits it.
The answer and distractor are tokens spelled as the tokenizer does (F2 picks one
from the prompt's tokens and the model's top predictions). With a distractor the
target is the logit difference. **ctrl+r** runs: by layer, head, neuron, or the
logit lens, at the last position or the one given (0-based, negative from the end).
The rows sum to the logit. Filter labels and keep the top k below;
**s** in the table sorts by |value|, **ctrl+t** shows heads as a layer x head map."""

    def compose(self) -> ComposeResult:
        with Controls():
            yield Input(DEFAULT_PROMPT, placeholder="prompt", id="prompt", compact=True)
            yield Input(DEFAULT_ANSWER, placeholder="answer token", id="answer", compact=True)
            yield Input(DEFAULT_DISTRACTOR, placeholder="distractor (optional)", id="distractor", compact=True)
        with Controls():
            yield Select(dla_options(), value="layer", allow_blank=False, compact=True, id="by")
            yield Input(placeholder="position: last", id="dla_pos", type="integer", compact=True)
            yield Input(placeholder="filter labels", id="filter", compact=True)
            yield Input(placeholder="top k", id="topk", type="integer", compact=True)
        yield Static(token_preview(None), id="tokens", markup=False)
        with ContentSwitcher(initial="result", id="dla_view"):
            yield ResultTable(id="result")
            yield Heatmap(id="head_map")

    def set_granularities(self, has_heads: bool) -> None:
        select = self.query_one("#by", Select)
        current = select.value
        options = dla_options(has_heads)
        select.set_options(options)
        select.value = current if current in [v for _, v in options] else "layer"


class PatchPane(Vertical):
    """A clean/corrupt pair, the method, site and direction; the result as a heatmap or a table."""

    DEFAULT_CSS = "PatchPane Controls { margin-bottom: 0; }"

    HELP = """### Patching
A clean and a corrupted prompt of equal token length, the clean answer and the
corrupted one. Methods: activation patching (a batched sweep over layers x
positions, or heads, at the chosen site, optionally only at some positions
and heads such as 9,-1; Escape cancels between batches),
attribution patching (one backward pass), EAP and EAP-IG edge scores (top k edges
also get their faithfulness measured), path patching (senders and receivers as
comma lists: writers L0H1, L0MLP, input; readers L1H2.q, L1MLP, logits). Cells are the patched metric,
coloured from the corrupted baseline (blue) to the clean one (red)."""

    def compose(self) -> ComposeResult:
        with Controls():
            yield Input(DEFAULT_PROMPT, placeholder="clean prompt", id="clean", compact=True)
            yield Input(DEFAULT_CORRUPT, placeholder="corrupted prompt", id="corrupt", compact=True)
        with Controls():
            yield Input(DEFAULT_ANSWER, placeholder="clean answer", id="p_answer", compact=True)
            yield Input(DEFAULT_DISTRACTOR, placeholder="corrupted answer", id="p_distractor", compact=True)
        with Controls():
            yield Select(METHODS, value="patch", allow_blank=False, compact=True, id="method")
            yield Select([(s, s) for s in dict.fromkeys(TRANSFORMER_SITES + MAMBA_SITES)], value="head_out",
                         allow_blank=False, compact=True, id="site")
            yield Select([(d, d) for d in ("denoise", "noise", "resample", "mean")], value="denoise",
                         allow_blank=False, compact=True, id="direction")
            yield Select([(m, m) for m in ("logit_diff", "nld", "prob")], value="logit_diff", allow_blank=False, compact=True, id="metric")
        with Controls(id="method_controls"):
            yield Input(placeholder="positions: all, or 9,-1", id="positions", compact=True)
            yield Input(placeholder="heads: all, or 0,3", id="heads", compact=True)
            yield Input(placeholder="senders: L0H1,L0MLP", id="senders", compact=True)
            yield Input(placeholder="receivers: L1H0.q,logits", id="receivers", compact=True)
            yield Input(placeholder="top k edges (faithfulness)", id="edges_top", type="integer", compact=True)
        yield Static(token_preview(None), id="pair_tokens", markup=False)
        yield ProgressBar(id="progress", show_eta=True)
        with ContentSwitcher(initial="patch_map", id="patch_view"):
            yield Heatmap(id="patch_map")
            yield ResultTable(id="patch_table")


    def on_mount(self) -> None:
        self.show_fields("patch")

    def set_sites(self, sites: list[str]) -> None:
        """The sites the loaded model has; the chosen one stays where the model has it too."""
        select = self.query_one("#site", Select)
        current = select.value
        select.set_options([(s, s) for s in sites])
        select.value = current if current in sites else next((s for s in PREFERRED_SITES if s in sites), sites[0])

    def show_fields(self, method: str) -> None:
        """Only the inputs the chosen method reads; the row disappears when it reads none."""
        row = self.query_one("#method_controls")
        for field in row.children:
            field.display = field.id in METHOD_FIELDS[method]
        row.display = bool(METHOD_FIELDS[method])


class PlotPane(Vertical):
    """The result on show as a chart."""

    def compose(self) -> ComposeResult:
        yield ResultPlot(id="plot")


class PromptsPane(Vertical):
    """The session's prompts and pairs: every prompt run is remembered; Enter loads one back."""

    HELP = """### Prompts
Every prompt and clean/corrupt pair this session has run, with its answer and
distractor, saved in the session file. **Enter** puts the selected one back into
the DLA tab (a prompt) or the patching tab (a pair)."""

    def compose(self) -> ComposeResult:
        table = DataTable(id="prompts", cursor_type="row", zebra_stripes=True)
        table.add_columns("kind", "answer", "distractor", "prompt", "corrupt")
        yield table


class SessionsPane(Vertical):
    """The open sessions; Enter switches to one, ctrl+o opens another."""

    HELP = """### Sessions
Every open session, each with its own model, prompts and history. **Enter**
switches to the selected one, **F3** to the next, **ctrl+o** opens another file
(or creates one). A session's stored results show without loading its model; the
model loads in the background when a new run needs it."""

    def compose(self) -> ComposeResult:
        table = DataTable(id="sessions", cursor_type="row", zebra_stripes=True)
        table.add_columns("", "session", "model", "runs", "prompts")
        yield table


class HistoryPane(Vertical):
    """Every run of the session, newest last; Enter reopens one, F4 exports it. The session's
    notes below."""

    DEFAULT_CSS = "HistoryPane #notes { height: auto; max-height: 8; }"
    HELP = """### History
Every run of this session, oldest first, as stored in the session file.
**Enter** reopens a run's result (no model needed), **F4** exports it to JSON and CSV.
**ctrl+n** adds a note to the session; notes are listed below the runs."""

    def compose(self) -> ComposeResult:
        yield Static("Enter: reopen a run   F4: export it   ctrl+n: add a note", markup=False)
        table = DataTable(id="history", cursor_type="row", zebra_stripes=True)
        table.add_columns("run", "analysis", "summary")
        yield table
        notes = DataTable(id="notes", cursor_type="row", show_cursor=False)
        notes.add_columns("notes")
        yield notes

"""The workbench's tabs: one prompt, pairs, plot, prompts, history and sessions. Layout only; the
app runs the analyses. Each pane's HELP is what F1 shows while focus is inside it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from rich.text import Text
from textual.widgets import DataTable, ProgressBar, Static

from analyses.registry import Analysis
from screens.form import AnalysisForm
from screens.plots import ResultPlot
from screens.results_view import ResultView

TAB_HELP = {
    "prompt": """### One prompt
Choose the analysis (DLA, the logit lens, an attention pattern). Type a prompt; the token
preview shows how the model's tokenizer splits it. The answer and distractor are tokens spelled
as the tokenizer does (**F2** picks one from the prompt's tokens and the model's top
predictions). With a distractor the target is the logit difference. **ctrl+r** runs. DLA rows
sum to the logit; filter labels and keep the top k above the result; **s** in the table sorts by
|value|, **ctrl+t** shows heads as a layer x head map.""",
    "pairs": """### Patching and datasets
Choose the analysis and where the prompts come from: one clean/corrupted pair typed here
(equal token length), a JSONL pairs file, or N pairs sampled from a built-in task. Activation
patching sweeps layers x positions (or heads) at a site, optionally only some positions and
heads (9,-1); denoise writes clean into corrupted, noise the reverse, resample and mean ablate
(they need two or more pairs). Attribution patching, EAP and EAP-IG edge scores (top k edges get
their faithfulness measured), the EAP faithfulness curve over k, path patching (senders and
receivers as comma lists), and task accuracy. **Escape** cancels a sweep between batches and
keeps the cells done; a run started while another runs waits its turn.""",
    "model": """### The model and a task's examples
Analyses of the model's heads over examples of its task (Count01: per-head separation, probe and
AUC, attention ratios w01 / w02, attention interventions, pattern vs value resampling, how the
model weighs its heads) and training a toy from scratch with a learning curve. Choose the
analysis at the top; **ctrl+r** runs; **Escape** stops a training run after the current step.""",
}


def token_preview(tokens: list[str] | str | None, other: list[str] | str | None = None) -> Text:
    """Token boundaries made visible: ``3 tokens: [When][ Mary][ and]``; with a second prompt,
    whether the two have the same length (patching needs it). A token never breaks across lines.
    A string in place of tokens is why a prompt has none (words outside the vocabulary)."""
    if tokens is None:
        return Text("tokens appear here once the model's tokenizer is loaded")
    problem = next((t for t in (tokens, other) if isinstance(t, str)), None)
    if problem is not None:
        return Text(problem)
    text = Text(f"{len(tokens)} tokens: ")
    for t in tokens:  # lines break between tokens, never inside one
        text.append(f"[{t}] ".replace(" ", "\u00a0")[:-1] + " ")
    if other is not None:
        same = len(other) == len(tokens)
        text.append(f"   corrupt: {len(other)} tokens " + ("(same length)" if same else "(LENGTHS DIFFER: patching needs equal lengths)"))
    return text


class AnalysisPane(Vertical):
    """A tab of analyses: the generated form, the token preview, progress and the result."""

    DEFAULT_CSS = """
    AnalysisPane { height: 1fr; }
    AnalysisPane > .tokens { height: auto; max-height: 2; color: $text-muted; }
    AnalysisPane > ProgressBar { display: none; }
    AnalysisPane > ProgressBar.running { display: block; }
    AnalysisPane > ResultView.stale { border: round $warning; border-subtitle-color: $warning; }
    """

    def __init__(self, tab: str, declared: list[Analysis], **kwargs) -> None:
        super().__init__(**kwargs)
        self.tab, self.declared = tab, declared
        self.HELP = TAB_HELP.get(tab, "")

    def compose(self) -> ComposeResult:
        yield AnalysisForm(self.tab, self.declared, id=f"{self.tab}-form")
        if any(p.kind == "prompt" for a in self.declared for p in a.params):
            yield Static(token_preview(None), id=f"{self.tab}-tokens", classes="tokens", markup=False)
        yield ProgressBar(id=f"{self.tab}-progress", show_eta=True)
        yield ResultView(id=f"{self.tab}-result")

    @property
    def form(self) -> AnalysisForm:
        return self.query_one(AnalysisForm)

    @property
    def view(self) -> ResultView:
        return self.query_one(ResultView)


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
A run marked DAMAGED could not be read back from the file; **Enter** on it says why (the
other runs are intact, and the file is left as it is).
**ctrl+n** adds a note to the session; notes are listed below the runs."""

    def compose(self) -> ComposeResult:
        yield Static("Enter: reopen a run   F4: export it   ctrl+n: add a note", markup=False)
        table = DataTable(id="history", cursor_type="row", zebra_stripes=True)
        table.add_columns("run", "analysis", "parameters", "result", "prompt")
        yield table
        notes = DataTable(id="notes", cursor_type="row", show_cursor=False)
        notes.add_columns("notes")
        yield notes

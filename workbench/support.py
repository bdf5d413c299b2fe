"""Small pieces the app's screens share: user keymaps, error texts, a run's headline and key
parameters, memory in use."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from analyses.errors import BadInput


def keymap_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(base) / "workbench" / "keymap.toml"


def apply_keymap(app) -> dict[str, str]:
    """User key bindings from $XDG_CONFIG_HOME/workbench/keymap.toml: ``run = "f5"``; returns
    them (binding id -> keys), empty when there are none."""
    path = keymap_path()
    if not path.is_file():
        return {}
    try:
        keys = {str(k): str(v) for k, v in tomllib.loads(path.read_text()).get("keymap", {}).items()}
        app.set_keymap(keys)
        return keys
    except (OSError, tomllib.TOMLDecodeError) as e:
        app.notify(f"{path}: {e}; using the default keys", severity="error")
        return {}


def help_keys(app) -> list[tuple[str, str]]:
    """Every key that works where the focus is, the app's own first, with what it does."""
    keys: dict[str, str] = {}
    actives = sorted(app.screen.active_bindings.values(), key=lambda a: a.node is not app)
    for active in actives:
        binding = active.binding
        if binding.description and not binding.system:
            keys.setdefault(app.get_key_display(binding), binding.description + (f": {binding.tooltip}" if binding.tooltip else ""))
    return list(keys.items())


FLAG = re.compile(r"--[a-z][a-z0-9-]*")


def as_controls(text: str, analysis) -> str:
    """A message of the analyses, which name their CLI flags (``--ks must be ...``), in the TUI's
    words: each flag of ``analysis``'s parameters becomes its control's label in quotes; BOS's
    ``--prepend-bos`` / ``--no-prepend-bos`` the setting "BOS on" / "BOS off"."""
    labels = {p.flag: p.short for p in analysis.params}
    labels.update({f"--{neg}prepend-bos": f"{p.short} {'off' if neg else 'on'}" for p in analysis.params
                   if p.kind == "bos" for neg in ("", "no-")})
    return FLAG.sub(lambda m: f'"{labels[m.group()]}"' if m.group() in labels else m.group(), text)


def failure_text(e: Exception) -> str:
    if isinstance(e, BadInput):
        return str(e)
    if out_of_memory(e):
        return "out of memory: try a smaller batch, --dtype bfloat16, or --device-map auto"
    return f"internal error: {type(e).__name__}: {e}"


def out_of_memory(e: BaseException) -> bool:
    """A CUDA out-of-memory (``torch.OutOfMemoryError``, also ``torch.cuda``'s) or a CPU MemoryError."""
    return isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError"


def oom_text(e: BaseException, analysis, params: dict[str, Any], loaded) -> str:
    """What an analysis that ran out of memory tells the analyst: the run (its analysis and key
    parameters), where, how to shrink it (its cost formula's own advice), and that nothing was
    lost. Frees the allocator's cached blocks first, so the next run starts from what is in use."""
    from types import SimpleNamespace

    device = str(getattr(loaded, "info", {}).get("device", "cpu"))
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
    run = key_params(SimpleNamespace(analysis=analysis.name, params=params))
    try:
        from analyses.cost import estimate_run

        shrink = estimate_run(loaded, analysis, params).shrink
    except Exception:  # the advice is a courtesy; the message stands without it
        shrink = ""
    what = "CUDA out of memory" if type(e).__name__ == "OutOfMemoryError" else "out of memory (MemoryError)"
    return (f"{analysis.name}{f' ({run})' if run else ''} ran {what} on {device}. Shrink the run: "
            f"{shrink or 'fewer inputs'}, a smaller batch, or load the model with --dtype bfloat16. "
            "The model stays loaded and the session's saved runs are intact; the next run starts afresh.")


def headline(result: Any, analysis: str | None = None) -> str:
    """What a result found, for the status bar and the history: its declaration's headline facts
    (as the CLI prints them), else its main number."""
    from analyses.registry import analyses
    from analyses.results import Grid, Scatter, Series, Table

    declared = analyses().get(analysis or "")
    facts = declared.facts(result) if declared is not None else []
    if facts:
        return "; ".join(facts)
    meta = result.meta
    if isinstance(result, Grid):
        if "clean" in meta and "corrupt" in meta:
            text = f"clean {meta['clean']:+.3f} corrupt {meta['corrupt']:+.3f}"
            return text + (f"  PARTIAL {meta.get('cells_done')}/{meta.get('cells_total')} cells" if meta.get("partial") else "")
        return f"{len(result.labels[result.axes[0]])} x {len(result.labels[result.axes[-1]])}"
    if isinstance(result, Scatter):
        fit = result.fit()
        return f"r {fit['r']:+.3f} slope {fit['slope']:+.3f}"
    if isinstance(result, Series):
        first = next(iter(result.lines))
        return f"{first} {result.lines[first][-1]:+.3f} at {result.x_name} {result.x[-1]}" if result.x else "empty"
    if isinstance(result, Table):
        if "logit" in meta:
            return f"{'logit diff' if meta.get('distractor') else 'logit'} {meta['logit']:+.4f}"
        if "circuit" in meta:
            return f"top {meta['circuit']['edges_kept']} edges: faithfulness {meta['circuit']['faithfulness']:.3f}"
        if "accuracy" in meta:
            return f"accuracy {meta['accuracy']:.3f}"
        if result.analysis == "path_patch":
            return "  ".join(f"{k} {v:+.3f}" for k, v in zip(result.labels, result.values))
    return f"{len(result.labels)} rows"


SOURCE_PARAMS = ("pairs", "corpus", "task", "n", "seed", "split")  # where a run's inputs came from, and how many


def key_params(entry) -> str:
    """The parameters that tell runs of one analysis apart, as ``site=head_out direction=mean``,
    then where its inputs came from when it did not run on a typed prompt or pair: ``task=ioi
    n=16``, ``corpus=texts.txt n=64``, a seed or split only where it is not the default."""
    from analyses.registry import analyses

    analysis = analyses().get(entry.analysis)
    params = entry.params
    names = list(analysis.key if analysis is not None else ())
    if not (params.get("prompt") or params.get("clean")):
        names += [k for k in SOURCE_PARAMS if k not in names]
    defaults = {p.name: p.default for p in analysis.params} if analysis is not None else {}

    def shown(k: str) -> bool:
        value = params.get(k)
        return value not in (None, "") and not (k in ("seed", "split") and value == defaults.get(k))

    return " ".join(f"{k}={params[k]}" for k in names if shown(k))


def count(items: list, noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def memory_text(device: str) -> str:
    """Memory in use: the process's resident set, and allocated CUDA memory on a GPU."""
    try:
        rss = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        text = f"RSS {rss / 2**20:.0f} MiB"
    except (OSError, ValueError, IndexError):
        text = ""
    if device.startswith("cuda"):
        import torch

        text += f"  CUDA {torch.cuda.memory_allocated() / 2**20:.0f} MiB"
    return text


def training_bar(title: str, measure: str) -> Callable[[int, int, float], None]:
    """A training loop's ``progress(step, total, value)`` drawn on one stderr line:
    ``training TITLE [####....] step/total MEASURE seconds``; ``measure`` formats the value
    (e.g. ``"loss {:.3f}"``)."""
    import sys
    import time

    start = time.monotonic()

    def bar(step: int, total: int, value: float) -> None:
        filled = int(30 * step / total)
        sys.stderr.write(f"\rtraining {title} [{'#' * filled}{'.' * (30 - filled)}] {step}/{total} "
                         f"{measure.format(value)} {time.monotonic() - start:.0f}s")
        sys.stderr.flush()

    return bar


class StderrProgress:
    """A run's progress on one line of a terminal's stderr (nothing when stderr is not a
    terminal): input preparation by stage, then the analysis's own loop, at most every 0.2 s."""

    def __init__(self, name: str) -> None:
        import sys

        self.name, self.stream, self.last, self.shown = name, sys.stderr, 0.0, False
        self.live = self.stream.isatty()

    def preparing(self, what: str, done: int, total: int) -> None:
        self._show(f"{self.name}: {what} {done:,}/{total:,}", done == total)

    def progress(self, done: int, total: int) -> None:
        self._show(f"{self.name}: {done:,}/{total:,} ({100 * done // max(total, 1)}%)", done == total)

    def _show(self, text: str, last: bool) -> None:
        import time

        now = time.monotonic()
        if self.live and (last or now - self.last >= 0.2):
            self.last, self.shown = now, True
            self.stream.write(f"\r\x1b[K{text}")
            self.stream.flush()

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()

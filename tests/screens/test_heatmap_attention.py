"""An attention map wider than the screen keeps the keys that hold the attention, and says which
it hides (issue 25, part 7)."""

from __future__ import annotations

from textual.app import App, ComposeResult

from analyses.results import Grid
from screens.results_view import ResultView


class One(App):
    def __init__(self, view: ResultView) -> None:
        super().__init__()
        self.view = view

    def compose(self) -> ComposeResult:
        yield self.view


def attention_grid(n: int, held: dict[int, float]) -> Grid:
    """A causal n x n pattern: each query puts ``held[k]`` on key k (where visible) and spreads the
    rest evenly over its other visible keys; rows sum to 1."""
    rows = []
    for q in range(n):
        visible = range(q + 1)
        mine = {k: w for k, w in held.items() if k <= q}
        rest = (1 - sum(mine.values())) / max(1, q + 1 - len(mine))
        rows.append([mine.get(k, rest) if k in visible else 0.0 for k in range(n)])
    labels = [f"{i}:t{i}" for i in range(n)]
    return Grid("attention", ["query", "key"], {"query": labels, "key": list(labels)}, rows, {"label": "L1H0"})


async def test_a_wide_attention_map_keeps_the_keys_that_hold_attention():
    """Defect: every key moves from zero, so none was hidden and the last keys fell off screen,
    however much attention they held."""
    n = 40
    held = {0: 0.3, 17: 0.2, 38: 0.4}  # the first key, one in the middle, one near the end
    view = ResultView()
    async with One(view).run_test(size=(80, 24)) as pilot:
        view.show(attention_grid(n, held))
        await pilot.pause()
        heatmap = view.heatmap
        shown = {int(str(key.value)[1:]) for key in heatmap.columns if str(key.value) != "label"}
        assert set(held) <= shown  # the keys that hold attention stay on screen
        assert heatmap.virtual_size.width <= heatmap.size.width  # nothing beyond the right edge
        assert heatmap.hidden and len(heatmap.hidden) == n - len(shown)
        assert f"{n - len(shown)} of {n} columns hidden (the least attention): " in view.caption

"""Every result type rendered by the real widgets in a real Textual app at 80x24 (no model: the
results are built by hand, shaped like the analyses' own)."""

from __future__ import annotations

import math
import random

import pytest
from textual.app import App, ComposeResult
from textual.coordinate import Coordinate
from textual.widget import Widget

from analyses.results import Grid, Scatter, Series, Table, TokenValues
from screens.plots import ResultPlot, plot_kinds
from screens.results_view import ResultView
from screens.widgets import Heatmap, TokenText, compact

SIZE = (80, 24)
# GPT-2's 14 tokens of the IOI prompt: the informative positions are Mary (1), John (3 and 9), to (13).
TOKENS = ["When", " Mary", " and", " John", " went", " to", " the", " store", " ,", " John", " gave", " a",
          " drink", " to"]


class One(App):
    """A bare app holding one widget, as the workbench's panes hold them."""

    def __init__(self, widget: Widget) -> None:
        super().__init__()
        self.widget = widget

    def compose(self) -> ComposeResult:
        yield self.widget


def dla_by_head() -> Table:
    labels = ["embed", "pos_embed", "L0H0", "L0H1", "L1H0", "L1H1", "bias"]
    return Table("dla", labels, {"value": [0.5, -0.1, 1.2, -0.3, 2.5, 0.0, 0.1]}, {"by": "head"})


def patch_grid(tokens: list[str], moving: set[int], n_layers: int = 12, n_heads: int = 12,
               partial_after: int | None = None) -> Grid:
    """A head_out patching grid (layer x pos x head) where only ``moving`` positions change the
    metric from the corrupted baseline (-2) towards the clean one (3); cells past
    ``partial_after`` layers are NaN, as a cancelled sweep leaves them."""
    rng = random.Random(0)
    values = [[[(rng.uniform(-2, 3) if p in moving else -2.0) for _ in range(n_heads)] for p in range(len(tokens))]
              for _ in range(n_layers)]
    if partial_after is not None:
        values = [row if layer < partial_after else [[math.nan] * n_heads for _ in tokens]
                  for layer, row in enumerate(values)]
    labels = {"layer": [f"L{i}" for i in range(n_layers)], "pos": [f"{i}:{t}" for i, t in enumerate(tokens)],
              "head": [f"H{h}" for h in range(n_heads)]}
    total = n_layers * len(tokens) * n_heads
    done = total if partial_after is None else partial_after * len(tokens) * n_heads
    meta = {"site": "head_out", "metric": "logit_diff", "method": "denoise", "clean": 3.0, "corrupt": -2.0,
            "partial": done < total, "cells_done": done, "cells_total": total}
    return Grid("patch", ["layer", "pos", "head"], labels, values, meta)


def scatter(n: int = 500) -> Scatter:
    rng = random.Random(1)
    xs = [rng.gauss(0, 1) for _ in range(n)]
    ys = [-0.6 * x + rng.gauss(0, 0.5) for x in xs]
    return Scatter("erasure", [f"L{i % 12}N{i}" for i in range(n)], xs, ys, "writer DLA", "eraser DLA")


def series() -> Series:
    return Series("faithfulness", [1, 2, 4, 8, 16], {"faithfulness": [0.1, 0.3, 0.6, 0.9, 1.0],
                                                      "edges kept": [1.0, 2.0, 4.0, 8.0, 16.0]}, "k")


def token_values() -> TokenValues:
    return TokenValues("neuron_top", ["prompt 1", "prompt 2"],
                       [["[BOS]", "When", " Mary", "\n"], ["[BOS]", " John", " gave"]],
                       [[0.0, 0.5, -1.5, math.nan], [0.0, 2.0, -0.2]], "L0N3 activation")


ALL_RESULTS = {"table": dla_by_head, "grid": lambda: patch_grid(TOKENS, {1, 3, 9, 13}), "scatter": scatter,
               "series": series, "tokens": token_values}


# ---- ResultView ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(ALL_RESULTS))
async def test_result_view_renders_every_result_type(kind):
    view = ResultView(id="view")
    result = ALL_RESULTS[kind]()
    async with One(view).run_test(size=SIZE) as pilot:
        view.show(result)
        await pilot.pause()
        table, heatmap = view.table, view.heatmap
        if kind == "table":
            assert view.current_view == "table" and view.views == ["table", "map"]
            assert (table.row_count, len(table.columns)) == (7, 2)
            assert heatmap.row_count == 2 and len(heatmap.columns) == 3  # L0, L1 by label, H0, H1
        elif kind == "grid":
            assert view.current_view == "map" and view.views == ["map", "table"]
            assert heatmap.row_count == 144
        elif kind == "scatter":
            assert (table.row_count, len(table.columns)) == (500, 3)  # label, x, y
        elif kind == "series":
            assert (table.row_count, len(table.columns)) == (5, 3)  # k, one column per line
            assert str(table.ordered_columns[0].label) == "k"
        else:
            assert view.current_view == "tokens" and table.row_count == 0
        view.show(None)
        await pilot.pause()
        assert view.current_view is None and view.table.row_count == 0 and view.heatmap.row_count == 0


async def test_toggle_view_switches_between_a_results_two_views():
    view = ResultView()
    async with One(view).run_test(size=SIZE) as pilot:
        view.show(dla_by_head())
        assert view.toggle_view() == "map"
        assert view.toggle_view() == "table"
        view.show(patch_grid(TOKENS, {1}))
        await pilot.pause()
        assert view.toggle_view() == "table"
        await pilot.pause()
        assert view.table.row_count == 2000 + 1  # 2016 cells: the 2000 largest changes, then "+16 more"
        assert str(view.table.get_cell_at(Coordinate(0, 0))).endswith("1: Mary")  # the only position that moves
        view.show(scatter(10))
        assert view.toggle_view() == "table"  # one view: stays


async def test_filter_and_top_k_pass_through_to_the_table():
    view = ResultView()
    async with One(view).run_test(size=SIZE) as pilot:
        view.show(dla_by_head())
        view.top_k = 2
        await pilot.pause()
        assert [str(view.table.get_cell_at(Coordinate(r, 0))) for r in range(2)] == ["L1H0", "L0H0"]
        view.top_k = None
        view.label_filter = "l0"
        await pilot.pause()
        assert view.table.row_count == 2


async def test_scatter_header_gives_the_fit():
    view = ResultView()
    result = scatter()
    fit = result.fit()
    async with One(view).run_test(size=SIZE) as pilot:
        view.show(result)
        await pilot.pause()
        caption = view.caption
        assert f"r = {fit['r']:.3f}" in caption and f"slope = {fit['slope']:.3f} ± {fit['slope_se']:.3f}" in caption
        assert "n = 500" in caption and view.query_one("#caption").display


async def test_token_text_shows_bracketed_tokens_literally():
    widget = TokenText()
    async with One(widget).run_test(size=SIZE) as pilot:
        widget.show(token_values())
        await pilot.pause()
        assert "[[BOS]][When][ Mary][↵]" in widget.text.plain
        assert "[[BOS]][ John][ gave]" in widget.text.plain
        assert "[BOS]" in pilot.app.export_screenshot()  # drawn, not swallowed as markup
        nan_token = next(span for span in widget.text.spans if widget.text.plain[span.start:span.end] == "[↵]")
        assert "on rgb" not in str(nan_token.style)  # a missing value is not coloured


# ---- Heatmap fitting (defect 13) ------------------------------------------------------------------

async def test_a_14_token_patching_map_fits_80_columns():
    """All 14 positions visible at 80x24: compact cells, abbreviated tokens, nothing off screen."""
    view = ResultView()
    async with One(view).run_test(size=SIZE) as pilot:
        view.show(patch_grid(TOKENS, {1, 3, 9, 13}))
        await pilot.pause()
        heatmap = view.heatmap
        assert len(heatmap.columns) == 1 + 14 and heatmap.hidden == []
        assert heatmap.virtual_size.width <= heatmap.size.width  # no horizontal scrolling needed
        assert heatmap.fixed_columns == 1
        labels = [str(c.label).strip() for c in heatmap.ordered_columns[1:]]
        assert labels[1] == "Mary" and labels[13] == "to"
        assert all(len(str(heatmap.get_cell_at(Coordinate(r, c))).strip()) <= 5
                   for r in range(5) for c in range(1, 15))


async def test_columns_that_do_not_fit_hide_the_flat_ones_and_say_so():
    tokens = [f" t{i}" for i in range(24)]
    moving = {1, 3, 9, 13, 23}
    view = ResultView()
    async with One(view).run_test(size=SIZE) as pilot:
        view.show(patch_grid(tokens, moving))
        await pilot.pause()
        heatmap = view.heatmap
        shown = {str(key.value) for key in heatmap.columns} - {"label"}
        assert {f"c{j}" for j in moving} <= shown  # every informative column stays
        assert len(heatmap.hidden) == 24 - len(shown) > 0
        assert ("19 of 24 columns hidden (no change from the corrupted run): 0, 2, 4-8, 10-12, 14-22"
                in view.caption)
        assert heatmap.virtual_size.width <= heatmap.size.width
        view.toggle_view()
        await pilot.pause()
        assert "hidden" not in view.caption  # the table view hides nothing


async def test_a_resize_refits_the_map():
    heatmap = Heatmap()
    async with One(heatmap).run_test(size=(160, 24)) as pilot:
        heatmap.show_grid(patch_grid([f" t{i}" for i in range(24)], {1, 3}))
        await pilot.pause()
        assert heatmap.hidden == []
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert len(heatmap.hidden) == 22


async def test_nan_cells_of_a_cancelled_sweep_render_blank():
    view = ResultView()
    async with One(view).run_test(size=SIZE) as pilot:
        view.show(patch_grid(TOKENS, {1, 13}, partial_after=6))
        await pilot.pause()
        heatmap = view.heatmap
        last = heatmap.row_count - 1
        cell = heatmap.get_cell_at(Coordinate(last, 2))
        assert cell.plain.strip() == "·" and "rgb" not in str(cell.style)
        assert "sweep stopped after 1008 of 2016 cells" in view.caption
        view.toggle_view()
        await pilot.pause()
        assert view.table.row_count > 0


def test_compact_values_fit_their_cells():
    fives = [compact(v, 5) for v in (0.12345, -1.3, 12.34, 1234.0, 123456.0)]
    assert fives == ["+.123", "-1.30", "+12.3", "+1234", "+1e5"]
    assert [compact(v, 4) for v in (0.12, 1.3, 12.3, -0.999)] == ["+.12", "+1.3", "+12", "-1.0"]
    assert compact(math.nan) == "·"


# ---- plots ---------------------------------------------------------------------------------------

def test_plot_kinds_join_rows_with_a_line_only_when_they_are_ordered():
    assert "line" not in plot_kinds(dla_by_head())
    lens = Table("logit_lens", ["L0", "L1", "L2"], {"logit": [0.1, 0.5, 2.0], "prob": [0.01, 0.1, 0.6]})
    assert plot_kinds(lens) == ["line", "bar", "scatter"]
    ordered = Table("eval", ["1", "2", "3"], {"accuracy": [0.9, 0.8, 0.5]}, {"ordered": True})
    assert plot_kinds(ordered)[0] == "line"
    assert plot_kinds(scatter(10)) == ["scatter"]
    assert plot_kinds(series()) == ["line", "bar"]
    assert plot_kinds(token_values()) == ["bar"]


@pytest.mark.parametrize("kind", [*ALL_RESULTS, "partial_grid"])
async def test_every_plot_kind_of_every_result_draws(kind):
    result = patch_grid(TOKENS, {1, 13}, partial_after=6) if kind == "partial_grid" else ALL_RESULTS[kind]()
    plot = ResultPlot()
    async with One(plot).run_test(size=SIZE) as pilot:
        kinds = plot_kinds(result, result if isinstance(result, Grid) else None)
        assert kinds
        for plot_kind in kinds:
            plot.show(result, plot_kind, ("itself", result) if isinstance(result, Grid) else None)
            await pilot.pause()
            assert plot.kind == plot_kind
            assert plot.render().plain.strip()  # draws something, without raising


async def test_the_scatter_plot_title_gives_r_and_the_slope():
    plot = ResultPlot()
    result = scatter()
    fit = result.fit()
    async with One(plot).run_test(size=SIZE) as pilot:
        plot.show(result)
        await pilot.pause()
        drawn = plot.render().plain
        assert f"r = {fit['r']:.3f}, slope = {fit['slope']:.3f} ± {fit['slope_se']:.3f}" in drawn

"""Figures -> PNG bytes (matplotlib, Agg, no pyplot state).

Plots have a white card background so they read the same in Material's light
and dark palettes, and are saved without a timestamp or software tag so the
same data gives the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.text import Text
from PIL import Image

from generator import fonts
from generator.analysis import finite_series, smooth
from generator.colors import LEGEND_LIMIT, PALETTE
from generator.kinds import Panel
from generator.overview import AXIS_TITLES, OVERVIEW_AXES, overview_buckets, overview_panels, placed
from generator.overview import overview_axes as overview_axes  # re-exported: tests and callers find it here
from generator.records import AnalysisSettings, Curve, Figures
from generator.series import MAX_BUCKETS, downsample

TEXT = "#262626"
GRID = "#DDDDDD"
DPI = 110
# Typed loosely: matplotlib's stubs want a Literal key type for rc_context.
STYLE: Any = {
    "font.family": "DejaVu Sans",  # ships with matplotlib: same glyphs everywhere
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelcolor": TEXT,
    "axes.edgecolor": "#888888",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": GRID,
    "grid.linewidth": 0.8,
    "xtick.color": TEXT,
    "ytick.color": TEXT,
    "text.color": TEXT,
    "legend.frameon": False,
    "path.simplify": True,
    "agg.path.chunksize": 10000,
    # Names and metric keys are user text: "$\invalidcmd$" must be drawn as it is, not parsed as math.
    "text.parse_math": False,
    # Titles sit at the top of their axes. Left to matplotlib ("axes.titley": None) each title is moved
    # above whatever overlaps it, which costs every figure the bounding boxes of its y tick labels
    # (a 300-row metric panel: 30-34 ms of CPU against 33-46, measured here); nothing can overlap here:
    # no x ticks on top, and no y offset text ('1e-4' above the axis: TickLabels and the learning rate's
    # formatter write none).
    "axes.titley": 1.0,
}

SPIKE = "#C0392B"
BEST = "#009E73"


# Fixed margins in inches rather than constrained layout, which doubled the drawing
# time of a panel figure (0.28 s against 0.15 s for four panels, measured here).
MARGIN_LEFT = 0.85
"""Room for y tick labels ('1.0e-04') and a y label; also the gap between two panels side by side."""
MARGIN_RIGHT = 0.2
TITLE_SPACE = 0.32
"""Above each panel: its title."""
SUPTITLE_SPACE = 0.3
XLABEL_SPACE = 0.55
"""Below each panel: x tick labels and the x label."""
LEGEND_LINE = 0.17
"""Height of one line of a small legend below a panel."""
FIGURE_LEGEND_LINE = 0.24
"""Height of one line of the overview's legend (10-point text, not a panel legend's 7.5)."""


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, facecolor="white")
    FigureCanvasAgg(figure)
    return figure


def _single_figure(width: float, height: float) -> Figure:
    """One axes with a title, an x label and a y label."""
    figure = _new_figure(width, height)
    figure.subplots_adjust(left=MARGIN_LEFT / width, right=1 - MARGIN_RIGHT / width,
                           top=1 - TITLE_SPACE / height, bottom=XLABEL_SPACE / height)
    return figure


def _grid_figure(rows: int, columns: int, width: float, panel_height: float,
                 below: float = 0.0, footer: float = 0.0, titled: bool = True) -> Figure:
    """A grid of panels under a figure title (unless not `titled`); `below` is room for a legend under
    each panel, `footer` for one legend under the whole figure (inches)."""
    above = SUPTITLE_SPACE if titled else 0.0
    height = above + rows * (TITLE_SPACE + panel_height + XLABEL_SPACE + below) + footer
    figure = _new_figure(width, height)
    panel_width = (width - MARGIN_LEFT - MARGIN_RIGHT - MARGIN_LEFT * (columns - 1)) / columns
    figure.subplots_adjust(
        left=MARGIN_LEFT / width,
        right=1 - MARGIN_RIGHT / width,
        top=1 - (above + TITLE_SPACE) / height,
        bottom=(XLABEL_SPACE + below + footer) / height,
        hspace=(TITLE_SPACE + XLABEL_SPACE + below) / panel_height,
        wspace=MARGIN_LEFT / panel_width,
    )
    return figure


def _panel_axes(figure: Figure, rows: int, columns: int, position: int) -> Any:
    """A small panel with at most ~5 ticks an axis: enough to read, and each tick label costs drawing time."""
    return _few_ticks(figure.add_subplot(rows, columns, position))


def _few_ticks(axes: Any) -> Any:
    axes.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(nbins=5, integer=True, min_n_ticks=1))
    axes.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(nbins=5))
    return axes


def _step_ticks() -> matplotlib.ticker.MaxNLocator:
    """The loss plot's step axis: matplotlib's AutoLocator (its nbins and steps) on whole steps only, also
    when the view holds one step (a run logged once shows step 10 alone, not 9.6, 9.8, 10, 10.2, 10.4);
    `_few_ticks` does the same for panels, with fewer ticks. A new locator each time: it keeps its axis."""
    return matplotlib.ticker.MaxNLocator(nbins="auto", steps=[1, 2, 2.5, 5, 10], integer=True, min_n_ticks=1)


def _lone_point(points: int) -> dict[str, Any]:
    """A marker for a curve of one point, which a line alone does not draw (a run that logged once)."""
    return {"marker": "o", "markersize": 5} if points == 1 else {}


REUSED_FIGURES = 8
"""Blank figures a process keeps for reuse (one per shape: the loss plot, a panel with 0-3 legend rows)."""
_reused: dict[tuple[Any, ...], tuple[Figure, Any, list[tuple[Text, Any]]]] = {}


def _reused_axes(shape: tuple[Any, ...], make: Callable[[], Figure]) -> tuple[Figure, Any]:
    """A figure with one axes, made once per `shape` in this process and wiped for each plot.

    Making a figure costs more than drawing one: its axes, and the tick marks and
    labels matplotlib creates one by one, were ~30% of a panel's time. A wiped
    figure draws the same bytes as a new one (tests/test_plots.py checks it on a
    family of plots in several orders), so which worker drew which plot never shows.
    """
    kept = _reused.get(shape)
    if kept is None:
        figure = make()
        axes = figure.add_subplot()
        fonts_made = [(text, text.get_fontproperties().copy()) for text in _named_texts(figure)]
        if len(_reused) >= REUSED_FIGURES:
            _reused.pop(next(iter(_reused)))
        _reused[shape] = (figure, axes, fonts_made)
        return figure, axes
    figure, axes, fonts_made = kept
    legend = axes.get_legend()
    if legend is not None:
        legend.remove()
    for artist in [*axes.lines, *axes.collections, *axes.patches, *axes.texts, *axes.images]:
        artist.remove()
    for text, font in fonts_made:  # `_set_fonts` may have given them another family
        text.set_fontproperties(font.copy())
    for loc in ("left", "center", "right"):
        axes.set_title("", loc=loc)
    axes.set_xlabel("")
    axes.set_ylabel("")
    axes.set_prop_cycle(None)
    axes.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axes.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axes.xaxis.set_major_locator(matplotlib.ticker.AutoLocator())
    axes.yaxis.set_major_locator(matplotlib.ticker.AutoLocator())
    axes.relim()
    axes.set_xlim(0, 1)  # a new axes' limits, kept when nothing is plotted
    axes.set_ylim(0, 1)
    axes.set_autoscale_on(True)
    return figure, axes


def forget_reused_figures() -> None:
    """Drop the figures kept for reuse (tests compare a wiped figure's bytes with a new one's)."""
    _reused.clear()


def _figure_title(figure: Figure, text: str) -> None:
    figure.suptitle(text, x=0.01, y=1 - 0.06 / figure.get_figheight(), ha="left", va="top", fontsize=11)


def _legend_below(axes: Any, columns: int) -> None:
    """A small legend under a panel, clear of the curves (inside it would hide curves that fill the plot)."""
    height = axes.get_window_extent().height / DPI
    offset = (XLABEL_SPACE - 0.05) / height
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -offset), ncol=columns, fontsize=7.5, borderaxespad=0)


def _legend_rows(count: int, columns: int) -> float:
    """Inches a legend of `count` entries in `columns` columns needs below a panel."""
    return 0.1 + LEGEND_LINE * -(-count // columns) if count else 0.0


def _set_fonts(figure: Figure) -> None:
    """Draw text DejaVu Sans lacks from an installed font that has it, and replace what no font has by a
    label naming its script (see `generator.fonts`): never a box, never a 'Glyph missing' warning."""
    texts = [text for text in _named_texts(figure) if fonts.needs_fonts(text.get_text())]
    if not texts:
        return
    families = list(fonts.families_for(text.get_text() for text in texts))
    for text in texts:
        text.set_fontfamily(families)
        text.set_text(fonts.drawable(text.get_text()))


def _named_texts(figure: Figure) -> list[Text]:
    """The texts that may hold a user's words (run names, metric keys): titles, axis labels, legends.

    Tick labels are numbers formatted here, and are only written when the figure is drawn, so they are
    not looked at (`findobj` walked every artist, and made every tick, to find these few)."""
    texts: list[Text] = []
    title = getattr(figure, "_suptitle", None)
    if title is not None:
        texts.append(title)
    legends = list(figure.legends)
    for axes in figure.axes:
        texts += [child for child in axes.get_children() if isinstance(child, Text)]  # its three titles
        texts += [axes.xaxis.label, axes.yaxis.label]
        legend = axes.get_legend()
        if legend is not None:
            legends.append(legend)
    for legend in legends:
        texts += [legend.get_title(), *legend.get_texts()]
    return texts


class TickLabels(matplotlib.ticker.Formatter):
    """Y tick labels that each carry their own exponent ('3.7e12', '2e-9') and as many decimals as the
    ticks need to differ: no '1e12' or '+1e3' text above the axis, which pushed the panel's title
    out of the figure. `percent`: fractions shown as percentages."""

    SCIENTIFIC_ABOVE = 1e5
    SCIENTIFIC_BELOW = 1e-3

    def __init__(self, percent: bool = False) -> None:
        self.percent = percent

    def __call__(self, x: float, pos: int | None = None) -> str:
        return self.format_ticks([x])[0]

    def format_ticks(self, values: Any) -> list[str]:
        scaled = np.asarray(values, dtype="float64") * (100.0 if self.percent else 1.0)
        finite = np.sort(scaled[np.isfinite(scaled)])
        steps = np.diff(finite)
        step = float(steps[steps > 0].min()) if (steps > 0).any() else max(float(np.abs(finite).max(initial=0)), 1.0)
        largest = float(np.abs(finite).max(initial=0.0))
        scientific = largest >= self.SCIENTIFIC_ABOVE or 0 < largest < self.SCIENTIFIC_BELOW
        suffix = "%" if self.percent else ""
        for digits in range(9):  # the fewest digits that still tell the ticks apart
            labels = [self._label(value, digits, scientific) for value in scaled]
            if all(not np.isfinite(v) or abs(float(label) - v) <= step * 1e-3 for label, v in zip(labels, scaled, strict=True)):
                break
        return [label.replace("e+", "e").replace("e0", "e").replace("e-0", "e-") + suffix for label in labels]

    @staticmethod
    def _label(value: float, digits: int, scientific: bool) -> str:
        if not np.isfinite(value) or value == 0:
            return "0"
        return f"{value:.{digits}e}" if scientific else f"{value:.{digits}f}"


ELLIPSIS = "\u2026"
EDGE = 2.0
"""Pixels kept clear at the figure's edges."""
NEIGHBOUR_GAP = 0.15
"""Inches a panel's title, x label or legend may reach past its right edge: the next panel's y tick
labels begin further right."""
OWN_TICK_ROOM = 0.7
"""Inches a panel's legend or x label may reach past its left edge: below its own y tick labels."""


def _middle_cut(text: str, keep: int) -> str:
    """`text` with its middle replaced by an ellipsis, keeping `keep` characters: both the start and the
    distinguishing end of 'rewards/termination_verbosity_reward/std' survive."""
    if len(text) <= keep:
        return text
    head = (keep + 1) // 2
    return text[:head] + ELLIPSIS + text[len(text) - (keep - head):] if keep > head else text[:head] + ELLIPSIS


def _fit_text(text: Text, low: float, high: float, renderer: Any) -> None:
    """Shorten a one-line text (middle cut) until its drawn extent lies between pixels `low` and `high`."""
    original = text.get_text()
    box = text.get_window_extent(renderer)
    if not original or (box.x0 >= low and box.x1 <= high):
        return
    fits, cut = 1, len(original) - 1
    while fits < cut:  # the longest cut that fits
        middle = (fits + cut + 1) // 2
        text.set_text(_middle_cut(original, middle))
        box = text.get_window_extent(renderer)
        if box.x0 >= low and box.x1 <= high:
            fits = middle
        else:
            cut = middle - 1
    text.set_text(_middle_cut(original, fits))


def _fit_legend(legend: Any, low: float, high: float, renderer: Any) -> None:
    """Shorten a legend's longest labels until the legend lies between pixels `low` and `high`."""
    labels = legend.get_texts()
    originals = [label.get_text() for label in labels]
    longest = max((len(text) for text in originals), default=0)
    for _ in range(12):
        box = legend.get_window_extent(renderer)
        if (box.x0 >= low and box.x1 <= high) or longest <= 4:
            return
        share = min(0.9, (high - low) / box.width) if box.width > 0 else 0.9
        longest = max(4, int(longest * share))
        for label, original in zip(labels, originals, strict=True):
            label.set_text(_middle_cut(original, longest))


def _fit_texts(figure: Figure) -> None:
    """Keep every title, x label and legend inside the figure and clear of the neighbouring panel: long
    names and metric keys are cut in the middle (the page and figures.json give them whole)."""
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    right = figure.bbox.x1 - EDGE
    title = getattr(figure, "_suptitle", None)
    if title is not None:
        _fit_text(title, EDGE, right, renderer)
    for axes in figure.axes:
        box = axes.get_window_extent(renderer)
        low, high = max(EDGE, box.x0 - OWN_TICK_ROOM * DPI), min(right, box.x1 + NEIGHBOUR_GAP * DPI)
        for text in axes.get_children():  # its three titles (left, centre, right) are its only texts
            if isinstance(text, Text):
                _fit_text(text, box.x0 - EDGE, high, renderer)
        _fit_text(axes.xaxis.label, low, high, renderer)
        legend = axes.get_legend()
        if legend is not None:
            _fit_legend(legend, low, high, renderer)
    for legend in figure.legends:
        _fit_legend(legend, EDGE, right, renderer)


def _encoded(figure: Figure, palette: bool = False, compact: bool = False) -> bytes:
    """The figure as PNG bytes (WebP when `compact`), without a date or software tag (the bytes depend on
    the data only).

    `palette`: map the colours to 256 (octree, no dithering). Hundreds of
    overlaid anti-aliased curves blend into tens of thousands of colours; mapped
    back the overview looks the same and weighs a third (under 200 KB for 200
    runs). Octree rather than median cut: on the four panels of 1,000 overlaid runs
    (27,000-31,000 colours each) 2 ms against 46-66 ms a panel, 7% smaller, a mean
    error of 2.0 against 0.8 levels of 255, the same to the eye side by side
    (measured). `compact`: a model plot of a large site (`group_pages.is_large`), mapped
    the same way (model plots have few colours: ~50-130 after
    mapping, the same to the eye) and stored as lossless WebP, which codes such an
    image in about two thirds of the mapped PNG's bytes (a 300-row run's five plots:
    152 KB drawn, 49 KB mapped PNG, 32 KB WebP). Every browser in use shows WebP
    (Safari since 14). 5,000 runs' plots were most of a site far over GitHub Pages' 1 GB.
    """
    for axes in figure.axes:
        if type(axes.yaxis.get_major_formatter()) is matplotlib.ticker.ScalarFormatter and \
                axes.get_yscale() == "linear":
            axes.yaxis.set_major_formatter(TickLabels())
    _set_fonts(figure)
    _fit_texts(figure)
    canvas = figure.canvas
    canvas.draw()
    pixels = canvas.buffer_rgba()  # type: ignore[attr-defined]
    height, width = pixels.shape[:2]
    # The figures are opaque (white): saved as RGB rather than matplotlib's RGBA, a PNG encodes in about
    # half the time and ~9% smaller (a loss plot: 47 -> 25 ms, 53 -> 49 KB, measured here).
    image = Image.frombuffer("RGBA", (width, height), pixels, "raw", "RGBA", 0, 1).convert("RGB")
    if palette or compact:
        image = image.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    if compact:
        # Lossless, so `quality` is the encoder's effort: at 25 it is faster and smaller than Pillow's 80
        # on these images (45 bench plots: 6.9 -> 4.8 ms, 6.4 -> 6.2 KiB each; 15 and below grow to 7.0).
        image.save(buffer, format="WEBP", lossless=True, method=4, quality=25)
    else:
        image.save(buffer, format="PNG", dpi=(DPI, DPI))
    return buffer.getvalue()


def _thin(x: np.ndarray, *ys: np.ndarray) -> tuple[np.ndarray, ...]:
    """Evenly spaced points of aligned arrays, for shapes (bands) that min/max picking would tear."""
    if len(x) <= 2 * MAX_BUCKETS:
        return (x, *ys)
    chosen = np.unique(np.linspace(0, len(x) - 1, 2 * MAX_BUCKETS).astype(int))
    return (x[chosen], *(y[chosen] for y in ys))


def _gapped(table: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps and values (downsampled) with NaN where a value was not finite (a gap)."""
    values = table[column].to_numpy(dtype="float64").copy()
    values[~np.isfinite(values)] = np.nan
    return downsample(table["step"].to_numpy(dtype="float64"), values)


def _curve(series: pd.Series, buckets: int = MAX_BUCKETS) -> tuple[np.ndarray, np.ndarray]:
    """A series by step, downsampled for drawing."""
    return downsample(series.index.to_numpy(dtype="float64"), series.to_numpy(dtype="float64"), buckets)


def loss_plot(name: str, color: str, train: pd.DataFrame, evals: pd.DataFrame,
              figures: Figures, settings: AnalysisSettings, resumed_at: int | None = None,
              compact: bool = False) -> bytes:
    """Raw loss (faint), smoothed loss, eval loss, spikes and the steps worth a marker."""
    with matplotlib.rc_context(STYLE):
        figure, axes = _reused_axes(("loss",), lambda: _single_figure(8.0, 4.2))
        if "loss" in train.columns:
            steps, raw = _gapped(train, "loss")
            axes.plot(steps, raw, color=color, alpha=0.3, linewidth=1.0, label="loss (raw)")
            finite = finite_series(train, "loss")
            if len(finite):
                smoothed = smooth(finite, settings.smoothing)
                axes.plot(*_curve(smoothed), color=color, linewidth=2.2, **_lone_point(len(finite)),
                          label=f"loss (smoothed, weight {settings.smoothing:g})")
            if figures.spikes:
                spiked = finite[finite.index.isin(figures.spikes)]
                axes.plot(spiked.index, spiked.to_numpy(), linestyle="none", marker="x", color=SPIKE, markersize=6,
                          label=f"spike ({len(figures.spikes)})")
        eval_loss = finite_series(evals, "eval_loss")
        if len(eval_loss):
            axes.plot(eval_loss.index, eval_loss.to_numpy(), color=TEXT, linewidth=1.4, marker="o",
                      markersize=4, label="eval loss")
        if figures.fall_end_step is not None and figures.fall_end_level is not None:
            axes.plot([figures.fall_end_step], [figures.fall_end_level], marker="D", markersize=6, linestyle="none",
                      color=TEXT, label=f"fast fall ended (step {figures.fall_end_step})")
        if figures.stabilised_step is not None:
            axes.axvline(figures.stabilised_step, color="#666666", linestyle=":", linewidth=1.3,
                         label=f"stabilised (step {figures.stabilised_step})")
        _mark_steps(axes, figures, resumed_at)
        axes.set_title(f"{name}: loss", loc="left")
        axes.xaxis.set_major_locator(_step_ticks())
        axes.set_xlabel("Step")
        axes.set_ylabel("Loss")
        axes.legend(loc="best")  # clear of the curves: runs fall, rise or both
        return _encoded(figure, compact=compact)


def _mark_steps(axes: Any, figures: Figures, resumed_at: int | None) -> None:
    """Vertical lines at the best checkpoint and where a resumed run restarted."""
    best = figures.best_checkpoint
    if best is not None and best.step is not None:
        axes.axvline(best.step, color=BEST, linestyle="--", linewidth=1.3, label=f"best checkpoint (step {best.step})")
    if resumed_at is not None:
        axes.axvline(resumed_at, color="#999999", linestyle="-.", linewidth=1.2, label=f"resumed (step {resumed_at})")


PANEL_WIDTH = 4.0
"""Inches of one model panel drawn alone (as OVERVIEW_PANEL_WIDTH): two a row on a desktop page, one a row
on a phone, where the whole 8-inch grid shrunk to the screen left 6-pixel tick labels."""
PANEL_HEIGHT = 2.6


def panels_plot(title: str, color: str, train: pd.DataFrame, evals: pd.DataFrame, panels: Sequence[Panel],
                settings: AnalysisSettings, figures: Figures | None = None, only: int | None = None,
                compact: bool = False) -> bytes:
    """A grid of small panels, two per row: each column raw (faint) and smoothed, eval values as dots.

    A panel with one column uses the model's colour; with several, each column
    gets its own colour and a legend. `only`: panel number `only` alone, PANEL_WIDTH wide, with its own
    title and legend and no figure title (model pages lay the panels out in a grid that becomes one
    column on phones).
    """
    if not panels:
        raise ValueError("no panel to plot")
    chosen = list(panels) if only is None else [panels[only]]
    columns = 2 if len(chosen) > 1 else 1
    rows = (len(chosen) + 1) // 2
    legend_columns = 2
    # A panel with several curves has a legend below it: the tallest sets the room for every row.
    below = max((_legend_rows(_legend_entries(panel, evals), legend_columns) for panel in chosen
                 if len(panel.columns) > 1), default=0.0)
    with matplotlib.rc_context(STYLE):
        if only is None:
            figure = _grid_figure(rows, columns, 8.0, 2.0, below=below)
            for position, panel in enumerate(chosen, start=1):
                _draw_panel(_panel_axes(figure, rows, columns, position), panel, color, train, evals, settings,
                            figures, legend_columns)
        else:
            figure, axes = _reused_axes(("panel", below),
                                        lambda: _grid_figure(1, 1, PANEL_WIDTH, PANEL_HEIGHT, below=below, titled=False))
            _draw_panel(_few_ticks(axes), chosen[0], color, train, evals, settings, figures, legend_columns)
        if only is None:
            _figure_title(figure, title)
        return _encoded(figure, compact=compact)


def _draw_panel(axes: Any, panel: Panel, color: str, train: pd.DataFrame, evals: pd.DataFrame,
                settings: AnalysisSettings, figures: Figures | None, legend_columns: int) -> None:
    """One metric panel of `panels_plot`."""
    several = len(panel.columns) > 1
    names = short_labels(panel.columns)
    for index, column in enumerate(panel.columns):
        line_color = PALETTE[index % len(PALETTE)] if several else color
        label = names[index] if several else None
        if column == "learning_rate":
            axes.plot(*_gapped(train, column), color=line_color, linewidth=1.8, label=label,
                      **_lone_point(len(finite_series(train, column))))
            # Plain tick labels: an offset text ('1e-4') would collide with the title.
            axes.yaxis.set_major_formatter(
                matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:.1e}" if v else "0"))
            continue
        finite = finite_series(train, column)
        axes.plot(*_gapped(train, column), color=line_color, alpha=0.3, linewidth=1.0)
        if len(finite):
            smoothed = smooth(finite, settings.smoothing)
            axes.plot(*_curve(smoothed), color=line_color, linewidth=1.8, label=label, **_lone_point(len(finite)))
            if panel.band and index == 0:
                spread = smooth(finite_series(train, panel.band), settings.smoothing).reindex(smoothed.index)
                x, lower, upper = _thin(smoothed.index.to_numpy(dtype="float64"),
                                        (smoothed - spread).to_numpy(), (smoothed + spread).to_numpy())
                if len(x) == 1:  # a band of one point has no width: a bar shows its height
                    axes.vlines(x, lower, upper, color=line_color, alpha=0.3, linewidth=6, label=f"+/- {panel.band}")
                else:
                    axes.fill_between(x, lower, upper, color=line_color, alpha=0.15, linewidth=0,
                                      label=f"+/- {panel.band}")
        evaluated = finite_series(evals, "eval_" + column)
        if len(evaluated):
            axes.plot(evaluated.index, evaluated.to_numpy(), color=line_color, linestyle="none", marker="o",
                      markersize=3.5, markeredgecolor=TEXT, label=f"eval {names[index]}" if several else "eval")
    if figures is not None:
        _mark_steps(axes, figures, None)
    if panel.percent:
        axes.yaxis.set_major_formatter(TickLabels(percent=True))
    axes.set_title(panel.title, loc="left")
    axes.set_xlabel("Step")
    if several:
        _legend_below(axes, legend_columns)
    elif axes.get_legend_handles_labels()[0]:
        axes.legend(loc="best", fontsize=7.5)


def _legend_entries(panel: Panel, evals: pd.DataFrame) -> int:
    """Legend entries of a panel with several columns: each column, and its eval dots when logged."""
    return len(panel.columns) + sum(1 for column in panel.columns if "eval_" + column in evals.columns)


def short_labels(columns: Sequence[str]) -> list[str]:
    """Legend labels without the prefix and suffix the columns share: 'rewards/format/mean' -> 'format'."""
    if len(columns) < 2:
        return list(columns)
    parts = [column.split("/") for column in columns]
    start = 0
    while all(len(p) > start + 1 for p in parts) and len({p[start] for p in parts}) == 1:
        start += 1
    end = 0
    while all(len(p) > start + end + 1 for p in parts) and len({p[-1 - end] for p in parts}) == 1:
        end += 1
    return ["/".join(p[start : len(p) - end]) for p in parts]


def eval_plot(name: str, evals: pd.DataFrame, groups: dict[str, dict[str, str]], figures: Figures,
              only: int | None = None, compact: bool = False) -> bytes:
    """One panel per eval metric, one line per eval set, the best checkpoint marked; `only`: metric number
    `only` alone, PANEL_WIDTH wide, without the figure title (as `panels_plot`)."""
    if not groups:
        raise ValueError("no eval metric to plot")
    chosen = list(groups.items()) if only is None else [list(groups.items())[only]]
    columns = 2 if len(chosen) > 1 else 1
    rows = (len(chosen) + 1) // 2
    legend_columns = 3
    below = max(_legend_rows(len(sets), legend_columns) if len(sets) > 1 else 0.0 for _, sets in chosen)
    with matplotlib.rc_context(STYLE):
        if only is None:
            figure = _grid_figure(rows, columns, 8.0, 2.0, below=below)
        else:
            figure = _grid_figure(1, 1, PANEL_WIDTH, PANEL_HEIGHT, below=below, titled=False)
        for position, (metric, sets) in enumerate(chosen, start=1):
            axes = _panel_axes(figure, rows, columns, position)
            for index, (eval_set, column) in enumerate(sets.items()):
                values = finite_series(evals, column)
                axes.plot(values.index, values.to_numpy(), color=PALETTE[index % len(PALETTE)], linewidth=1.4,
                          marker="o", markersize=3, label=eval_set or None)
            _mark_steps(axes, figures, None)
            axes.set_title(metric, loc="left")
            axes.set_xlabel("Step")
            if len(sets) > 1:
                _legend_below(axes, legend_columns)
            elif figures.best_checkpoint and figures.best_checkpoint.step is not None:
                axes.legend(loc="best", fontsize=7.5)
        if only is None:
            _figure_title(figure, f"{name}: evaluation")
        return _encoded(figure, compact=compact)


OVERVIEW_PANEL_WIDTH = 5.0
"""Inches of one overview panel drawn alone: two side by side on a desktop page, one a row on a phone,
where 550 pixels shown 350 wide keep 10-point tick labels about 10 CSS pixels tall."""


def overview_plot(curves: Sequence[Curve], settings: AnalysisSettings, what: str, only: str | None = None,
                  legend: bool = True) -> bytes:
    """Every model's smoothed `what` (loss, reward) on shared axes: by step, share of training, epoch, tokens.

    `only`: that one panel as its own image, OVERVIEW_PANEL_WIDTH wide, titled with what and how it is
    smoothed (the page lays several out in a grid that becomes one column on phones); `legend`: whether
    it carries the legend of the runs.
    """
    drawn = [curve for curve in curves if len(curve.at)]
    axes_names = [only] if only else overview_panels(curves)
    grid_columns = 2 if len(axes_names) > 1 else 1
    with matplotlib.rc_context(STYLE):
        rows = (len(axes_names) + 1) // 2
        legend_columns = 4 if grid_columns > 1 else 2
        with_legend = legend and 0 < len(drawn) <= LEGEND_LIMIT
        footer = 0.2 + FIGURE_LEGEND_LINE * -(-len(drawn) // legend_columns) if with_legend else 0.0
        width = OVERVIEW_PANEL_WIDTH if only else 10.0 if grid_columns > 1 else 8.0
        figure = _grid_figure(rows, grid_columns, width, 2.9, footer=footer, titled=not only)
        buckets = overview_buckets(len(drawn))
        crowded = len(drawn) > LEGEND_LIMIT
        lengths = [curve.steps for curve in drawn if curve.steps > 0]
        # Runs of very different lengths: a log step axis keeps the short ones readable.
        log_steps = bool(lengths) and max(lengths) >= 5 * min(lengths)
        for position, axis in enumerate(axes_names, start=1):
            axes = figure.add_subplot(rows, grid_columns, position)
            missing = 0
            segments, colors = [], []
            for curve in drawn:
                points = placed(curve, axis, buckets, log_steps)
                if points is None:
                    missing += 1
                    continue
                segments.append(np.column_stack(points))
                colors.append(curve.color)
            # One collection for all runs: 200 separate lines cost twice the drawing time.
            # Many runs: thinner, translucent lines, so the bundle shows where most runs are.
            lines = LineCollection(segments, colors=colors, linewidths=1.0 if crowded else 2.0,
                                   alpha=0.6 if crowded else 1.0)
            axes.add_collection(lines, autolim=True)
            axes.autoscale_view()
            label = dict(OVERVIEW_AXES)[axis]
            if axis == "step" and log_steps:
                axes.set_xscale("log")
                axes.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
                label += " (log scale)"
            if axis == "progress":
                axes.set_xlim(0, 100)
            if axis == "tokens":
                totals = [c.tokens_seen for c in drawn if c.tokens_seen is not None]
                if totals and min(totals) > 0 and max(totals) >= 5 * min(totals):
                    axes.set_xscale("log")
                    label += " (log scale)"
                # After the scale: setting a scale resets the formatter ('10^5' instead of '100k').
                axes.xaxis.set_major_formatter(matplotlib.ticker.EngFormatter(sep=""))
            if missing:
                label += f"; {missing} of {len(drawn)} runs did not log it"
            axes.set_xlabel(label)
            axes.set_ylabel(f"Smoothed {what}")
            if only:
                axes.set_title(f"Smoothed {what} by {AXIS_TITLES[axis]} (weight {settings.smoothing:g})", loc="left")
            else:
                axes.set_title(f"By {AXIS_TITLES[axis]}", loc="left")
        if not only:
            _figure_title(figure, f"Smoothed {what} of every run (weight {settings.smoothing:g})")
        if with_legend:
            handles = [matplotlib.lines.Line2D([], [], color=curve.color, linewidth=2.0) for curve in drawn]
            figure.legend(handles, [curve.name for curve in drawn], loc="lower center",
                          bbox_to_anchor=(0.5, 0.05 / figure.get_figheight()), ncol=min(len(drawn), legend_columns))
        return _encoded(figure, palette=True)

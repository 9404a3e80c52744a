"""Figures -> PNG bytes (matplotlib, Agg, no pyplot state).

Plots have a white card background so they read the same in Material's light
and dark palettes, and are saved without a timestamp or software tag so the
same data gives the same bytes.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from generator.analysis import finite_series, smooth
from generator.records import AnalysisSettings, Figures

# Okabe-Ito colours (readable for colour-blind visitors) without the yellow,
# which vanishes on white; then a few darker extras.
PALETTE = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#CC79A7",
    "#E69F00",
    "#56B4E9",
    "#000000",
    "#8C564B",
    "#7F7F7F",
    "#BCBD22",
)
LEGEND_LIMIT = 12
"""Overview plots with more curves than this get no legend (it would hide the plot)."""
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
}

METRIC_TITLES = {
    "learning_rate": "Learning rate",
    "grad_norm": "Gradient norm",
    "mean_token_accuracy": "Mean token accuracy",
    "entropy": "Entropy",
}


def color_for(index: int) -> str:
    """The colour of the model at registry position `index` (stable per site)."""
    return PALETTE[index % len(PALETTE)]


@dataclass(frozen=True)
class Curve:
    """One model's loss curve for the overview plots."""

    name: str
    color: str
    loss: pd.Series
    """Finite loss by step."""
    steps: int
    """Total steps of the run, for the progress axis."""


def _new_figure(width: float, height: float) -> Figure:
    # Constrained layout keeps labels inside the canvas without tight_layout's warnings.
    figure = Figure(figsize=(width, height), dpi=DPI, facecolor="white", layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    # No 'Software' tag and no date: the bytes depend on the data only.
    figure.savefig(buffer, format="png", dpi=DPI, facecolor="white", metadata={"Software": None})
    return buffer.getvalue()


MAX_BUCKETS = 1500
"""Long curves are drawn from the min and max of this many buckets (a plot is ~900 px wide)."""


def downsample(x: np.ndarray, y: np.ndarray, buckets: int = MAX_BUCKETS) -> tuple[np.ndarray, np.ndarray]:
    """At most ~2 points per bucket: its minimum and maximum, plus the first and last point
    and one NaN per bucket that has a gap. Spikes, minima, gaps and the end survive, so
    the picture is the same to the eye while the PNG stays small for 100,000-row logs."""
    n = len(x)
    if n <= 2 * buckets:
        return x, y
    edges = np.linspace(0, n, buckets + 1).astype(int)
    keep = [0, n - 1]
    for start, stop in itertools.pairwise(edges):
        segment = y[start:stop]
        finite = np.isfinite(segment)
        if not finite.all():
            keep.append(start + int(np.argmax(~finite)))
        if finite.any():
            positions = np.nonzero(finite)[0]
            values = segment[positions]
            keep.append(start + int(positions[np.argmin(values)]))
            keep.append(start + int(positions[np.argmax(values)]))
    chosen = np.unique(np.asarray(keep))
    return x[chosen], y[chosen]


def _gapped(table: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps and values (downsampled) with NaN where a value was not finite (a gap)."""
    values = table[column].to_numpy(dtype="float64").copy()
    values[~np.isfinite(values)] = np.nan
    return downsample(table["step"].to_numpy(dtype="float64"), values)


def _curve(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A series by step, downsampled for drawing."""
    return downsample(series.index.to_numpy(dtype="float64"), series.to_numpy(dtype="float64"))


def loss_plot(name: str, color: str, train: pd.DataFrame, evals: pd.DataFrame,
              figures: Figures, settings: AnalysisSettings) -> bytes:
    """Raw loss (faint), smoothed loss, eval loss and the stabilisation step."""
    with matplotlib.rc_context(STYLE):
        figure = _new_figure(8.0, 4.2)
        axes = figure.add_subplot()
        if "loss" in train.columns:
            steps, raw = _gapped(train, "loss")
            axes.plot(steps, raw, color=color, alpha=0.3, linewidth=1.0, label="loss (raw)")
            finite = finite_series(train, "loss")
            if len(finite):
                smoothed = smooth(finite, settings.smoothing)
                axes.plot(*_curve(smoothed), color=color, linewidth=2.2,
                          label=f"loss (smoothed, weight {settings.smoothing:g})")
        eval_loss = finite_series(evals, "eval_loss")
        if len(eval_loss):
            axes.plot(eval_loss.index, eval_loss.to_numpy(), color=TEXT, linewidth=1.4, marker="o",
                      markersize=4, label="eval loss")
        if figures.stabilised_step is not None:
            axes.axvline(figures.stabilised_step, color="#666666", linestyle=":", linewidth=1.3,
                         label=f"stabilised (step {figures.stabilised_step})")
        axes.set_title(f"{name}: loss", loc="left")
        axes.set_xlabel("Step")
        axes.set_ylabel("Loss")
        axes.legend(loc="upper right")
        return _png(figure)


def logged_metrics(train: pd.DataFrame) -> list[str]:
    """The metrics of `METRIC_TITLES` that have at least one finite value."""
    return [metric for metric in METRIC_TITLES if len(finite_series(train, metric))]


def metrics_plot(name: str, color: str, train: pd.DataFrame, settings: AnalysisSettings) -> bytes:
    """Small panels for learning rate, grad norm, token accuracy and entropy (those logged)."""
    present = logged_metrics(train)
    if not present:
        raise ValueError("no metric to plot; check logged_metrics() first")
    columns = 2 if len(present) > 1 else 1
    rows = (len(present) + 1) // 2
    with matplotlib.rc_context(STYLE):
        figure = _new_figure(8.0, 2.6 * rows + 0.3)
        for position, metric in enumerate(present, start=1):
            axes = figure.add_subplot(rows, columns, position)
            steps, raw = _gapped(train, metric)
            if metric == "learning_rate":
                axes.plot(steps, raw, color=color, linewidth=1.8)
                # Plain tick labels: an offset text ('1e-4') would collide with the title.
                axes.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:.1e}" if v else "0"))
            else:
                axes.plot(steps, raw, color=color, alpha=0.3, linewidth=1.0)
                smoothed = smooth(finite_series(train, metric), settings.smoothing)
                axes.plot(*_curve(smoothed), color=color, linewidth=1.8)
            if metric == "mean_token_accuracy":
                axes.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(xmax=1.0, decimals=0))
            axes.set_title(METRIC_TITLES[metric], loc="left")
            axes.set_xlabel("Step")
        figure.suptitle(f"{name}: training metrics", x=0.01, ha="left", fontsize=11)
        return _png(figure)


def overview_plot(curves: Sequence[Curve], settings: AnalysisSettings, by_progress: bool) -> bytes:
    """Every model's smoothed loss on one axis, by step or by share of its run."""
    with matplotlib.rc_context(STYLE):
        figure = _new_figure(8.0, 4.4)
        axes = figure.add_subplot()
        lengths = [curve.steps for curve in curves if not curve.loss.empty and curve.steps > 0]
        # Runs of very different lengths: a log step axis keeps the short ones readable.
        log_steps = not by_progress and bool(lengths) and max(lengths) >= 5 * min(lengths)
        for curve in curves:
            loss = curve.loss[curve.loss.index > 0] if log_steps else curve.loss
            if loss.empty:
                continue
            x, y = _curve(smooth(loss, settings.smoothing))
            if by_progress:
                x = 100.0 * x / max(curve.steps, 1)
            axes.plot(x, y, color=curve.color, linewidth=2.0, label=curve.name)
        if by_progress:
            axes.set_xlabel("Progress through training (% of steps)")
            axes.set_xlim(0, 100)
            axes.set_title("Smoothed loss by share of training", loc="left")
        else:
            axes.set_xlabel("Step (log scale)" if log_steps else "Step")
            if log_steps:
                axes.set_xscale("log")
                axes.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            axes.set_title("Smoothed loss by step", loc="left")
        axes.set_ylabel("Loss")
        drawn = sum(1 for curve in curves if not curve.loss.empty)
        if 0 < drawn <= LEGEND_LIMIT:
            axes.legend(loc="upper right")
        return _png(figure)

"""Interactive charts: the data behind them, as compact JSON (the drawing is `static/charts.js`).

A model page's chart shows what its main PNG shows: the training loss (the headline
reward of an RL run, as `Figures.headline` chooses), raw and smoothed, and the eval
loss (eval reward) of every eval set. The index's chart of a kind shows every run's
headline curve, like the overview PNG's "by step" panel. The browser smooths
(`charts.js: smooth` is the debiased EMA of `generator.series.smooth`), so the
visitor can change the weight; the PNGs stay for readers without JavaScript and
for model cards.

Runs up to 2 x `CHART_BUCKETS` rows are sent whole, and the browser's EMA is exact.
Longer runs are downsampled so a page stays light: the raw line keeps the minimum and
maximum of each of `CHART_BUCKETS` buckets (spikes and dips survive) and its gaps; the
smoothed line is sent exactly at the page's weight, one value per bucket, and at any
other weight the browser smooths the bucket means, each weighing as many rows as it
averages (`smooth_source`): close, not exact, and the chart's hint says so.

The JSON is deterministic: keys in a fixed order, floats in their shortest repr
(orjson), non-finite values as null (a gap).

The drawing library is uPlot 1.6.32 (MIT, https://github.com/leeoniya/uPlot), vendored from
the npm package `uplot@1.6.32`: `static/uPlot.iife.min.js`, `static/uPlot.min.css`,
`static/LICENSE.uPlot`. No CDN: the site works offline.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import orjson
import pandas as pd

from generator import kinds
from generator.analysis import finite_series
from generator.colors import PALETTE
from generator.records import AnalysisSettings, ModelReport
from generator.series import smooth as debiased_ema

UPLOT_VERSION = "1.6.32"
"""The vendored uPlot (see the module docstring); bump with the files in static/."""

CHART_BUCKETS = 2000
"""A long series keeps at most ~2 points per bucket (its min and max) and one mean per bucket."""
OVERVIEW_POINTS = 40_000
"""Points of an index chart, shared by its runs: 200 runs keep ~100 buckets each, 3 runs 2,000."""
EVAL_COLOR = "#262626"
"""Eval curves of a single-set run: the PNG's text colour (charts.js lightens it on a dark page)."""
FORMAT_VERSION = 1

MODEL_CHART = "chart.json"
"""A model's chart, beside its plots."""
STATIC_FILES = ("uPlot.iife.min.js", "uPlot.min.css", "LICENSE.uPlot", "charts.js", "charts.css")
"""Copied from static/ into the site's assets folder (uPlot's licence goes with it)."""
SCRIPTS = ("uPlot.iife.min.js", "charts.js")
STYLESHEETS = ("uPlot.min.css", "charts.css")
"""Registered with MkDocs (`mkdocs_plugin`), in this order, from the assets folder."""


def chart_file_for(image_path: str) -> str:
    """The chart JSON that sits beside a PNG (same folder, same stem)."""
    path = PurePosixPath(image_path)
    return str(path.with_name(path.stem + ".chart.json"))


def headline_column(report: ModelReport) -> str:
    """The logged key the chart leads with: the kind's headline when logged (an RL run's reward), else the loss."""
    key = report.figures.kind.about.headline
    return key if key != "loss" and report.figures.series_for(key) is not None else "loss"


def has_model_chart(report: ModelReport) -> bool:
    """Whether the model's chart has a curve: its headline was logged, or an eval loss."""
    f = report.figures
    column = headline_column(report)
    return (f.logged_rows > 0 if column == "loss" else True) or f.eval_loss_last is not None


def bucket_edges(count: int, buckets: int) -> np.ndarray | None:
    """Bucket boundaries over `count` rows, or None when the rows are few enough to keep them all."""
    if count <= 2 * buckets:
        return None
    return np.linspace(0, count, buckets + 1).astype(np.int64)


def downsample_indices(values: np.ndarray, buckets: int) -> np.ndarray:
    """Positions to keep: the first and last, each bucket's minimum and maximum and its first non-finite value.

    Like `plots.downsample` (which draws the PNG), without a Python loop over buckets.
    """
    count = len(values)
    edges = bucket_edges(count, buckets)
    if edges is None:
        return np.arange(count)
    bucket_of = np.repeat(np.arange(buckets), np.diff(edges))
    finite = np.isfinite(values)
    keep = [np.array([0, count - 1])]
    # First position of each bucket in a (bucket, value) order is that bucket's minimum (maximum for -value);
    # non-finite values sort last in their bucket and are dropped when a bucket has no finite value.
    for sign in (1.0, -1.0):
        ordered = np.lexsort((np.where(finite, sign * values, np.inf), bucket_of))
        _, first = np.unique(bucket_of[ordered], return_index=True)
        chosen = ordered[first]
        keep.append(chosen[finite[chosen]])
    gaps = np.nonzero(~finite)[0]
    if len(gaps):
        _, first_gap = np.unique(bucket_of[gaps], return_index=True)
        keep.append(gaps[first_gap])
    return np.unique(np.concatenate(keep))


def _numbers(values: np.ndarray) -> list[float | None]:
    """Floats for JSON, None where not finite (a gap)."""
    return [float(v) if np.isfinite(v) else None for v in values.tolist()]


def smooth_source(finite: pd.Series, buckets: int, weight: float) -> dict[str, Any] | None:
    """What the browser smooths a long series from: the mean and count of each bucket of its finite values, at
    the bucket's last step, and the exact smoothed value there at the page's `weight` (so the chart at that
    weight shows the numbers of the PNG and of the analysis; other weights are smoothed from the means).
    None when the series is short enough to be sent whole."""
    edges = bucket_edges(len(finite), buckets)
    if edges is None:
        return None
    values = finite.to_numpy(dtype="float64")
    counts = np.diff(edges)
    # Each value scaled before summing: values near 1.8e308 would overflow a plain sum.
    scale = float(np.max(np.abs(values))) or 1.0
    means = np.add.reduceat(values / scale, edges[:-1]) / counts * scale
    steps = finite.index.to_numpy(dtype="int64")[edges[1:] - 1]
    exact = debiased_ema(finite, weight).to_numpy()[edges[1:] - 1]
    return {"x": steps.tolist(), "mean": _numbers(means), "count": counts.tolist(), "weight": weight,
            "smoothed": _numbers(exact)}


def series_entry(name: str, color: str, steps: np.ndarray, values: np.ndarray, *, weight: float | None,
                 raw: bool = True, points: bool = False, buckets: int = CHART_BUCKETS) -> dict[str, Any]:
    """One curve: its kept points (null where a logged value was not finite) and how to draw it; smoothed in the
    browser unless `weight` is None (starting at `weight`)."""
    kept = downsample_indices(values, buckets)
    entry: dict[str, Any] = {
        "name": name,
        "color": color,
        "smooth": weight is not None,
        "raw": raw,
        "points": points,
        "rows": len(values),
        "x": steps[kept].astype("int64").tolist(),
        "y": _numbers(values[kept]),
    }
    if weight is not None:
        finite = np.isfinite(values)
        source = smooth_source(pd.Series(values[finite], index=steps[finite]), buckets, weight)
        if source is not None:
            entry["bucketed"] = source
    return entry


def _column(table: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps and values of a train column, every row: NaN and inf are gaps, as on the PNG (`plots._gapped`)."""
    if column not in table.columns:
        return np.array([], dtype="int64"), np.array([], dtype="float64")
    values = table[column].to_numpy(dtype="float64").copy()
    values[~np.isfinite(values)] = np.nan
    return table["step"].to_numpy(dtype="int64"), values


def model_chart(report: ModelReport, settings: AnalysisSettings) -> dict[str, Any]:
    """The chart of a model page: headline (raw and smoothed), then eval curves of the same metric."""
    run = report.run
    column = headline_column(report)
    series: list[dict[str, Any]] = []
    steps, values = _column(run.train, column)
    if np.isfinite(values).any():
        series.append(series_entry(column, report.color, steps, values, weight=settings.smoothing))
    eval_sets = kinds.eval_groups(list(run.eval.columns)).get(column, {})
    palette = _eval_colors(len(eval_sets))
    for index, (eval_set, eval_column) in enumerate(eval_sets.items()):
        evaluated = finite_series(run.eval, eval_column)
        if evaluated.empty:
            continue
        name = f"eval {column}" + (f" ({eval_set})" if eval_set else "")
        series.append(series_entry(name, palette[index], evaluated.index.to_numpy(dtype="int64"),
                                   evaluated.to_numpy(dtype="float64"), weight=None, points=True))
    return _document(column, settings, series)


def _eval_colors(count: int) -> list[str]:
    """One set: the PNG's eval colour; several: the palette after the first colour."""
    return [EVAL_COLOR] if count <= 1 else [PALETTE[(index + 1) % len(PALETTE)] for index in range(count)]


def overview_chart(members: Sequence[ModelReport], settings: AnalysisSettings, what: str) -> dict[str, Any]:
    """Every run's headline by step (raw values; the browser smooths), for the index."""
    drawn = [(report, finite_series(report.run.train, what)) for report in members]
    drawn = [(report, values) for report, values in drawn if not values.empty]
    buckets = max(60, min(CHART_BUCKETS, OVERVIEW_POINTS // (2 * max(1, len(drawn)))))
    series = [series_entry(report.entry.name, report.color, values.index.to_numpy(dtype="int64"),
                           values.to_numpy(dtype="float64"), weight=settings.smoothing, raw=False,
                           buckets=buckets)
              for report, values in drawn]
    return _document(what, settings, series)


def _document(metric: str, settings: AnalysisSettings, series: list[dict[str, Any]]) -> dict[str, Any]:
    """`y` names the metric (the y axis label); `smoothing` is the weight the slider starts at (the PNG's)."""
    return {"format": FORMAT_VERSION, "x": "step", "y": metric,
            "smoothing": settings.smoothing, "series": series}


def chart_bytes(document: dict[str, Any]) -> bytes:
    """Deterministic bytes: insertion-ordered keys, shortest float repr, a final newline."""
    return orjson.dumps(document) + b"\n"


def model_chart_bytes(report: ModelReport, settings: AnalysisSettings) -> bytes:
    """Module-level, so a worker process can render it."""
    return chart_bytes(model_chart(report, settings))


def overview_chart_bytes(members: Sequence[ModelReport], settings: AnalysisSettings, what: str) -> bytes:
    return chart_bytes(overview_chart(members, settings, what))


def container_html(chart_file: str, keep_image: bool = False) -> str:
    """The element a page puts right after a PNG's paragraph; `charts.js` draws the chart into it.

    `chart_file` is relative to that PNG (MkDocs rewrites the image's URL for the page, not raw
    HTML, so the script resolves the chart against the image's URL). Hidden until drawn: without
    JavaScript the page shows the PNG alone. The chart stands in for the PNG unless `keep_image`
    (an RL run's panels show more than its reward chart).
    """
    keep = " data-keep-image" if keep_image else ""
    return f'<div class="td-chart" data-chart="{chart_file}"{keep} hidden></div>\n'

"""A kind's overview: each run's curve and which panels to draw (no matplotlib: `generator.plots` draws them).

A run's curve is made once, when its checkpoint is read (and cached with the
reading): smoothing and placing hundreds of curves on every axis was most of the
time of redrawing an overview in which one run changed. So are the few points
each run is drawn from on the overviews of many runs (`FEW_BUCKETS`): picking
them was the next largest part.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd

from generator.records import Curve, Figures, TrainingRun
from generator.series import MAX_BUCKETS, downsample, finite_series, smooth

OVERVIEW_AXES = (
    ("step", "Step"),
    ("progress", "Progress through training (% of steps)"),
    ("epoch", "Epoch"),
    ("tokens", "Tokens seen"),
)
"""Each x axis an overview panel can draw against, with its axis label."""
AXIS_TITLES = {"step": "step", "progress": "share of training", "epoch": "epoch", "tokens": "tokens seen"}
"""How a panel's title names its x axis ('By share of training')."""

OVERVIEW_POINTS = 16_000
"""Points per overview panel, shared by its curves: 200 overlaid runs are drawn from ~80
points each (a smoothed curve among 200 shows no finer detail), 3 runs from 1,500 buckets."""
FEW_BUCKETS = 60
"""The fewest buckets a run is drawn from on an overview: on every overview of more than 133 runs
(`overview_buckets`), so these points are picked once, when the run is read (`Curve.few`)."""


def overview_buckets(runs: int) -> int:
    """How many buckets (`downsample`) each of `runs` curves is drawn from on one overview panel."""
    return max(FEW_BUCKETS, min(MAX_BUCKETS, OVERVIEW_POINTS // (2 * max(1, runs))))


def overview_axes(curves: Sequence[Curve]) -> list[str]:
    """The x axes an overview can offer: steps and share always, epochs and tokens when some run logged them."""
    axes = ["step", "progress"]
    if any(curve.epochs is not None for curve in curves):
        axes.append("epoch")
    if any(curve.tokens is not None for curve in curves):
        axes.append("tokens")
    return axes


def overview_panels(curves: Sequence[Curve]) -> list[str]:
    """The overview panels worth drawing: one run shows one panel by step (share of training is its steps
    rescaled, epochs and tokens mostly grow with them: four panels would repeat one curve), several
    runs every axis some run logged."""
    drawn = [curve for curve in curves if len(curve.at)]
    return overview_axes(curves) if len(drawn) > 1 else ["step"]


def make_curve(name: str, color: str, values: pd.Series, steps: int, weight: float,
               epochs: pd.Series | None = None, tokens: pd.Series | None = None) -> Curve:
    """`values` (finite, by step) smoothed with `weight`, and the epoch and tokens seen at each of their steps."""
    smoothed = smooth(values, weight)
    curve = Curve(name, color, steps, smoothed.index.to_numpy(dtype="float64"), smoothed.to_numpy(dtype="float64"),
                  epochs=_position(epochs, smoothed), tokens=_position(tokens, smoothed),
                  tokens_seen=float(tokens.iloc[-1]) if tokens is not None and len(tokens) else None)
    return dataclasses.replace(curve, few=few_points(curve))


def _position(source: pd.Series | None, smoothed: pd.Series) -> np.ndarray | None:
    """`source` (epoch or tokens by step) at each step of `smoothed`: the last value logged at or before it."""
    if source is None or source.empty:
        return None
    position = source.reindex(source.index.union(smoothed.index)).ffill().reindex(smoothed.index)
    return position.to_numpy(dtype="float64")


def run_curve(run: TrainingRun, figures: Figures, weight: float) -> Curve:
    """The curve a run adds to its kind's overview: its kind's headline metric (the reward for RL runs, the loss
    otherwise), by step, epoch and tokens seen; without a name or colour, which the entry using the run gives."""
    train = run.train
    tokens = finite_series(train, "num_tokens")
    if tokens.empty:
        tokens = finite_series(train, "num_input_tokens_seen")
    epochs = finite_series(train, "epoch")
    return make_curve("", "", finite_series(train, figures.kind.about.headline), figures.steps, weight,
                      epochs=epochs, tokens=tokens)


FEW_POINTS = (("step", "step", False), ("step-log", "step", True), ("epoch", "epoch", False),
              ("tokens", "tokens", False))
"""The points a curve keeps at FEW_BUCKETS (`Curve.few`): name, axis, on a log step axis. The share of training
is the steps' points rescaled; a log step axis leaves out step 0."""


def few_points(curve: Curve) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The points `placed` draws the curve from at FEW_BUCKETS, by FEW_POINTS' name; absent: no point there."""
    few: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, axis, log_steps in FEW_POINTS:
        if name == "step-log" and len(curve.at) and bool((curve.at > 0).all()) and "step" in few:
            few[name] = few["step"]  # no step 0 to leave out: the same arrays, held (and sent) once
            continue
        points = _placed(curve, axis, FEW_BUCKETS, log_steps)
        if points is not None:
            few[name] = points
    return few


def placed(curve: Curve, axis: str, buckets: int, log_steps: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """The smoothed curve against one x axis, downsampled to `buckets`; None when the run has no point on it."""
    if curve.thin and buckets != FEW_BUCKETS:
        raise ValueError(f"a thinned curve is drawn from {FEW_BUCKETS} buckets only, not {buckets}")
    if buckets != FEW_BUCKETS or curve.few is None:
        return _placed(curve, axis, buckets, log_steps)
    if axis == "progress":
        return _as_share(curve, curve.few["step"])
    return curve.few.get("step-log" if axis == "step" and log_steps else axis)


def _placed(curve: Curve, axis: str, buckets: int, log_steps: bool) -> tuple[np.ndarray, np.ndarray] | None:
    if axis == "step":
        if log_steps:
            kept = curve.at > 0  # step 0 has no place on a log axis
            return downsample(curve.at[kept], curve.smoothed[kept], buckets) if kept.any() else None
        return downsample(curve.at, curve.smoothed, buckets)
    if axis == "progress":
        return _as_share(curve, downsample(curve.at, curve.smoothed, buckets))
    position = curve.epochs if axis == "epoch" else curve.tokens
    if position is None:
        return None
    known = ~np.isnan(position)  # steps before the first epoch or tokens value logged
    if not known.any():
        return None
    return downsample(position[known], curve.smoothed[known], buckets)


def _as_share(curve: Curve, points: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Points by step as points by share of training (% of the run's steps)."""
    x, y = points
    return 100.0 * x / max(curve.steps, 1), y


def can_thin(curves: Sequence[Curve]) -> bool:
    """Whether an overview of these runs draws every one from its `few` points (see `thinned`)."""
    drawn = [curve for curve in curves if len(curve.at)]
    return overview_buckets(len(drawn)) == FEW_BUCKETS and all(curve.few is not None for curve in drawn)


def thinned(curve: Curve, axis: str) -> Curve:
    """The curve with only what one overview panel by `axis` draws of it when `can_thin`: its `few` points for
    that axis; its arrays cut to their first point (whether it has one and has epochs or tokens is all the
    panel asks of them). An overview of 1,000 runs' full curves cost as much to send to a worker process as
    to draw; thinned, a panel's curves are ~2 MB."""
    by_step = "step" if axis == "progress" else axis  # the share of training is the steps' points rescaled
    names = [name for name, drawn_axis, _ in FEW_POINTS if drawn_axis == by_step]
    few = curve.few or {}
    return dataclasses.replace(
        curve, at=curve.at[:1].copy(), smoothed=curve.smoothed[:1].copy(),
        epochs=None if curve.epochs is None else curve.epochs[:1].copy(),
        tokens=None if curve.tokens is None else curve.tokens[:1].copy(),
        few={name: few[name] for name in names if name in few}, thin=True)

"""A kind's overview: each run's curve and which panels to draw (no matplotlib: `generator.plots` draws them).

A run's curve is made once, when its checkpoint is read (and cached with the
reading): smoothing and placing hundreds of curves on every axis was most of the
time of redrawing an overview in which one run changed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from generator.records import Curve, Figures, TrainingRun
from generator.series import finite_series, smooth

OVERVIEW_AXES = (
    ("step", "Step"),
    ("progress", "Progress through training (% of steps)"),
    ("epoch", "Epoch"),
    ("tokens", "Tokens seen"),
)
"""Each x axis an overview panel can draw against, with its axis label."""
AXIS_TITLES = {"step": "step", "progress": "share of training", "epoch": "epoch", "tokens": "tokens seen"}
"""How a panel's title names its x axis ('By share of training')."""


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
    return Curve(name, color, steps, smoothed.index.to_numpy(dtype="float64"), smoothed.to_numpy(dtype="float64"),
                 epochs=_position(epochs, smoothed), tokens=_position(tokens, smoothed),
                 tokens_seen=float(tokens.iloc[-1]) if tokens is not None and len(tokens) else None)


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

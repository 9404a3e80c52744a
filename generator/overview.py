"""Which panels a kind's overview plot has (no matplotlib: the plan decides them, `generator.plots` draws them)."""

from __future__ import annotations

from collections.abc import Sequence

from generator.records import Curve

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
    if any(curve.epochs is not None and len(curve.epochs) for curve in curves):
        axes.append("epoch")
    if any(curve.tokens is not None and len(curve.tokens) for curve in curves):
        axes.append("tokens")
    return axes


def overview_panels(curves: Sequence[Curve]) -> list[str]:
    """The overview panels worth drawing: one run shows one panel by step (share of training is its steps
    rescaled, epochs and tokens mostly grow with them: four panels would repeat one curve), several
    runs every axis some run logged."""
    drawn = [curve for curve in curves if not curve.values.empty]
    return overview_axes(curves) if len(drawn) > 1 else ["step"]

"""Colours of the models on every plot, and when a legend is dropped (no matplotlib here).

Pages and the pipeline need these without drawing anything; importing matplotlib
costs a generation in which nothing is redrawn a third of its time.
"""

from __future__ import annotations

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


def color_for(index: int) -> str:
    """The colour of the model at registry position `index` (stable per site)."""
    return PALETTE[index % len(PALETTE)]

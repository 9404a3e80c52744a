"""One logged metric as a series by step: the building blocks of every figure (pure).

A series is a float pandas Series indexed by step, finite values only, as
`finite_series` makes it from a reader table.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

MIN_ROWS_FOR_TRENDS = 5
"""Fewer logged values than this: no trend, stabilisation or speed class (too little to tell)."""


def as_step(label: object) -> int:
    """A step label of an index as an int (pandas types index labels as Hashable)."""
    return int(label)  # type: ignore[call-overload]


def smooth(values: pd.Series, weight: float) -> pd.Series:
    """TensorBoard's smoothing: a debiased exponential moving average.

    pandas' `ewm(adjust=True)` with alpha = 1 - weight is exactly the debiased
    EMA; missing values are skipped rather than poisoning what follows.
    """
    values = values.astype("float64")
    if weight <= 0:
        return values
    return values.ewm(alpha=1.0 - weight, adjust=True, ignore_na=True).mean()


def finite_series(table: pd.DataFrame, column: str) -> pd.Series:
    """`column` indexed by step, without NaN/inf rows; empty when absent."""
    if column not in table.columns:
        return pd.Series([], dtype="float64", index=pd.Index([], dtype="int64", name="step"))
    series = pd.Series(table[column].to_numpy(dtype="float64"), index=pd.Index(table["step"], name="step"))
    return series[np.isfinite(series.to_numpy())]


def loss_level(loss: pd.Series) -> pd.Series:
    """The level of a noisy loss: a centred rolling median over 1% of the logged rows (at least 5).

    Shape rules (where the fall ends, whether the loss stabilised) read this
    rather than the EMA, which lags and keeps enough batch noise to hide a plateau.
    """
    window = max(5, len(loss) // 100) | 1  # odd, so the window is centred on a row; wider would blur the knee
    return loss.rolling(window, center=True, min_periods=1).median()


def spearman(series: pd.Series) -> float | None:
    """Spearman rank correlation of values with their steps (None if undefined)."""
    if len(series) < 3 or series.nunique() < 2:
        return None
    ranks_values = series.rank()
    ranks_steps = pd.Series(series.index, index=series.index, dtype="float64").rank()
    rho = float(np.corrcoef(ranks_steps.to_numpy(), ranks_values.to_numpy())[0, 1])
    return rho if math.isfinite(rho) else None


def safe_mean(values: np.ndarray) -> float:
    """The mean without overflow: finite values near 1.8e308 sum to infinity, their shares do not."""
    scale = float(np.max(np.abs(values)))
    if scale == 0 or not math.isfinite(scale):
        return float(values.mean())
    return float(scale * np.mean(values / scale))  # |mean of the ratios| <= 1: the product stays finite


def edge_rows(count: int) -> int:
    """How many values the 'first' and 'last' means of a trend take: a tenth, at least 3 when there are 9
    or more (one noisy or warm-up value must not decide a trend)."""
    return max(1, min(3, count // 3), count // 10)


TREND_RHO = 0.3
"""|Spearman rho| below this: no trend is called, whatever the end points say."""


def trend_of(series: pd.Series) -> tuple[str, float | None]:
    """('rose' | 'fell' | 'none', rho): the one trend definition of every page.

    A metric rose (fell) when the mean of its last values is above (below) the mean
    of its first values (`edge_rows` of each) AND its rank correlation with the step agrees in sign and
    is at least TREND_RHO in size: the end points alone are too noisy, and rho
    alone ignores how much changed.
    """
    rho = spearman(series)
    if rho is None or len(series) < MIN_ROWS_FOR_TRENDS:
        return "none", rho
    values = series.to_numpy(dtype="float64")
    edge = edge_rows(len(values))
    head, tail = safe_mean(values[:edge]), safe_mean(values[-edge:])
    if tail > head and rho >= TREND_RHO:
        return "rose", rho
    if tail < head and rho <= -TREND_RHO:
        return "fell", rho
    return "none", rho


MAX_BUCKETS = 1500
"""Long curves are drawn from the min and max of this many buckets (a plot is ~900 px wide)."""


def downsample(x: np.ndarray, y: np.ndarray, buckets: int = MAX_BUCKETS) -> tuple[np.ndarray, np.ndarray]:
    """At most ~2 points per bucket: its minimum and maximum, plus the first and last point
    and one NaN per bucket that has a gap. Spikes, minima, gaps and the end survive, so
    the picture is the same to the eye while the PNG stays small for 100,000-row logs."""
    n = len(x)
    if n <= 2 * buckets:
        return x, y
    starts = np.linspace(0, n, buckets + 1).astype(int)[:-1]  # every bucket holds 2 points or more
    sizes = np.diff(np.append(starts, n))
    bucket = np.repeat(np.arange(buckets), sizes)
    finite = np.isfinite(y)
    low = np.where(finite, y, np.inf)
    high = np.where(finite, y, -np.inf)
    # Per bucket the first position of its finite minimum and maximum (as np.argmin/argmax pick them; a
    # bucket without a finite value has neither), and of its first non-finite value.
    at_min = np.flatnonzero(finite & (low == np.repeat(np.minimum.reduceat(low, starts), sizes)))
    at_max = np.flatnonzero(finite & (high == np.repeat(np.maximum.reduceat(high, starts), sizes)))
    gaps = np.flatnonzero(~finite)
    keep = [np.array([0, n - 1])]
    for positions in (at_min, at_max, gaps):
        _, first = np.unique(bucket[positions], return_index=True)
        keep.append(positions[first])
    chosen = np.unique(np.concatenate(keep))
    return x[chosen], y[chosen]

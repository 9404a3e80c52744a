"""Figures from a run's logs: pure functions, no I/O, no plotting.

Every figure here is defined, with its thresholds, on the generated
"How the figures are computed" page (see `pages.methodology_page`); keep the
two in step.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from generator.records import AnalysisSettings, Figures, TrainingRun

MIN_ROWS_FOR_TRENDS = 5
"""Fewer logged losses than this: no stabilisation or speed class (too little to tell)."""


def _step(label: object) -> int:
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


def stabilised_step(smoothed: pd.Series, band: float) -> int | None:
    """First step after which the smoothed curve stays within `band` x its range.

    None when the curve is flat, too short, or only settles in its last tenth
    (too little evidence that it stays there).
    """
    n = len(smoothed)
    if n < MIN_ROWS_FOR_TRENDS:
        return None
    values = smoothed.to_numpy()
    whole_range = float(values.max() - values.min())
    if whole_range <= 0:
        return None
    tail_max = np.maximum.accumulate(values[::-1])[::-1]
    tail_min = np.minimum.accumulate(values[::-1])[::-1]
    within = np.nonzero(tail_max - tail_min <= band * whole_range)[0]
    first = int(within[0])
    if first > n - max(3, n // 10):
        return None
    return _step(smoothed.index[first])


def convergence_step(smoothed: pd.Series, share: float) -> int | None:
    """First step where the smoothed loss has covered `share` of its total drop."""
    if len(smoothed) < MIN_ROWS_FOR_TRENDS:
        return None
    values = smoothed.to_numpy()
    drop = values[0] - values[-1]
    if drop <= 0:
        return None
    target = values[-1] + (1.0 - share) * drop
    return _step(smoothed.index[int(np.argmax(values <= target))])


def speed_class(fraction: float | None, settings: AnalysisSettings) -> str:
    """'Very Fast' / 'Fast' / 'Steady' / 'Slow' from the convergence fraction."""
    if fraction is None:
        return "n/a"
    if fraction <= settings.very_fast:
        return "Very Fast"
    if fraction <= settings.fast:
        return "Fast"
    if fraction <= settings.steady:
        return "Steady"
    return "Slow"


def first_step_below(smoothed: pd.Series, level: float) -> int | None:
    """First step where the smoothed loss is below `level` (None if never)."""
    below = smoothed[smoothed < level]
    return _step(below.index[0]) if len(below) else None


def spearman(series: pd.Series) -> float | None:
    """Spearman rank correlation of values with their steps (None if undefined)."""
    if len(series) < 3 or series.nunique() < 2:
        return None
    ranks_values = series.rank()
    ranks_steps = pd.Series(series.index, index=series.index, dtype="float64").rank()
    rho = float(np.corrcoef(ranks_steps.to_numpy(), ranks_values.to_numpy())[0, 1])
    return rho if math.isfinite(rho) else None


def _first_last(series: pd.Series) -> tuple[float | None, float | None]:
    if series.empty:
        return None, None
    return float(series.iloc[0]), float(series.iloc[-1])


def analyse(run: TrainingRun, settings: AnalysisSettings) -> Figures:
    """All figures of one run.

    Extreme values may overflow to inf inside numpy; such figures come out as
    None (unknown) rather than as a warning or a number that is not true.
    """
    with np.errstate(all="ignore"):
        return _analyse(run, settings)


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _analyse(run: TrainingRun, settings: AnalysisSettings) -> Figures:
    loss = finite_series(run.train, "loss")
    last_logged = int(max(run.train["step"].max() if len(run.train) else 0, run.eval["step"].max() if len(run.eval) else 0))
    steps = run.global_step if run.global_step is not None else last_logged
    figures: dict[str, object] = {"steps": steps, "logged_rows": len(loss), "eval_rows": len(run.eval)}

    eval_loss = finite_series(run.eval, "eval_loss")
    if len(eval_loss):
        figures.update(
            eval_loss_last=float(eval_loss.iloc[-1]),
            eval_loss_last_step=_step(eval_loss.index[-1]),
            eval_loss_min=float(eval_loss.min()),
            eval_loss_min_step=_step(eval_loss.idxmin()),
        )

    if len(loss):
        smoothed = smooth(loss, settings.smoothing)
        start, end = float(loss.iloc[0]), float(loss.iloc[-1])
        figures.update(
            start_step=_step(loss.index[0]),
            start_loss=start,
            end_step=_step(loss.index[-1]),
            end_loss=end,
            min_loss=float(loss.min()),
            min_loss_step=_step(loss.idxmin()),
            relative_drop=_finite_or_none((start - end) / start) if start > 0 else None,
            smoothed_end=_finite_or_none(float(smoothed.iloc[-1])),
            stabilised_step=stabilised_step(smoothed, settings.stable_band),
            high_initial_gap=start >= settings.high_start_loss,
            level_crossings=tuple((level, first_step_below(smoothed, level)) for level in settings.loss_levels),
        )
        converged_at = convergence_step(smoothed, settings.convergence_share)
        span = _step(loss.index[-1]) - _step(loss.index[0])
        if converged_at is not None and span > 0:
            fraction = (converged_at - _step(loss.index[0])) / span
            figures.update(
                convergence_step=converged_at,
                convergence_fraction=fraction,
                convergence=speed_class(fraction, settings),
            )
        elif len(loss) >= MIN_ROWS_FOR_TRENDS:
            figures["convergence"] = "No improvement"
        if len(eval_loss):
            # Compare with the trend, not one noisy batch, at the last eval step.
            train_then = smoothed[smoothed.index <= _step(eval_loss.index[-1])]
            if len(train_then):
                figures["eval_gap"] = float(eval_loss.iloc[-1] - train_then.iloc[-1])

    first_acc, last_acc = _first_last(finite_series(run.train, "mean_token_accuracy"))
    figures.update(first_token_accuracy=first_acc, final_token_accuracy=last_acc)

    entropy = finite_series(run.train, "entropy")
    entropy_start, entropy_end = _first_last(entropy)
    figures.update(entropy_start=entropy_start, entropy_end=entropy_end, entropy_rho=spearman(entropy))

    learning_rate = finite_series(run.train, "learning_rate")
    if len(learning_rate):
        figures["peak_learning_rate"] = float(learning_rate.max())
    grad_norm = finite_series(run.train, "grad_norm")
    if len(grad_norm):
        figures.update(max_grad_norm=float(grad_norm.max()), max_grad_norm_step=_step(grad_norm.idxmax()))
    tokens = finite_series(run.train, "num_tokens")
    if len(tokens):
        figures["tokens_seen"] = float(tokens.iloc[-1])

    if "train_loss" in run.summary and math.isfinite(run.summary["train_loss"]):
        figures["mean_train_loss"] = run.summary["train_loss"]
    if "train_runtime" in run.summary and math.isfinite(run.summary["train_runtime"]):
        figures["train_runtime"] = run.summary["train_runtime"]
    figures["metrics"] = tuple(sorted(c for c in run.train.columns if c not in ("step", "epoch")))
    return Figures(**figures)  # type: ignore[arg-type]

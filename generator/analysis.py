"""Figures from a run's logs: pure functions, no I/O, no plotting.

Every figure here is defined, with its thresholds, on the generated
"How the figures are computed" page (see `pages.methodology_page`); keep the
two in step.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from generator import kinds
from generator.records import (
    AnalysisSettings,
    BestCheckpoint,
    EvalMetric,
    Figures,
    SeriesSummary,
    TrainingRun,
)

MIN_ROWS_FOR_TRENDS = 5
"""Fewer logged losses than this: no stabilisation or speed class (too little to tell)."""


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
    return as_step(smoothed.index[first])


def convergence_step(smoothed: pd.Series, share: float) -> int | None:
    """First step where the smoothed loss has covered `share` of its total drop."""
    if len(smoothed) < MIN_ROWS_FOR_TRENDS:
        return None
    values = smoothed.to_numpy()
    drop = values[0] - values[-1]
    if drop <= 0:
        return None
    target = values[-1] + (1.0 - share) * drop
    return as_step(smoothed.index[int(np.argmax(values <= target))])


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
    return as_step(below.index[0]) if len(below) else None


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


def _convergence(loss: pd.Series, smoothed: pd.Series, settings: AnalysisSettings) -> dict[str, object]:
    """Stabilisation, level crossings, convergence step and speed class of a loss curve."""
    start = float(loss.iloc[0])
    figures: dict[str, object] = {
        "stabilised_step": stabilised_step(smoothed, settings.stable_band),
        "high_initial_gap": start >= settings.high_start_loss,
        "level_crossings": tuple((level, first_step_below(smoothed, level)) for level in settings.loss_levels),
    }
    converged_at = convergence_step(smoothed, settings.convergence_share)
    span = as_step(loss.index[-1]) - as_step(loss.index[0])
    if converged_at is not None and span > 0:
        fraction = (converged_at - as_step(loss.index[0])) / span
        figures.update(
            convergence_step=converged_at,
            convergence_fraction=fraction,
            convergence=speed_class(fraction, settings),
        )
    elif len(loss) >= MIN_ROWS_FOR_TRENDS:
        figures["convergence"] = "No improvement"
    return figures


def _analyse(run: TrainingRun, settings: AnalysisSettings) -> Figures:
    loss = finite_series(run.train, "loss")
    last_logged = int(max(run.train["step"].max() if len(run.train) else 0, run.eval["step"].max() if len(run.eval) else 0))
    steps = run.global_step if run.global_step is not None else last_logged
    figures: dict[str, object] = {"steps": steps, "logged_rows": len(loss), "eval_rows": len(run.eval)}

    eval_loss = finite_series(run.eval, "eval_loss")
    if len(eval_loss):
        figures.update(
            eval_loss_last=float(eval_loss.iloc[-1]),
            eval_loss_last_step=as_step(eval_loss.index[-1]),
            eval_loss_min=float(eval_loss.min()),
            eval_loss_min_step=as_step(eval_loss.idxmin()),
        )

    kind, kind_keys = kinds.run_kind(run.train.columns, run.eval.columns)
    if len(loss):
        smoothed = smooth(loss, settings.smoothing)
        start, end = float(loss.iloc[0]), float(loss.iloc[-1])
        figures.update(
            start_step=as_step(loss.index[0]),
            start_loss=start,
            end_step=as_step(loss.index[-1]),
            end_loss=end,
            min_loss=float(loss.min()),
            min_loss_step=as_step(loss.idxmin()),
            max_loss=float(loss.max()),
            relative_drop=_finite_or_none((start - end) / start) if start > 0 else None,
            smoothed_end=_finite_or_none(float(smoothed.iloc[-1])),
        )
        # An RL loss hovers around zero and may be negative: no convergence reading (the reward tells).
        if kind != "rl":
            figures.update(_convergence(loss, smoothed, settings))
        if len(eval_loss):
            # Compare with the trend, not one noisy batch, at the last eval step.
            train_then = smoothed[smoothed.index <= as_step(eval_loss.index[-1])]
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
        figures.update(max_grad_norm=float(grad_norm.max()), max_grad_norm_step=as_step(grad_norm.idxmax()))
    tokens = finite_series(run.train, "num_tokens")
    if len(tokens):
        figures["tokens_seen"] = float(tokens.iloc[-1])

    if "train_loss" in run.summary and math.isfinite(run.summary["train_loss"]):
        figures["mean_train_loss"] = run.summary["train_loss"]
    if "train_runtime" in run.summary and math.isfinite(run.summary["train_runtime"]):
        figures["train_runtime"] = run.summary["train_runtime"]
    tokens_seen = finite_series(run.train, "num_input_tokens_seen")
    if "tokens_seen" not in figures and len(tokens_seen):
        figures["tokens_seen"] = float(tokens_seen.iloc[-1])

    figures["metrics"] = tuple(sorted(c for c in run.train.columns if c not in ("step", "epoch")))
    figures.update(
        kind=kind,
        kind_keys=kind_keys,
        last_logged_step=last_logged if len(run.train) or len(run.eval) else None,
        eval_metrics=tuple(eval_metric(run.eval, column) for column in kinds.eval_quality_columns(run.eval.columns)
                           if len(finite_series(run.eval, column))),
        best_checkpoint=best_checkpoint(run),
        non_finite=run.non_finite,
        series=tuple(summarise(finite_series(run.train, column), column) for column in _series_columns(run)
                     if len(finite_series(run.train, column))),
        other_metrics=tuple(kinds.other_metrics(kind, run.train.columns)),
    )
    if kind != "rl":  # RL losses hover around zero: a ratio to the median means nothing there
        figures["spikes"] = spikes(loss, settings)
    return Figures(**figures)  # type: ignore[arg-type]


SERIES_COLUMNS = (
    "reward",
    "reward_std",
    "kl",
    "completions/mean_length",
    "completion_length",
    "completions/clipped_ratio",
    "rewards/margins",
    "rewards/accuracies",
    "rewards/chosen",
    "rewards/rejected",
)
"""Kind-specific metrics the narrative talks about."""


def _series_columns(run: TrainingRun) -> list[str]:
    columns = [*SERIES_COLUMNS, *(c for c in kinds.reward_functions(run.train.columns) if c not in SERIES_COLUMNS)]
    if "completions/mean_length" in run.train.columns:
        columns.remove("completion_length")  # older TRL's name for the same number
    return columns


def summarise(series: pd.Series, column: str) -> SeriesSummary:
    """Start, end, extremes and the means of the first and last tenth of a finite series."""
    values = series.to_numpy()
    tenth = max(1, len(values) // 10)
    return SeriesSummary(
        column=column,
        rows=len(values),
        start=float(values[0]),
        start_step=as_step(series.index[0]),
        end=float(values[-1]),
        end_step=as_step(series.index[-1]),
        min=float(values.min()),
        min_step=as_step(series.idxmin()),
        max=float(values.max()),
        max_step=as_step(series.idxmax()),
        head_mean=float(values[:tenth].mean()),
        tail_mean=float(values[-tenth:].mean()),
    )


def eval_metric(evals: pd.DataFrame, column: str) -> EvalMetric:
    """Last value and, when the name says which way is better, the best value of an eval column."""
    series = finite_series(evals, column)
    better = kinds.direction(column)
    best, best_step = None, None
    if better is not None:
        label = series.idxmin() if better == "min" else series.idxmax()
        best, best_step = float(series.to_numpy()[series.index.get_loc(label)]), as_step(label)
    return EvalMetric(
        column=column,
        rows=len(series),
        last=float(series.iloc[-1]),
        last_step=as_step(series.index[-1]),
        direction=better,
        best=best,
        best_step=best_step,
    )


CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")


def best_checkpoint(run: TrainingRun) -> BestCheckpoint | None:
    """The best checkpoint the Trainer recorded, matched to a step (its path is from another machine)."""
    path = run.state.get("best_model_checkpoint")
    metric = run.state.get("best_metric")
    path = path if isinstance(path, str) else None
    metric = float(metric) if isinstance(metric, (int, float)) and not isinstance(metric, bool) else None
    if path is None and metric is None:
        return None
    step = run.state.get("best_global_step")
    if isinstance(step, bool) or not isinstance(step, int):
        step = None
        if path:
            # './results\\checkpoint-1626' (Windows) and '/abs/path/checkpoint-3000' both end in checkpoint-N.
            match = CHECKPOINT_NAME.match(re.split(r"[\\/]", path.rstrip("/\\"))[-1])
            step = int(match.group(1)) if match else None
    column = ""
    if step is not None and metric is not None and step in set(run.eval["step"]):
        row = run.eval[run.eval["step"] == step].iloc[-1]
        matching = [c for c in kinds.eval_quality_columns(run.eval.columns)
                    if math.isfinite(row[c]) and math.isclose(float(row[c]), metric, rel_tol=1e-9, abs_tol=1e-12)]
        column = matching[0] if len(matching) == 1 else ""
    return BestCheckpoint(step=step, metric=metric, path=path, metric_column=column)


def spikes(loss: pd.Series, settings: AnalysisSettings) -> tuple[int, ...]:
    """Steps whose loss exceeds `spike_factor` x the median of the `spike_window` losses before it."""
    if len(loss) <= settings.spike_window // 2:
        return ()
    before = loss.shift(1).rolling(settings.spike_window, min_periods=max(2, settings.spike_window // 2)).median()
    flagged = (before > 0) & (loss > settings.spike_factor * before)
    return tuple(as_step(label) for label in loss.index[flagged.to_numpy()])

"""Figures from a run's logs: pure functions, no I/O, no plotting.

Every figure here is defined, with its thresholds, on the generated
"How the figures are computed" page (see `pages.methodology_page`); keep the
two in step.
"""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pandas as pd

from generator import findings, kinds
from generator.kinds import Direction
from generator.records import (
    AnalysisSettings,
    BestCheckpoint,
    EvalMetric,
    EvalRow,
    Figures,
    SavedCheckpoint,
    SeriesSummary,
    SpeedClass,
    TrainingRun,
)
from generator.series import (  # re-exported: the figures' building blocks
    MIN_ROWS_FOR_TRENDS,
    as_step,
    edge_rows,
    finite_series,
    loss_level,
    safe_mean,
    smooth,
    spearman,
    trend_of,
)

__all__ = ["MIN_ROWS_FOR_TRENDS", "analyse", "as_step", "finite_series", "loss_level", "smooth", "spearman",
           "trend_of"]


KNEE_MIN_GAP = 0.15
"""On the [0, 1] x [0, 1] scale, the knee must lie at least this far below the chord."""


def knee_index(level: pd.Series) -> int | None:
    """Position of the end of the fast first fall (Kneedle).

    With steps and values each scaled to [0, 1], the knee is the row farthest
    below the straight line from the first to the last row. None when the curve
    does not fall, is too short, or never dips below that line.
    """
    if len(level) < MIN_ROWS_FOR_TRENDS:
        return None
    values = level.to_numpy(dtype="float64")
    steps = level.index.to_numpy(dtype="float64")
    span_x, span_y = steps[-1] - steps[0], float(values.max() - values.min())
    if span_x <= 0 or span_y <= 0 or values[-1] >= values[0]:
        return None
    x = (steps - steps[0]) / span_x
    y = (values - values.min()) / span_y
    gap = (y[0] + (y[-1] - y[0]) * x) - y
    position = int(np.argmax(gap))
    # A straight or concave fall has no knee: the curve must bow well below its chord.
    return position if gap[position] >= KNEE_MIN_GAP else None


def stabilised_step(level: pd.Series, band: float) -> int | None:
    """First step from which the loss level stays within `band` x its value there.

    Relative to the level, not to the whole range: a loss that falls from 0.16
    to 0.0002 has not stabilised at 0.16. None when the curve is too short, not
    positive, or settles only in its last tenth (too little evidence that it stays).
    """
    n = len(level)
    if n < MIN_ROWS_FOR_TRENDS:
        return None
    values = level.to_numpy(dtype="float64")
    if (values <= 0).any():
        return None
    tail_max = np.maximum.accumulate(values[::-1])[::-1]
    tail_min = np.minimum.accumulate(values[::-1])[::-1]
    within = np.nonzero(tail_max - tail_min <= band * values)[0]
    if not len(within):
        return None
    first = int(within[0])
    if first >= n - math.ceil(n / 5):
        return None  # settling in the last fifth is too little evidence that it stays there
    return as_step(level.index[first])


def speed_class(rate: float | None, settings: AnalysisSettings) -> SpeedClass:
    """The speed class of a loss fall per 100 steps (thresholds from the settings)."""
    if rate is None:
        return SpeedClass.NOT_RATED
    if rate <= 0:
        return SpeedClass.NO_IMPROVEMENT
    if rate >= settings.very_fast:
        return SpeedClass.VERY_FAST
    if rate >= settings.fast:
        return SpeedClass.FAST
    if rate >= settings.steady:
        return SpeedClass.STEADY
    return SpeedClass.SLOW


def first_step_below(smoothed: pd.Series, level: float) -> int | None:
    """First step where the smoothed loss is below `level` (None if never)."""
    below = smoothed[smoothed < level]
    return as_step(below.index[0]) if len(below) else None


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
        figures = _analyse(run, settings)
    found = findings.find(run, figures, settings)
    if any(finding.code in ("still_improving", "loss_rising_at_end") for finding in found):
        # A loss that still moves at the end has not stabilised, whatever band it stays in.
        figures = dataclasses.replace(figures, stabilised_step=None)
    return dataclasses.replace(figures, findings=found)


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _loss_shape(loss: pd.Series, smoothed: pd.Series, settings: AnalysisSettings) -> dict[str, object]:
    """Where the fast fall ends, whether and where the loss stabilised, the speed class, level crossings."""
    start = float(loss.iloc[0])
    figures: dict[str, object] = {
        "high_initial_gap": start >= settings.high_start_loss,
        # A level the loss started below was never 'dropped below': no crossing to report.
        "level_crossings": tuple((level, first_step_below(smoothed, level)) for level in settings.loss_levels
                                 if start > level),
    }
    if len(loss) < MIN_ROWS_FOR_TRENDS:
        return figures
    level = loss_level(loss)
    first_level, last_level = float(level.iloc[0]), float(level.iloc[-1])
    figures["end_level"] = last_level
    figures["stabilised_step"] = stabilised_step(level, settings.stable_band)
    knee = knee_index(level)
    if knee is not None and first_level > last_level:
        figures.update(
            fall_end_step=as_step(level.index[knee]),
            fall_end_level=float(level.iloc[knee]),
            drop_share_at_fall_end=(first_level - float(level.iloc[knee])) / (first_level - last_level),
        )
    span = as_step(loss.index[-1]) - as_step(loss.index[0])
    if span > 0:
        # Smoothed end points: the first equals the first logged loss, the last is steadier than one batch.
        rate = (float(smoothed.iloc[0]) - float(smoothed.iloc[-1])) / span * 100
        figures["fall_rate"] = _finite_or_none(rate)
        figures["convergence"] = speed_class(figures["fall_rate"], settings)  # type: ignore[arg-type]
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
            smoothed_start=_finite_or_none(float(smoothed.iloc[0])),
            smoothed_end=_finite_or_none(float(smoothed.iloc[-1])),
        )
        # An RL loss hovers around zero and may be negative: no convergence reading (the reward tells).
        if kind.about.reads_loss:
            figures.update(_loss_shape(loss, smoothed, settings))
        if len(eval_loss):
            # Compare with the trend, not one noisy batch, at the last eval step.
            train_then = smoothed[smoothed.index <= as_step(eval_loss.index[-1])]
            if len(train_then):
                figures["eval_gap"] = float(eval_loss.iloc[-1] - train_then.iloc[-1])

    first_acc, last_acc = _first_last(finite_series(run.train, "mean_token_accuracy"))
    figures.update(first_token_accuracy=first_acc, final_token_accuracy=last_acc)

    # Each kind-specific metric summarised once (a Spearman rank of 100,000 rows is not free): the entropy's
    # rho is its summary's.
    summaries = {column: summarise(values, column) for column in _series_columns(run)
                 if len(values := finite_series(run.train, column))}
    entropy = finite_series(run.train, "entropy")
    entropy_start, entropy_end = _first_last(entropy)
    figures.update(entropy_start=entropy_start, entropy_end=entropy_end,
                   entropy_rho=summaries["entropy"].rho if "entropy" in summaries else None)

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

    flat, same = undrawn_metrics(run, kind)
    undrawn = {column for column, _ in flat} | {column for column, _ in same}
    # Only keys with something to draw: a column of NaN gets no panel.
    others = [column for column in kinds.other_metrics(kind, [c for c in run.train.columns if c not in undrawn])
              if len(finite_series(run.train, column))]
    figures["metrics"] = tuple(sorted(c for c in run.train.columns if c not in ("step", "epoch")))
    figures.update(
        kind=kind,
        kind_keys=kind_keys,
        last_logged_step=last_logged if len(run.train) or len(run.eval) else None,
        eval_metrics=tuple(eval_metric(run.eval, column) for column in kinds.eval_quality_columns(run.eval.columns)
                           if len(finite_series(run.eval, column))),
        best_checkpoint=best_checkpoint(run),
        non_finite=run.non_finite,
        series=tuple(summaries.values()),
        other_metrics=tuple(others[:MAX_OTHER_METRICS]),
        other_metrics_left_out=tuple(others[MAX_OTHER_METRICS:]),
        flat_metrics=flat,
        same_metrics=same,
    )
    figures.update(_eval_table(run, figures["eval_metrics"]))  # type: ignore[arg-type]
    figures["saved_checkpoints"] = _saved_checkpoints(run)
    figures.update(resumes=run.resumes, global_step=run.global_step, logging_interval=_logging_interval(run))
    if kind.about.reads_loss:  # an RL loss hovers around zero: a ratio to the median means nothing there
        jumps = spikes(loss, settings)
        # Isolated events are spikes; jumps on more than one logged row in 50 are the loss's own heavy-tailed
        # batch noise (a classifier near zero loss meeting a hard batch), reported as such, not as spikes.
        if len(jumps) > max(SPIKE_MAX_COUNT, SPIKE_MAX_SHARE * len(loss)):
            figures["noisy_jumps"] = len(jumps)
        else:
            figures["spikes"] = jumps
    return Figures(**figures)  # type: ignore[arg-type]


EVAL_TABLE_ROWS = 50
"""Longer eval histories are in the CSV download rather than on the page."""
EVAL_TABLE_COLUMNS = 24
"""The table scrolls in its own box, so a run's eval columns all fit (TRL's DPO logs 9); only a log with
more keeps the rest for the CSV download."""


def _eval_table(run: TrainingRun, metrics: tuple[EvalMetric, ...]) -> dict[str, object]:
    """The per-step eval table of the page: the first EVAL_TABLE_COLUMNS metrics, when EVAL_TABLE_ROWS or fewer."""
    columns = tuple(m.column for m in metrics)[:EVAL_TABLE_COLUMNS]
    if not columns or not 0 < len(run.eval) <= EVAL_TABLE_ROWS:
        return {"eval_table_columns": columns}
    values = run.eval[list(columns)].to_numpy(dtype="float64")
    rows = tuple(
        EvalRow(int(step), tuple(float(v) if math.isfinite(v) else None for v in row))
        for step, row in zip(run.eval["step"].to_numpy(), values, strict=True)
    )
    return {"eval_table_columns": columns, "eval_table": rows}


def _positive_state(run: TrainingRun, key: str) -> float | None:
    """A top-level number of trainer_state.json when it is finite and above 0."""
    value = run.state.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float
        return None
    return number if math.isfinite(number) and number > 0 else None


def _logging_interval(run: TrainingRun) -> float | None:
    """`logging_steps` in steps; transformers reads a value below 1 as a share of max_steps."""
    interval = _positive_state(run, "logging_steps")
    if interval is not None and interval < 1:
        max_steps = _positive_state(run, "max_steps")
        return float(math.ceil(interval * max_steps)) if max_steps is not None else None
    return interval


def _saved_checkpoints(run: TrainingRun) -> tuple[SavedCheckpoint, ...]:
    """Each saved checkpoint's step with the loss logged at or before it and the eval loss at it."""
    if len(run.saved_checkpoints) < 2:
        return ()
    loss = finite_series(run.train, "loss")
    eval_loss = finite_series(run.eval, "eval_loss")
    rows = []
    for step in run.saved_checkpoints:
        before = loss[loss.index <= step]
        rows.append(SavedCheckpoint(
            step=step,
            loss=float(before.iloc[-1]) if len(before) else None,
            loss_step=as_step(before.index[-1]) if len(before) else None,
            eval_loss=float(eval_loss[step]) if step in eval_loss.index else None,
        ))
    return tuple(rows)


def undrawn_metrics(run: TrainingRun, kind: kinds.RunKind) -> tuple[tuple[tuple[str, float], ...],
                                                                    tuple[tuple[str, str], ...]]:
    """Training metrics no panel needs to draw: (flat ones with their value, repeats with the column they repeat).

    Flat: two or more finite values, all equal. A repeat has exactly the values of an earlier column at
    the same steps; earlier means drawn first: the loss, the kind's panels, the standard panels, then the
    rest by name. A metric with eval values is always drawn (its eval dots sit on its panel).
    """
    columns = [c for c in run.train.columns if c not in kinds.TRAIN_BOOKKEEPING and not c.startswith("train_")]
    panel_order = [c for panel in (*kinds.kind_panels(kind, columns), *kinds.standard_panels(columns))
                   for c in panel.columns]
    ordered = list(dict.fromkeys(["loss", *panel_order, *sorted(columns)]))
    flat: list[tuple[str, float]] = []
    same: list[tuple[str, str]] = []
    seen: dict[tuple[bytes, bytes], str] = {}
    for column in ordered:
        if column not in run.train.columns:
            continue
        values = finite_series(run.train, column)
        if not len(values) or len(finite_series(run.eval, "eval_" + column)):
            continue
        signature = (values.index.to_numpy(dtype="float64").tobytes(), values.to_numpy(dtype="float64").tobytes())
        if column != "loss" and len(values) >= 2 and float(values.min()) == float(values.max()):
            flat.append((column, float(values.iloc[0])))
        elif signature in seen:
            same.append((column, seen[signature]))
        else:
            seen[signature] = column
    return tuple(sorted(flat)), tuple(sorted(same))


MAX_OTHER_METRICS = 48
"""'Other metrics' panels a page draws at most (4 images of 12); a log of 10,000 keys must not make
800 images. The rest stay in the CSV download, and the generation says which were left out."""


SERIES_COLUMNS = (
    "entropy",
    "mean_token_accuracy",
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
    tenth = edge_rows(len(values))
    trend, rho = trend_of(series)
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
        head_mean=safe_mean(values[:tenth]),
        tail_mean=safe_mean(values[-tenth:]),
        rho=rho,
        trend=trend,
    )


def eval_metric(evals: pd.DataFrame, column: str) -> EvalMetric:
    """Last value and, when the name says which way is better, the best value of an eval column."""
    series = finite_series(evals, column)
    better = kinds.direction(column)
    best, best_step = None, None
    if better is not None:
        label = series.idxmin() if better is Direction.LOWER else series.idxmax()
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


SPIKE_NOISE = 6.0
"""A spike's excess over the median must be this many robust standard deviations (1.4826 x MAD) of the
losses before it: a ratio alone flags batch noise on a loss near zero."""
SPIKE_MAX_COUNT = 5
SPIKE_MAX_SHARE = 0.02
"""More flagged rows than both of these: batch noise, not spikes."""
SPIKE_RANGE = 0.05
"""... and at least this share of the run's loss range (largest minus smallest logged loss)."""


def spikes(loss: pd.Series, settings: AnalysisSettings) -> tuple[int, ...]:
    """Steps whose loss jumps out of the `spike_window` losses before it.

    A spike is above `spike_factor` x their median, above their maximum, more
    than SPIKE_NOISE robust standard deviations above their median, and its
    excess is at least SPIKE_RANGE of the run's loss range.
    """
    window = settings.spike_window
    values = loss.to_numpy(dtype="float64")
    if len(values) <= window:
        return ()
    # Row i is judged against the full window of the `window` rows before it.
    before = np.lib.stride_tricks.sliding_window_view(values[:-1], window)
    current = values[window:]
    median = np.median(before, axis=1)
    spread = 1.4826 * np.median(np.abs(before - median[:, None]), axis=1)
    excess = current - median
    whole_range = float(values.max() - values.min())
    flagged = ((median > 0) & (current > settings.spike_factor * median) & (current > before.max(axis=1))
               & (excess > SPIKE_NOISE * spread) & (excess >= SPIKE_RANGE * whole_range))
    return tuple(as_step(label) for label in loss.index[window:][flagged])

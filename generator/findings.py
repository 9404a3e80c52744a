"""What an engineer looks for first: typed findings computed from a run (pure, no I/O).

Each rule reads the run's tables and its figures and returns `Finding`s with the
numbers and steps that make them true, or nothing. `RULES` is the catalogue:
the methodology page prints each rule's definition from it, and the narrative
renders each finding by its code, so the page, the definition and the code
cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from generator import kinds
from generator.kinds import Direction, RunKind
from generator.records import AnalysisSettings, Figures, Finding, Severity, SpeedClass, TrainingRun
from generator.series import MIN_ROWS_FOR_TRENDS, as_step, finite_series, spearman

WARNING, NOTE = Severity.WARNING, Severity.NOTE


@dataclass(frozen=True)
class Rule:
    """One kind of finding: its code, severity and the definition the methodology page shows."""

    code: str
    severity: Severity
    title: str
    definition: Callable[[AnalysisSettings], str]
    check: Callable[[TrainingRun, Figures, AnalysisSettings], list[Finding]]


# --- thresholds that are not user settings (each is stated on the methodology page) ---------------

EXPLOSION_FACTOR = 50.0
"""A grad norm this many times the median of the grad norms logged just before it is an explosion ..."""
EXPLOSION_WINDOW = 20
"""... of the last this many ..."""
EXPLOSION_MIN_BEFORE = 5
"""... with at least this many logged before it."""
END_WINDOW = 0.2
"""'At the end' means the last fifth of the logged loss rows."""
END_Z = 3.0
"""A trend over the end window counts when Spearman rho x sqrt(n - 1) is at least this in size ..."""
END_CHANGE = 0.02
"""... and the median of its second half differs from that of its first half by this share or more ..."""
END_FLOOR = 0.01
"""Not called still improving once the loss is below this share of the first logged loss (at its floor)."""
EVAL_RISE = 0.10
"""Overfitting: the last eval loss at least this share above its minimum (2 or more evaluations after it) ..."""
EVAL_TRAIN_FALL = 0.20
"""... while the train loss fell by this share or more (also the fall that 'train keeps falling' needs)."""
EVAL_FLAT_GAIN = 0.05
"""Eval flat: over the second half of the evaluations it improved by less than this share."""
EPOCH_DROP = 0.05
"""Steps down at epoch boundaries: the median drop across boundaries (mean loss of the rows just after
against just before) is at least this share ..."""
EPOCH_MIN_ROWS = 30
"""... on a log of at least this many loss rows per epoch (fewer cannot show a step)."""
PREFERENCE_GAP = 0.10
"""Train preference accuracy this far (10 points) above eval: the model fits its training pairs better."""
NO_SIGNAL_SHARE = 0.5
"""RL with no learning signal: at least this share of logged steps where every completion of a group got the
same reward."""
EVAL_LATE_SHARE = 0.10
"""The final model was not evaluated: no evaluation in the last tenth of the steps."""
DISAGREE_CHANGE = 0.02
"""Eval metrics disagree: between evaluations one improved and the other worsened by more than this share,
twice in a row."""
SCRATCH_TOLERANCE = 0.2
"""Trained from scratch: first loss within this share of ln(vocab_size) (uniform guessing); above it, a loss
worse than guessing."""
CHOSEN_FALL = 0.5
"""DPO: the chosen reward's last tenth at least this share below its peak tenth ..."""
MARGIN_GROWTH = 0.2
"""... while the margin grew by this share or more since that tenth."""
SCHEDULE_NEAR_END = 0.99
"""At or above this share of max_steps a checkpoint is the end of its schedule."""
SCHEDULE_SHARE = 0.5
"""A checkpoint below this share of max_steps is 'far from its schedule'."""
SENTINEL_EPOCHS = 1e6
"""num_train_epochs above this is a sentinel (max_steps set instead), not a plan."""


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


# --- the loss ------------------------------------------------------------------------------------


def _end_slope(run: TrainingRun, f: Figures, s: AnalysisSettings) -> list[Finding]:
    """Still falling, or rising, over the last fifth of the logged losses.

    Rank-based (Spearman rho against the step, z = rho x sqrt(n - 1)) and measured
    by the medians of the window's two halves: a least-squares slope is pulled by
    spikes on a loss near zero.
    """
    if not f.kind.about.reads_loss:
        return []
    loss = finite_series(run.train, "loss")
    count = int(len(loss) * END_WINDOW)
    if count < 10:
        return []
    tail = loss.iloc[-count:]
    rho = spearman(tail)
    if rho is None:
        return []
    z = rho * math.sqrt(count - 1)
    half = count // 2
    first, second = float(tail.iloc[:half].median()), float(tail.iloc[half:].median())
    if first <= 0:
        return []
    change = second / first - 1
    if abs(z) < END_Z or abs(change) < END_CHANGE or (z < 0) != (change < 0):
        return []
    if change < 0 and second < END_FLOOR * float(loss.iloc[0]):
        return []  # 0.0002 -> 0.0001 after starting at 0.3: the loss is at its floor, more steps change nothing
    values = {"from_step": as_step(tail.index[0]), "to_step": as_step(tail.index[-1]), "change": change,
              "first_half_median": first, "second_half_median": second, "z": z}
    if change < 0:
        return [Finding("still_improving", NOTE, values)]
    return [Finding("loss_rising_at_end", WARNING, values)]


def _not_falling(run: TrainingRun, f: Figures, s: AnalysisSettings) -> list[Finding]:
    if f.convergence is not SpeedClass.NO_IMPROVEMENT or f.start_loss is None or f.smoothed_end is None:
        return []
    return [Finding("loss_not_falling", WARNING, {"start": f.start_loss, "smoothed_end": f.smoothed_end})]


def _spikes(run: TrainingRun, f: Figures, s: AnalysisSettings) -> list[Finding]:
    if f.noisy_jumps:
        return [Finding("loss_noisy", NOTE, {"count": f.noisy_jumps, "rows": f.logged_rows})]
    if not f.spikes:
        return []
    return [Finding("loss_spikes", WARNING, {"count": len(f.spikes)}, steps=f.spikes)]


def _epoch_steps(run: TrainingRun, f: Figures, s: AnalysisSettings) -> list[Finding]:
    """The loss steps down right after epoch boundaries: the model recognises examples it has seen."""
    if not f.kind.about.reads_loss or "epoch" not in run.train.columns or "loss" not in run.train.columns:
        return []
    table = run.train[["step", "epoch", "loss"]]
    table = table[np.isfinite(table["loss"].to_numpy()) & np.isfinite(table["epoch"].to_numpy())]
    epochs = table["epoch"].to_numpy(dtype="float64")
    losses = table["loss"].to_numpy(dtype="float64")
    if len(losses) < 2 or epochs[-1] - epochs[0] < 1:
        return []
    rows_per_epoch = len(losses) / (epochs[-1] - epochs[0])
    if rows_per_epoch < EPOCH_MIN_ROWS:
        return []
    window = min(20, max(3, round(rows_per_epoch / 10)))
    # The row logged at epoch b.0 is the last step of epoch b (the Trainer logs epoch + (step + 1) / steps):
    # it belongs before the boundary.
    cuts = [int(np.searchsorted(epochs, b + 1e-9)) for b in range(math.ceil(epochs[0] + 1e-9), math.floor(epochs[-1]) + 1)]
    cuts = [cut for cut in cuts if window <= cut <= len(losses) - window]
    if not cuts:
        return []

    drops = _drops_at(losses, window, cuts)
    baseline = _drops_at(losses, window, [cut for cut in range(window, len(losses) - window + 1, window)
                                          if all(abs(cut - boundary) >= window for boundary in cuts)])
    noise = float(np.percentile(baseline, 90)) if baseline else 0.0
    median = float(np.median(drops))
    positive = sum(drop > 0 for drop in drops) / len(drops)
    if median < EPOCH_DROP or positive < 0.75 or median <= noise:
        return []
    return [Finding("epoch_step_down", WARNING, {"boundaries": len(drops), "median_drop": median,
                                                  "min_drop": min(drops), "max_drop": max(drops), "noise_p90": noise},
                    steps=tuple(int(table["step"].iloc[cut - 1]) for cut in cuts))]  # the last step of each epoch


def _drops_at(losses: np.ndarray, window: int, cuts: list[int]) -> list[float]:
    """At each cut, the fall from the mean of the `window` losses before it to the mean of the `window` from
    it, as a share of the first (0 when that is not positive).

    Every window's mean at once (a 100,000-row log has ~5,000 baseline cuts: 40 ms one by one, 3 ms so);
    each is the same float as `losses[a:b].mean()`, numpy summing each row of the view as it sums a slice
    (tests/test_findings.py compares the two on generated logs)."""
    if not cuts:
        return []
    means = np.lib.stride_tricks.sliding_window_view(losses, window).mean(axis=1)
    at = np.asarray(cuts)
    before, after = means[at - window], means[at]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(before > 0, (before - after) / before, 0.0).tolist()


# --- gradients -------------------------------------------------------------------------------------


def _grad_explosion(run: TrainingRun, f: Figures, s: AnalysisSettings) -> list[Finding]:
    """A grad norm far above the grad norms just before it, past the first tenth of the run.

    Local, not against the whole run's median: early gradients of a run whose late gradients are tiny
    are no explosion.
    """
    if not f.kind.about.reads_loss:
        return []
    grad = finite_series(run.train, "grad_norm")
    grad = grad[grad > 0]
    if len(grad) < 10:
        return []
    values = grad.to_numpy(dtype="float64")
    before = pd.Series(values).shift(1).rolling(EXPLOSION_WINDOW, min_periods=EXPLOSION_MIN_BEFORE).median()
    medians = before.to_numpy()
    first, last = as_step(grad.index[0]), as_step(grad.index[-1])
    late = grad.index.to_numpy() > first + (last - first) * 0.1
    flagged = np.flatnonzero(late & (medians > 0) & (values >= EXPLOSION_FACTOR * medians))
    if not len(flagged):
        return []
    top = int(flagged[np.argmax(values[flagged])])
    return [Finding("grad_explosion", WARNING, {"max": float(values[top]), "max_step": as_step(grad.index[top]),
                                                "median": float(medians[top]), "count": len(flagged)},
                    steps=tuple(as_step(grad.index[i]) for i in flagged[:20]))]


def _skipped_steps(run: TrainingRun, f: Figures, s: AnalysisSettings) -> list[Finding]:
    """Non-finite grad norms where the learning rate did not advance: mixed precision skipped the step."""
    train = run.train
    if "grad_norm" not in train.columns or "learning_rate" not in train.columns or len(train) < 3:
        return []
    grad = train["grad_norm"].to_numpy(dtype="float64")
    rate = train["learning_rate"].to_numpy(dtype="float64")
    finite_rates = rate[np.isfinite(rate)]
    if not len(finite_rates) or finite_rates.max() == finite_rates.min():
        return []  # a constant learning rate cannot tell a skipped step
    bad = [i for i in range(len(grad)) if not math.isfinite(grad[i]) and math.isfinite(rate[i])
           and ((i > 0 and rate[i] == rate[i - 1]) or (i == 0 and rate[i] == 0))]
    if not bad:
        return []
    steps = tuple(int(train["step"].iloc[i]) for i in bad)
    return [Finding("skipped_steps", WARNING, {"count": len(steps)}, steps=steps[:20], subject="grad_norm")]


def _non_finite(run: TrainingRun, f: Figures, s: AnalysisSettings) -> list[Finding]:
    kind = {"NaN": 0.0, "Infinity": 1.0, "-Infinity": -1.0}
    return [Finding("non_finite", WARNING, {"step": item.step, "count": item.count, "value": kind.get(item.value, 0.0)},
                    subject=item.column) for item in f.non_finite]


# --- evaluation --------------------------------------------------------------------------------------


def _train_mean_near(loss: pd.Series, step: int, span: int) -> float | None:
    """Mean training loss within +/- `span` steps of `step` (None when nothing was logged there)."""
    near = loss[(loss.index >= step - span) & (loss.index <= step + span)]
    return float(near.mean()) if len(near) else None


def _eval_loss(run: TrainingRun, f: Figures, s: AnalysisSettings) -> list[Finding]:
    """Eval loss rising after its minimum, or flat while the train loss falls: the model stopped generalising.

    Each eval set's loss on its own (`eval_loss`, `eval_<set>_loss`)."""
    if not f.kind.about.reads_loss:
        return []
    columns = sorted(c for c in run.eval.columns if c == "eval_loss" or EVAL_SET_LOSS.fullmatch(c))
    return [finding for column in columns for finding in _eval_loss_of(run, column, s)]


EVAL_SET_LOSS = re.compile(r"eval_[A-Za-z0-9]+_loss")
"""The loss of one eval set (eval_g0_loss); not eval_nll_loss-style parts of a loss."""


def _eval_loss_of(run: TrainingRun, column: str, s: AnalysisSettings) -> list[Finding]:
    evals = finite_series(run.eval, column)
    loss = finite_series(run.train, "loss")
    if len(evals) < 3 or len(loss) < 10:
        return []
    last, last_step = float(evals.iloc[-1]), as_step(evals.index[-1])
    best, best_step = float(evals.min()), as_step(evals.idxmin())
    tenth = max(1, len(loss) // 10)
    train_end = float(loss.iloc[-tenth:].mean())
    span = max(1, int((as_step(loss.index[-1]) - as_step(loss.index[0])) * 0.05))
    after_best = int((evals.index > best_step).sum())
    train_at_best = _train_mean_near(loss, best_step, span)
    if (best > 0 and after_best >= 2 and last >= best * (1 + EVAL_RISE) and train_at_best
            and train_end <= train_at_best * (1 - EVAL_TRAIN_FALL)):
        return [Finding("eval_loss_rising", WARNING, {
            "best": best, "best_step": best_step, "last": last, "last_step": last_step, "rise": last / best - 1,
            "train_at_best": train_at_best, "train_end": train_end}, subject=column)]
    # Second half of the evaluations: did eval keep up with train?
    second = evals.iloc[len(evals) // 2:]
    if len(second) < 2:
        return []
    eval_from, eval_to = float(second.iloc[0]), float(second.iloc[-1])
    train_from = _train_mean_near(loss, as_step(second.index[0]), span)
    train_to = _train_mean_near(loss, as_step(second.index[-1]), span)
    if not eval_from > 0 or not train_from or train_to is None:
        return []
    eval_change, train_change = eval_to / eval_from - 1, train_to / train_from - 1
    if eval_change > -EVAL_FLAT_GAIN and train_change <= -EVAL_TRAIN_FALL:
        return [Finding("eval_loss_flat", WARNING, {
            "from_step": as_step(second.index[0]), "to_step": as_step(second.index[-1]), "eval_from": eval_from,
            "eval_to": eval_to, "eval_change": eval_change, "train_from": train_from, "train_to": train_to,
            "train_change": train_change}, subject=column)]
    return []


def _preference_gap(run: TrainingRun, f: Figures, s: AnalysisSettings) -> list[Finding]:
    """Train preference accuracy (mean of its last tenth) far above the last eval accuracy."""
    train = finite_series(run.train, "rewards/accuracies")
    evals = finite_series(run.eval, "eval_rewards/accuracies")
    if len(train) < 10 or not len(evals):
        return []
    tail = train.iloc[-max(1, len(train) // 10):]
    train_value, eval_value = float(tail.mean()), float(evals.iloc[-1])
    if train_value - eval_value < PREFERENCE_GAP:
        return []
    return [Finding("preference_accuracy_gap", WARNING, {
        "train": train_value, "eval": eval_value, "step": as_step(evals.index[-1]),
        "from_step": as_step(tail.index[0]), "to_step": as_step(tail.index[-1])})]


def _best_disagrees(run: TrainingRun, f: Figures, s: AnalysisSettings) -> list[Finding]:
    """The best checkpoint by eval loss is not the best by a task metric."""
    by_loss = next((m for m in f.eval_metrics if m.column == "eval_loss"), None)
    if by_loss is None or by_loss.best_step is None or by_loss.rows < 3:
        return []
    found = []
    for metric in f.eval_metrics:
        if metric.direction is None or metric.best_step is None or metric.rows < 3:
            continue
        if kinds.LANGUAGE_MODEL_EVAL.fullmatch(metric.column) or metric.best_step == by_loss.best_step:
            continue
        series = finite_series(run.eval, metric.column)
        if by_loss.best_step not in series.index or metric.best is None:
            continue
        at_loss_best = float(series[by_loss.best_step])
        found.append(Finding("best_checkpoints_disagree", NOTE, {
            "loss_best_step": by_loss.best_step, "metric_best_step": metric.best_step, "metric_best": metric.best,
            "metric_at_loss_best": at_loss_best}, subject=metric.column))
    return found


def _eval_stopped(run: TrainingRun, f: Figures, s: AnalysisSettings) -> list[Finding]:
    """The final model was not evaluated: the last evaluation is well before the checkpoint's step."""
    steps = finite_series(run.eval, "eval_loss").index
    if len(steps) < 2:
        steps = pd.Index(np.unique(run.eval["step"].to_numpy(dtype="int64"))) if len(run.eval) else steps
    if len(steps) < 2 or f.steps <= 0:
        return []
    last = int(steps[-1])
    gap = f.steps - last
    if gap < EVAL_LATE_SHARE * f.steps:
        return []
    return [Finding("eval_stopped_early", WARNING, {"last_eval_step": last, "steps": f.steps, "gap": gap,
                                                   "share": gap / f.steps})]


def _metrics_disagree(run: TrainingRun, f: Figures, s: AnalysisSettings) -> list[Finding]:
    """Two task metrics of one eval set moving in opposite directions for two evaluations in a row."""
    rated = [m.column for m in f.eval_metrics if m.direction is not None and m.rows >= 3
             and not kinds.LANGUAGE_MODEL_EVAL.fullmatch(m.column) and "loss" not in m.column]
    if len(rated) < 2:
        return []
    table = run.eval.drop_duplicates("step", keep="last").set_index("step")
    for position, first in enumerate(rated):
        for second in rated[position + 1:]:
            if _eval_set(first) != _eval_set(second):
                continue
            pair = table[[first, second]].dropna()
            pair = pair[np.isfinite(pair.to_numpy()).all(axis=1)]
            if len(pair) < 3:
                continue
            gains = []
            for column in (first, second):
                values = pair[column].to_numpy(dtype="float64")
                with np.errstate(all="ignore"):
                    change = np.diff(values) / np.abs(values[:-1])
                sign = 1 if kinds.direction(column) is Direction.HIGHER else -1
                gains.append(change * sign)
            opposite = ((gains[0] > DISAGREE_CHANGE) & (gains[1] < -DISAGREE_CHANGE)) | (
                (gains[0] < -DISAGREE_CHANGE) & (gains[1] > DISAGREE_CHANGE))
            runs = np.flatnonzero(opposite[:-1] & opposite[1:])
            if len(runs):
                i = int(runs[0])
                steps = [int(step) for step in pair.index[i:i + 3]]
                return [Finding("eval_metrics_disagree", WARNING, {
                    "from_step": steps[0], "to_step": steps[-1],
                    "first_from": float(pair[first].iloc[i]), "first_to": float(pair[first].iloc[i + 2]),
                    "second_from": float(pair[second].iloc[i]), "second_to": float(pair[second].iloc[i + 2])},
                    steps=tuple(steps), subject=f"{first} / {second}")]
    return []


def _eval_set(column: str) -> str:
    """'eval_g0_accuracy' -> 'g0' when logged per set; '' for the main set (a rough split, enough to pair)."""
    parts = column.removeprefix("eval_").split("_", 1)
    return parts[0] if len(parts) == 2 and parts[0][:1].isalpha() and parts[0][1:].isdigit() else ""


# --- kinds: RL and preference ------------------------------------------------------------------------


def _rl_signal(run: TrainingRun, f: Figures, s: AnalysisSettings) -> list[Finding]:
    """GRPO learns from the spread of rewards within a group: no spread, no advantage, no gradient."""
    if f.kind is not RunKind.RL:
        return []
    for column, dead_value in (("frac_reward_zero_std", 1.0), ("zero_std_ratio", 1.0), ("reward_std", 0.0)):
        series = finite_series(run.train, column)
        if len(series) >= MIN_ROWS_FOR_TRENDS:
            share = float((series == dead_value).mean())
            break
    else:
        return []
    if share < NO_SIGNAL_SHARE:
        return []
    values = {"zero_spread_share": share, "rows": len(series)}
    reward = finite_series(run.train, "reward")
    if len(reward):
        values["zero_reward_share"] = float((reward == 0).mean())
    kl = finite_series(run.train, "kl")
    if len(kl) and float(kl.max()) > 0:  # a KL of exactly 0 everywhere is beta = 0, not a still policy
        values["max_kl"] = float(kl.max())
    return [Finding("rl_no_signal", WARNING, values, subject=column)]


def _rejected_only(run: TrainingRun, f: Figures, s: AnalysisSettings) -> list[Finding]:
    """DPO widening the margin while the chosen reward falls: the preferred answers grow less likely too.

    Not for ORPO / SimPO, whose rewards are scaled log-probabilities, negative by construction.
    """
    if "odds_ratio_loss" in run.train.columns:
        return []
    chosen = finite_series(run.train, "rewards/chosen")
    margin = finite_series(run.train, "rewards/margins")
    if len(chosen) < 20 or len(margin) < 20:
        return []
    tenth = len(chosen) // 10
    deciles = [float(chosen.iloc[i * tenth:(i + 1) * tenth].mean()) for i in range(10)]
    peak_at = int(np.argmax(deciles))
    peak, end = deciles[peak_at], deciles[-1]
    margin_tenth = len(margin) // 10
    margin_peak_decile = float(margin.iloc[peak_at * margin_tenth:(peak_at + 1) * margin_tenth].mean())
    margin_end = float(margin.iloc[-margin_tenth:].mean())
    eval_chosen = finite_series(run.eval, "eval_rewards/chosen")
    eval_end = float(eval_chosen.iloc[-1]) if len(eval_chosen) else None
    turned_negative = peak > 0 and (end < 0 or (eval_end is not None and eval_end < 0 and float(eval_chosen.max()) > 0))
    fell_while_margin_grew = (peak > 0 and end <= peak * (1 - CHOSEN_FALL) and margin_peak_decile > 0
                              and margin_end >= margin_peak_decile * (1 + MARGIN_GROWTH))
    if not (turned_negative or fell_while_margin_grew):
        return []
    values = {"chosen_peak": peak, "chosen_end": end, "margin_at_peak": margin_peak_decile, "margin_end": margin_end,
              "peak_decile": peak_at + 1}
    if eval_end is not None:
        values["eval_chosen_end"] = eval_end
        values["eval_chosen_end_step"] = as_step(eval_chosen.index[-1])
    return [Finding("chosen_reward_falling", WARNING, values)]


# --- where the run stands ------------------------------------------------------------------------------


def _schedule(run: TrainingRun, f: Figures, s: AnalysisSettings) -> list[Finding]:
    global_step = run.global_step
    max_steps = _finite(run.state.get("max_steps"))
    if global_step is None or max_steps is None or max_steps <= 0 or global_step >= max_steps:
        return []
    share = global_step / max_steps
    if share >= SCHEDULE_NEAR_END:
        return []  # a step or two short of max_steps is how some schedules round: the run is done
    severity = WARNING if share < SCHEDULE_SHARE else NOTE
    return [Finding("before_max_steps", severity, {"step": global_step, "max_steps": max_steps, "share": share})]


def _from_scratch(run: TrainingRun, f: Figures, s: AnalysisSettings) -> list[Finding]:
    """A first loss near (or above) ln(vocab_size): no pretrained start, or a loss on the wrong scale."""
    vocab = run.vocab_size
    if not f.kind.about.reads_start or f.start_loss is None or vocab is None or vocab < 2 or not run.language_model:
        return []
    uniform = math.log(vocab)
    ratio = f.start_loss / uniform
    values = {"start": f.start_loss, "vocab_size": vocab, "uniform_loss": uniform, "ratio": ratio}
    if ratio > 1 + SCRATCH_TOLERANCE:
        return [Finding("start_above_uniform", WARNING, values)]
    if ratio >= 1 - SCRATCH_TOLERANCE:
        return [Finding("from_scratch", NOTE, values)]
    return []


CATALOGUE_ORDER: dict[str, int] = {}
"""Position of each code in RULES (filled below), the order findings of one severity are shown in."""


def _no_check(run: TrainingRun, f: Figures, s: AnalysisSettings) -> list[Finding]:
    """For a code that the rule listed before it also produces (e.g. still_improving with loss_rising_at_end)."""
    return []


HIDDEN_RESUME_RATIO = 0.8


def _hidden_resume(run: TrainingRun, f: Figures, s: AnalysisSettings) -> list[Finding]:
    """A resume the steps do not show, read from the summary row's train_loss (see the rule's definition)."""
    train_loss = _finite(run.summary.get("train_loss"))
    global_step = run.global_step
    loss = finite_series(run.train, "loss")
    if train_loss is None or global_step is None or global_step <= 0 or len(loss) < 10 or run.resumes:
        return []
    steps = loss.index.to_numpy(dtype="float64")
    widths = np.diff(np.concatenate(([0.0], steps)))  # each logged loss stands for the steps since the last one
    total = float((loss.to_numpy() * widths).sum())
    weighted_mean = total / float(widths.sum())
    if weighted_mean <= 0 or train_loss >= HIDDEN_RESUME_RATIO * weighted_mean:
        return []
    target = train_loss * global_step
    from_end = np.cumsum((loss.to_numpy() * widths)[::-1])[::-1]  # losses after each row, that row included
    position = int(np.argmin(np.abs(from_end - target)))
    resumed_at = int(steps[position - 1]) if position > 0 else 0
    return [Finding("hidden_resume", NOTE, {"train_loss": train_loss, "logged_mean": weighted_mean,
                                            "resumed_at": resumed_at, "global_step": global_step})]


def find(run: TrainingRun, figures: Figures, settings: AnalysisSettings) -> tuple[Finding, ...]:
    """Every finding of one run: warnings first, then notes, each in catalogue order."""
    with np.errstate(all="ignore"):
        found = [finding for rule in RULES for finding in rule.check(run, figures, settings)]
    if any(item.code in ("eval_loss_rising", "eval_loss_flat") for item in found):
        # More steps would lower the training loss, not the eval loss: the sentence must not advise them.
        found = [dataclasses.replace(item, values={**item.values, "eval_disagrees": 1.0})
                 if item.code == "still_improving" else item for item in found]
    return tuple(sorted(found, key=lambda item: (item.severity != WARNING, CATALOGUE_ORDER[item.code])))


def _pct(value: float) -> str:
    return f"{value * 100:g}%"


RULES = (
    Rule("non_finite", WARNING, "Non-finite values",
         lambda s: "A logged value is NaN or infinite; the first one of each key is named with its step.", _non_finite),
    Rule("skipped_steps", WARNING, "Skipped optimizer steps",
         lambda s: "`grad_norm` is NaN or infinite on a row where the learning rate did not advance from the row "
                   "before (or is 0 on the first row), in a run whose learning rate does change: mixed-precision "
                   "loss scaling skipped that update.", _skipped_steps),
    Rule("grad_explosion", WARNING, "Gradient explosion",
         lambda s: f"After the first tenth of the run, a nonzero `grad_norm` at least {EXPLOSION_FACTOR:g} times the "
                   f"median of the {EXPLOSION_WINDOW} nonzero grad norms logged before it (at least "
                   f"{EXPLOSION_MIN_BEFORE}); not for RL runs.", _grad_explosion),
    Rule("loss_spikes", WARNING, "Loss spikes",
         lambda s: "Loss spikes as defined above: at most 5 rows, or 2% of the logged losses when that is more.",
         _spikes),
    Rule("loss_not_falling", WARNING, "No improvement",
         lambda s: "The smoothed loss did not fall from the first to the last logged step.", _not_falling),
    Rule("loss_rising_at_end", WARNING, "Loss rising at the end",
         lambda s: f"Over the last {_pct(END_WINDOW)} of the logged losses (10 or more): Spearman rho against the "
                   f"step times sqrt(n - 1) is at least {END_Z:g}, and the median of the second half of that window "
                   f"is at least {_pct(END_CHANGE)} above that of the first half.", _end_slope),
    Rule("eval_loss_rising", WARNING, "Eval loss rising (overfitting)",
         lambda s: f"For `eval_loss` and each eval set's `eval_<set>_loss`: the last value is at least {_pct(EVAL_RISE)} above its minimum, with 2 or more evaluations "
                   f"after the minimum, while the train loss (mean of its last tenth) is at least "
                   f"{_pct(EVAL_TRAIN_FALL)} below the train loss around the minimum's step (+/- 5% of the run).",
         _eval_loss),
    Rule("eval_loss_flat", WARNING, "Eval loss flat while train loss falls",
         lambda s: f"Over the second half of the evaluations, an eval loss improved by less than {_pct(EVAL_FLAT_GAIN)} "
                   f"while the train loss around those steps fell by {_pct(EVAL_TRAIN_FALL)} or more: the gains on "
                   "the training data do not carry over to held-out data. Checked when *Eval loss rising* does not "
                   "fire.", _no_check),
    Rule("epoch_step_down", WARNING, "Loss steps down at epoch boundaries",
         lambda s: f"With {EPOCH_MIN_ROWS} or more loss rows per epoch: for each epoch boundary, the relative drop from "
                   "the mean of the K rows before it to the K rows after it (K a tenth of an epoch, 3 to 20 rows). "
                   f"Fires when the median drop is at least {_pct(EPOCH_DROP)}, positive at 75% of the boundaries or "
                   "more, and above the 90th percentile of the same drop measured away from the boundaries: the "
                   "model recognises examples it has seen (memorisation).", _epoch_steps),
    Rule("preference_accuracy_gap", WARNING, "Train preference accuracy above eval",
         lambda s: f"The mean train `rewards/accuracies` over its last tenth is at least {PREFERENCE_GAP * 100:g} "
                   "points above the last `eval_rewards/accuracies`.", _preference_gap),
    Rule("eval_stopped_early", WARNING, "Final model not evaluated",
         lambda s: f"Two or more evaluations, and none in the last {_pct(EVAL_LATE_SHARE)} of the steps: the "
                   "metrics describe an earlier model than the checkpoint.", _eval_stopped),
    Rule("eval_metrics_disagree", WARNING, "Eval metrics disagree",
         lambda s: f"Two rated task metrics of one eval set (not losses) move in opposite directions, each by more "
                   f"than {_pct(DISAGREE_CHANGE)} of its value, between two pairs of consecutive evaluations in a "
                   "row.", _metrics_disagree),
    Rule("rl_no_signal", WARNING, "No learning signal (RL)",
         lambda s: f"On at least {_pct(NO_SIGNAL_SHARE)} of the logged steps every completion of a group got the same "
                   "reward (`frac_reward_zero_std` = 1, else `zero_std_ratio` = 1, else `reward_std` = 0): GRPO's "
                   "advantages are then zero and the policy gets no gradient.", _rl_signal),
    Rule("chosen_reward_falling", WARNING, "Margin grows while the chosen reward falls (DPO)",
         lambda s: "Not for ORPO / SimPO. By tenths of the logged rows: the chosen reward peaked above 0 and its last "
                   f"tenth is below 0 (or the last eval chosen reward is, after a positive one), or it is at least "
                   f"{_pct(CHOSEN_FALL)} below the peak while the margin grew by {_pct(MARGIN_GROWTH)} or more since "
                   "that tenth.", _rejected_only),
    Rule("start_above_uniform", WARNING, "First loss above uniform guessing",
         lambda s: f"A language-model head (from config.json's `architectures`) whose first loss is more than "
                   f"{_pct(SCRATCH_TOLERANCE)} above ln(`vocab_size`): worse than guessing uniformly, so the loss is "
                   "broken or on another scale.", _from_scratch),
    Rule("loss_noisy", NOTE, "Heavy-tailed batch noise",
         lambda s: "More rows meet the spike rule than *Loss spikes* allows: jumps that frequent are the loss's own "
                   "batch-to-batch noise, not isolated events, and no step is marked as a spike.", _no_check),
    Rule("before_max_steps", NOTE, "Checkpoint before max_steps",
         lambda s: f"`global_step` is below {_pct(SCHEDULE_NEAR_END)} of `max_steps`; a warning below "
                   f"{_pct(SCHEDULE_SHARE)} of it.", _schedule),
    Rule("hidden_resume", NOTE, "Resumed run (from the summary row)",
         lambda s: f"The summary row's `train_loss` is below {HIDDEN_RESUME_RATIO:g} times the step-weighted mean of "
                   "the logged losses. The Trainer divides the losses of its last session by all steps, so the run was "
                   "resumed; the step it resumed at is where the logged losses after it add up to that total. "
                   "`train_loss` and `train_runtime` then cover the last session only.", _hidden_resume),
    Rule("still_improving", NOTE, "Still improving at the end",
         lambda s: "As *Loss rising at the end*, falling instead, while the second half's median is still at least "
                   f"{_pct(END_FLOOR)} of the first logged loss (below that the loss is at its floor): more steps "
                   "would likely lower the training loss further (not advised when an eval loss warning says the eval "
                   "loss would not follow).",
         _no_check),
    Rule("best_checkpoints_disagree", NOTE, "Best by eval loss is not best by the task metric",
         lambda s: "The step with the lowest `eval_loss` is not the step with the best value of a rated task metric "
                   "(3 or more evaluations); the page gives both values.", _best_disagrees),
    Rule("from_scratch", NOTE, "Trained from scratch",
         lambda s: f"A language-model head whose first loss is within {_pct(SCRATCH_TOLERANCE)} of ln(`vocab_size`) "
                   "from config.json: the loss of guessing uniformly, so there was no pretrained start.", _no_check),
)
CATALOGUE_ORDER.update((rule.code, position) for position, rule in enumerate(RULES))

"""What an engineer looks for first: typed findings computed from a run (pure, no I/O).

Each rule reads the run's tables and its figures and returns `Finding`s with the
numbers and steps that make them true, or nothing. `RULES` is the catalogue:
the methodology page prints each rule's definition from it, and the narrative
renders each finding by its code, so the page, the definition and the code
cannot drift apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from generator import kinds
from generator.records import AnalysisSettings, Figures, Finding, Severity, TrainingRun
from generator.series import MIN_ROWS_FOR_TRENDS, as_step, finite_series, loss_level

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
"""A grad norm this many times the run's median grad norm is an explosion."""
END_WINDOW = 0.2
"""'At the end' means the last fifth of the logged loss rows."""
END_T = 3.0
"""A slope over the end window counts when it is this many standard errors from zero ..."""
END_CHANGE = 0.03
"""... and moves the loss by at least this share of its level over the window."""
EVAL_FLAT_TRAIN_FACTOR = 2.0
"""'Train loss fell' for the flat-eval rule: its level fell by this factor or more."""
EVAL_FLAT_GAIN = 0.05
"""'Eval loss flat': its best value is less than this share below its first."""
EPOCH_DROP = 0.05
"""A step down at an epoch boundary: the loss right after it is this share below the loss right before."""
EPOCH_CONTRAST = 2.0
"""... and that drop is this many times the typical change between neighbouring windows inside epochs."""
PREFERENCE_GAP = 0.10
"""Train preference accuracy this far (10 points) above eval: the model fits its training pairs better."""
NO_SIGNAL_SHARE = 0.5
"""RL with no learning signal: at least this share of steps with zero reward spread (or zero reward)."""
EVAL_LATE_INTERVALS = 2
"""Evaluation stopped early: no eval in the last this-many eval intervals before the last step."""
DISAGREE_CHANGE = 0.02
"""Eval metrics disagree: one improved and another worsened by at least this share, first to last eval."""
SCRATCH_TOLERANCE = 0.15
"""Trained from scratch: first loss within this share of ln(vocab_size) (uniform guessing)."""
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
    """Still falling, or rising, over the last fifth of the logged losses (a least-squares slope)."""
    if f.kind == "rl":
        return []
    loss = finite_series(run.train, "loss")
    count = max(int(len(loss) * END_WINDOW), 0)
    if count < 10:
        return []
    tail = loss.iloc[-count:]
    x = tail.index.to_numpy(dtype="float64")
    y = tail.to_numpy(dtype="float64")
    span = x[-1] - x[0]
    level = float(np.median(y))
    if span <= 0 or level <= 0:
        return []
    x_centred = x - x.mean()
    slope = float((x_centred * (y - y.mean())).sum() / (x_centred**2).sum())
    residuals = y - (y.mean() + slope * x_centred)
    error = math.sqrt(float((residuals**2).sum()) / (len(y) - 2) / float((x_centred**2).sum()))
    change = slope * span / level
    significant = slope != 0 if error == 0 or not math.isfinite(change) else abs(slope) / error >= END_T
    if not significant or abs(change) < END_CHANGE:
        return []
    values = {"from_step": as_step(tail.index[0]), "to_step": as_step(tail.index[-1]), "change": change,
              "start": float(y.mean() - slope * (x.mean() - x[0])), "end": float(y.mean() + slope * (x[-1] - x.mean()))}
    if change < 0:
        return [Finding("still_improving", NOTE, values)]
    return [Finding("loss_rising_at_end", WARNING, values)]


def _not_falling(run: TrainingRun, f: Figures, s: AnalysisSettings) -> list[Finding]:
    if f.convergence != "No improvement" or f.start_loss is None or f.end_level is None:
        return []
    return [Finding("loss_not_falling", WARNING, {"start": f.start_loss, "end_level": f.end_level})]


def _spikes(run: TrainingRun, f: Figures, s: AnalysisSettings) -> list[Finding]:
    if not f.spikes:
        return []
    return [Finding("loss_spikes", WARNING, {"count": len(f.spikes)}, steps=f.spikes)]


def _epoch_steps(run: TrainingRun, f: Figures, s: AnalysisSettings) -> list[Finding]:
    """The loss steps down right after each epoch boundary: the model has started to memorise the data."""
    if f.kind == "rl" or "epoch" not in run.train.columns:
        return []
    table = run.train[["step", "epoch", "loss"]] if "loss" in run.train.columns else None
    if table is None:
        return []
    table = table[np.isfinite(table["loss"].to_numpy()) & np.isfinite(table["epoch"].to_numpy())]
    epochs = table["epoch"].to_numpy(dtype="float64")
    losses = table["loss"].to_numpy(dtype="float64")
    if len(losses) < 20 or epochs[-1] < 1.5:
        return []
    boundaries = [b for b in range(1, math.floor(epochs[-1]) + 1) if epochs[0] < b <= epochs[-1]]
    rows_per_epoch = len(losses) / max(epochs[-1] - epochs[0], 1e-9)
    window = max(3, int(rows_per_epoch / 10))
    drops, steps = [], []
    for boundary in boundaries:
        cut = int(np.searchsorted(epochs, boundary - 1e-9))
        if cut < window or cut + window > len(losses):
            continue
        before, after = float(np.median(losses[cut - window:cut])), float(np.median(losses[cut:cut + window]))
        if before <= 0:
            return []
        drops.append(1 - after / before)
        steps.append(int(table["step"].iloc[cut]))
    if not drops:
        return []
    # The typical change between neighbouring windows away from the boundaries.
    inside = []
    for start in range(window, len(losses) - window, window):
        if any(abs(start - int(np.searchsorted(epochs, b - 1e-9))) < 2 * window for b in boundaries):
            continue
        before, after = float(np.median(losses[start - window:start])), float(np.median(losses[start:start + window]))
        if before > 0:
            inside.append(abs(1 - after / before))
    typical = float(np.median(inside)) if inside else 0.0
    if min(drops) < EPOCH_DROP or min(drops) < EPOCH_CONTRAST * typical:
        return []
    return [Finding("epoch_step_down", WARNING, {"boundaries": len(drops), "min_drop": min(drops),
                                                  "max_drop": max(drops), "typical_change": typical},
                    steps=tuple(steps))]


# --- gradients -------------------------------------------------------------------------------------


def _grad_explosion(run: TrainingRun, f: Figures, s: AnalysisSettings) -> list[Finding]:
    grad = finite_series(run.train, "grad_norm")
    if len(grad) < 10:
        return []
    median = float(grad.median())
    peak = float(grad.max())
    if median <= 0 or peak < EXPLOSION_FACTOR * median:
        return []
    flagged = grad[grad >= EXPLOSION_FACTOR * median]
    return [Finding("grad_explosion", WARNING, {"max": peak, "max_step": as_step(grad.idxmax()), "median": median,
                                                "count": len(flagged)},
                    steps=tuple(as_step(step) for step in flagged.index[:20]))]


def _skipped_steps(run: TrainingRun, f: Figures, s: AnalysisSettings) -> list[Finding]:
    """Non-finite grad norms where the learning rate did not advance: fp16 loss scaling skipped the step."""
    train = run.train
    if "grad_norm" not in train.columns or "learning_rate" not in train.columns:
        return []
    grad = train["grad_norm"].to_numpy(dtype="float64")
    rate = train["learning_rate"].to_numpy(dtype="float64")
    if len(rate) < 3 or np.nanmax(rate) == np.nanmin(rate):
        return []  # a constant learning rate cannot tell a skipped step
    bad = [i for i in range(1, len(grad)) if not math.isfinite(grad[i]) and math.isfinite(rate[i])
           and rate[i] == rate[i - 1]]
    if grad.size and not math.isfinite(grad[0]) and math.isfinite(rate[0]) and len(rate) > 1 and rate[1] == rate[0]:
        bad.insert(0, 0)
    if not bad:
        return []
    steps = tuple(int(train["step"].iloc[i]) for i in bad)
    return [Finding("skipped_steps", WARNING, {"count": len(steps)}, steps=steps[:20], subject="grad_norm")]


def _non_finite(run: TrainingRun, f: Figures, s: AnalysisSettings) -> list[Finding]:
    return [Finding("non_finite", WARNING, {"step": item.step, "count": item.count}, subject=item.column)
            for item in f.non_finite]


# --- evaluation --------------------------------------------------------------------------------------


def _eval_loss(run: TrainingRun, f: Figures, s: AnalysisSettings) -> list[Finding]:
    """Eval loss rising after its minimum, or flat while the train loss falls: the model stopped generalising."""
    if f.kind == "rl":
        return []
    evals = finite_series(run.eval, "eval_loss")
    if len(evals) < 3:
        return []
    first, last = float(evals.iloc[0]), float(evals.iloc[-1])
    best, best_step = float(evals.min()), as_step(evals.idxmin())
    found = []
    if best > 0 and best_step < as_step(evals.index[-1]) and last > best * (1 + s.comparable_tolerance):
        found.append(Finding("eval_loss_rising", WARNING, {"best": best, "best_step": best_step, "last": last,
                                                           "last_step": as_step(evals.index[-1]),
                                                           "rise": last / best - 1}))
    loss = finite_series(run.train, "loss")
    if len(loss) >= MIN_ROWS_FOR_TRENDS and first > 0 and not found:
        level = loss_level(loss)
        during = level[(level.index >= evals.index[0]) & (level.index <= evals.index[-1])]
        if len(during) >= 2 and during.iloc[-1] > 0:
            train_factor = float(during.iloc[0] / during.iloc[-1])
            gain = (first - best) / first
            if train_factor >= EVAL_FLAT_TRAIN_FACTOR and gain < EVAL_FLAT_GAIN:
                found.append(Finding("eval_loss_flat", WARNING, {
                    "train_from": float(during.iloc[0]), "train_to": float(during.iloc[-1]),
                    "train_factor": train_factor, "eval_first": first, "eval_best": best, "gain": gain,
                    "from_step": as_step(evals.index[0]), "to_step": as_step(evals.index[-1])}))
    return found


def _preference_gap(run: TrainingRun, f: Figures, s: AnalysisSettings) -> list[Finding]:
    train = finite_series(run.train, "rewards/accuracies")
    evals = finite_series(run.eval, "eval_rewards/accuracies")
    if len(train) < 2 or len(evals) < 1:
        return []
    # Train accuracy over the steps since the last-but-one evaluation, against the last evaluation.
    last_eval_step = as_step(evals.index[-1])
    previous = as_step(evals.index[-2]) if len(evals) > 1 else as_step(train.index[0]) - 1
    recent = train[(train.index > previous) & (train.index <= last_eval_step)]
    if not len(recent):
        return []
    train_value, eval_value = float(recent.mean()), float(evals.iloc[-1])
    if train_value - eval_value < PREFERENCE_GAP:
        return []
    return [Finding("preference_accuracy_gap", WARNING, {"train": train_value, "eval": eval_value,
                                                         "step": last_eval_step, "from_step": previous + 1})]


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
    return found[:3]


def _eval_stopped(run: TrainingRun, f: Figures, s: AnalysisSettings) -> list[Finding]:
    steps = np.unique(run.eval["step"].to_numpy(dtype="int64")) if len(run.eval) else np.array([], dtype="int64")
    if len(steps) < 2 or f.steps <= 0:
        return []
    interval = float(np.median(np.diff(steps)))
    gap = f.steps - int(steps[-1])
    if interval <= 0 or gap <= EVAL_LATE_INTERVALS * interval:
        return []
    return [Finding("eval_stopped_early", WARNING, {"last_eval_step": int(steps[-1]), "steps": f.steps,
                                                   "gap": gap, "interval": interval})]


def _metrics_disagree(run: TrainingRun, f: Figures, s: AnalysisSettings) -> list[Finding]:
    changes = []
    for metric in f.eval_metrics:
        if metric.direction is None or metric.rows < 2 or kinds.LANGUAGE_MODEL_EVAL.fullmatch(metric.column):
            continue
        series = finite_series(run.eval, metric.column)
        first, last = float(series.iloc[0]), float(series.iloc[-1])
        if first == 0:
            continue
        gain = (last - first) / abs(first) * (1 if metric.direction == "max" else -1)
        changes.append((metric.column, gain, first, last))
    better = [c for c in changes if c[1] >= DISAGREE_CHANGE]
    worse = [c for c in changes if c[1] <= -DISAGREE_CHANGE]
    if not better or not worse:
        return []
    best = max(better, key=lambda c: c[1])
    worst = min(worse, key=lambda c: c[1])
    return [Finding("eval_metrics_disagree", WARNING, {
        "better_first": best[2], "better_last": best[3], "worse_first": worst[2], "worse_last": worst[3]},
        subject=f"{best[0]} / {worst[0]}")]


# --- kinds: RL and preference ------------------------------------------------------------------------


def _rl_signal(run: TrainingRun, f: Figures, s: AnalysisSettings) -> list[Finding]:
    """GRPO learns from the spread of rewards within a group: no spread, no gradient."""
    if f.kind != "rl":
        return []
    zero_std = finite_series(run.train, "frac_reward_zero_std")
    reward_std = finite_series(run.train, "reward_std")
    reward = finite_series(run.train, "reward")
    values: dict[str, float] = {}
    if len(zero_std):
        values["zero_spread_share"] = float((zero_std >= 1.0).mean())
        values["mean_frac_reward_zero_std"] = float(zero_std.mean())
    elif len(reward_std):
        values["zero_spread_share"] = float((reward_std == 0).mean())
    if len(reward):
        values["zero_reward_share"] = float((reward == 0).mean())
    shares = [values.get("zero_spread_share", 0.0), values.get("zero_reward_share", 0.0)]
    if not values or max(shares) < NO_SIGNAL_SHARE:
        return []
    kl = finite_series(run.train, "kl")
    if len(kl):
        values["max_kl"] = float(kl.max())
    values["rows"] = float(max(len(zero_std), len(reward_std), len(reward)))
    return [Finding("rl_no_signal", WARNING, values)]


def _rejected_only(run: TrainingRun, f: Figures, s: AnalysisSettings) -> list[Finding]:
    """DPO widening the margin by pushing the rejected answers down while the chosen ones fall too."""
    margin, chosen, rejected = (f.series_for(c) for c in ("rewards/margins", "rewards/chosen", "rewards/rejected"))
    if margin is None or chosen is None or rejected is None or min(margin.rows, chosen.rows) < MIN_ROWS_FOR_TRENDS:
        return []
    if margin.trend != "rose" or chosen.trend != "fell" or chosen.tail_mean >= 0:
        return []
    return [Finding("chosen_reward_falling", WARNING, {
        "margin_from": margin.head_mean, "margin_to": margin.tail_mean, "chosen_from": chosen.head_mean,
        "chosen_to": chosen.tail_mean, "rejected_from": rejected.head_mean, "rejected_to": rejected.tail_mean})]


# --- where the run stands ------------------------------------------------------------------------------


def _schedule(run: TrainingRun, f: Figures, s: AnalysisSettings) -> list[Finding]:
    global_step = run.global_step
    max_steps = _finite(run.state.get("max_steps"))
    if global_step is None or max_steps is None or max_steps <= 0 or global_step >= max_steps:
        return []
    share = global_step / max_steps
    severity = WARNING if share < SCHEDULE_SHARE else NOTE
    return [Finding("before_max_steps", severity, {"step": global_step, "max_steps": max_steps, "share": share})]


def _from_scratch(run: TrainingRun, f: Figures, s: AnalysisSettings) -> list[Finding]:
    vocab = run.vocab_size
    if f.kind != "sft" or f.start_loss is None or vocab is None or vocab < 2:
        return []
    uniform = math.log(vocab)
    if abs(f.start_loss - uniform) > SCRATCH_TOLERANCE * uniform:
        return []
    return [Finding("from_scratch", NOTE, {"start": f.start_loss, "vocab_size": vocab, "uniform_loss": uniform})]


RULES: tuple[Rule, ...] = ()
"""Filled below, in the order findings of one severity are shown."""


def find(run: TrainingRun, figures: Figures, settings: AnalysisSettings) -> tuple[Finding, ...]:
    """Every finding of one run: warnings first, then notes, each in catalogue order."""
    with np.errstate(all="ignore"):
        found = [finding for rule in RULES for finding in rule.check(run, figures, settings)]
    return tuple(sorted(found, key=lambda item: item.severity != WARNING))


def _pct(value: float) -> str:
    return f"{value * 100:g}%"


RULES = (
    Rule("non_finite", WARNING, "Non-finite values",
         lambda s: "A logged value is NaN or infinite; the first one of each key is named with its step.", _non_finite),
    Rule("skipped_steps", WARNING, "Skipped optimizer steps",
         lambda s: "`grad_norm` is NaN or infinite on a row where the learning rate did not advance from the row "
                   "before (and the schedule is not constant): mixed-precision loss scaling skipped that update.",
         _skipped_steps),
    Rule("grad_explosion", WARNING, "Gradient explosion",
         lambda s: f"The largest `grad_norm` is at least {EXPLOSION_FACTOR:g} times the run's median grad norm "
                   "(10 or more logged values).", _grad_explosion),
    Rule("loss_spikes", WARNING, "Loss spikes",
         lambda s: f"A logged loss above {s.spike_factor:g} times the median of the {s.spike_window} losses "
                   f"before it that also stands out of the batch noise (see *Loss spikes* above).", _spikes),
    Rule("loss_not_falling", WARNING, "No improvement",
         lambda s: "The last logged loss is not below the first.", _not_falling),
    Rule("loss_rising_at_end", WARNING, "Loss rising at the end",
         lambda s: f"Over the last {_pct(END_WINDOW)} of the logged losses (10 or more), the least-squares slope is "
                   f"at least {END_T:g} standard errors above zero and raises the loss by {_pct(END_CHANGE)} or more "
                   "of its median over that window.", _end_slope),
    Rule("eval_loss_rising", WARNING, "Eval loss rising",
         lambda s: f"The last `eval_loss` is more than {_pct(s.comparable_tolerance)} (`comparable_tolerance`) "
                   "above the lowest, reached earlier (3 or more evaluations): overfitting.", _eval_loss),
    Rule("eval_loss_flat", WARNING, "Eval loss flat while train loss falls",
         lambda s: f"Over the evaluated steps the training loss level fell by a factor of {EVAL_FLAT_TRAIN_FACTOR:g} "
                   f"or more while the best `eval_loss` is less than {_pct(EVAL_FLAT_GAIN)} below the first: "
                   "the training gains do not carry over to held-out data.", lambda r, f, s: []),
    Rule("epoch_step_down", WARNING, "Loss steps down at epoch boundaries",
         lambda s: f"At every epoch boundary, the median loss of the rows just after it (a tenth of an epoch, at "
                   f"least 3) is at least {_pct(EPOCH_DROP)} below that of the rows just before, and at least "
                   f"{EPOCH_CONTRAST:g} times the typical change between such windows inside epochs: the model "
                   "recognises examples it has seen (memorisation).", _epoch_steps),
    Rule("preference_accuracy_gap", WARNING, "Train preference accuracy above eval",
         lambda s: f"The mean train `rewards/accuracies` since the previous evaluation is at least "
                   f"{PREFERENCE_GAP * 100:g} points above the last `eval_rewards/accuracies`.", _preference_gap),
    Rule("eval_stopped_early", WARNING, "Evaluation stopped early",
         lambda s: f"No evaluation in the last {EVAL_LATE_INTERVALS} evaluation intervals (median spacing of the "
                   "evaluated steps) before the checkpoint's step.", _eval_stopped),
    Rule("eval_metrics_disagree", WARNING, "Eval metrics disagree",
         lambda s: f"From the first to the last evaluation, one rated metric improved and another got worse, each by "
                   f"at least {_pct(DISAGREE_CHANGE)} of its first value.", _metrics_disagree),
    Rule("rl_no_signal", WARNING, "No learning signal (RL)",
         lambda s: f"On at least {_pct(NO_SIGNAL_SHARE)} of the logged steps every completion of a group got the "
                   "same reward (`frac_reward_zero_std` = 1, or `reward_std` = 0), or the mean reward was 0: "
                   "GRPO's advantages are then zero and the policy gets no gradient.", _rl_signal),
    Rule("chosen_reward_falling", WARNING, "Margin grows by pushing both answers down",
         lambda s: "The reward margin rose while the chosen reward fell and ended below zero (trends as defined "
                   "above): the model grows less likely to give the preferred answers too.", _rejected_only),
    Rule("before_max_steps", NOTE, "Checkpoint before max_steps",
         lambda s: f"`global_step` is below `max_steps`; a warning below {_pct(SCHEDULE_SHARE)} of it.", _schedule),
    Rule("still_improving", NOTE, "Still improving at the end",
         lambda s: "The same slope as *Loss rising at the end*, falling instead: more steps would likely lower "
                   "the loss further.", lambda r, f, s: []),
    Rule("best_checkpoints_disagree", NOTE, "Best by eval loss is not best by the task metric",
         lambda s: "The step with the lowest `eval_loss` is not the step with the best value of a rated task metric "
                   "(3 or more evaluations).", _best_disagrees),
    Rule("from_scratch", NOTE, "Trained from scratch",
         lambda s: f"An SFT run whose first loss is within {_pct(SCRATCH_TOLERANCE)} of ln(`vocab_size`) from "
                   "config.json: the loss of guessing uniformly, so there was no pretrained base to start from.",
         _from_scratch),
)

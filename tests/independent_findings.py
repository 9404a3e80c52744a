"""Findings re-derived from the raw JSON by their written definitions (methodology page, "Findings").

Nothing from `generator.findings`, `analysis`, `series`, `narrative` or `pages` is
used: the reading of the file is `test_corpus_truth`'s own (train rows, eval rows,
dedup by step, resumes), and each rule below is written from the sentence the
methodology page prints for it. Where a sentence leaves a detail open, the comment
at the rule says which reading was taken.
"""

from __future__ import annotations

import bisect
import html
import json
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import test_corpus_truth as truth

Series = list[tuple[int, float]]
"""(step, finite value) by step."""

# --- thresholds, as printed on the methodology page -------------------------------------------------

EXPLOSION_FACTOR = 50.0
END_WINDOW = 0.2
END_MIN_ROWS = 10
END_Z = 3.0
END_CHANGE = 0.02
EVAL_RISE = 0.10
EVAL_TRAIN_FALL = 0.20
EVAL_FLAT_GAIN = 0.05
NEAR_SHARE = 0.05
EPOCH_MIN_ROWS = 30
EPOCH_DROP = 0.05
EPOCH_POSITIVE = 0.75
PREFERENCE_GAP = 0.10
EVAL_LATE_SHARE = 0.10
NO_SIGNAL_SHARE = 0.5
SCHEDULE_SHARE = 0.5
HIDDEN_RESUME_RATIO = 0.8
STEP_LIST = 20
"""summary.json lists at most this many steps of a finding (its count says how many there are)."""

LOWER_WORDS = {"loss", "wer", "cer", "perplexity", "ppl", "error", "mse", "mae", "rmse"}
HIGHER_PREFIXES = ("accura", "f1", "precision", "recall", "rouge", "bleu", "exact", "auc", "matthews", "mcc",
                   "pearson", "spearman", "meteor", "chrf", "bertscore", "ndcg", "margins")
LANGUAGE_MODEL_EVAL = r"eval_(.+_)?(loss|mean_token_accuracy|entropy|num_tokens|perplexity|ppl)"


@dataclass
class Expected:
    """One finding as the definition makes it: code, severity, subject, the numbers that make it true."""

    code: str
    severity: str
    values: dict[str, float]
    steps: list[int] = field(default_factory=list)
    subject: str = ""


# --- small numerics, written out -----------------------------------------------------------------------


def finite(value: object) -> float | None:
    """A finite JSON number as float; None for anything else (bool, NaN, text, missing)."""
    return float(value) if truth.is_finite(value) else None  # type: ignore[arg-type]


def mean(values: list[float]) -> float:
    return math.fsum(values) / len(values)


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def percentile(values: list[float], share: float) -> float:
    """Linear interpolation between closest ranks (the common 'type 7' percentile)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * share
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def average_ranks(values: list[float]) -> list[float]:
    """1-based ranks, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(series: Series) -> float | None:
    """Rank correlation of the values with their steps; None when a side is constant."""
    if len(series) < 3 or len({value for _, value in series}) < 2:
        return None
    x = average_ranks([float(step) for step, _ in series])
    y = average_ranks([value for _, value in series])
    mx, my = mean(x), mean(y)
    cov = math.fsum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    sx = math.sqrt(math.fsum((a - mx) ** 2 for a in x))
    sy = math.sqrt(math.fsum((b - my) ** 2 for b in y))
    return cov / (sx * sy) if sx and sy else None


def debiased_ema(values: list[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: s_t = sum(w^(t-i) x_i) / sum(w^(t-i)) over i <= t."""
    if weight <= 0:
        return list(values)
    out, numerator, denominator = [], 0.0, 0.0
    for value in values:
        numerator = numerator * weight + value
        denominator = denominator * weight + 1.0
        out.append(numerator / denominator)
    return out


def direction(column: str) -> str | None:
    """Which way is better, from the words of the name (methodology: 'Eval metrics')."""
    words = [w for w in re.split(r"[^a-z0-9]+", column.removeprefix("eval_").lower()) if w]
    if any(word.startswith(HIGHER_PREFIXES) for word in words):
        return "max"
    if any(word in LOWER_WORDS for word in words):
        return "min"
    return None


# --- the run, as read independently ----------------------------------------------------------------------


@dataclass
class Run:
    """One corpus file: test_corpus_truth's reading plus what the findings need."""

    reading: truth.Reading
    summary_row: dict[str, Any]
    kind: str

    @property
    def train(self) -> list[dict[str, Any]]:
        return self.reading.train

    @property
    def evals(self) -> list[dict[str, Any]]:
        return self.reading.evals

    def series(self, column: str, table: str = "train") -> Series:
        rows = self.train if table == "train" else self.evals
        return [(row["step"], float(row[column])) for row in rows if truth.is_finite(row.get(column))]

    @property
    def global_step(self) -> int | None:
        value = finite(self.reading.state.get("global_step"))
        return int(value) if value is not None else None

    @property
    def steps(self) -> int | None:
        return self.reading.steps


def summary_row(folder: Path) -> dict[str, Any]:
    """The end-of-training row of log_history (train_runtime, or train_loss without loss); {} when none."""
    path = truth.source_file(folder)
    if path.name == truth.JSONL_FILE:
        return {}
    found: dict[str, Any] = {}
    for row in json.loads(path.read_text(encoding="utf-8-sig")).get("log_history", []):
        if isinstance(row, dict) and (truth.is_number(row.get("train_runtime")) or ("train_loss" in row and "loss" not in row)):
            found.update(row)
    return found


def read_run(folder: Path) -> Run:
    reading = truth.read_folder(folder)
    return Run(reading, summary_row(folder), reading.kind())


# --- the rules -------------------------------------------------------------------------------------------


def non_finite(run: Run) -> list[Expected]:
    """A logged value is NaN or infinite; the first one of each key is named with its step (and how many)."""
    found = []
    for item in run.reading.non_finite():
        count = sum(1 for row in run.train + run.evals
                    if truth.is_number(row.get(item["column"])) and not math.isfinite(row[item["column"]]))
        found.append(Expected("non_finite", "warning", {"step": item["step"], "count": count}, subject=item["column"]))
    return found


def skipped_steps(run: Run) -> list[Expected]:
    """grad_norm NaN/inf on a row whose learning rate equals the row before (or is 0 on the first row),
    in a run whose learning rate changes. 'The row before' is read as the previous train row."""
    rates = [float(row["learning_rate"]) for row in run.train if truth.is_finite(row.get("learning_rate"))]
    if not rates or max(rates) == min(rates):
        return []
    bad = []
    for i, row in enumerate(run.train):
        grad, rate = row.get("grad_norm"), row.get("learning_rate")
        if not (truth.is_number(grad) and finite(grad) is None) or finite(rate) is None:
            continue
        before = run.train[i - 1].get("learning_rate") if i else None
        if (i == 0 and rate == 0) or (i > 0 and truth.is_finite(before) and rate == before):
            bad.append(row["step"])
    if not bad:
        return []
    return [Expected("skipped_steps", "warning", {"count": len(bad)}, bad[:STEP_LIST], "grad_norm")]


def grad_explosion(run: Run) -> list[Expected]:
    """After the first tenth of the run, a nonzero grad_norm >= 50 x the median of the 20 nonzero grad norms
    logged before it (at least 5 of them; 10 or more nonzero grad norms in all); not for RL."""
    if run.kind == "rl":
        return []
    grad = [(step, value) for step, value in run.series("grad_norm") if value > 0]
    if len(grad) < 10:
        return []
    first, last = grad[0][0], grad[-1][0]
    flagged = []
    for i, (step, value) in enumerate(grad):
        window = [v for _, v in grad[max(0, i - 20):i]]
        if len(window) < 5 or step <= first + (last - first) * 0.1:
            continue
        local = median(window)
        if local > 0 and value >= EXPLOSION_FACTOR * local:
            flagged.append((step, value, local))
    if not flagged:
        return []
    step, top, local = max(flagged, key=lambda item: item[1])
    return [Expected("grad_explosion", "warning", {"max": top, "max_step": step, "median": local,
                                                  "count": len(flagged)}, [s for s, _, _ in flagged][:STEP_LIST])]


def end_slope(run: Run) -> list[Expected]:
    """Last 20% of the logged losses (10 or more): rho x sqrt(n - 1) >= 3 in size and the second half's
    median >= 2% away from the first half's, in the same direction. Not for RL (no loss reading)."""
    if run.kind == "rl":
        return []
    loss = run.series("loss")
    count = int(len(loss) * END_WINDOW)
    if count < END_MIN_ROWS:
        return []
    tail = loss[-count:]
    rho = spearman(tail)
    if rho is None:
        return []
    z = rho * math.sqrt(count - 1)
    half = count // 2
    first, second = median([v for _, v in tail[:half]]), median([v for _, v in tail[half:]])
    if first <= 0:
        return []
    change = second / first - 1
    if abs(z) < END_Z or abs(change) < END_CHANGE or (z < 0) != (change < 0):
        return []
    if change < 0 and second < 0.01 * loss[0][1]:
        return []  # the methodology: not when the second half's median is below 1% of the first logged loss
    values = {"from_step": tail[0][0], "to_step": tail[-1][0], "change": change, "first_half_median": first,
              "second_half_median": second, "z": z}
    if change < 0:
        return [Expected("still_improving", "note", values)]
    return [Expected("loss_rising_at_end", "warning", values)]


def _mean_near(loss: Series, step: int, span: int) -> float | None:
    near = [value for s, value in loss if step - span <= s <= step + span]
    return mean(near) if near else None


def eval_loss(run: Run, min_losses: int = 10) -> list[Expected]:
    """Eval loss rising after its minimum, else flat over the second half of the evaluations while the
    train loss falls. 'Around a step' is +/- 5% of the logged loss steps' span (at least 1 step).

    `min_losses`: the page does not state a minimum number of train losses; the implementation
    asks for 10 (see the tests for the corpus files where that matters)."""
    if run.kind == "rl":
        return []
    # The methodology: eval_loss and each eval set's eval_<set>_loss, each on its own.
    columns = sorted({key for row in run.evals for key in row
                      if key == "eval_loss" or re.fullmatch(r"eval_[A-Za-z0-9]+_loss", key)})
    return [found for column in columns for found in _eval_loss_of(run, column, min_losses)]


def _eval_loss_of(run: Run, column: str, min_losses: int) -> list[Expected]:
    evals, loss = run.series(column, "eval"), run.series("loss")
    if len(evals) < 3 or len(loss) < max(1, min_losses):
        return []
    last_step, last = evals[-1]
    best = min(value for _, value in evals)
    best_step = next(step for step, value in evals if value == best)
    tenth = max(1, len(loss) // 10)
    train_end = mean([value for _, value in loss[-tenth:]])
    span = max(1, int((loss[-1][0] - loss[0][0]) * NEAR_SHARE))
    after_best = sum(1 for step, _ in evals if step > best_step)
    train_at_best = _mean_near(loss, best_step, span)
    if (best > 0 and after_best >= 2 and last >= best * (1 + EVAL_RISE) and train_at_best
            and train_end <= train_at_best * (1 - EVAL_TRAIN_FALL)):
        return [Expected("eval_loss_rising", "warning", {
            "best": best, "best_step": best_step, "last": last, "last_step": last_step, "rise": last / best - 1,
            "train_at_best": train_at_best, "train_end": train_end}, subject=column)]
    second = evals[len(evals) // 2:]
    if len(second) < 2:
        return []
    (from_step, eval_from), (to_step, eval_to) = second[0], second[-1]
    train_from, train_to = _mean_near(loss, from_step, span), _mean_near(loss, to_step, span)
    if not eval_from > 0 or not train_from or train_to is None:
        return []
    eval_change, train_change = eval_to / eval_from - 1, train_to / train_from - 1
    if eval_change > -EVAL_FLAT_GAIN and train_change <= -EVAL_TRAIN_FALL:
        return [Expected("eval_loss_flat", "warning", {
            "from_step": from_step, "to_step": to_step, "eval_from": eval_from, "eval_to": eval_to,
            "eval_change": eval_change, "train_from": train_from, "train_to": train_to,
            "train_change": train_change}, subject=column)]
    return []


def epoch_step_down(run: Run) -> list[Expected]:
    """Relative drop of the mean of the K loss rows before each epoch boundary to the K rows after it."""
    if run.kind == "rl":
        return []
    rows = [(row["step"], float(row["epoch"]), float(row["loss"])) for row in run.train
            if truth.is_finite(row.get("loss")) and truth.is_finite(row.get("epoch"))]
    if len(rows) < 2 or rows[-1][1] - rows[0][1] < 1:
        return []
    epochs, losses = [e for _, e, _ in rows], [v for _, _, v in rows]
    per_epoch = len(rows) / (epochs[-1] - epochs[0])
    if per_epoch < EPOCH_MIN_ROWS:
        return []
    window = min(20, max(3, round(per_epoch / 10)))
    # A boundary is a whole epoch b after the first logged epoch; its cut is the first row past epoch b
    # (the row logged at b.0 is the last step of epoch b).
    boundaries = range(math.floor(epochs[0]) + 1, math.floor(epochs[-1]) + 1)
    cuts = [next((i for i, e in enumerate(epochs) if e > b + 1e-9), len(epochs)) for b in boundaries]
    cuts = [cut for cut in cuts if window <= cut <= len(rows) - window]
    if not cuts:
        return []

    def drop(cut: int) -> float:
        before = mean(losses[cut - window:cut])
        return (before - mean(losses[cut:cut + window])) / before if before > 0 else 0.0

    drops = [drop(cut) for cut in cuts]
    away = [drop(cut) for cut in range(window, len(rows) - window + 1, window)
            if all(abs(cut - boundary) >= window for boundary in cuts)]
    noise = percentile(away, 0.9) if away else 0.0
    middle = median(drops)
    if middle < EPOCH_DROP or sum(d > 0 for d in drops) / len(drops) < EPOCH_POSITIVE or middle <= noise:
        return []
    return [Expected("epoch_step_down", "warning", {
        "boundaries": len(drops), "median_drop": middle, "min_drop": min(drops), "max_drop": max(drops),
        "noise_p90": noise}, [rows[cut - 1][0] for cut in cuts])]


def preference_gap(run: Run, min_rows: int = 10) -> list[Expected]:
    """Mean train rewards/accuracies over its last tenth >= 10 points above the last eval one."""
    train, evals = run.series("rewards/accuracies"), run.series("eval_rewards/accuracies", "eval")
    if len(train) < max(1, min_rows) or not evals:
        return []
    tail = train[-max(1, len(train) // 10):]
    value = mean([v for _, v in tail])
    if value - evals[-1][1] < PREFERENCE_GAP:
        return []
    return [Expected("preference_accuracy_gap", "warning", {
        "train": value, "eval": evals[-1][1], "step": evals[-1][0], "from_step": tail[0][0],
        "to_step": tail[-1][0]})]


def eval_stopped_early(run: Run) -> list[Expected]:
    """Two or more evaluations (of eval_loss, else any eval row), none in the last 10% of the steps."""
    steps = [step for step, _ in run.series("eval_loss", "eval")]
    if len(steps) < 2:
        steps = [row["step"] for row in run.evals]
    total = run.steps
    if len(steps) < 2 or total is None or total <= 0:
        return []
    gap = total - steps[-1]
    if gap < EVAL_LATE_SHARE * total:
        return []
    return [Expected("eval_stopped_early", "warning", {"last_eval_step": steps[-1], "steps": total, "gap": gap,
                                                        "share": gap / total})]


def rl_no_signal(run: Run, min_rows: int = 5) -> list[Expected]:
    """RL: the first of frac_reward_zero_std (= 1), zero_std_ratio (= 1), reward_std (= 0) that is logged;
    at least half its rows at that value. 'Logged' is read as 5 or more finite values (the trend minimum)."""
    if run.kind != "rl":
        return []
    for column, dead in (("frac_reward_zero_std", 1.0), ("zero_std_ratio", 1.0), ("reward_std", 0.0)):
        series = run.series(column)
        if len(series) >= min_rows:
            share = sum(1 for _, v in series if v == dead) / len(series)
            break
    else:
        return []
    if share < NO_SIGNAL_SHARE:
        return []
    values: dict[str, float] = {"zero_spread_share": share, "rows": len(series)}
    reward = run.series("reward")
    if reward:
        values["zero_reward_share"] = sum(1 for _, v in reward if v == 0) / len(reward)
    kl = run.series("kl")
    if kl and max(v for _, v in kl) > 0:
        values["max_kl"] = max(v for _, v in kl)
    return [Expected("rl_no_signal", "warning", values, subject=column)]


def before_max_steps(run: Run) -> list[Expected]:
    """global_step below max_steps: a note, a warning below 50% of it."""
    global_step, max_steps = run.global_step, finite(run.reading.state.get("max_steps"))
    if global_step is None or max_steps is None or max_steps <= 0 or global_step >= max_steps:
        return []
    share = global_step / max_steps
    if share >= 0.99:  # the methodology: below 99% of max_steps
        return []
    return [Expected("before_max_steps", "warning" if share < SCHEDULE_SHARE else "note",
                     {"step": global_step, "max_steps": float(max_steps), "share": share})]


def hidden_resume(run: Run) -> list[Expected]:
    """train_loss < 0.8 x the step-weighted mean of the logged losses (each loss weighs the steps since the
    row before it); resumed at the row after which the logged losses x widths add up to train_loss x
    global_step. Only for a run with 10 or more losses whose steps never go back (else it is no hidden resume)."""
    train_loss, global_step = finite(run.summary_row.get("train_loss")), run.global_step
    loss = run.series("loss")
    if train_loss is None or global_step is None or global_step <= 0 or len(loss) < 10:
        return []
    if run.reading.resumed:
        return []
    widths = [step - (loss[i - 1][0] if i else 0) for i, (step, _) in enumerate(loss)]
    weighted = [value * width for (_, value), width in zip(loss, widths, strict=True)]
    logged_mean = math.fsum(weighted) / sum(widths)
    if logged_mean <= 0 or train_loss >= HIDDEN_RESUME_RATIO * logged_mean:
        return []
    target = train_loss * global_step
    from_end = [math.fsum(weighted[i:]) for i in range(len(weighted))]
    position = min(range(len(from_end)), key=lambda i: (abs(from_end[i] - target), i))
    resumed_at = loss[position - 1][0] if position > 0 else 0
    return [Expected("hidden_resume", "note", {"train_loss": float(train_loss), "logged_mean": logged_mean,
                                               "resumed_at": resumed_at, "global_step": global_step})]


def best_checkpoints_disagree(run: Run) -> list[Expected]:
    """Lowest eval_loss step (3 or more evaluations) is not the best step of a rated task metric (3 or more,
    not a language-model eval key); both values are given (the metric's value at the loss's best step)."""
    series = run.reading.eval_series()
    losses = series.get("eval_loss", [])
    if len(losses) < 3:
        return []
    lowest = min(v for _, v in losses)
    loss_best = next(step for step, v in losses if v == lowest)
    found = []
    for column in sorted(series):
        values, better = series[column], direction(column)
        if better is None or len(values) < 3 or re.fullmatch(LANGUAGE_MODEL_EVAL, column):
            continue
        best = (min if better == "min" else max)(v for _, v in values)
        best_step = next(step for step, v in values if v == best)
        at_loss_best = dict(values).get(loss_best)
        if best_step == loss_best or at_loss_best is None:
            continue
        found.append(Expected("best_checkpoints_disagree", "note", {
            "loss_best_step": loss_best, "metric_best_step": best_step, "metric_best": best,
            "metric_at_loss_best": at_loss_best}, subject=column))
    return found


RULES = {
    "non_finite": non_finite,
    "skipped_steps": skipped_steps,
    "grad_explosion": grad_explosion,
    "end_slope": end_slope,
    "eval_loss": eval_loss,
    "epoch_step_down": epoch_step_down,
    "preference_accuracy_gap": preference_gap,
    "eval_stopped_early": eval_stopped_early,
    "rl_no_signal": rl_no_signal,
    "before_max_steps": before_max_steps,
    "hidden_resume": hidden_resume,
    "best_checkpoints_disagree": best_checkpoints_disagree,
}
CHECKED_CODES = frozenset({
    "non_finite", "skipped_steps", "grad_explosion", "still_improving", "loss_rising_at_end", "eval_loss_rising",
    "eval_loss_flat", "epoch_step_down", "preference_accuracy_gap", "eval_stopped_early", "rl_no_signal",
    "before_max_steps", "hidden_resume", "best_checkpoints_disagree",
})
"""The codes re-derived here: summary.json must list one exactly when a rule above finds it."""


def expected_findings(run: Run) -> list[Expected]:
    return [finding for rule in RULES.values() for finding in rule(run)]


# --- convergence ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeedThresholds:
    weight: float
    very_fast: float
    fast: float
    steady: float
    high_start: float


def thresholds_from_methodology(text: str) -> SpeedThresholds:
    """The smoothing weight and the speed classes' thresholds as the methodology page prints them."""
    def number(pattern: str) -> float:
        match = re.search(pattern, text)
        assert match, f"the methodology page does not state {pattern!r}"
        return float(match.group(1))

    return SpeedThresholds(
        weight=number(r"debiased exponential moving average with weight \*\*([\d.]+)\*\*"),
        very_fast=number(r"at least ([\d.]+) is Very Fast"),
        fast=number(r"at least ([\d.]+) Fast \(`fast`\)"),
        steady=number(r"at least ([\d.]+) Steady"),
        high_start=number(r"start loss is at least \*\*([\d.]+)\*\* \(`high_start_loss`\)"),
    )


def fall_rate(run: Run, weight: float) -> float | None:
    """(smoothed first - smoothed last) / (last step - first step) x 100; None for RL or under 5 losses."""
    loss = run.series("loss")
    if run.kind == "rl" or len(loss) < 5 or loss[-1][0] == loss[0][0]:
        return None
    smoothed = debiased_ema([v for _, v in loss], weight)
    rate = (smoothed[0] - smoothed[-1]) / (loss[-1][0] - loss[0][0]) * 100
    return rate if math.isfinite(rate) else None


def convergence(rate: float | None, start_loss: float | None, t: SpeedThresholds) -> str:
    """The class the page names; '(High Initial Gap)' added to a speed class for a start loss >= high_start."""
    if rate is None:
        return "n/a"
    if rate <= 0:
        return "No improvement"
    speed = ("Very Fast" if rate >= t.very_fast else "Fast" if rate >= t.fast
             else "Steady" if rate >= t.steady else "Slow")
    return f"{speed} (High Initial Gap)" if start_loss is not None and start_loss >= t.high_start else speed


# --- the page's numbers -----------------------------------------------------------------------------------

NUMBER = re.compile(r"(?<![\w./])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:e[-+]?\d+)?%?(?![\w/])")
"""A number as the page writes it (1,234 / 0.2863 / 1.5e-05 / 28.6%), not one inside a name (eval_g0)."""


def shown_numbers(sentence: str, subject: str) -> list[str]:
    """The numbers of a sentence, leaving out the finding's subject (a column name may hold digits)."""
    text = sentence.replace("\\", "")
    for part in filter(None, [subject, *re.split(r"\s*/\s*", subject)]):
        text = text.replace(part, " ")
    return NUMBER.findall(text)


def derived(values: list[float]) -> list[float]:
    """A finding's numbers and what a sentence may compute from them: ratios, relative changes, differences,
    their negatives."""
    out = list(values)
    for a in values:
        out += [-a, 1 - a]
        for b in values:
            if b:
                out += [a / b, a / b - 1]
            out.append(a - b)
    return out


def traceable(shown: str, candidates: list[float], constants: tuple[float, ...]) -> bool:
    """Whether `shown` is some candidate after the page's rounding (half a unit of its last digit)."""
    text = shown.replace(",", "").lstrip("+")
    percent = text.endswith("%")
    text = text.rstrip("%")
    mantissa, _, exponent = text.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    value = float(text)
    half = 0.5 * 10.0 ** (int(exponent or 0) - decimals)
    if percent:
        value, half = value / 100, half / 100
    pool = [*candidates, *constants]
    return any(math.isfinite(c) and abs(c - value) <= half * (1 + 1e-9) + 1e-12 * abs(c) for c in pool)


# --- the loss level: fast fall ended, loss stabilised from ------------------------------------------------


@dataclass(frozen=True)
class ShapeThresholds:
    """The loss level's window and the shape rules' thresholds as the methodology page prints them."""

    level_share: float
    level_min_rows: int
    knee_depth: float
    stable_band: float
    stable_tail: float
    stable_min_rows: int


SHARE_WORDS = {"tenth": 0.1, "fifth": 0.2, "quarter": 0.25, "third": 1 / 3, "half": 0.5}


def shape_from_methodology(text: str) -> ShapeThresholds:
    """Loss level, Fast fall ended and Loss stabilised from, read from their rows of the methodology table."""
    def number(pattern: str) -> str:
        match = re.search(pattern, text)
        assert match, f"the methodology page does not state {pattern!r}"
        return match.group(1)

    return ShapeThresholds(
        level_share=float(number(r"rolling median of the logged loss over ([\d.]+)% of the logged rows")) / 100,
        level_min_rows=int(number(r"of the logged rows \(at least (\d+)\)")),
        knee_depth=float(number(r"farthest below the straight line from the first to the last row, at least "
                                r"([\d.]+) below it")),
        stable_band=float(number(r"within a span of \*\*([\d.]+)%\*\* \(`stable_band`\)")) / 100,
        stable_tail=SHARE_WORDS[number(r"only settles in the last (\w+) of the rows")],
        stable_min_rows=int(number(r"or with fewer than (\d+) losses")),
    )


def level_window(rows: int, t: ShapeThresholds) -> int:
    """Rows of the centred median: the share of the logged rows (whole rows, at least the minimum), odd."""
    width = max(t.level_min_rows, int(rows * t.level_share + 1e-9))  # 1% of 2900 rows is 29, not 28.99...
    return width if width % 2 else width + 1


def loss_level(values: list[float], width: int) -> list[float]:
    """Centred rolling median over `width` rows; at the ends, over the rows of the window that exist."""
    half = width // 2
    return [median(values[max(0, i - half):i + half + 1]) for i in range(len(values))]


def fall_end(run: Run, t: ShapeThresholds) -> int | None:
    """Kneedle: steps and level scaled to [0, 1]; the row farthest below the chord from the first row to the
    last, at least `knee_depth` below it (vertically, in the scaled units); none when the level does not fall
    from the first row to the last. 'Below' is read as the vertical distance to the chord; the page gives no
    minimum of rows, the stabilisation's (5 losses) is taken."""
    loss = run.series("loss")
    if run.kind == "rl" or len(loss) < t.stable_min_rows:
        return None
    steps = [step for step, _ in loss]
    level = loss_level([v for _, v in loss], level_window(len(loss), t))
    low, high = min(level), max(level)
    if not level[-1] < level[0] or high == low or steps[-1] == steps[0]:
        return None
    x = [(s - steps[0]) / (steps[-1] - steps[0]) for s in steps]
    y = [(v - low) / (high - low) for v in level]
    below = [y[0] + (y[-1] - y[0]) * xi - yi for xi, yi in zip(x, y, strict=True)]
    deepest = max(range(len(below)), key=lambda i: (below[i], -i))
    return steps[deepest] if below[deepest] >= t.knee_depth else None


def stabilised(run: Run, t: ShapeThresholds) -> int | None:
    """The first step from which the level stays within `stable_band` x its value there until the end; none
    in the last fifth of the rows, under the minimum of losses, or when the loss is still moving at the end
    (a still_improving or loss_rising_at_end finding).

    'Stays within 10% of its value there' is read as: the level's whole range from that row to the end is
    at most 10% of its value there (a band 10% wide; traindocs' reading). The other reading, never more than
    10% away from it on either side (a band 20% wide), gives an earlier step on 17 corpus files. 'The last
    fifth of the rows' is the rows from index n - ceil(n / 5) on."""
    loss = run.series("loss")
    if run.kind == "rl" or len(loss) < t.stable_min_rows or end_slope(run):
        return None
    level = loss_level([v for _, v in loss], level_window(len(loss), t))
    highest, lowest = [0.0] * len(level), [0.0] * len(level)
    top, bottom = -math.inf, math.inf
    for i in range(len(level) - 1, -1, -1):
        top, bottom = max(top, level[i]), min(bottom, level[i])
        highest[i], lowest[i] = top, bottom
    last_allowed = len(level) - math.ceil(len(level) * t.stable_tail)  # rows from this index on are the tail
    for i, value in enumerate(level[:last_allowed]):
        band = t.stable_band * abs(value)
        if highest[i] - lowest[i] <= band:
            return loss[i][0]
    return None


# --- the Analysis section's numbers -----------------------------------------------------------------------

IDENTIFIER = re.compile(r"(?<![\d.])[A-Za-z_]\w*(?:[-/.]\w+)*")
"""A key or name as the page writes it (eval_g0_loss, rouge-1, rewards/f1_reward/mean, Qwen2.5-7B)."""


def analysis_bullets(page: str) -> list[str]:
    """The bullets of the page's '## Analysis' section, as a reader sees them (entities and escapes undone)."""
    if "## Analysis" not in page:
        return []
    section = page.split("## Analysis", 1)[1].split("\n## ", 1)[0]
    return [html.unescape(line[2:]).replace("\\", "") for line in section.splitlines() if line.startswith("- ")]


def sentence_numbers(sentence: str) -> list[str]:
    """The numbers a sentence states, leaving out the digits inside names (eval_g0_loss, bleu-4)."""
    return NUMBER.findall(IDENTIFIER.sub(lambda m: " " if re.search(r"\d", m.group()) else m.group(), sentence))


def shown_interval(shown: str) -> tuple[float, float, bool]:
    """The values a shown number may stand for after the page's rounding (half a unit of its last digit),
    as a closed interval, and whether the page wrote its sign (then the sign must agree)."""
    text = shown.replace(",", "")
    signed = text[0] in "+-"
    percent = text.endswith("%")
    text = text.rstrip("%")
    mantissa, _, exponent = text.lower().lstrip("+").partition("e")
    decimals = len(mantissa.partition(".")[2])
    value = float(text)
    half = 0.5 * 10.0 ** (int(exponent or 0) - decimals)
    if percent:
        value, half = value / 100, half / 100
    slack = half * 1e-9 + 1e-12 * abs(value)
    return value - half - slack, value + half + slack, signed


def unit(key: str) -> str | None:
    """The unit of a top-level figure, from its name: optimizer steps (steps, start_step, fall_end_step...),
    loss (start_loss, smoothed_end, fall_end_level, eval_loss_min...), else none (no derivation)."""
    if key == "steps" or key.endswith(("_step", "_steps")):
        return "step"
    if "loss" in key or "level" in key or key.startswith("smoothed"):
        return "loss"
    return None


def walk_numbers(document: object) -> tuple[dict[str, float], list[float]]:
    """(the top level's scalars by key, every other number) of a JSON document; bools and non-finite values
    are not figures, a list's length is one."""
    top: dict[str, float] = {}
    nested: list[float] = []

    def visit(node: object, depth: int) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, item in items:
            number = float(item) if truth.is_finite(item) else float(len(item)) if isinstance(item, list) else None
            if number is not None and depth == 0 and isinstance(key, str):
                top[key] = number
            elif number is not None:
                nested.append(number)
            visit(item, depth + 1)

    visit(document, 0)
    return top, nested


@dataclass
class Tracer:
    """Every number of a model's figures (figures.json's "figures" and its summary.json entry) and the
    simple derivations a sentence may state from them.

    A shown number is traced when, after the page's rounding, it is one of those numbers, a definition
    constant, or a derivation of top-level figures of one unit: the difference of two step figures (a span),
    a step figure's share of the steps (a / steps, a / steps - 1), the relative change of two losses
    (a / b - 1). An unsigned shown
    number may be the size of a negative one ('0.07 below', '1% above the start')."""

    top: dict[str, float]
    nested: list[float]
    constants: tuple[float, ...]
    direct: list[float] = field(init=False)
    pools: list[list[float]] = field(init=False)

    def __post_init__(self) -> None:
        self.direct = sorted({*self.top.values(), *self.nested, *self.constants})
        self.pools = [sorted({value for key, value in self.top.items() if unit(key) == kind})
                      for kind in ("step", "loss")]

    @staticmethod
    def _any_in(ordered: list[float], low: float, high: float) -> bool:
        i = bisect.bisect_left(ordered, low)
        return i < len(ordered) and ordered[i] <= high

    def _pair(self, pool: list[float], denominators: list[float], low: float, high: float,
              differences: bool, shifts: tuple[float, ...]) -> bool:
        """Whether some a - b of the pool (when `differences`), or a / b - shift with a of the pool and b among
        the denominators (shift 0: a ratio, shift 1: a relative change), is in [low, high]."""
        if differences and any(self._any_in(pool, low + b, high + b) for b in pool):
            return True
        for b in denominators:
            for shift in shifts if b else ():
                ends = sorted(((low + shift) * b, (high + shift) * b))
                if self._any_in(pool, ends[0], ends[1]):
                    return True
        return False

    def traced(self, shown: str) -> bool:
        low, high, signed = shown_interval(shown)
        intervals = [(low, high)] if signed else [(low, high), (-high, -low)]
        if any(self._any_in(self.direct, lo, hi) for lo, hi in intervals):
            return True
        steps, losses = self.pools
        total = [self.top["steps"]] if "steps" in self.top else []
        return any(self._pair(steps, total, lo, hi, True, (0.0, 1.0)) or self._pair(losses, losses, lo, hi, False, (1.0,))
                   for lo, hi in intervals)


def tracer(figures: dict[str, Any], summary_model: dict[str, Any], constants: tuple[float, ...],
           trend_share: float, trend_min: int) -> Tracer:
    """The tracer of one model; a series summary's rows also give the count of its first and last tenth."""
    top, nested = walk_numbers(figures)
    summary_top, summary_nested = walk_numbers(summary_model)
    for series in figures.get("series", []) + figures.get("other_metrics", []):
        if isinstance(series, dict) and truth.is_finite(series.get("rows")):
            nested.append(float(max(trend_min, int(series["rows"] * trend_share))))
    return Tracer({**summary_top, **top}, nested + summary_nested, constants)


def analysis_constants(text: str) -> tuple[tuple[float, ...], float, int]:
    """The definition constants an Analysis sentence may state, the trend's share of the rows and its
    minimum of rows, read from the methodology page."""
    def number(pattern: str) -> float:
        match = re.search(pattern, text)
        assert match, f"the methodology page does not state {pattern!r}"
        return float(match.group(1))

    constants = (
        number(r"start loss is at least \*\*([\d.]+)\*\* \(`high_start_loss`\)"),
        number(r"A start loss below \*\*([\d.]+)\*\* \(`low_start_loss`\)"),
        number(r"`loss_levels` \(now: ([\d.]+)"),
        number(r"within a span of \*\*([\d.]+)%\*\* \(`stable_band`\)") / 100,
        number(r"agrees in sign and is at least ([\d.]+) in size"),
        number(r"Spearman rho is at least \*\*([\d.]+)\*\* \(`entropy_consistency`\)"),
        number(r"last tenth of logged values \(at least (\d+) of"),
        number(r"average fall of the smoothed loss per (\d+) optimizer steps"),
    )
    share = SHARE_WORDS[re.search(r"mean of its last (\w+) of logged values", text).group(1)]  # type: ignore[union-attr]
    return constants, share, int(number(r"last tenth of logged values \(at least (\d+) of"))

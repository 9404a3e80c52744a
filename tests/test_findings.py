"""Findings on synthetic runs whose truth is known by construction.

Each family below generates runs from a plainly described shape (a fall to a
plateau, a glide, an eval curve that turns, a resumed session, ...) over a grid
of sizes, logging intervals, noise levels and seeds (a deterministic RNG per
case), and asserts the exact set of finding codes the construction makes true:
`required <= codes <= required | allowed`, where `allowed` is empty unless a
comment says why another code is also true of that construction.

The runs go through the reader's own table builder (`split_log_history`) from
`log_history` rows shaped like the Trainer's, so NaN values, the summary row and
the top-level state are what the reader would hand `analyse` for a written
trainer_state.json.
"""

from __future__ import annotations

import functools
import itertools
import math
import zlib
from collections.abc import Iterable, Sequence

import numpy as np
import pytest

from conftest import run_of_state
from generator import findings
from generator.analysis import analyse
from generator.records import AnalysisSettings, Figures, Finding, Severity, TrainingRun

SETTINGS = AnalysisSettings()
Row = dict[str, float]

CODES = {rule.code for rule in findings.RULES}


# --- building runs --------------------------------------------------------------------------------


def rng_for(*key: object) -> np.random.Generator:
    """A generator seeded from the case's parameters (crc32: `hash` of a str changes between processes)."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def logged_steps(rows: int, every: int) -> np.ndarray:
    """Steps every, 2 * every, ..., rows * every (the Trainer logs at multiples of logging_steps)."""
    return every * np.arange(1, rows + 1, dtype="int64")


def plateau_curve(steps: np.ndarray, knee: float, start: float, level: float, shape: str) -> np.ndarray:
    """A fall from `start` (at step 0) to `level`, reached exactly at step `knee`; flat from there.

    'linear': a straight fall; 'smooth': a half cosine, whose slope eases to 0 at the knee.
    """
    t = np.minimum(steps / knee, 1.0)
    frac = 1 - t if shape == "linear" else (1 + np.cos(np.pi * t)) / 2
    return level + (start - level) * frac


def glide_curve(steps: np.ndarray, start: float, end: float, shape: str) -> np.ndarray:
    """From `start` at step 0 to `end` at the last step, falling all the way: linear or log-linear."""
    t = steps / steps[-1]
    if shape == "linear":
        return start + (end - start) * t
    return start * (end / start) ** t


def noisy(level: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian batch noise with a standard deviation of `noise` x the level."""
    return level * (1 + noise * rng.standard_normal(len(level)))


def schedule(steps: np.ndarray, total: int, peak: float = 2e-4) -> np.ndarray:
    """Linear warm-up over the first 5% of the steps, then cosine decay (the learning rate changes every row)."""
    warm = max(1, total // 20)
    decay = peak * 0.5 * (1 + np.cos(np.pi * (steps - warm) / max(1, total - warm)))
    return np.where(steps < warm, peak * steps / warm, decay)


def sft_rows(steps: np.ndarray, loss: np.ndarray, rng: np.random.Generator, *,
             grad: np.ndarray | None = None, rate: np.ndarray | None = None,
             epoch: np.ndarray | None = None) -> list[Row]:
    """Train rows as the Trainer logs them: loss, grad_norm (lognormal around 0.8), learning_rate, epoch."""
    total = int(steps[-1])
    grad = 0.8 * np.exp(0.15 * rng.standard_normal(len(steps))) if grad is None else grad
    rate = schedule(steps, total) if rate is None else rate
    epoch = steps / total if epoch is None else epoch  # one epoch: the epoch rule has nothing to compare
    return [{"loss": float(loss[i]), "grad_norm": float(grad[i]), "learning_rate": float(rate[i]),
             "epoch": round(float(epoch[i]), 6), "step": int(steps[i])} for i in range(len(steps))]


def weighted_total(rows: Sequence[Row], after: int = 0) -> float:
    """Sum of per-step losses the logged rows stand for (each row's loss x the steps since the row before),
    counting only the steps after `after` (a resumed session's total)."""
    total, last = 0.0, 0
    for row in rows:
        if "loss" not in row:
            continue
        step = int(row["step"])
        if step > after:
            total += row["loss"] * (step - max(last, after))
        last = step
    return total


def build(train: Sequence[Row], evals: Sequence[Row] = (), *, summary: Row | None = None,
          with_summary: bool = True, **state: object) -> TrainingRun:
    """A TrainingRun as the reader makes it from a trainer_state.json with this log_history.

    By default the summary row's train_loss is the step-weighted mean the Trainer computes for a run that
    was not resumed, and global_step = max_steps = the last logged step.
    """
    last = max(int(row["step"]) for row in [*train, *evals])
    top: dict[str, object] = {"global_step": last, "max_steps": last, "logging_steps": int(train[0]["step"])}
    top.update(state)
    history: list[Row] = sorted([*train, *evals], key=lambda row: (row["step"], "eval_loss" in row))
    if with_summary:
        global_step = int(top["global_step"])  # type: ignore[call-overload]
        history.append(summary if summary is not None else
                       {"train_runtime": 1000.0, "train_loss": weighted_total(train) / global_step,
                        "step": global_step, "epoch": float(train[-1].get("epoch", 1.0))})
    return run_of_state({**top, "log_history": history})


def codes_of(figures: Figures) -> set[str]:
    return {item.code for item in figures.findings}


def check(run: TrainingRun, required: Iterable[str], allowed: Iterable[str] = ()) -> Figures:
    """Analyse `run`; its codes must include all of `required` and nothing outside `required | allowed`."""
    required, allowed = set(required), set(allowed)
    assert required | allowed <= CODES, (required | allowed) - CODES
    figures = analyse(run, SETTINGS)
    codes = codes_of(figures)
    shown = [(item.code, item.steps[:5], {k: round(v, 4) for k, v in item.values.items()}) for item in figures.findings]
    assert required <= codes, f"missing {required - codes}; got {shown}"
    assert codes <= required | allowed, f"unexpected {codes - required - allowed}; got {shown}"
    return figures


def finding(figures: Figures, code: str) -> Finding:
    return next(item for item in figures.findings if item.code == code)


def ids(cases: Iterable[tuple[object, ...]]) -> list[str]:
    return ["-".join(str(part) for part in case) for case in cases]


# --- the loss: plateau, glide ---------------------------------------------------------------------

PLATEAU_CASES = list(itertools.product((80, 200, 500), (1, 10), (0.2, 0.4), ("linear", "smooth"),
                                       (0.0, 0.01, 0.02), (0,)))


def plateau_run(rows: int, every: int, knee_share: float, shape: str, noise: float, seed: int,
                start: float = 2.5, level: float = 0.5) -> tuple[TrainingRun, int, np.ndarray]:
    steps = logged_steps(rows, every)
    knee = int(steps[int(rows * knee_share)])
    clean = plateau_curve(steps, knee, start, level, shape)
    rng = rng_for("plateau", rows, every, knee_share, shape, noise, seed)
    return build(sft_rows(steps, noisy(clean, noise, rng), rng)), knee, clean


@pytest.mark.parametrize(("rows", "every", "knee_share", "shape", "noise", "seed"), PLATEAU_CASES,
                         ids=ids(PLATEAU_CASES))
def test_plateau_from_the_knee_is_stabilised_there_and_neither_improving_nor_rising(
        rows: int, every: int, knee_share: float, shape: str, noise: float, seed: int) -> None:
    run, knee, clean = plateau_run(rows, every, knee_share, shape, noise, seed)
    figures = check(run, required=set())
    # The band is part of the definition: the noise-free curve is already within stable_band of its value
    # a little before the knee (the smooth shape eases in); the level's window blurs either end.
    values = clean
    tail_range = np.maximum.accumulate(values[::-1])[::-1] - np.minimum.accumulate(values[::-1])[::-1]
    in_band = int(run.train["step"].iloc[int(np.nonzero(tail_range <= SETTINGS.stable_band * values)[0][0])])
    tolerance = (max(5, rows // 25) | 1) * every  # 4% of the rows (at least 5): no narrower than the level's window
    assert figures.stabilised_step is not None
    assert in_band - tolerance <= figures.stabilised_step <= knee + tolerance, (in_band, knee, figures.stabilised_step)


GLIDE_CASES = list(itertools.product((100, 250, 600), (1, 5), ("linear", "log"), (0.25, 0.5), (0.0, 0.02), (0,)))


@pytest.mark.parametrize(("rows", "every", "shape", "ratio", "noise", "seed"), GLIDE_CASES, ids=ids(GLIDE_CASES))
def test_a_steady_glide_to_the_end_is_still_improving_and_never_stabilised(
        rows: int, every: int, shape: str, ratio: float, noise: float, seed: int) -> None:
    steps = logged_steps(rows, every)
    rng = rng_for("glide", rows, every, shape, ratio, noise, seed)
    loss = noisy(glide_curve(steps, 2.0, 2.0 * ratio, shape), noise, rng)
    figures = check(build(sft_rows(steps, loss, rng)), required={"still_improving"})
    assert figures.stabilised_step is None
    found = finding(figures, "still_improving")
    assert found.severity == Severity.NOTE
    assert found.values["change"] < 0
    assert found.values["to_step"] == steps[-1]


# --- evaluation ------------------------------------------------------------------------------------

EVAL_RISE_CASES = list(itertools.product((100, 300), (1, 5), (0.3, 0.5, 0.6), (0.3, 0.6), (10, 20), (0, 1)))


def eval_rows(steps: np.ndarray, values: np.ndarray) -> list[Row]:
    return [{"eval_loss": float(v), "eval_runtime": 3.0, "epoch": float(s / steps[-1]), "step": int(s)}
            for s, v in zip(steps, values, strict=True)]


@pytest.mark.parametrize(("rows", "every", "turn_share", "rise", "evaluations", "seed"), EVAL_RISE_CASES,
                         ids=ids(EVAL_RISE_CASES))
def test_eval_loss_diverging_from_its_turn_while_train_falls_is_overfitting(
        rows: int, every: int, turn_share: float, rise: float, evaluations: int, seed: int) -> None:
    steps = logged_steps(rows, every)
    total = int(steps[-1])
    rng = rng_for("eval-rise", rows, every, turn_share, rise, evaluations, seed)
    # Train: a log-linear fall 2.0 -> 0.45, still falling at the end (so still_improving is also true).
    train = sft_rows(steps, noisy(glide_curve(steps, 2.0, 0.45, "log"), 0.02, rng), rng)
    eval_steps = np.linspace(0, total, evaluations + 1)[1:].round().astype("int64")
    eval_steps = eval_steps - eval_steps % every  # evaluations happen on logged steps
    turn = int(eval_steps[round(turn_share * evaluations) - 1])
    # Eval: falls 2.1 -> 1.0 until the turn, then rises linearly by `rise` x 1.0 to the end (1% noise).
    clean = np.where(eval_steps <= turn, 2.1 - 1.1 * eval_steps / turn,
                     1.0 * (1 + rise * (eval_steps - turn) / max(1, total - turn)))
    figures = check(build(train, eval_rows(eval_steps, noisy(clean, 0.01, rng))),
                    required={"eval_loss_rising", "still_improving"})
    found = finding(figures, "eval_loss_rising")
    interval = int(eval_steps[1] - eval_steps[0])
    assert abs(found.values["best_step"] - turn) <= interval
    assert found.values["last_step"] == eval_steps[-1]


EVAL_FLAT_CASES = list(itertools.product((100, 300), (1, 5), (0.0, 0.005, 0.01), (10, 20), (0, 1)))


@pytest.mark.parametrize(("rows", "every", "eval_noise", "evaluations", "seed"), EVAL_FLAT_CASES,
                         ids=ids(EVAL_FLAT_CASES))
def test_eval_loss_flat_while_train_falls_fivefold(rows: int, every: int, eval_noise: float, evaluations: int,
                                                    seed: int) -> None:
    steps = logged_steps(rows, every)
    total = int(steps[-1])
    rng = rng_for("eval-flat", rows, every, eval_noise, evaluations, seed)
    # Train: log-linear 2.5 -> 0.5 (5x), still falling at the end: still_improving is also true.
    train = sft_rows(steps, noisy(glide_curve(steps, 2.5, 0.5, "log"), 0.02, rng), rng)
    eval_steps = np.linspace(0, total, evaluations + 1)[1:].round().astype("int64")
    eval_steps = eval_steps - eval_steps % every
    evals = eval_rows(eval_steps, noisy(np.full(len(eval_steps), 1.3), eval_noise, rng))
    figures = check(build(train, evals), required={"eval_loss_flat", "still_improving"})
    found = finding(figures, "eval_loss_flat")
    assert found.values["train_change"] <= -findings.EVAL_TRAIN_FALL
    assert abs(found.values["eval_change"]) < findings.EVAL_FLAT_GAIN


# --- resumed runs -------------------------------------------------------------------------------------

RESUME_CASES = list(itertools.product((100, 300), (5, 10), (0.4, 0.6, 0.8), (True, False), (0, 1)))


@pytest.mark.parametrize(("rows", "every", "resume_share", "aligned", "seed"), RESUME_CASES, ids=ids(RESUME_CASES))
def test_a_resume_the_steps_do_not_show_is_read_from_the_summary_row(
        rows: int, every: int, resume_share: float, aligned: bool, seed: int) -> None:
    steps = logged_steps(rows, every)
    total = int(steps[-1])
    rng = rng_for("resume", rows, every, resume_share, aligned, seed)
    loss = noisy(plateau_curve(steps, int(steps[int(0.3 * rows)]), 2.5, 0.5, "linear"), 0.02, rng)
    train = sft_rows(steps, loss, rng)
    # Resumed from a checkpoint at `resumed`: the old session's rows stay in log_history (no step goes back),
    # and the Trainer divides the new session's losses by all steps. When the checkpoint is not on a logging
    # step, the first new row's loss covers only the steps since the resume.
    resumed = int(steps[int(resume_share * rows) - 1]) + (0 if aligned else every // 2)
    session = weighted_total(train, after=resumed)
    assert session / total < findings.HIDDEN_RESUME_RATIO * weighted_total(train) / total  # the premise
    summary = {"train_runtime": 500.0, "train_loss": session / total, "step": total, "epoch": 1.0}
    figures = check(build(train, summary=summary), required={"hidden_resume"})
    found = finding(figures, "hidden_resume")
    assert found.severity == Severity.NOTE
    assert abs(found.values["resumed_at"] - resumed) <= every, (found.values, resumed)
    assert found.values["global_step"] == total


@pytest.mark.parametrize(("rows", "every", "seed"), list(itertools.product((100, 300), (1, 5, 10), (0, 1))))
def test_a_run_that_was_not_resumed_has_no_hidden_resume(rows: int, every: int, seed: int) -> None:
    steps = logged_steps(rows, every)
    rng = rng_for("not-resumed", rows, every, seed)
    loss = noisy(plateau_curve(steps, int(steps[int(0.3 * rows)]), 2.5, 0.5, "linear"), 0.02, rng)
    run = build(sft_rows(steps, loss, rng))  # summary row: the step-weighted mean of every logged loss
    assert run.summary["train_loss"] > 0
    check(run, required=set())


# --- RL ------------------------------------------------------------------------------------------------

RL_CASES = list(itertools.product((50, 120, 300), (1, 5), (0, 1)))


def grpo_rows(steps: np.ndarray, rng: np.random.Generator, *, dead: np.ndarray, healthy: bool,
              with_zero_std_share: bool = True) -> list[Row]:
    """GRPO rows (TRL): dead rows have one reward for every completion of a group (std 0)."""
    n = len(steps)
    t = steps / steps[-1]
    reward = np.where(dead, 0.0, (0.2 + 0.5 * t if healthy else 0.3) + 0.05 * rng.standard_normal(n))
    reward_std = np.where(dead, 0.0, 0.3 + 0.05 * rng.random(n))
    zero_std = np.where(dead, 1.0, np.round(rng.uniform(0, 0.5, n) * 8) / 8)
    kl = 0.05 * t * (1 + 0.1 * rng.standard_normal(n)) if healthy else 1e-5 * rng.random(n)
    rows: list[Row] = []
    for i in range(n):
        row = {"loss": float(0.04 * kl[i]), "grad_norm": float(0.3 + 0.1 * rng.random()),
               "learning_rate": float(1e-6 * (1 - t[i] / 2)), "reward": float(reward[i]),
               "reward_std": float(reward_std[i]), "kl": float(kl[i]),
               "completions/mean_length": float(200 + 20 * rng.standard_normal()),
               "epoch": float(t[i]), "step": int(steps[i])}
        if with_zero_std_share:
            row["frac_reward_zero_std"] = float(zero_std[i])
        rows.append(row)
    return rows


@pytest.mark.parametrize("with_zero_std_share", [True, False], ids=["frac_reward_zero_std", "reward_std_only"])
@pytest.mark.parametrize(("rows", "every", "seed"), RL_CASES, ids=ids(RL_CASES))
def test_grpo_with_no_reward_spread_on_most_steps_has_no_signal(rows: int, every: int, seed: int,
                                                                 with_zero_std_share: bool) -> None:
    steps = logged_steps(rows, every)
    rng = rng_for("grpo-dead", rows, every, seed)
    dead = np.zeros(rows, dtype=bool)
    dead[rng.permutation(rows)[: round(0.8 * rows)]] = True
    figures = check(build(grpo_rows(steps, rng, dead=dead, healthy=False, with_zero_std_share=with_zero_std_share),
                          with_summary=False), required={"rl_no_signal"})
    found = finding(figures, "rl_no_signal")
    assert found.values["zero_spread_share"] == pytest.approx(0.8, abs=0.5 / rows)
    assert found.subject == ("frac_reward_zero_std" if with_zero_std_share else "reward_std")


@pytest.mark.parametrize(("rows", "every", "seed"), RL_CASES, ids=ids(RL_CASES))
def test_a_healthy_grpo_run_has_no_finding(rows: int, every: int, seed: int) -> None:
    steps = logged_steps(rows, every)
    rng = rng_for("grpo-healthy", rows, every, seed)
    dead = np.zeros(rows, dtype=bool)
    dead[rng.permutation(rows)[: round(0.1 * rows)]] = True  # a tenth of the groups agree: normal
    check(build(grpo_rows(steps, rng, dead=dead, healthy=True), with_summary=False), required=set())


# --- gradients -------------------------------------------------------------------------------------------

GRAD_CASES = list(itertools.product((60, 200), (1, 10), (0.15, 0.5, 0.97), (0, 1)))


def grad_run(rows: int, every: int, at_share: float, seed: int) -> tuple[TrainingRun, int]:
    steps = logged_steps(rows, every)
    rng = rng_for("grad", rows, every, at_share, seed)
    loss = noisy(plateau_curve(steps, int(steps[int(0.3 * rows)]), 2.5, 0.5, "linear"), 0.02, rng)
    grad = 0.8 * np.exp(0.15 * rng.standard_normal(rows))
    at = min(rows - 1, int(at_share * rows))
    grad[at] = 200 * float(np.median(grad))
    return build(sft_rows(steps, loss, rng, grad=grad)), int(steps[at])


@pytest.mark.parametrize(("rows", "every", "at_share", "seed"), GRAD_CASES, ids=ids(GRAD_CASES))
def test_a_grad_norm_200x_the_median_after_the_first_tenth_is_an_explosion(rows: int, every: int, at_share: float,
                                                                           seed: int) -> None:
    run, at = grad_run(rows, every, at_share, seed)
    figures = check(run, required={"grad_explosion"})
    found = finding(figures, "grad_explosion")
    assert found.values["max_step"] == at
    assert found.steps == (at,)


@pytest.mark.parametrize(("rows", "every", "seed"), list(itertools.product((60, 200), (1, 10), (0, 1))))
def test_the_same_spike_inside_the_first_tenth_is_warm_up(rows: int, every: int, seed: int) -> None:
    run, at = grad_run(rows, every, 0.05, seed)
    assert at - every <= 0.1 * (rows - 1) * every  # inside the first tenth of the logged span
    check(run, required=set())


SKIP_CASES = list(itertools.product((60, 200), (1, 10), (1, 3, 6), ("nan", "inf"), (0, 1)))


def skipped_run(rows: int, every: int, count: int, bad: str, seed: int, *, rate_mode: str) -> tuple[TrainingRun, list[int]]:
    steps = logged_steps(rows, every)
    rng = rng_for("skip", rows, every, count, bad, seed, rate_mode)
    loss = noisy(plateau_curve(steps, int(steps[int(0.3 * rows)]), 2.5, 0.5, "linear"), 0.02, rng)
    grad = 0.8 * np.exp(0.15 * rng.standard_normal(rows))
    rate = schedule(steps, int(steps[-1])) if rate_mode != "constant" else np.full(rows, 1e-4)
    where = sorted(int(i) for i in rng.choice(np.arange(2, rows - 1), size=count, replace=False))
    for i in where:
        grad[i] = math.nan if bad == "nan" else math.inf
        if rate_mode == "held":
            rate[i] = rate[i - 1]  # the scheduler did not step: the update was skipped
    return build(sft_rows(steps, loss, rng, grad=grad, rate=rate)), [int(steps[i]) for i in where]


@pytest.mark.parametrize(("rows", "every", "count", "bad", "seed"), SKIP_CASES, ids=ids(SKIP_CASES))
def test_non_finite_grad_norm_where_the_learning_rate_holds_is_a_skipped_step(rows: int, every: int, count: int,
                                                                              bad: str, seed: int) -> None:
    run, where = skipped_run(rows, every, count, bad, seed, rate_mode="held")
    # non_finite is also true: the log holds a NaN / infinite grad_norm.
    figures = check(run, required={"skipped_steps", "non_finite"})
    found = finding(figures, "skipped_steps")
    assert list(found.steps) == where
    assert found.values["count"] == count


@pytest.mark.parametrize("rate_mode", ["advancing", "constant"])
@pytest.mark.parametrize(("rows", "every", "seed"), list(itertools.product((60, 200), (1, 10), (0, 1))))
def test_non_finite_grad_norm_without_a_held_learning_rate_is_not_a_skipped_step(rows: int, every: int, seed: int,
                                                                                 rate_mode: str) -> None:
    run, _ = skipped_run(rows, every, 3, "nan", seed, rate_mode=rate_mode)
    check(run, required={"non_finite"})  # the NaN itself is still reported


# --- epochs -------------------------------------------------------------------------------------------------

EPOCH_CASES = list(itertools.product((2, 3, 4), (30, 60, 120), (0.1, 0.2), (0.01, 0.03), (1, 5)))
STAIRCASE_CASES = EPOCH_CASES


def epoch_run(epochs: int, per_epoch: int, drop: float, noise: float, every: int, *, staircase: bool,
              seed: int = 0) -> TrainingRun:
    """`per_epoch` logged rows per epoch, epoch logged as the Trainer does (1.0 at the last step of epoch 1).

    Staircase: flat within an epoch, down by `drop` for the rows of the next epoch (a row logged at the
    boundary step still averages batches of the epoch before it). Smooth: the same total fall, spread evenly.
    """
    steps = logged_steps(epochs * per_epoch, every)
    per_epoch_steps = per_epoch * every
    epoch = steps / per_epoch_steps
    rng = rng_for("epochs", epochs, per_epoch, drop, noise, every, staircase, seed)
    exponent = np.ceil(epoch - 1e-9) - 1 if staircase else epoch
    loss = noisy(1.2 * (1 - drop) ** exponent, noise, rng)
    return build(sft_rows(steps, loss, rng, epoch=epoch))


@pytest.mark.parametrize(("epochs", "per_epoch", "drop", "noise", "every"), STAIRCASE_CASES, ids=ids(EPOCH_CASES))
def test_loss_stepping_down_at_each_epoch_boundary(epochs: int, per_epoch: int, drop: float, noise: float,
                                                   every: int) -> None:
    figures = check(epoch_run(epochs, per_epoch, drop, noise, every, staircase=True), required={"epoch_step_down"})
    found = finding(figures, "epoch_step_down")
    assert found.values["boundaries"] == epochs - 1
    assert found.steps == tuple(per_epoch * every * b for b in range(1, epochs))


@pytest.mark.parametrize(("epochs", "per_epoch", "drop", "noise", "every"), EPOCH_CASES, ids=ids(EPOCH_CASES))
def test_a_smooth_decline_over_the_same_epochs_has_no_step_down(epochs: int, per_epoch: int, drop: float,
                                                                noise: float, every: int) -> None:
    # The loss still falls at the end (by drop per epoch): still_improving is true, though over the last
    # fifth of a 2-epoch run with a 10% drop per epoch the halves differ by about END_CHANGE only.
    check(epoch_run(epochs, per_epoch, drop, noise, every, staircase=False), required=set(),
          allowed={"still_improving"})


def test_a_clean_seven_percent_staircase_at_thirty_rows_per_epoch() -> None:
    check(epoch_run(3, 30, 0.07, 0.0, 1, staircase=True), required={"epoch_step_down"})


# --- preference -----------------------------------------------------------------------------------------------

PREFERENCE_CASES = list(itertools.product((60, 150, 400), (1, 10), (3.0, 6.0), (0, 1)))


def preference_rows(steps: np.ndarray, rng: np.random.Generator, *, chosen: np.ndarray, margin: np.ndarray,
                    orpo: bool = False) -> list[Row]:
    """DPO / ORPO rows (TRL). The margin saturates before the end, so the loss is flat there."""
    n = len(steps)
    chosen = chosen + 0.03 * rng.standard_normal(n)
    margin = margin * (1 + 0.03 * rng.standard_normal(n))
    accuracy = np.clip(0.5 + 0.45 * (1 - np.exp(-margin)) + 0.03 * rng.standard_normal(n), 0, 1)
    loss = np.log1p(np.exp(-margin)) * (1 + 0.03 * rng.standard_normal(n))
    rows: list[Row] = []
    for i in range(n):
        row = {"loss": float(loss[i]), "grad_norm": float(2 + rng.random()), "learning_rate": 5e-7,
               "rewards/chosen": float(chosen[i]), "rewards/rejected": float(chosen[i] - margin[i]),
               "rewards/margins": float(margin[i]), "rewards/accuracies": float(accuracy[i]),
               "logps/chosen": float(-150 + chosen[i] * 10), "logps/rejected": float(-150 + (chosen[i] - margin[i]) * 10),
               "epoch": float(steps[i] / steps[-1]), "step": int(steps[i])}
        if orpo:
            row.update({"nll_loss": float(1.0 + 0.2 * np.exp(-4 * steps[i] / steps[-1])),
                        "odds_ratio_loss": float(loss[i]), "log_odds_ratio": float(margin[i]),
                        "log_odds_chosen": float(margin[i] / 2)})
        rows.append(row)
    return rows


def saturating(steps: np.ndarray, top: float) -> np.ndarray:
    """0 -> `top`, 99.5% there at 80% of the run."""
    return top * (1 - np.exp(-steps / (0.15 * steps[-1])))


@pytest.mark.parametrize(("rows", "every", "top", "seed"), PREFERENCE_CASES, ids=ids(PREFERENCE_CASES))
def test_dpo_chosen_reward_turning_negative_while_the_margin_grows(rows: int, every: int, top: float,
                                                                   seed: int) -> None:
    steps = logged_steps(rows, every)
    rng = rng_for("dpo-falling", rows, every, top, seed)
    t = steps / steps[-1]
    chosen = np.where(t < 0.2, 0.5 * t / 0.2, 0.5 - 1.1 * (t - 0.2) / 0.8)  # up to 0.5 at 20%, down to -0.6
    figures = check(build(preference_rows(steps, rng, chosen=chosen, margin=saturating(steps, top)),
                          with_summary=False), required={"chosen_reward_falling"})
    found = finding(figures, "chosen_reward_falling")
    assert found.values["chosen_peak"] > 0 > found.values["chosen_end"]
    assert found.values["margin_end"] > found.values["margin_at_peak"]


@pytest.mark.parametrize(("rows", "every", "top", "seed"), PREFERENCE_CASES, ids=ids(PREFERENCE_CASES))
def test_a_healthy_dpo_run_has_no_finding(rows: int, every: int, top: float, seed: int) -> None:
    steps = logged_steps(rows, every)
    rng = rng_for("dpo-healthy", rows, every, top, seed)
    chosen = saturating(steps, 0.4)  # rises to 0.4 and stays
    check(build(preference_rows(steps, rng, chosen=chosen, margin=saturating(steps, top)), with_summary=False),
          required=set())


@pytest.mark.parametrize(("rows", "every", "top", "seed"), PREFERENCE_CASES, ids=ids(PREFERENCE_CASES))
def test_an_orpo_run_whose_scaled_log_probabilities_fall_has_no_finding(rows: int, every: int, top: float,
                                                                        seed: int) -> None:
    # ORPO's rewards are beta x log-probabilities: negative throughout, falling while the margin grows.
    steps = logged_steps(rows, every)
    rng = rng_for("orpo", rows, every, top, seed)
    chosen = -0.08 - 0.05 * steps / steps[-1]
    check(build(preference_rows(steps, rng, chosen=chosen, margin=saturating(steps, top / 10), orpo=True),
                with_summary=False), required=set())


# --- spikes ------------------------------------------------------------------------------------------------------

SPIKE_CASES = list(itertools.product((60, 200), (1, 10), (0.4, 0.6, 0.9), (0.0, 0.02), (0, 1)))


@pytest.mark.parametrize(("rows", "every", "at_share", "noise", "seed"), SPIKE_CASES, ids=ids(SPIKE_CASES))
def test_a_single_isolated_fivefold_jump_is_a_spike(rows: int, every: int, at_share: float, noise: float,
                                                    seed: int) -> None:
    steps = logged_steps(rows, every)
    rng = rng_for("spike", rows, every, at_share, noise, seed)
    clean = plateau_curve(steps, int(steps[int(0.3 * rows)]), 1.5, 0.5, "linear")
    loss = noisy(clean, noise, rng)
    at = int(at_share * rows)
    loss[at] = 5 * clean[at]
    figures = check(build(sft_rows(steps, loss, rng)), required={"loss_spikes"})
    assert finding(figures, "loss_spikes").steps == (int(steps[at]),)


NEAR_ZERO_CASES = list(itertools.product((100, 300), (1, 5), (0.3, 0.6, 1.0), (0, 1, 2)))


@pytest.mark.parametrize(("rows", "every", "sigma", "seed"), NEAR_ZERO_CASES, ids=ids(NEAR_ZERO_CASES))
def test_batch_noise_on_a_loss_near_zero_is_not_a_spike(rows: int, every: int, sigma: float, seed: int) -> None:
    steps = logged_steps(rows, every)
    rng = rng_for("near-zero", rows, every, sigma, seed)
    # A log-linear fall 1.0 -> 0.001 over the first 30% of the steps (2% noise), then 0.001 x lognormal(0, sigma):
    # on a memorised set the per-batch loss near zero varies by factors, not by a share.
    knee = int(steps[int(0.3 * rows)])
    level = 1.0 * 0.001 ** np.minimum(steps / knee, 1.0)
    loss = np.where(steps < knee, noisy(level, 0.02, rng), level * np.exp(sigma * rng.standard_normal(rows)))
    figures = check(build(sft_rows(steps, loss, rng)), required=set())
    assert figures.spikes == ()


# --- where the run stands ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("share", "severity"), [(0.15, Severity.WARNING), (0.8, Severity.NOTE)])
@pytest.mark.parametrize(("rows", "every"), [(60, 1), (200, 5), (100, 10)])
def test_a_checkpoint_before_max_steps(rows: int, every: int, share: float, severity: Severity) -> None:
    steps = logged_steps(rows, every)
    rng = rng_for("schedule", rows, every, share)
    loss = noisy(plateau_curve(steps, int(steps[int(0.3 * rows)]), 2.5, 0.5, "linear"), 0.02, rng)
    total = int(steps[-1])
    run = build(sft_rows(steps, loss, rng), max_steps=round(total / share))
    found = finding(check(run, required={"before_max_steps"}), "before_max_steps")
    assert found.severity == severity
    assert found.values["share"] == pytest.approx(share, rel=0.01)


# --- properties over a grid of generated runs -------------------------------------------------------------------


def zoo_run(seed: int) -> TrainingRun:
    """A run mixing shapes and faults at random (deterministically per seed)."""
    rng = rng_for("zoo", seed)
    rows = int(rng.choice([30, 60, 150, 400]))
    every = int(rng.choice([1, 3, 10]))
    steps = logged_steps(rows, every)
    total = int(steps[-1])
    shape = rng.choice(["plateau", "glide", "near-zero", "rising", "staircase"])
    if shape == "plateau":
        clean = plateau_curve(steps, int(steps[int(0.3 * rows)]), 2.5, 0.5, "smooth")
    elif shape == "glide":
        clean = glide_curve(steps, 2.0, 0.6, "log")
    elif shape == "near-zero":
        clean = 0.001 ** np.minimum(steps / steps[int(0.3 * rows)], 1.0)
    elif shape == "rising":
        clean = np.concatenate([glide_curve(steps[: rows // 2], 2.0, 0.8, "linear"),
                                np.linspace(0.8, 1.4, rows - rows // 2)])
    else:
        clean = 1.2 * 0.8 ** np.floor(4 * steps / (total + 1))
    loss = noisy(clean, float(rng.choice([0.0, 0.02, 0.05])), rng)
    if rng.random() < 0.3:
        loss[int(rng.integers(rows // 3, rows))] *= 5
    grad = 0.8 * np.exp(0.15 * rng.standard_normal(rows))
    rate = schedule(steps, total)
    if rng.random() < 0.3:
        grad[int(rng.integers(0, rows))] *= 300
    if rng.random() < 0.3:
        for i in rng.choice(np.arange(1, rows), size=2, replace=False):
            grad[i] = math.nan
            rate[i] = rate[i - 1]
    train = sft_rows(steps, loss, rng, grad=grad, rate=rate, epoch=4 * steps / total)
    evals: list[Row] = []
    if rng.random() < 0.6:
        count = int(rng.choice([3, 6, 12]))
        eval_steps = np.unique((np.linspace(0, total * float(rng.choice([0.7, 1.0])), count + 1)[1:] // every)
                               .astype("int64") * every)
        eval_steps = eval_steps[eval_steps > 0]
        values = 1.0 + float(rng.choice([-0.4, 0.0, 0.5])) * (eval_steps / total - 0.4) ** 2
        evals = eval_rows(eval_steps, noisy(values, 0.01, rng))
    summary = None
    if rng.random() < 0.3:
        summary = {"train_runtime": 1.0, "train_loss": weighted_total(train, after=total // 2) / total,
                   "step": total, "epoch": 4.0}
    max_steps = total if rng.random() < 0.6 else int(total / float(rng.choice([0.1, 0.4, 0.9])))
    return build(train, evals, summary=summary, max_steps=max_steps)


ZOO = range(60)
STEP_VALUED = {"resumed_at", "global_step", "steps"}


@functools.cache
def zoo(seed: int) -> tuple[TrainingRun, Figures]:
    run = zoo_run(seed)
    return run, analyse(run, SETTINGS)


def is_step_valued(key: str) -> bool:
    return key == "step" or key.endswith("_step") or key in STEP_VALUED


@pytest.mark.parametrize("seed", ZOO)
def test_findings_point_at_logged_steps_and_lead_with_warnings(seed: int) -> None:
    run, figures = zoo(seed)
    logged = set(run.train["step"].tolist()) | set(run.eval["step"].tolist())
    for item in figures.findings:
        assert item.code in CODES
        assert set(item.steps) <= logged, (item.code, sorted(set(item.steps) - logged))
        for key, value in item.values.items():
            if is_step_valued(key):
                assert value in logged, (item.code, key, value)
    severities = [item.severity for item in figures.findings]
    assert severities == sorted(severities, key=lambda severity: severity != Severity.WARNING)


def test_the_zoo_exercises_most_rules() -> None:
    """The property above is only as good as the findings the grid produces."""
    found = [item for seed in ZOO for item in zoo(seed)[1].findings]
    assert len({item.code for item in found}) >= 10, {item.code for item in found}
    assert {item.severity for item in found} == {Severity.WARNING, Severity.NOTE}


def test_within_a_severity_findings_follow_the_catalogue() -> None:
    steps = logged_steps(200, 5)
    rng = rng_for("order")
    loss = noisy(glide_curve(steps, 2.0, 0.5, "log"), 0.01, rng)
    figures = analyse(build(sft_rows(steps, loss, rng), max_steps=2 * int(steps[-1])), SETTINGS)
    assert codes_of(figures) == {"still_improving", "before_max_steps"}
    position = {rule.code: i for i, rule in enumerate(findings.RULES)}
    order = [position[item.code] for item in figures.findings]
    assert order == sorted(order), [item.code for item in figures.findings]


@pytest.mark.parametrize("seed", range(40))
def test_window_drops_are_the_floats_of_slice_means(seed: int) -> None:
    # The epoch rule's falls are computed for every window at once; they must be the very floats the
    # one-slice-at-a-time definition gives, or a fall at a threshold could flip.
    rng = np.random.default_rng(seed)
    window = int(rng.integers(3, 21))
    losses = rng.random(int(rng.integers(2 * window, 6000))) * 10 ** rng.uniform(-6, 6)
    losses[rng.random(len(losses)) < 0.01] = 0.0  # windows whose mean may be 0
    if seed % 4 == 0:
        losses[:window] = 0.0
    cuts = sorted(set(rng.integers(window, len(losses) - window + 1, 50).tolist()))

    def by_slices(cut: int) -> float:
        before = float(losses[cut - window:cut].mean())
        return (before - float(losses[cut:cut + window].mean())) / before if before > 0 else 0.0

    assert findings._drops_at(losses, window, cuts) == [by_slices(cut) for cut in cuts]
    assert findings._drops_at(losses, window, []) == []

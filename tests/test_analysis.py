"""Analysis: each figure on small tables built here."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from conftest import run_from
from generator.analysis import (
    analyse,
    first_step_below,
    knee_index,
    smooth,
    spearman,
    speed_class,
    stabilised_step,
    trend_of,
)
from generator.records import AnalysisSettings, SpeedClass


def series(values: list[float], every: int = 10) -> pd.Series:
    return pd.Series(values, index=pd.Index([every * (i + 1) for i in range(len(values))], name="step"), dtype="float64")


def tensorboard_smoothing(values: list[float], weight: float) -> list[float]:
    """TensorBoard's own loop (debiased EMA), written out independently."""
    last, out = 0.0, []
    for count, value in enumerate(values, start=1):
        last = last * weight + (1 - weight) * value
        out.append(last / (1 - weight**count))
    return out


@pytest.mark.parametrize("weight", [0.0, 0.3, 0.6, 0.9, 0.99])
def test_smoothing_matches_tensorboard(weight: float) -> None:
    values = [2.0, 1.5, 1.7, 1.1, 0.9, 1.0, 0.7, 0.75]
    expected = values if weight == 0 else tensorboard_smoothing(values, weight)
    assert smooth(series(values), weight).to_numpy() == pytest.approx(expected, rel=1e-12)


def test_smoothing_skips_missing_values_instead_of_propagating_them() -> None:
    smoothed = smooth(series([1.0, float("nan"), 0.5, 0.5]), 0.5)
    assert np.isfinite(smoothed.to_numpy()).all()


def test_stabilised_step_is_relative_to_the_level_not_the_whole_range() -> None:
    # Falls to 0.2 by step 60 and stays within 10% of 0.2: stabilised there.
    values = [1.0, 0.7, 0.5, 0.35, 0.25, 0.2, 0.2, 0.19, 0.2, 0.195, 0.2, 0.19, 0.2, 0.2, 0.195, 0.2, 0.19, 0.2]
    assert stabilised_step(series(values), band=0.10) == 60
    # A loss still falling from 0.16 towards 0.0002 never stays within 10% of its level (the old
    # whole-range rule called it stable at 0.16).
    decaying = [0.16 * 0.7**i for i in range(30)]
    assert stabilised_step(series(decaying), band=0.10) is None


def test_no_stabilisation_for_a_short_or_late_settling_curve() -> None:
    assert stabilised_step(series([1.0, 0.5, 0.2]), 0.10) is None
    falling = [1.0 - 0.04 * i for i in range(20)]  # settles only in its last fifth
    assert stabilised_step(series(falling), 0.10) is None


def test_knee_is_where_a_fast_fall_meets_a_slow_glide() -> None:
    steps = np.arange(1, 301)
    fall = 0.3 + 0.7 * np.exp(-steps / 10)  # fast fall, over by ~step 40
    glide = fall - 0.0002 * steps
    knee = knee_index(series(list(glide), every=1))
    assert knee is not None and 15 <= steps[knee] <= 60
    assert knee_index(series([1.0 - 0.01 * i for i in range(50)])) is None  # a straight line has no knee
    assert knee_index(series([0.5 + 0.01 * i for i in range(50)])) is None  # nor a rising curve


@pytest.mark.parametrize(
    ("rate", "label"),
    [(0.8, "Very Fast"), (0.55, "Very Fast"), (0.54, "Fast"), (0.1, "Fast"), (0.05, "Steady"), (0.01, "Steady"),
     (0.009, "Slow"), (0.0, "No improvement"), (-0.2, "No improvement"), (None, "n/a")],
)
def test_speed_class_is_the_fall_per_100_steps(rate: float | None, label: str) -> None:
    assert speed_class(rate, AnalysisSettings()).label == label


@pytest.mark.parametrize(
    ("values", "trend"),
    [([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "rose"), ([10, 9, 8, 7, 6, 5, 4, 3, 2, 1], "fell"),
     # End points disagree with the bulk (a warm-up bump, then a fall): the means and rho decide.
     ([1.0, 2.0, 1.9, 1.8, 1.6, 1.5, 1.4, 1.3, 1.2, 1.1, 1.05, 1.2], "fell"),
     ([5, 1, 5, 1, 5, 1, 5, 1, 5, 1], "none")],
)
def test_one_trend_definition(values: list[float], trend: str) -> None:
    assert trend_of(series([float(v) for v in values]))[0] == trend


def test_first_step_below_and_spearman() -> None:
    assert first_step_below(series([1.0, 0.8, 0.69, 0.9]), 0.7) == 30
    assert first_step_below(series([1.0, 0.8]), 0.7) is None
    assert spearman(series([3.0, 2.0, 1.0])) == pytest.approx(-1.0)
    assert spearman(series([1.0, 3.0, 2.0, 4.0])) == pytest.approx(0.8)
    assert spearman(series([1.0, 1.0, 1.0])) is None


def test_analyse_headline_figures() -> None:
    steps = [10, 20, 30, 40, 50, 60, 70, 80]
    losses = [2.5, 1.2, 0.8, 0.6, 0.55, 0.5, 0.52, 0.49]
    run = run_from(
        {"step": steps, "loss": losses, "mean_token_accuracy": [0.5 + 0.05 * i for i in range(8)],
         "entropy": [1.0 - 0.1 * i for i in range(8)], "grad_norm": [1, 3, 1, 1, 1, 1, 1, 1],
         "learning_rate": [1e-4] * 8},
        evals={"step": [40, 80], "eval_loss": [0.7, 0.65]},
        state={"global_step": 85, "max_steps": 85},
        summary={"train_loss": 0.9, "train_runtime": 12.5},
    )
    f = analyse(run, AnalysisSettings(smoothing=0.0))
    assert (f.steps, f.start_loss, f.start_step, f.end_loss, f.end_step) == (85, 2.5, 10, 0.49, 80)
    assert (f.min_loss, f.min_loss_step) == (0.49, 80)
    assert f.relative_drop == pytest.approx((2.5 - 0.49) / 2.5)
    assert f.high_initial_gap is True
    assert f.convergence_label.endswith("(High Initial Gap)")
    assert f.level_crossings == ((0.7, 40),)
    assert f.final_token_accuracy == pytest.approx(0.85)
    assert f.entropy_rho == pytest.approx(-1.0)
    entropy = f.series_for("entropy")
    assert entropy is not None and entropy.trend == "fell"
    assert (f.eval_loss_last, f.eval_loss_min, f.eval_loss_min_step) == (0.65, 0.65, 80)
    assert f.eval_gap == pytest.approx(0.65 - 0.49)
    assert (f.max_grad_norm, f.max_grad_norm_step) == (3, 20)
    assert f.mean_train_loss == 0.9  # the summary's mean, kept apart from the end loss
    assert f.train_runtime == 12.5


def test_analyse_ignores_nan_losses_for_start_end_and_minimum() -> None:
    run = run_from({"step": [1, 2, 3, 4], "loss": [float("nan"), 1.0, float("inf"), 0.5]})
    f = analyse(run, AnalysisSettings())
    assert (f.start_step, f.start_loss, f.end_loss, f.min_loss) == (2, 1.0, 0.5, 0.5)
    assert f.logged_rows == 2


def test_analyse_without_losses_or_with_a_rising_loss() -> None:
    no_loss = analyse(run_from({"step": [10], "learning_rate": [1e-4]}), AnalysisSettings())
    assert no_loss.start_loss is None and no_loss.convergence is SpeedClass.NOT_RATED
    rising = analyse(run_from({"step": [1, 2, 3, 4, 5, 6], "loss": [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]}), AnalysisSettings())
    assert rising.convergence is SpeedClass.NO_IMPROVEMENT
    assert rising.convergence_label == "No improvement"
    assert "loss_not_falling" in {x.code for x in rising.findings}
    assert rising.relative_drop is not None and rising.relative_drop < 0
    assert math.isclose(rising.end_loss or 0, 1.0)


def test_steps_fall_back_to_the_last_logged_step() -> None:
    f = analyse(run_from({"step": [5, 10], "loss": [1.0, 0.9]}), AnalysisSettings())
    assert f.steps == 10

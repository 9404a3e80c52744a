"""Plots: valid PNGs, same bytes for the same data, no timestamp or software tag."""

from __future__ import annotations

import dataclasses
import itertools
import pickle
import struct
import zlib

import numpy as np
import pandas as pd
import pytest

from generator.analysis import finite_series, smooth
from generator.colors import color_for
from generator.kinds import kind_panels, standard_panels
from generator.overview import FEW_BUCKETS, can_thin, make_curve, placed, thinned
from generator.plan import OverviewPlot
from generator.plots import (
    DPI,
    PANEL_WIDTH,
    downsample,
    eval_plot,
    loss_plot,
    overview_axes,
    overview_plot,
    panels_plot,
    short_labels,
)
from generator.records import AnalysisSettings, BestCheckpoint, Figures

SETTINGS = AnalysisSettings()
TRAIN = pd.DataFrame(
    {
        "step": [10, 20, 30, 40, 50],
        "loss": [2.0, 1.0, float("nan"), 0.6, 0.5],
        "learning_rate": [1e-4, 2e-4, 2e-4, 1e-4, 5e-5],
        "mean_token_accuracy": [0.5, 0.6, 0.7, 0.8, 0.85],
    }
)
EVALS = pd.DataFrame({"step": [30, 50], "eval_loss": [0.9, 0.7]})
FIGURES = Figures(steps=50, logged_rows=4, stabilised_step=40)


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, position = [], 8
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert crc == zlib.crc32(kind + body)
        chunks.append((kind, body))
        position += 12 + length
    return chunks


def png_size(data: bytes) -> tuple[int, int]:
    kind, body = png_chunks(data)[0]
    assert kind == b"IHDR"
    return struct.unpack(">II", body[:8])


def test_loss_plot_is_a_deterministic_png_without_metadata() -> None:
    first = loss_plot("Model A", color_for(0), TRAIN, EVALS, FIGURES, SETTINGS)
    second = loss_plot("Model A", color_for(0), TRAIN, EVALS, FIGURES, SETTINGS)
    assert first == second
    kinds = [kind for kind, _ in png_chunks(first)]
    assert b"tIME" not in kinds and b"tEXt" not in kinds and b"iTXt" not in kinds
    width, height = png_size(first)
    assert 700 <= width <= 1000 and 350 <= height <= 600


def test_different_data_gives_different_bytes() -> None:
    other = TRAIN.assign(loss=[2.0, 1.1, 0.8, 0.6, 0.5])
    assert loss_plot("Model A", color_for(0), TRAIN, EVALS, FIGURES, SETTINGS) != loss_plot(
        "Model A", color_for(0), other, EVALS, FIGURES, SETTINGS
    )


def test_metrics_panels_only_for_logged_metrics() -> None:
    panels = standard_panels(TRAIN.columns)
    assert [panel.columns for panel in panels] == [("learning_rate",), ("mean_token_accuracy",)]
    assert png_size(panels_plot("A", color_for(0), TRAIN, EVALS, panels, SETTINGS))[0] > 0
    assert standard_panels(["step", "loss"]) == []
    with pytest.raises(ValueError, match="no panel to plot"):
        panels_plot("A", color_for(0), TRAIN, EVALS, [], SETTINGS)


def test_a_panel_drawn_alone_is_its_own_deterministic_image() -> None:
    # A model page shows each panel as its own image, PANEL_WIDTH wide (one a row on a phone).
    panels = standard_panels(TRAIN.columns)
    first = panels_plot("A", color_for(0), TRAIN, EVALS, panels, SETTINGS, only=0)
    assert first == panels_plot("A", color_for(0), TRAIN, EVALS, panels, SETTINGS, only=0)
    assert first != panels_plot("A", color_for(0), TRAIN, EVALS, panels, SETTINGS, only=1)
    assert png_size(first)[0] == round(PANEL_WIDTH * DPI)
    assert png_size(panels_plot("A", color_for(0), TRAIN, EVALS, panels, SETTINGS))[0] > png_size(first)[0]


def test_rl_panels_group_reward_functions_and_skip_the_duplicate_length() -> None:
    columns = ["reward", "reward_std", "rewards/format/mean", "rewards/format/std", "rewards/answer/mean", "kl",
               "completions/mean_length", "completion_length", "loss"]
    panels = {panel.title: panel for panel in kind_panels("rl", columns)}
    assert panels["Reward (mean +/- std)"].band == "reward_std"
    assert panels["Reward per function"].columns == ("rewards/answer/mean", "rewards/format/mean")
    assert panels["Completion length"].columns == ("completions/mean_length",)
    assert short_labels(panels["Reward per function"].columns) == ["answer", "format"]


def test_a_reward_band_and_a_best_checkpoint_are_drawn() -> None:
    rng = np.random.default_rng(1)
    steps = np.arange(1, 201)
    train = pd.DataFrame({"step": steps, "reward": np.linspace(0, 1, 200) + rng.normal(0, 0.1, 200),
                          "reward_std": np.full(200, 0.2), "kl": np.linspace(0, 0.05, 200)})
    figures = Figures(steps=200, logged_rows=0, best_checkpoint=BestCheckpoint(step=150, metric=0.9, path=None))
    panels = kind_panels("rl", train.columns)
    plain = panels_plot("RL", color_for(0), train, EVALS.iloc[:0], panels, SETTINGS)
    marked = panels_plot("RL", color_for(0), train, EVALS.iloc[:0], panels, SETTINGS, figures)
    assert plain != marked
    evals = pd.DataFrame({"step": [50, 100, 150], "eval_g0_accuracy": [0.5, 0.6, 0.7], "eval_g1_accuracy": [0.4, 0.5, 0.6]})
    groups = {"accuracy": {"g0": "eval_g0_accuracy", "g1": "eval_g1_accuracy"}}
    assert png_size(eval_plot("RL", evals, groups, figures))[0] > 0


def test_overview_plot_handles_runs_of_different_lengths_and_axes() -> None:
    epochs = pd.Series([0.1, 0.2, 0.3, 0.4, 0.5], index=pd.Index([10, 20, 30, 40, 50], name="step"))
    curves = [
        make_curve("short", color_for(0), finite_series(TRAIN, "loss"), 50, SETTINGS.smoothing, epochs=epochs),
        make_curve("long", color_for(1), pd.Series([1.0, 0.5, 0.4], index=pd.Index([100, 1000, 5000], name="step")),
                   5000, SETTINGS.smoothing),
        make_curve("empty", color_for(2), pd.Series([], dtype="float64"), 0, SETTINGS.smoothing),
    ]
    assert overview_axes(curves) == ["step", "progress", "epoch"]
    assert overview_axes(curves[1:]) == ["step", "progress"]
    with_epochs = overview_plot(curves, SETTINGS, "loss")
    without = overview_plot(curves[1:], SETTINGS, "loss")
    assert png_size(with_epochs)[1] > png_size(without)[1]  # a second row of panels


@pytest.mark.parametrize("seed", range(30))
def test_an_overview_curve_places_each_step_at_the_last_epoch_and_tokens_logged_before_it(seed: int) -> None:
    """`make_curve` on generated logs: values and epochs / tokens logged at different, partly shared steps,
    from step 0 or later, against the plain definition (the last value logged at or before the step, NaN
    before the first)."""
    rng = np.random.default_rng(seed)

    def logged(count: int) -> pd.Series:
        steps = np.sort(rng.choice(np.arange(int(rng.integers(0, 3)), 400), size=count, replace=False))
        return pd.Series(np.cumsum(rng.random(count)), index=pd.Index(steps, name="step"))

    values, epochs, tokens = logged(int(rng.integers(1, 120))), logged(int(rng.integers(1, 120))), logged(3)
    curve = make_curve("run", color_for(0), values, 400, SETTINGS.smoothing, epochs=epochs, tokens=tokens)
    np.testing.assert_array_equal(curve.at, values.index.to_numpy(dtype="float64"))
    np.testing.assert_array_equal(curve.smoothed, smooth(values, SETTINGS.smoothing).to_numpy())
    for position, source in ((curve.epochs, epochs), (curve.tokens, tokens)):
        expected = [source[source.index <= step].iloc[-1] if (source.index <= step).any() else np.nan
                    for step in values.index]
        np.testing.assert_array_equal(position, np.array(expected, dtype="float64"))
    assert curve.tokens_seen == tokens.iloc[-1]
    assert make_curve("run", color_for(0), values, 400, SETTINGS.smoothing).epochs is None


@pytest.mark.parametrize("seed", range(30))
def test_the_points_kept_for_overviews_of_many_runs_are_those_picked_when_drawn(seed: int) -> None:
    """`Curve.few` (picked when a run is read) against `placed` computing them at draw time, on generated runs:
    short and long, logged from step 0 or later, epochs and tokens from the start, later or never, with
    gaps; every axis, linear and log steps."""
    rng = np.random.default_rng(seed)
    count = int(rng.choice([1, 50, 119, 121, 400, 3000, 20000]))
    steps = np.sort(rng.choice(np.arange(int(rng.integers(0, 2)), 5 * count + 10), size=count, replace=False))
    values = pd.Series(np.cumsum(rng.normal(size=count)), index=pd.Index(steps, name="step"))

    def logged(after: int) -> pd.Series | None:
        if rng.random() < 0.25:
            return None
        kept = steps[steps >= after]
        return pd.Series(np.cumsum(rng.random(len(kept))), index=pd.Index(kept, name="step"))

    epochs, tokens = logged(int(rng.integers(0, 3 * count + 1))), logged(int(rng.integers(0, count + 1)))
    curve = make_curve("run", color_for(0), values, int(steps[-1]) + 1, SETTINGS.smoothing, epochs=epochs,
                       tokens=tokens)
    plain = dataclasses.replace(curve, few=None)
    assert curve.few is not None
    for axis in ("step", "progress", "epoch", "tokens"):
        for log_steps in (False, True):
            kept, computed = placed(curve, axis, FEW_BUCKETS, log_steps), placed(plain, axis, FEW_BUCKETS, log_steps)
            assert (kept is None) == (computed is None), (axis, log_steps)
            if kept is not None and computed is not None:
                np.testing.assert_array_equal(kept[0], computed[0])
                np.testing.assert_array_equal(kept[1], computed[1])
    # Other bucket counts (overviews of fewer runs) are computed when drawn.
    assert placed(curve, "step", 200, False)[0].tolist() == placed(plain, "step", 200, False)[0].tolist()
    empty = make_curve("empty", color_for(1), pd.Series([], dtype="float64"), 0, SETTINGS.smoothing)
    assert placed(empty, "step", FEW_BUCKETS, True) is None is placed(empty, "epoch", FEW_BUCKETS, False)


def test_an_overview_of_many_runs_sent_to_a_worker_thinned_draws_the_same_bytes() -> None:
    """`OverviewPlot(thin=True)` pickles each curve cut to the panel's few points (plan sends it to a worker
    process): unpickled, it must draw the very bytes of the full curves, and be much smaller to send."""
    rng = np.random.default_rng(7)
    curves = []
    for n in range(140):  # more than 133 runs: every curve drawn from its FEW_BUCKETS points
        count = int(rng.integers(130, 600))
        span = 4 * count * (8 if n % 2 else 1)  # lengths 8 times apart: a log step axis, step 0 left out
        steps = np.sort(rng.choice(np.arange(int(rng.integers(0, 2)), span), size=count, replace=False))
        values = pd.Series(np.exp(-steps / (count * rng.uniform(0.5, 2))) + rng.normal(0, 0.02, count),
                           index=pd.Index(steps, name="step"))
        position = pd.Series(np.arange(1, count + 1) * 512.0, index=values.index)
        curves.append(make_curve(f"run {n}", color_for(n), values, int(steps[-1]) + 1, SETTINGS.smoothing,
                                 epochs=position / count if n % 3 else None, tokens=position if n % 4 else None))
    curves.append(make_curve("empty", color_for(140), pd.Series([], dtype="float64"), 0, SETTINGS.smoothing))
    assert can_thin(curves)
    for axis in overview_axes(curves):
        job = OverviewPlot(tuple(curves), SETTINGS, "loss", axis, legend=axis == "step", thin=True)
        sent = pickle.dumps(job)
        assert len(sent) < len(pickle.dumps(dataclasses.replace(job, thin=False))) / 3
        assert pickle.loads(sent)() == job(), axis
    assert not can_thin(curves[:100])  # fewer runs are drawn from more points than they keep
    with pytest.raises(ValueError):
        overview_plot([thinned(curve, "step") for curve in curves[:100]], SETTINGS, "loss", "step")


def test_colours_are_stable_and_distinct_for_the_first_models() -> None:
    colours = [color_for(i) for i in range(10)]
    assert len(set(colours)) == 10
    assert color_for(3) == color_for(13)


def test_downsampling_keeps_spikes_minima_gaps_and_the_last_point() -> None:
    from generator.plots import MAX_BUCKETS, downsample

    x = np.arange(100_000, dtype="float64")
    y = np.sin(x / 500.0)
    y[31_337] = 50.0  # a spike
    y[77_777] = -50.0  # a dip
    y[50_000] = np.nan  # a gap
    kept_x, kept_y = downsample(x, y)
    assert kept_y[kept_x == 31_337][0] == 50.0 and np.isnan(kept_y[kept_x == 50_000][0])
    assert len(kept_x) <= 3 * MAX_BUCKETS + 2
    assert 31_337 in kept_x and 77_777 in kept_x and 50_000 in kept_x
    assert kept_x[0] == 0 and kept_x[-1] == 99_999
    assert np.all(np.diff(kept_x) > 0)
    short = np.arange(10.0)
    assert downsample(short, short)[0] is short  # short curves are drawn as they are


def test_a_100000_row_loss_plot_stays_small() -> None:
    rng = np.random.default_rng(0)
    steps = np.arange(1, 100_001)
    train = pd.DataFrame({"step": steps, "loss": 2.0 * np.exp(-steps / 20_000) + rng.normal(0, 0.05, steps.size)})
    data = loss_plot("Long run", color_for(0), train, EVALS.iloc[:0], Figures(steps=100_000, logged_rows=100_000),
                     SETTINGS)
    assert len(data) < 200_000


def _plot_family() -> list[tuple[str, object]]:
    """Loss plots and lone panels over runs of many shapes: lengths from 1 to 5,000 rows, gaps, flat and
    huge values, several curves with a legend below, percentages, eval dots, marked steps, no training rows."""
    rng = np.random.default_rng(16)
    jobs: list[tuple[str, object]] = []
    for number, rows in enumerate((1, 2, 7, 60, 400, 5000)):
        steps = np.arange(1, rows + 1) * (1 + number % 3)
        decay = 2.0 * np.exp(-np.arange(rows) / max(rows / 4, 1)) + rng.normal(0, 0.05, rows)
        scale = (1.0, 1e-6, 3e12)[number % 3]
        train = pd.DataFrame({
            "step": steps,
            "loss": decay * scale,
            "learning_rate": np.linspace(2e-4, 0, rows),
            "grad_norm": np.abs(rng.normal(1, 0.5, rows)),
            "mean_token_accuracy": np.clip(np.linspace(0.4, 0.9, rows) + rng.normal(0, 0.02, rows), 0, 1),
            "entropy": np.full(rows, 0.7),  # flat
            "reward": np.linspace(0, 1, rows), "reward_std": np.full(rows, 0.2),
            "rewards/format/mean": rng.random(rows), "rewards/answer/mean": rng.random(rows),
            "rewards/a_much_longer_reward_function_name/mean": rng.random(rows), "kl": np.linspace(0, 0.1, rows),
        })
        if rows > 10:
            train.loc[rows // 3: rows // 3 + 3, "loss"] = np.nan  # a gap
        evals = pd.DataFrame({"step": steps[::max(rows // 5, 1)]})
        evals["eval_loss"] = np.linspace(1.5, 0.8, len(evals)) * scale
        evals["eval_mean_token_accuracy"] = np.linspace(0.5, 0.8, len(evals))
        last = int(steps[-1])
        figures = Figures(steps=last, logged_rows=rows, stabilised_step=last // 2 or None,
                          spikes=(int(steps[rows // 2]),) if rows > 10 else (),
                          best_checkpoint=BestCheckpoint(step=last, metric=0.5, path=None) if number % 2 else None)
        color = color_for(number)
        jobs.append(("loss", lambda t=train, e=evals, f=figures, c=color, n=number:
                     loss_plot(f"run {n} ü名前", c, t, e, f, SETTINGS, resumed_at=2 if n == 3 else None)))
        for panels in (standard_panels(train.columns), kind_panels("rl", train.columns)):
            for only in range(len(panels)):
                jobs.append(("panel", lambda t=train, e=evals, f=figures, c=color, p=tuple(panels), o=only:
                             panels_plot("x", c, t, e, p, SETTINGS, f, only=o)))
    empty = pd.DataFrame({"step": pd.Series([], dtype="int64")})
    only_eval = pd.DataFrame({"step": [5], "eval_loss": [0.7]})  # one point: limits around it, not the last plot's
    jobs.append(("loss", lambda: loss_plot("eval only", color_for(0), empty, only_eval, Figures(steps=5, logged_rows=0),
                                           SETTINGS)))
    gaps = pd.DataFrame({"step": [1, 2, 3], "grad_norm": [np.nan, np.inf, np.nan]})  # a panel with nothing finite
    jobs.append(("panel", lambda: panels_plot("x", color_for(1), gaps, empty, standard_panels(gaps.columns), SETTINGS,
                                              only=0)))
    return jobs


def test_a_reused_figure_draws_the_same_bytes_as_a_new_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # Workers keep one blank figure per shape and wipe it for the next plot (plots._reused_axes): whatever
    # was drawn before must not show, or the bytes would depend on which worker drew what.
    from generator import fonts
    from generator.plots import forget_reused_figures

    # Text DejaVu Sans lacks is drawn in another family where one is installed: stand one in (a font that
    # ships with matplotlib), so a family left over from the last plot would show.
    monkeypatch.setattr(fonts, "families_for", lambda texts: ["DejaVu Sans Mono"])

    jobs = _plot_family()
    assert len(jobs) > 40
    new = []
    for _, job in jobs:
        forget_reused_figures()
        new.append(job())
    for seed in (1, 2):
        order = list(range(len(jobs)))
        np.random.default_rng(seed).shuffle(order)
        forget_reused_figures()
        reused = {position: jobs[position][1]() for position in order}
        differ = [f"{jobs[p][0]} #{p}" for p in order if reused[p] != new[p]]
        assert not differ, f"order {seed}: {differ}"


def _downsample_one_bucket_at_a_time(x: np.ndarray, y: np.ndarray, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """What `downsample` promises, written plainly: per bucket its first non-finite value and the first
    positions of its finite minimum and maximum, plus the first and last point."""
    n = len(x)
    if n <= 2 * buckets:
        return x, y
    edges = np.linspace(0, n, buckets + 1).astype(int)
    keep = [0, n - 1]
    for start, stop in itertools.pairwise(edges):
        segment = y[start:stop]
        finite = np.isfinite(segment)
        if not finite.all():
            keep.append(start + int(np.argmax(~finite)))
        if finite.any():
            positions = np.nonzero(finite)[0]
            keep.append(start + int(positions[np.argmin(segment[positions])]))
            keep.append(start + int(positions[np.argmax(segment[positions])]))
    chosen = np.unique(keep)
    return x[chosen], y[chosen]


@pytest.mark.parametrize("seed", range(40))
def test_downsampling_keeps_the_same_points_as_the_plain_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 20_000))
    buckets = int(rng.integers(1, 600))
    y = rng.choice([rng.normal(size=n), rng.integers(0, 4, n).astype(float), np.full(n, 2.5)])  # ties, flat
    holes = rng.random(n) < rng.choice([0.0, 0.01, 0.5, 1.0])
    y[holes] = rng.choice([np.nan, np.inf, -np.inf], size=int(holes.sum()))
    x = np.arange(n, dtype="float64") * 10
    got, expected = downsample(x, y, buckets), _downsample_one_bucket_at_a_time(x, y, buckets)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


def _short_runs() -> list[tuple[str, object]]:
    """Plots of runs that logged a handful of rows: 1 to 5 rows, from step 0, 1, 10 or 999,999, every 1 or 7
    steps, each with one eval."""
    jobs: list[tuple[str, object]] = []
    for rows, first, every in itertools.product((1, 2, 3, 5), (0, 1, 10, 999_999), (1, 7)):
        steps = first + every * np.arange(rows)
        train = pd.DataFrame({"step": steps, "loss": np.linspace(2.0, 1.0, rows),
                              "learning_rate": np.linspace(1e-4, 5e-5, rows), "grad_norm": np.linspace(1, 2, rows),
                              "reward": np.linspace(0.1, 0.4, rows), "reward_std": np.full(rows, 0.2)})
        evals = pd.DataFrame({"step": steps[-1:], "eval_loss": [1.2], "eval_accuracy": [0.5]})
        figures = Figures(steps=int(steps[-1]), logged_rows=rows)
        name = f"{rows} rows from {first} every {every}"
        jobs.append((name, lambda t=train, e=evals, f=figures: loss_plot("x", color_for(0), t, e, f, SETTINGS)))
        for panels in (standard_panels(train.columns), kind_panels("rl", train.columns)):
            for only in range(len(panels)):
                jobs.append((name, lambda t=train, e=evals, f=figures, p=tuple(panels), o=only:
                             panels_plot("x", color_for(0), t, e, p, SETTINGS, f, only=o)))
        jobs.append((name, lambda e=evals, f=figures: eval_plot("x", e, {"accuracy": {"": "eval_accuracy"}}, f,
                                                                 only=0)))
    return jobs


def test_short_runs_show_every_point_on_whole_step_ticks(monkeypatch: pytest.MonkeyPatch) -> None:
    # A run that logged once drew an empty plot (a line of one point is not drawn) over ticks at
    # steps 9.6, 9.8, 10, 10.2, 10.4.
    from generator import plots

    drawn: list[object] = []
    encode = plots._encoded

    def keep(figure, *args, **kwargs):  # type: ignore[no-untyped-def]
        data = encode(figure, *args, **kwargs)
        drawn.extend(figure.axes)
        return data

    monkeypatch.setattr(plots, "_encoded", keep)
    problems = []
    for name, job in _short_runs():
        drawn.clear()
        job()
        for axes in drawn:
            low, high = sorted(axes.get_xlim())
            ticks = [t for t in axes.get_xticks() if low <= t <= high]
            if not ticks or any(t != round(t) for t in ticks):
                problems.append(f"{name}, {axes.get_title(loc='left')}: ticks {ticks}")
            # Every logged point shows: as a marker, or on a line to a finite neighbour.
            points, shown = set(), set()
            for line in axes.get_lines():
                x, y = (np.asarray(v, dtype="float64") for v in line.get_data())
                finite = np.isfinite(y)
                marked = line.get_marker() not in ("None", None, "", " ")
                for i in np.flatnonzero(finite):
                    points.add((x[i], y[i]))
                    if marked or (i > 0 and finite[i - 1]) or (i + 1 < len(y) and finite[i + 1]):
                        shown.add((x[i], y[i]))
            if points - shown:
                problems.append(f"{name}, {axes.get_title(loc='left')}: not drawn {sorted(points - shown)}")
            for collection in axes.collections:  # a band over one step: a fill of no width, without an edge
                for path in collection.get_paths():
                    if np.ptp(path.vertices[:, 0]) == 0 and max(collection.get_linewidth(), default=0) == 0:
                        problems.append(f"{name}, {axes.get_title(loc='left')}: a band of no width")
    assert not problems, problems[:10]

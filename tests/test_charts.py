"""The chart data (`generator.charts`): the run's own values, min and max kept, deterministic bytes."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest

from conftest import sft_rows, write_state
from generator import charts, pages
from generator.pipeline import build_reports
from generator.plots import downsample
from generator.records import AnalysisSettings, ModelReport
from generator.registry import load_registry
from generator.series import smooth


def reports_of(folder: Path, entries: dict[str, list[dict[str, object]]]) -> list[ModelReport]:
    """Write one trainer_state.json per entry and read them as the pipeline does (no plots)."""
    lines = ["checkpoints:"]
    for name, rows in entries.items():
        write_state(folder / name, rows)
        lines.append(f"  - {{name: {name}, path: {name}}}")
    registry_file = folder / "checkpoints.yaml"
    registry_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    reports, problems = build_reports(load_registry(registry_file), folder)
    assert problems == []
    return reports


def long_run_rows(count: int, seed: int = 7) -> list[dict[str, object]]:
    """A noisy falling loss logged every step, with a spike, a dip and a NaN (a generated family, not a fit)."""
    rng = np.random.default_rng(seed)
    losses = 2.0 * np.exp(-np.arange(count) / (count / 5)) + 0.3 + rng.normal(0, 0.05, count)
    rows: list[dict[str, object]] = [{"loss": float(v), "step": i + 1} for i, v in enumerate(losses)]
    rows[count // 3]["loss"] = 9.5
    rows[count // 2]["loss"] = -1.25
    rows[2 * count // 3]["loss"] = float("nan")
    rows += [{"eval_loss": 1.0 - 0.1 * k, "step": (k + 1) * (count // 5)} for k in range(5)]
    return sorted(rows, key=lambda row: int(row["step"]))  # type: ignore[call-overload]


def test_chart_holds_exactly_the_run_values_at_the_steps_it_keeps(tmp_path: Path) -> None:
    count = 30_000
    (report,) = reports_of(tmp_path, {"long": long_run_rows(count)})
    document = orjson.loads(charts.model_chart_bytes(report, AnalysisSettings()))
    loss, evals = document["series"]
    assert loss["name"] == "loss" and loss["rows"] == count and loss["smooth"] and loss["raw"]
    logged = report.run.train.set_index("step")["loss"]
    assert len(loss["x"]) <= 3 * charts.CHART_BUCKETS + 2  # min, max and a gap per bucket at most
    for step, value in zip(loss["x"], loss["y"], strict=True):
        expected = float(logged.loc[step])
        assert (value is None) if math.isnan(expected) else value == expected, step
    # The spike, the dip, the gap, the first and the last row survive the downsampling.
    kept = dict(zip(loss["x"], loss["y"], strict=True))
    assert kept[count // 3 + 1] == 9.5 and kept[count // 2 + 1] == -1.25 and kept[2 * count // 3 + 1] is None
    assert 1 in kept and count in kept
    # Eval points are all kept, as logged.
    assert evals["name"] == "eval loss" and evals["points"] and not evals["smooth"]
    assert evals["x"] == [(k + 1) * (count // 5) for k in range(5)]
    assert evals["y"] == [1.0 - 0.1 * k for k in range(5)]


def test_long_series_smooth_from_bucket_means_and_counts(tmp_path: Path) -> None:
    count = 10_001
    (report,) = reports_of(tmp_path, {"long": long_run_rows(count)})
    loss = charts.model_chart(report, AnalysisSettings())["series"][0]
    bucketed = loss["bucketed"]
    finite = report.run.train.set_index("step")["loss"].dropna()
    assert sum(bucketed["count"]) == len(finite) and len(bucketed["count"]) == charts.CHART_BUCKETS
    ends = np.cumsum(bucketed["count"])
    assert bucketed["x"] == [int(finite.index[end - 1]) for end in ends]
    starts = ends - np.asarray(bucketed["count"])
    means = [float(finite.iloc[a:b].mean()) for a, b in zip(starts, ends, strict=True)]
    assert bucketed["mean"] == pytest.approx(means, rel=1e-12)
    # At the page's weight, the exact smoothed values at the bucket ends: the PNG's and the analysis' numbers.
    assert bucketed["weight"] == 0.6
    assert bucketed["smoothed"] == smooth(finite, 0.6).loc[bucketed["x"]].tolist()


def test_short_series_carry_every_value_and_no_buckets(tmp_path: Path) -> None:
    (report,) = reports_of(tmp_path, {"short": sft_rows([2.0 - 0.01 * i for i in range(100)])})
    loss = charts.model_chart(report, AnalysisSettings())["series"][0]
    assert "bucketed" not in loss
    assert loss["x"] == [10 * (i + 1) for i in range(100)]
    assert loss["y"] == [2.0 - 0.01 * i for i in range(100)]


@pytest.mark.parametrize("seed", range(5))
def test_downsampling_keeps_the_min_and_max_of_every_bucket(seed: int) -> None:
    rng = np.random.default_rng(seed)
    count = int(rng.integers(5_000, 40_000))
    values = rng.normal(0, 1, count).round(2)  # rounded: ties, whose first occurrence must be kept
    values[rng.integers(0, count, 50)] = np.nan
    values[1000:1400] = np.nan  # whole buckets without a value
    buckets = 1500
    kept = charts.downsample_indices(values, buckets)
    edges = np.linspace(0, count, buckets + 1).astype(int)
    for start, stop in itertools.pairwise(edges):
        segment = values[start:stop]
        inside = kept[(kept >= start) & (kept < stop)]
        if np.isfinite(segment).any():
            assert start + int(np.nanargmin(segment)) in inside and start + int(np.nanargmax(segment)) in inside
        if not np.isfinite(segment).all():
            assert np.isnan(values[inside]).any()  # the gap stays a gap
    # The same points the PNG draws from (`plots.downsample`).
    steps = np.arange(count, dtype="float64")
    assert np.array_equal(kept, downsample(steps, values, buckets)[0].astype(int))


def test_bytes_are_deterministic_and_floats_round_trip(tmp_path: Path) -> None:
    rows = long_run_rows(2 * charts.CHART_BUCKETS)  # every row kept
    rows[5]["loss"] = 0.1 + 0.2  # 0.30000000000000004: shortest repr, not rounded
    rows[6]["loss"] = 1.7976931348623157e308
    first = reports_of(tmp_path / "a", {"run": rows})
    again = reports_of(tmp_path / "b", {"run": rows})
    settings = AnalysisSettings()
    data = charts.model_chart_bytes(first[0], settings)
    assert data == charts.model_chart_bytes(again[0], settings)
    assert charts.overview_chart_bytes(first, settings, "loss") == charts.overview_chart_bytes(again, settings, "loss")
    assert b"0.30000000000000004" in data and b"1.7976931348623157e+308" in data
    assert b"NaN" not in data and b"Infinity" not in data
    assert data.startswith(b'{"format":1,"x":"step","y":"loss","smoothing":0.6,"series":[{"name":"loss",')


def grpo_rows(steps: int = 60) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = [
        {"loss": -0.001 * (i % 5), "reward": 0.2 + 0.01 * i, "reward_std": 0.1, "kl": 0.001 * i, "step": i}
        for i in range(1, steps + 1)]
    rows += [{"eval_loss": 0.02, "eval_reward": 0.3 + 0.05 * k, "step": 20 * k} for k in (1, 2, 3)]
    return sorted(rows, key=lambda row: int(row["step"]))  # type: ignore[call-overload]


def test_an_rl_chart_leads_with_the_reward(tmp_path: Path) -> None:
    (report,) = reports_of(tmp_path, {"grpo": grpo_rows()})
    document = charts.model_chart(report, AnalysisSettings())
    assert document["y"] == "reward"
    assert [s["name"] for s in document["series"]] == ["reward", "eval reward"]
    assert document["series"][0]["y"][:2] == [0.2 + 0.01 * 1, 0.2 + 0.01 * 2]
    assert document["series"][1]["y"] == [0.3 + 0.05 * k for k in (1, 2, 3)]
    overview = charts.overview_chart([report], AnalysisSettings(), report.figures.kind.about.headline)
    assert overview["y"] == "reward" and overview["series"][0]["name"] == "grpo"
    # The page keeps its reward panels (they show more than the chart) and puts the chart after them.
    files = pages.ModelFiles.for_report(report)
    section = "\n".join(pages._plots_section(report, files))
    assert section.index("## Reward and policy") < section.index('data-chart="chart.json" data-keep-image')
    assert section.index("data-keep-image") < section.index("## Loss") and section.count("td-chart") == 1


def test_eval_sets_each_get_a_curve(tmp_path: Path) -> None:
    rows = sft_rows([2.0 - 0.05 * i for i in range(20)])
    rows += [{"eval_g0_loss": 1.5, "eval_g1_loss": 1.6, "step": 100}, {"eval_g0_loss": 1.2, "eval_g1_loss": 1.4,
                                                                        "step": 200}]
    (report,) = reports_of(tmp_path, {"sets": rows})
    names = [s["name"] for s in charts.model_chart(report, AnalysisSettings())["series"]]
    assert names == ["loss", "eval loss (g0)", "eval loss (g1)"]


def test_debiased_ema_of_buckets_is_the_ema_of_their_values_when_each_holds_one() -> None:
    """The formula charts.js uses for bucket means, written in Python: with counts of 1 it is `series.smooth`
    exactly, and with equal values in a bucket it is the EMA of the expanded series."""

    def bucket_ema(means: list[float], counts: list[int], weight: float) -> list[float]:
        numerator = denominator = 0.0
        out = []
        for mean, n in zip(means, counts, strict=True):
            decay = weight**n
            share = (1 - decay) / (1 - weight)
            numerator, denominator = decay * numerator + share * mean, decay * denominator + share
            out.append(numerator / denominator)
        return out

    rng = np.random.default_rng(3)
    means = rng.normal(1, 0.3, 200).tolist()
    counts = rng.integers(1, 9, 200).tolist()
    for weight in (0.3, 0.6, 0.99):
        ones = bucket_ema(means, [1] * len(means), weight)
        assert ones == pytest.approx(smooth(pd.Series(means), weight).tolist(), rel=1e-12)
        expanded = smooth(pd.Series(np.repeat(means, counts)), weight).to_numpy()
        assert bucket_ema(means, counts, weight) == pytest.approx(expanded[np.cumsum(counts) - 1].tolist(), rel=1e-12)

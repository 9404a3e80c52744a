"""Nothing a plot writes is cut off: every visible text lies inside the figure, for every plot function
and a family of inputs (long names and keys, names in other scripts, many legend entries, huge, tiny and
negative values)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text

from generator import plots
from generator.colors import LEGEND_LIMIT, color_for
from generator.kinds import Panel
from generator.overview import make_curve
from generator.records import AnalysisSettings, BestCheckpoint, Curve, Figures

SETTINGS = AnalysisSettings()
LONGEST_KEY = 200
"""reader.MAX_KEY_LENGTH: longer metric keys are refused when the log is read."""

NAMES = {
    "short": "A",
    "ordinary": "Qwen2.5-7B-Instruct LoRA r16",
    "long": "Llama 3.1 70B Instruct, continued pretraining on the 2024 crawl, then SFT on the mixture v7 " * 2,
    "very long": "x" * 400,  # the registry sets no limit on names
    "unbroken": "qwen_2_5_7b_instruct_lora_r16_alpha32_dropout005_lr2e4_warmup100_cosine_seed1234_final_v3",
    "cjk": "日本語モデル",
    "mixed": "Qwen 7B — 日本語",
}
SCALES = {"unit": (1.0, 0.0), "huge": (3.7e12, 0.0), "tiny": (2.3e-9, 0.0), "negative": (1.0, -5.0),
          "negative huge": (-8.1e9, 0.0)}


def _values(rng: np.random.Generator, count: int, scale: tuple[float, float]) -> np.ndarray:
    factor, offset = scale
    return (np.exp(-np.linspace(0, 3, count)) + rng.normal(0, 0.05, count) + offset) * factor


def _train(rng: np.random.Generator, columns: list[str], scale: tuple[float, float], count: int = 120) -> pd.DataFrame:
    table = {"step": np.arange(1, count + 1) * 5}
    for column in columns:
        table[column] = _values(rng, count, scale)
    return pd.DataFrame(table)


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """Every figure a plot function saved, drawn as it was saved."""
    figures: list[Figure] = []
    original = plots._encoded

    def keep(figure: Figure, palette: bool = False, compact: bool = False) -> bytes:
        data = original(figure, palette, compact)
        figures.append(figure)
        return data

    monkeypatch.setattr(plots, "_encoded", keep)
    return figures


def _drawn_texts(figure: Figure) -> Iterator[Text]:
    """Visible, non-empty texts, leaving out tick labels of ticks outside the axes' view (not drawn)."""
    hidden: set[int] = set()
    for axes in figure.axes:
        for axis, (low, high) in ((axes.xaxis, axes.get_xlim()), (axes.yaxis, axes.get_ylim())):
            low, high = sorted((low, high))
            for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
                location = tick.get_loc()
                if location is None or not low - 1e-9 * abs(high - low) <= location <= high + 1e-9 * abs(high - low):
                    hidden.update({id(tick.label1), id(tick.label2)})
    for text in figure.findobj(Text):
        if text.get_visible() and text.get_text().strip() and id(text) not in hidden:
            yield text


def _outside(figure: Figure) -> list[str]:
    """Texts whose drawn extent leaves the figure (one pixel of anti-aliasing allowed)."""
    renderer: Any = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    bounds = figure.bbox
    problems = []
    for text in _drawn_texts(figure):
        box = text.get_window_extent(renderer)
        if box.x0 < bounds.x0 - 1 or box.y0 < bounds.y0 - 1 or box.x1 > bounds.x1 + 1 or box.y1 > bounds.y1 + 1:
            problems.append(f"{text.get_text()[:60]!r} at x {box.x0:.0f}..{box.x1:.0f}, y {box.y0:.0f}..{box.y1:.0f}"
                            f" in a {bounds.width:.0f} x {bounds.height:.0f} figure")
    return problems


def _overlapping(figure: Figure) -> list[str]:
    """Legends that cover an axis label (a legend under a panel or under the figure, given too little room)."""
    renderer: Any = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    legends = [*figure.legends, *(axes.get_legend() for axes in figure.axes if axes.get_legend() is not None)]
    labels = [label for axes in figure.axes for label in (axes.xaxis.label, axes.yaxis.label) if label.get_text()]
    problems = []
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for label in labels:
            if box.overlaps(label.get_window_extent(renderer)):
                problems.append(f"a legend covers the axis label {label.get_text()[:40]!r}")
    return problems


def _check(drawn: list[Figure]) -> None:
    assert drawn, "no figure was drawn"
    problems = [problem for figure in drawn for problem in (*_outside(figure), *_overlapping(figure))]
    drawn.clear()
    assert not problems, "text outside the figure:\n" + "\n".join(problems)


def _pairs(first: list[str], second: list[str]) -> list[tuple[str, str]]:
    """Each of `first` with one of `second` in turn, and each of `second` at least once: a family that
    covers every value of both without their whole product (each figure takes a second to draw)."""
    count = max(len(first), len(second))
    return [(first[n % len(first)], second[n % len(second)]) for n in range(count)]


@pytest.mark.parametrize(("name", "scale"), [*_pairs(list(NAMES), list(SCALES)), ("very long", "huge"), ("cjk", "tiny")])
def test_loss_plot_keeps_text_inside(drawn: list[Figure], name: str, scale: str) -> None:
    rng = np.random.default_rng(len(name) + len(scale))
    train = _train(rng, ["loss"], SCALES[scale])
    evals = pd.DataFrame({"step": [100, 300, 500], "eval_loss": _values(rng, 3, SCALES[scale])})
    # Every legend entry the loss plot has: raw, smoothed, spikes, eval, fall end, stabilised, best, resumed.
    figures = Figures(steps=600, logged_rows=120, spikes=(50, 250), fall_end_step=100,
                      fall_end_level=float(train["loss"].iloc[19]), stabilised_step=400,
                      best_checkpoint=BestCheckpoint(path="checkpoint-500", step=500, metric=0.5))
    plots.loss_plot(NAMES[name], color_for(0), train, evals, figures, SETTINGS, resumed_at=300)
    _check(drawn)


PANEL_SETS = {
    "one": [Panel("Learning rate", ("learning_rate",))],
    "standard": [Panel("Learning rate", ("learning_rate",)), Panel("Gradient norm", ("grad_norm",)),
                 Panel("Mean token accuracy", ("mean_token_accuracy",), percent=True)],
    "long keys": [Panel("k" * LONGEST_KEY, ("k" * LONGEST_KEY,)),
                  Panel("rewards/termination_verbosity_reward/std", ("rewards/termination_verbosity_reward/std",)),
                  Panel("Reward per function", tuple(f"rewards/{'function_' * 6}{n}/mean" for n in range(9)))],
    "many columns": [Panel("ORPO / SimPO losses", ("odds_ratio_loss", "sft_loss", "nll_loss", "log_odds_ratio",
                                                   "log_odds_chosen")),
                     Panel("Reward (mean +/- std)", ("reward",), band="reward_std")],
    "cjk keys": [Panel("rewards/正确性/mean", ("rewards/正确性/mean",)),
                 Panel("Reward per function", ("rewards/正确性/mean", "rewards/格式/mean"))],
}


@pytest.mark.parametrize(("name", "panels", "scale"),
                         [(name, panels, scale) for panels in PANEL_SETS
                          for name, scale in _pairs(["ordinary", "very long", "cjk"], ["huge", "negative", "tiny"])])
def test_panels_plot_keeps_text_inside(drawn: list[Figure], name: str, panels: str, scale: str) -> None:
    rng = np.random.default_rng(len(name) * 7 + len(panels))
    chosen = PANEL_SETS[panels]
    columns = list(dict.fromkeys(c for panel in chosen for c in (*panel.columns, *([panel.band] if panel.band else []))))
    train = _train(rng, columns, SCALES[scale])
    evals = pd.DataFrame({"step": [200, 400], **{"eval_" + c: _values(rng, 2, SCALES[scale]) for c in columns[:2]}})
    figures = Figures(steps=600, logged_rows=120, best_checkpoint=BestCheckpoint(path="c", step=400, metric=0.1))
    plots.panels_plot(f"{NAMES[name]}: training metrics", color_for(1), train, evals, chosen, SETTINGS, figures)
    for position in range(len(chosen)):  # each panel alone, as a model page shows it
        plots.panels_plot(NAMES[name], color_for(1), train, evals, chosen, SETTINGS, figures, only=position)
    assert len(drawn) == 1 + len(chosen)
    _check(drawn)


EVAL_GROUPS = {
    "one": {"accuracy": {"": "eval_accuracy"}},
    "many sets": {"accuracy": {f"set_{'long' * 5}_{n}": f"eval_set_{'long' * 5}_{n}_accuracy" for n in range(10)},
                  "f1": {"": "eval_f1"}},
    "long metrics": {("m" * 150) + str(n): {"": f"eval_{'m' * 150}{n}"} for n in range(3)},
}


@pytest.mark.parametrize(("name", "groups", "scale"),
                         [(name, groups, scale) for groups in EVAL_GROUPS
                          for name, scale in _pairs(["long", "mixed"], ["huge", "negative"])])
def test_eval_plot_keeps_text_inside(drawn: list[Figure], name: str, groups: str, scale: str) -> None:
    rng = np.random.default_rng(len(groups))
    chosen = EVAL_GROUPS[groups]
    columns = [column for sets in chosen.values() for column in sets.values()]
    evals = pd.DataFrame({"step": [100, 200, 300, 400], **{c: _values(rng, 4, SCALES[scale]) for c in columns}})
    figures = Figures(steps=400, logged_rows=0, best_checkpoint=BestCheckpoint(path="c", step=300, metric=0.5))
    plots.eval_plot(NAMES[name], evals, chosen, figures)
    for position in range(len(chosen)):
        plots.eval_plot(NAMES[name], evals, chosen, figures, only=position)
    assert len(drawn) == 1 + len(chosen)
    _check(drawn)


def _curves(count: int, name: str, scale: tuple[float, float], rng: np.random.Generator) -> list[Curve]:
    curves = []
    for n in range(count):
        steps = 100 * (n % 4 + 1) * (10 if n % 3 == 0 else 1)
        index = pd.Index(np.arange(1, steps + 1), name="step")
        values = pd.Series(_values(rng, steps, scale), index=index)
        epochs = pd.Series(np.arange(1, steps + 1) / 80.0, index=index)
        tokens = pd.Series(np.cumsum(rng.integers(100, 2000, steps)).astype(float), index=index)
        curves.append(make_curve(f"{NAMES[name]} {n}", color_for(n), values, steps, SETTINGS.smoothing, epochs=epochs,
                                 tokens=tokens))
    return curves


@pytest.mark.parametrize(("count", "name", "scale"),
                         [(count, name, scale) for count in (1, 2, LEGEND_LIMIT, LEGEND_LIMIT + 3)
                          for name, scale in _pairs(["long", "cjk", "very long"], ["unit", "huge", "negative"])])
def test_overview_plot_keeps_text_inside(drawn: list[Figure], count: int, name: str, scale: str) -> None:
    rng = np.random.default_rng(count)
    curves = _curves(count, name, SCALES[scale], rng)
    plots.overview_plot(curves, SETTINGS, "reward")
    for position, axis in enumerate(plots.overview_panels(curves)):  # each panel alone, as the index shows them
        plots.overview_plot(curves, SETTINGS, "reward", axis, legend=position == 0)
    _check(drawn)


def test_the_check_sees_a_clipped_title(drawn: list[Figure]) -> None:
    """The test can fail: a title placed past the right edge is reported."""
    figure = plots._new_figure(4.0, 3.0)
    figure.add_subplot().set_title("a title that does not fit", x=0.9, loc="left")
    figure.savefig(__import__("io").BytesIO(), format="png")
    assert _outside(figure)

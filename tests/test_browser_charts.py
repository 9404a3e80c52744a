"""The interactive charts as a visitor uses them, in headless Chromium at a desktop and a phone viewport.

One built site: the example project, plus a synthetic GRPO run (its chart leads with the reward)
and a long run (its chart is downsampled and smoothed from bucket means).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from browser_support import build_site, chromium, require_browser, serve

from conftest import copy_example_project, write_state
from generator.series import smooth

pytestmark = [pytest.mark.browser, pytest.mark.slow]

VIEWPORTS = {"desktop": (1400, 900), "phone": (390, 844)}
LONG_ROWS = 12_000


def grpo_rows() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = [
        {"loss": -0.001 * (i % 5), "reward": 0.2 + 0.01 * i + 0.03 * math.sin(i), "reward_std": 0.1,
         "kl": 0.001 * i, "step": i} for i in range(1, 81)]
    rows += [{"eval_loss": 0.02, "eval_reward": 0.3 + 0.05 * k, "step": 20 * k} for k in (1, 2, 3, 4)]
    return sorted(rows, key=lambda row: int(row["step"]))  # type: ignore[call-overload]


def long_rows() -> list[dict[str, object]]:
    rng = np.random.default_rng(11)
    losses = 1.5 * np.exp(-np.arange(LONG_ROWS) / 2000) + 0.4 + rng.normal(0, 0.04, LONG_ROWS)
    return [{"loss": round(float(v), 4), "step": i + 1} for i, v in enumerate(losses)]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_browser()
    project = copy_example_project(tmp_path_factory.mktemp("charts"))
    write_state(project / "grpo", grpo_rows())
    write_state(project / "long", long_rows())
    with (project / "checkpoints.yaml").open("a", encoding="utf-8") as registry:
        registry.write("  - {name: GRPO run, slug: grpo-run, path: grpo, phase: RL}\n"
                       "  - {name: Long run, slug: long-run, path: long, phase: Long}\n")
    return build_site(project)


@pytest.fixture(scope="module")
def site_url(site: Path) -> Iterator[str]:
    with serve(site) as url:
        yield url


@pytest.fixture(scope="module")
def browser(site_url: str) -> Iterator[Any]:
    with chromium() as running:
        yield running


@contextmanager
def opened(browser: Any, url: str, viewport: str, scheme: str = "light") -> Iterator[Any]:
    """A tab at `url` with its charts drawn; fails on any console error when it closes."""
    width, height = VIEWPORTS[viewport]
    context = browser.new_context(viewport={"width": width, "height": height}, color_scheme=scheme)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda message: message.type == "error" and errors.append(message.text))
    tab.on("pageerror", lambda error: errors.append(str(error)))
    try:
        tab.goto(url, wait_until="networkidle")
        tab.wait_for_function("[...document.querySelectorAll('.td-chart')].every(c => c.dataset.tdState === 'drawn')")
        yield tab
        overflow = tab.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"the page scrolls sideways by {overflow} px"
        assert errors == []
    finally:
        context.close()


def plot(tab: Any, expression: str, chart: int = 0) -> Any:
    """Evaluate `expression` with `u` bound to the uPlot of the page's chart number `chart`."""
    return tab.evaluate(f"(() => {{ const u = window.traindocsCharts.charts()[{chart}].plot; return {expression}; }})()")


def hover(tab: Any, step: float, chart: int = 0) -> None:
    tab.locator(".td-chart").nth(chart).scroll_into_view_if_needed()
    x, y = plot(tab, "(() => { const r = u.over.getBoundingClientRect(); "
                     f"return [r.left + u.valToPos({step}, 'x'), r.top + r.height / 2]; }})()", chart)
    tab.mouse.move(x, y)


def legend(tab: Any, chart: int = 0) -> dict[str, str]:
    """Legend label -> shown value."""
    entries = tab.locator(".td-chart").nth(chart).locator(".td-chart__entry")
    return {entries.nth(i).locator(".td-chart__name").inner_text(): entries.nth(i).locator(".td-chart__value").inner_text()
            for i in range(entries.count())}


def logged(site: Path, slug: str) -> pd.Series:
    """The training loss a model's CSV download holds, by step (the page's own data)."""
    table = pd.read_csv(site / "models" / slug / "log_history.csv")
    rows = table[table["loss"].notna()] if "loss" in table else table
    return pd.Series(rows["loss"].to_numpy(dtype="float64"), index=rows["step"].to_numpy(dtype="int64"))


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_model_chart_hover_hide_smoothing_log_and_zoom(browser: Any, site_url: str, site: Path, viewport: str) -> None:
    loss = logged(site, "phi-3-mini")
    with opened(browser, site_url + "models/phi-3-mini/", viewport) as tab:
        # The chart stands in for the PNG, which stays one click away.
        assert tab.locator("article img[src$='loss.png']").is_hidden()
        assert tab.locator(".td-chart a.td-chart__image").get_attribute("href").endswith("loss.png")
        labels = plot(tab, "u.series.map(s => s.label)")
        assert labels == ["step", "loss (raw)", "loss (smoothed)"]

        step = int(loss.index[20])
        hover(tab, step)
        shown = legend(tab)
        assert shown["step"] == str(step)
        assert float(shown["loss (raw)"]) == pytest.approx(loss.loc[step], rel=1e-5)
        expected = smooth(loss, 0.6).loc[step]
        assert float(shown["loss (smoothed)"]) == pytest.approx(expected, rel=1e-5)

        # The slider recomputes the smoothed curve: Python's EMA at every step.
        before = plot(tab, "u.data[2].slice()")
        tab.locator(".td-chart input[type=range]").fill("0.9")
        after = plot(tab, "u.data[2].slice()")
        assert after != before
        assert after == pytest.approx(smooth(loss, 0.9).tolist(), abs=1e-9)
        assert tab.locator(".td-chart output").inner_text() == "0.90"

        # A legend click hides the raw curve (and a second shows it again).
        entry = tab.locator(".td-chart button.td-chart__entry").nth(0)
        entry.click()
        assert plot(tab, "u.series[1].show") is False
        assert entry.get_attribute("aria-pressed") == "false"
        assert plot(tab, "u.series[2].show") is True
        assert tab.locator("article table").count() == tab.locator("article table:not(.u-legend)").count()

        # Log scale, kept with the hidden curve and the smoothing across the redraw.
        tab.locator(".td-chart__log").click()
        assert plot(tab, "u.scales.y.distr") == 3
        assert plot(tab, "u.series[1].show") is False
        assert plot(tab, "u.data[2].slice()") == pytest.approx(after, abs=1e-12)
        tab.locator(".td-chart__log").click()
        assert plot(tab, "u.scales.y.distr") == 1

        # Drag to zoom, then reset (button and double-click).
        first, last = int(loss.index[0]), int(loss.index[-1])
        box = tab.locator(".td-chart .u-over").bounding_box()
        tab.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] / 2)
        tab.mouse.down()
        tab.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2, steps=5)
        tab.mouse.up()
        zoomed = plot(tab, "[u.scales.x.min, u.scales.x.max]")
        assert first < zoomed[0] < zoomed[1] < last
        tab.locator(".td-chart__reset").click()
        assert plot(tab, "[u.scales.x.min, u.scales.x.max]") == [first, last]
        tab.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] / 2)
        tab.mouse.down()
        tab.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2, steps=5)
        tab.mouse.up()
        assert plot(tab, "u.scales.x.min") > first
        tab.mouse.dblclick(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        assert plot(tab, "[u.scales.x.min, u.scales.x.max]") == [first, last]

        # The chart fills its column: full width on a phone too.
        widths = tab.evaluate("[document.querySelector('.td-chart').clientWidth, "
                              "document.querySelector('article').clientWidth]")
        assert widths[0] >= 0.9 * widths[1]


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_rl_chart_leads_with_the_reward_and_keeps_the_panels(browser: Any, site_url: str, viewport: str) -> None:
    rows = grpo_rows()
    reward = pd.Series({int(r["step"]): float(r["reward"]) for r in rows if "reward" in r})  # type: ignore[call-overload, arg-type]
    with opened(browser, site_url + "models/grpo-run/", viewport, scheme="dark") as tab:
        assert plot(tab, "u.series.map(s => s.label)") == ["step", "reward (raw)", "reward (smoothed)", "eval reward"]
        assert tab.locator("article img[src$='rl-1.png']").is_visible()  # its panels show more than the reward
        hover(tab, 40)
        shown = legend(tab)
        assert float(shown["reward (raw)"]) == pytest.approx(reward.loc[40], rel=1e-5)
        assert float(shown["eval reward"]) == pytest.approx(0.3 + 0.05 * 2, rel=1e-5)
        # The eval colour (the PNG's near-black) is lightened on the dark scheme, and back on the light one.
        assert plot(tab, "u.series[3].stroke(u, 3)") == "#d4d4d4"
        tab.locator("label.md-header__button[for^='__palette']:visible").first.click()
        tab.wait_for_function("document.body.dataset.mdColorScheme === 'default'")
        assert plot(tab, "u.series[3].stroke(u, 3)") == "#262626"


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_index_chart_has_a_curve_per_run(browser: Any, site_url: str, site: Path, viewport: str) -> None:
    with opened(browser, site_url, viewport) as tab:
        assert plot(tab, "u.series.map(s => s.label)") == ["step", "Qwen 7B", "Phi-3 Mini", "Gemma 2 2B", "Long run"]
        # Several runs: the overview's panels by share of training, epoch and tokens show what the chart (by step)
        # does not, so the panels stay (data-keep-image).
        assert tab.locator("article img[src$='sft-curves.png']").is_visible()
        phi = smooth(logged(site, "phi-3-mini"), 0.6)
        plot(tab, "u.setScale('x', {min: 50, max: 150})")  # the long run squeezes step 100 into a few pixels
        hover(tab, 100)
        shown = legend(tab)
        assert shown["step"] == "100"
        assert float(shown["Phi-3 Mini"]) == pytest.approx(phi.loc[100], rel=1e-5)
        tab.locator(".td-chart__reset").first.click()
        # A run that ended before the cursor's step says which step its value is from.
        hover(tab, 2000)
        value, _, where = legend(tab)["Phi-3 Mini"].partition(" ")
        assert where == "(step 195)" and float(value) == pytest.approx(phi.loc[195], rel=1e-5)


def test_long_run_is_thinned_and_exact_at_the_page_weight(browser: Any, site_url: str, site: Path) -> None:
    loss = logged(site, "long-run")
    exact = smooth(loss, 0.6)
    with opened(browser, site_url + "models/long-run/", "desktop") as tab:
        points = plot(tab, "u.data[1].filter(v => v !== undefined).length")
        assert points <= 4002  # the min and max of 2,000 buckets of 12,000 rows
        assert "Long logs are thinned" in tab.locator(".td-chart__hint").inner_text()
        for step in (3000, 6000, 11000):
            hover(tab, step)
            shown = legend(tab)
            value, _, where = shown["loss (smoothed)"].partition(" ")
            at = int(where.strip("(step )")) if where else int(shown["step"])
            assert float(value) == pytest.approx(exact.loc[at], rel=1e-5), step
        # Another weight: the bucket means smoothed, close to (not exactly) Python's EMA of every row.
        tab.locator(".td-chart input[type=range]").fill("0.95")
        steps = plot(tab, "u.data[0].filter((x, i) => u.data[2][i] !== undefined)")
        values = plot(tab, "u.data[2].filter(v => v !== undefined)")
        assert values == pytest.approx(smooth(loss, 0.95).loc[steps].tolist(), abs=0.02)


def test_js_ema_equals_python_smooth(browser: Any, site_url: str) -> None:
    rng = np.random.default_rng(5)
    values = rng.normal(1.0, 0.5, 500)
    values[[0, 1, 57, 58, 300, 499]] = np.nan
    shown = [None if math.isnan(v) else float(v) for v in values]
    counts = rng.integers(1, 12, 500)
    with opened(browser, site_url, "desktop") as tab:
        for weight in (0.0, 0.3, 0.6, 0.95, 0.99):
            js = tab.evaluate("([v, w]) => window.traindocsCharts.smooth(v, w)", [shown, weight])
            python = smooth(pd.Series(values), weight).tolist()
            assert [v is None for v in js] == [math.isnan(v) for v in python], weight
            assert [v for v in js if v is not None] == pytest.approx([v for v in python if not math.isnan(v)],
                                                                     abs=1e-9, rel=1e-12)
            # Bucket means: the EMA of each bucket's values expanded, at the bucket's end.
            means = rng.normal(1.0, 0.5, 500)
            js = tab.evaluate("([v, w, c]) => window.traindocsCharts.smooth(v, w, c)",
                              [means.tolist(), weight, counts.tolist()])
            expanded = smooth(pd.Series(np.repeat(means, counts)), weight).to_numpy()[np.cumsum(counts) - 1]
            assert js == pytest.approx(expanded.tolist(), abs=1e-9, rel=1e-12)

"""In Chromium: pages of models named in another script open at their Unicode URLs with their plots,
and the overview panels of the index and the metric panels of a model page stay legible on a
390-pixel phone."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from browser_support import broken_images, chromium, require_browser, serve

from conftest import REPO, write_state

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NAMES = ["日本語モデル", "Qwen 7B — 日本語", "Llama base"]
SLUGS = ["日本語モデル", "qwen-7b-日本語", "llama-base"]
TICK_POINTS = 10.0
"""Tick labels are drawn at the plots' base font size (plots.STYLE), in points at plots.DPI."""
PHONE = {"width": 390, "height": 844}
LEGIBLE_PX = 9.0


def _rows(scale: float, steps: int) -> list[dict[str, object]]:
    return [{"loss": scale * (2.0 / (1 + 0.02 * step)) + 0.01 * (step % 7), "learning_rate": 1e-4 * (1 - step / (steps + 1)),
             "grad_norm": 0.4 + 0.01 * (step % 7), "step": step, "epoch": step / 100, "num_input_tokens_seen": 4096 * step}
            for step in range(5, steps + 1, 5)]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_browser()
    project = tmp_path_factory.mktemp("names")
    lines = ["checkpoints:\n"]
    for n, name in enumerate(NAMES):
        write_state(project / f"run{n}", _rows(1.0 + 0.3 * n, 200 * (n + 1)))
        lines.append(f"  - {{name: '{name}', path: run{n}}}\n")
    (project / "checkpoints.yaml").write_text("".join(lines), encoding="utf-8")
    shutil.copy2(REPO / "mkdocs.yml", project / "mkdocs.yml")
    # Not --strict: on a machine without a CJK font the names are one warning each (tests/test_plot_names.py).
    done = subprocess.run([sys.executable, "-m", "generator", "build", "--config", str(project / "checkpoints.yaml")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert all("no installed font draws" in line for line in warnings), warnings
    assert "Glyph" not in done.stderr
    with serve(project / "site") as url:
        yield url


@pytest.fixture(scope="module")
def browser(site: str) -> Iterator[Any]:
    with chromium() as running:
        yield running


def _tab(browser: Any, viewport: dict[str, int]) -> Any:
    return browser.new_context(viewport=viewport).new_page()


@pytest.mark.parametrize("slug", SLUGS)
def test_model_pages_open_at_unicode_urls_with_their_plots(browser: Any, site: str, slug: str) -> None:
    tab = _tab(browser, {"width": 1280, "height": 900})
    try:
        response = tab.goto(f"{site}models/{quote(slug)}/", wait_until="networkidle")
        assert response is not None and response.status == 200
        assert tab.locator("article img").count() >= 2
        assert broken_images(tab) == []
        index = tab.goto(site, wait_until="networkidle")
        assert index is not None and index.status == 200
        link = tab.locator("article table a", has_text=NAMES[SLUGS.index(slug)]).first
        link.click()
        tab.wait_for_load_state("networkidle")
        assert quote(slug) in tab.url and broken_images(tab) == []
    finally:
        tab.context.close()


def _panels(tab: Any) -> list[dict[str, float]]:
    measured: list[dict[str, float]] = tab.eval_on_selector_all(
        ".td-panels img",
        "images => images.map(i => ({natural: i.naturalWidth, shown: i.getBoundingClientRect().width,"
        " top: i.getBoundingClientRect().top, left: i.getBoundingClientRect().left}))",
    )
    return measured


def _tick_label_px(panel: dict[str, float]) -> float:
    """CSS pixels of a tick label's em: its size in image pixels times the image's scale on the page."""
    return TICK_POINTS * 110 / 72 * panel["shown"] / panel["natural"]


def test_overview_panels_are_one_column_and_legible_on_a_phone(browser: Any, site: str) -> None:
    tab = _tab(browser, PHONE)
    try:
        tab.goto(site, wait_until="networkidle")
        panels = _panels(tab)
        assert len(panels) == 4  # step, share of training, epoch, tokens: three runs differ on each
        assert broken_images(tab) == []
        assert len({round(p["left"]) for p in panels}) == 1  # one column
        smallest = min(_tick_label_px(p) for p in panels)
        assert smallest >= LEGIBLE_PX, f"tick labels {smallest:.1f} CSS px tall on a 390 px phone"
        artifacts = Path(__file__).parent / "artifacts"
        artifacts.mkdir(exist_ok=True)
        tab.locator(".td-panels").first.screenshot(path=str(artifacts / "names-phone.png"))
    finally:
        tab.context.close()


def test_overview_panels_are_two_a_row_on_a_desktop(browser: Any, site: str) -> None:
    tab = _tab(browser, {"width": 1280, "height": 900})
    try:
        tab.goto(site, wait_until="networkidle")
        panels = _panels(tab)
        assert [round(p["top"]) for p in panels][1] == round(panels[0]["top"])  # the second sits beside the first
        assert len({round(p["left"]) for p in panels}) == 2
        assert min(_tick_label_px(p) for p in panels) >= LEGIBLE_PX
    finally:
        tab.context.close()


def test_model_page_panels_are_one_column_and_legible_on_a_phone(browser: Any, site: str) -> None:
    # Each training-metrics panel (learning rate, gradient norm) is its own image: a whole 2-column grid
    # shrunk to the phone's width had 6-pixel tick labels.
    tab = _tab(browser, PHONE)
    try:
        tab.goto(f"{site}models/llama-base/", wait_until="networkidle")
        panels = _panels(tab)
        assert len(panels) == 2
        assert broken_images(tab) == []
        assert len({round(p["left"]) for p in panels}) == 1  # one column
        smallest = min(_tick_label_px(p) for p in panels)
        assert smallest >= LEGIBLE_PX, f"tick labels {smallest:.1f} CSS px tall on a 390 px phone"
    finally:
        tab.context.close()


def test_model_page_panels_are_two_a_row_on_a_desktop(browser: Any, site: str) -> None:
    tab = _tab(browser, {"width": 1400, "height": 900})
    try:
        tab.goto(f"{site}models/llama-base/", wait_until="networkidle")
        panels = _panels(tab)
        assert len(panels) == 2 and round(panels[1]["top"]) == round(panels[0]["top"])
        assert len({round(p["left"]) for p in panels}) == 2
        assert min(_tick_label_px(p) for p in panels) >= LEGIBLE_PX
    finally:
        tab.context.close()

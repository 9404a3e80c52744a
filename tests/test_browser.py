"""What a visitor sees: the built example site in headless Chromium (Debian's), driven by Playwright.

Screenshots land in tests/artifacts/ for a person to look at.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from browser_support import broken_images, build_site, chromium, new_page, require_browser, serve

from conftest import REPO

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


@pytest.fixture(scope="module")
def site_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_browser()
    project = tmp_path_factory.mktemp("browser") / "project"
    project.mkdir()
    for name in ("checkpoints.yaml", "mkdocs.yml"):
        shutil.copy2(REPO / name, project / name)
    shutil.copytree(REPO / "examples", project / "examples", ignore=shutil.ignore_patterns("*.py"))
    with serve(build_site(project)) as url:
        yield url


@pytest.fixture(scope="module")
def browser(site_url: str) -> Iterator[Any]:
    with chromium() as running:
        yield running


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    with new_page(browser) as tab:
        yield tab


def test_index_table_images_and_console(page: object, site_url: str) -> None:
    page.goto(site_url, wait_until="networkidle")  # type: ignore[attr-defined]
    rows = page.locator("article table tbody tr")  # type: ignore[attr-defined]
    assert rows.count() == 3
    assert rows.nth(2).locator("td").nth(6).inner_text() == "Very Fast (High Initial Gap)"
    # One overview, all three are SFT runs: its panels by step, share of training, epoch and tokens.
    assert page.locator("article .td-panels img").count() == 4  # type: ignore[attr-defined]
    assert page.locator("article img").count() == 4  # type: ignore[attr-defined]
    assert broken_images(page) == []
    assert page.console_errors == []  # type: ignore[attr-defined]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "index.png"), full_page=True)  # type: ignore[attr-defined]


def test_table_link_opens_the_model_page(page: object, site_url: str) -> None:
    page.goto(site_url, wait_until="networkidle")  # type: ignore[attr-defined]
    page.locator("article table tbody a", has_text="Gemma 2 2B").click()  # type: ignore[attr-defined]
    page.wait_for_url("**/models/gemma-2-2b/")  # type: ignore[attr-defined]
    assert page.locator("article h1").inner_text().startswith("Gemma 2 2B")  # type: ignore[attr-defined]
    page.wait_for_load_state("networkidle")  # type: ignore[attr-defined]
    assert page.locator("article img").count() == 6  # loss, 4 metric panels, badge  # type: ignore[attr-defined]
    assert broken_images(page) == []
    assert page.console_errors == []  # type: ignore[attr-defined]
    page.screenshot(path=str(ARTIFACTS / "model.png"), full_page=True)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("query", "page_title"), [("Phi-3 Mini", "Phi-3 Mini"), ("gemma-2-2b-it", "Gemma 2 2B")])
def test_search_lists_a_model_page_by_name_or_base_model(page: object, site_url: str, query: str,
                                                         page_title: str) -> None:
    from playwright.sync_api import expect

    page.goto(site_url, wait_until="networkidle")  # type: ignore[attr-defined]
    page.locator("label.md-search__icon, .md-search__input").first.click()  # type: ignore[attr-defined]
    # Typing before the search worker has loaded its index would be dropped.
    expect(page.locator(".md-search-result__meta")).to_have_text("Type to start searching", timeout=10_000)  # type: ignore[attr-defined]
    # Typed key by key, as a visitor does: Material searches on key events.
    page.locator("input.md-search__input").press_sequentially(query, delay=20)  # type: ignore[attr-defined]
    # Each result links a page; the model's own page must be among them.
    result_titles = page.locator(".md-search-result__item > .md-search-result__link h1")  # type: ignore[attr-defined]
    expect(result_titles.filter(has_text=page_title)).to_have_count(1, timeout=10_000)
    link = page.locator(".md-search-result__item > .md-search-result__link", has_text=page_title).first  # type: ignore[attr-defined]
    path = urlparse(link.get_attribute("href")).path  # Material adds ?h=<terms> to highlight them
    assert path == "/models/" + page_title.lower().replace(" ", "-") + "/"


def test_palette_toggle_switches_to_dark_and_back(page: object, site_url: str) -> None:
    page.goto(site_url, wait_until="networkidle")  # type: ignore[attr-defined]
    scheme = "document.body.getAttribute('data-md-color-scheme')"
    assert page.evaluate(scheme) == "default"  # type: ignore[attr-defined]
    page.locator("form[data-md-component=palette] label:visible").first.click()  # type: ignore[attr-defined]
    assert page.evaluate(scheme) == "slate"  # type: ignore[attr-defined]
    page.screenshot(path=str(ARTIFACTS / "index-dark.png"))  # type: ignore[attr-defined]
    page.locator("form[data-md-component=palette] label:visible").first.click()  # type: ignore[attr-defined]
    assert page.evaluate(scheme) == "default"  # type: ignore[attr-defined]


def _model_column(page: object) -> list[str]:
    return page.locator("article table tbody tr td:first-child").all_inner_texts()  # type: ignore[attr-defined]


def test_comparison_table_sorts_by_a_clicked_column(page: object, site_url: str) -> None:
    page.goto(site_url, wait_until="networkidle")  # type: ignore[attr-defined]
    assert _model_column(page) == ["Qwen 7B", "Phi-3 Mini", "Gemma 2 2B"]
    steps = page.locator("article table thead th", has_text="Steps")  # type: ignore[attr-defined]
    steps.click()
    assert _model_column(page) == ["Phi-3 Mini", "Gemma 2 2B", "Qwen 7B"]  # 199, 314, 2668: as numbers
    assert steps.get_attribute("aria-sort") == "ascending"
    steps.click()
    assert _model_column(page) == ["Qwen 7B", "Gemma 2 2B", "Phi-3 Mini"]
    assert steps.get_attribute("aria-sort") == "descending"
    assert page.console_errors == []  # type: ignore[attr-defined]


def test_clicking_a_plot_zooms_it(page: object, site_url: str) -> None:
    from playwright.sync_api import expect

    page.goto(site_url + "models/qwen-7b/", wait_until="networkidle")  # type: ignore[attr-defined]
    # The interactive chart stands in for the loss PNG; its "Static image" link opens the PNG's lightbox.
    page.locator(".td-chart a.td-chart__image").click()  # type: ignore[attr-defined]
    zoomed = page.locator(".glightbox-container .gslide.current img")  # type: ignore[attr-defined]
    expect(zoomed).to_be_visible(timeout=5_000)
    assert zoomed.get_attribute("src").endswith("qwen-7b/loss.png")
    assert zoomed.evaluate("image => image.naturalWidth") > 0
    page.screenshot(path=str(ARTIFACTS / "zoom.png"))  # type: ignore[attr-defined]
    page.keyboard.press("Escape")  # type: ignore[attr-defined]
    assert page.console_errors == []  # type: ignore[attr-defined]

"""A site mixing SFT, DPO, GRPO and classification runs, as a visitor sees it in headless Chromium.

Screenshots land in tests/artifacts/ for a person to look at.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import broken_images, build_site, chromium, new_page, require_browser, serve
from test_kinds import _mixed_registry

from conftest import REPO

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


@pytest.fixture(scope="module")
def site_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_browser()
    project = tmp_path_factory.mktemp("kinds")
    _mixed_registry(project)
    shutil.copy2(REPO / "mkdocs.yml", project / "mkdocs.yml")
    with serve(build_site(project)) as url:
        yield url


@pytest.fixture(scope="module")
def browser(site_url: str) -> Iterator[Any]:
    with chromium() as running:
        yield running


def test_index_shows_one_table_and_one_plot_per_kind(browser: Any, site_url: str) -> None:
    with new_page(browser) as page:
        page.goto(site_url, wait_until="networkidle")
        headings = [text.rstrip("¶") for text in page.locator("article h2").all_inner_texts()]
        assert headings[:4] == ["SFT / Trainer", "Fine-tune with evaluation metrics",
                                "Preference optimisation (DPO family)", "Reinforcement learning (GRPO / PPO / RLOO)"]
        tables = page.locator("article table")
        assert tables.count() == 4
        assert [tables.nth(i).locator("tbody tr").count() for i in range(4)] == [1, 1, 1, 1]
        assert "Reward (last tenth)" in tables.nth(3).locator("thead").inner_text()
        assert page.locator("article img").count() == 4
        assert broken_images(page) == []
        assert page.console_errors == []
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "index-kinds.png"), full_page=True)


@pytest.mark.parametrize(("slug", "section"), [("grpo-run", "Reward and policy"), ("dpo-run", "Preference metrics"),
                                               ("classifier", "Evaluation")])
def test_kind_pages_show_their_sections_and_plots(browser: Any, site_url: str, slug: str, section: str) -> None:
    with new_page(browser) as page:
        page.goto(f"{site_url}models/{slug}/", wait_until="networkidle")
        assert section in [text.rstrip("¶") for text in page.locator("article h2").all_inner_texts()]
        assert page.locator("article img").count() >= 3
        assert broken_images(page) == []
        assert page.console_errors == []
        page.screenshot(path=str(ARTIFACTS / f"{slug}.png"), full_page=True)

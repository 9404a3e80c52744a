"""The report inside an existing MkDocs site: the plugin's `folder` option.

A Material site with its own home page, pages and nav gets the report under
docs/reports/ as one nav section; its own files are never written, moved or
deleted, by a build, a second build, or a build after the option is removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup

from conftest import copy_example_project
from generator import navigation
from generator.ownership import MANIFEST, report_folder
from generator.records import SiteLayout

USER_PAGES = {
    "index.md": "# Acme models\n\nOur own home page. See [the setup guide](guide/setup.md).\n",
    "guide/setup.md": "# Setup\n\nInstall the tools.\n",
    "about.md": "# About us\n\nA team that trains models.\n",
    "reports/notes.md": "# Notes on the reports\n\nHand-written, inside the report's folder.\n",
}

USER_NAV = """\
nav:
  - Home: index.md
  - Guide:
      - guide/setup.md
  - About: about.md
"""

MKDOCS_YML = """\
site_name: Acme models
site_url: https://example.org/acme/
theme:
  name: material
  font: false
  features: [navigation.sections]
{nav}
plugins:
  - search
  - traindocs:
      registry: checkpoints.yaml
{options}
"""

FOLDER_OPTION = "      folder: reports\n"


def existing_site(root: Path, *, nav: bool = True, options: str = FOLDER_OPTION) -> Path:
    """The example checkpoints in a Material site that has its own pages (and nav, unless told not to)."""
    project = copy_example_project(root)
    for relative, text in USER_PAGES.items():
        (project / "docs" / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / "docs" / relative).write_text(text, encoding="utf-8")
    write_mkdocs_yml(project, nav=nav, options=options)
    return project


def write_mkdocs_yml(project: Path, *, nav: bool = True, options: str = FOLDER_OPTION) -> None:
    (project / "mkdocs.yml").write_text(MKDOCS_YML.format(nav=USER_NAV if nav else "", options=options),
                                        encoding="utf-8")


def traindocs(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "generator", *args, "--config", str(project / "checkpoints.yaml")],
                          capture_output=True, text=True, check=False, cwd=project)


def user_files(project: Path) -> dict[str, str]:
    """SHA-256 of each of the user's own pages."""
    return {relative: hashlib.sha256((project / "docs" / relative).read_bytes()).hexdigest()
            for relative in USER_PAGES}


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under a folder with its bytes (the generation lock aside: it is opened, never written)."""
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file() and path.name != ".traindocs.lock"}


def primary_nav(html_file: Path) -> list[tuple[int, str, str | None]]:
    """The built primary nav: (depth, label, href) of every link and section title, in order."""
    soup = BeautifulSoup(html_file.read_text(encoding="utf-8"), "html.parser")
    nav = soup.select_one("nav.md-nav--primary")
    assert nav is not None
    entries = []
    for element in nav.select("a.md-nav__link, label.md-nav__link"):
        if element.name == "a" and element.find_parent("nav", class_="md-nav--secondary") is not None:
            continue  # the table of contents of the current page
        depth = len(element.find_parents("ul"))
        entries.append((depth, element.get_text(" ", strip=True), element.get("href")))
    return entries


EXPECTED_SECTION = [
    "Training reports", "Overview", "Models", "Phase 1 SFT", "Qwen 7B", "Phase 2 Reasoning", "Phi-3 Mini",
    "Gemma 2 2B", "How the figures are computed",
]


# --- the nav and the folder, without building -----------------------------------------------------


def test_report_folder_is_normalised_or_refused() -> None:
    assert report_folder("reports/") == "reports"
    assert report_folder("/team/training-reports/") == "team/training-reports"
    assert report_folder("") == ""
    for bad in ("../reports", "a/../b", ".hidden", "a//b", "C:/x", "a\\b", "rep orts", "a/./b"):
        with pytest.raises(ValueError, match="is not a folder inside docs/"):
            report_folder(bad)


def test_site_layout_puts_urls_in_the_folder() -> None:
    layout = SiteLayout(site_url="https://a.org/r/", folder="reports")
    assert layout.page_url("index.md") == "reports/"
    assert layout.page_url("models/x.md") == "reports/models/x/"
    assert SiteLayout(use_directory_urls=False, folder="reports").page_url("models/x.md") == "reports/models/x.html"
    assert layout.absolute(layout.file_url("models/x/badge.svg")) == "https://a.org/r/reports/models/x/badge.svg"
    assert SiteLayout().page_url("models/x.md") == "models/x/"


def test_a_nav_that_already_links_the_report_is_left_alone() -> None:
    layout = SiteLayout(folder="reports")
    placed = [{"Home": "index.md"}, {"Our runs": ["./reports/index.md"]}]
    assert navigation.with_report_section(placed, None, layout, "Training reports") is placed  # type: ignore[arg-type]
    assert not navigation.mentions_folder([{"Home": "index.md"}, "reportsx/a.md"], "reports")


# --- built sites --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An existing site with its own nav, built twice; the hashes and trees around each build."""
    project = existing_site(tmp_path_factory.mktemp("existing"))
    before = user_files(project)
    first = traindocs(project, "build", "--strict")
    docs_after_first = tree(project / "docs")
    second = traindocs(project, "build", "--strict")
    return {"project": project, "before": before, "first": first, "second": second,
            "docs_after_first": docs_after_first}


@pytest.mark.slow
def test_user_pages_untouched_and_report_in_its_folder(built: dict[str, Any]) -> None:
    project: Path = built["project"]
    assert built["first"].returncode == 0, built["first"].stderr
    assert user_files(project) == built["before"]
    manifest = json.loads((project / "docs" / MANIFEST).read_text())
    assert manifest["files"], "nothing generated"
    assert all(path.startswith("reports/") for path in manifest["files"]), sorted(manifest["files"])
    assert "reports/notes.md" not in manifest["files"]
    for generated in ("index.md", "methodology.md", "summary.json", "models/qwen-7b.md",
                      "models/qwen-7b/loss.png", "assets/traindocs/tablesort.js"):
        assert (project / "docs" / "reports" / generated).is_file(), generated
    assert not (project / "docs" / "models").exists() and not (project / "docs" / "methodology.md").exists()
    site = project / "site"
    # The user's pages are built from their own sources.
    assert "Our own home page." in (site / "index.html").read_text()
    assert "Install the tools." in (site / "guide" / "setup" / "index.html").read_text()
    assert "A team that trains models." in (site / "about" / "index.html").read_text()
    assert "Hand-written, inside the report" in (site / "reports" / "notes" / "index.html").read_text()


@pytest.mark.slow
def test_report_is_one_section_after_the_users_nav(built: dict[str, Any]) -> None:
    site: Path = built["project"] / "site"
    nav = primary_nav(site / "about" / "index.html")
    labels = [label for _, label, _ in nav]
    # The user's entries first and in their order, then the report's section.
    assert labels[:4] == ["Home", "Guide", "Setup", "About"], labels
    assert labels[4:] == EXPECTED_SECTION, labels
    hrefs = {label: href for _, label, href in nav}
    assert hrefs["Overview"] == "../reports/"
    assert hrefs["Qwen 7B"] == "../reports/models/qwen-7b/"
    assert hrefs["How the figures are computed"] == "../reports/methodology/"
    section_depth = next(depth for depth, label, _ in nav if label == "Training reports")
    assert all(depth > section_depth for depth, label, _ in nav if label in EXPECTED_SECTION[1:])


@pytest.mark.slow
def test_links_badges_and_summary_point_into_the_folder(built: dict[str, Any]) -> None:
    project: Path = built["project"]
    site = project / "site"
    page = (project / "docs" / "reports" / "models" / "qwen-7b.md").read_text()
    assert "Permalink: <https://example.org/acme/reports/models/qwen-7b/>" in page
    assert "(https://example.org/acme/reports/models/qwen-7b/badge.svg)" in page
    summary = json.loads((project / "docs" / "reports" / "summary.json").read_text())
    for model in summary["models"]:
        assert model["page"] == f"reports/models/{model['slug']}/"
        assert model["url"] == "https://example.org/acme/" + model["page"]
        assert (site / model["page"] / "index.html").is_file()
        assert (site / f"reports/models/{model['slug']}/badge.svg").is_file()
    cards = traindocs(project, "link-cards", "--dry-run")
    assert cards.returncode == 0, cards.stderr
    assert "(https://example.org/acme/reports/models/qwen-7b/)" in cards.stdout
    assert "(https://example.org/acme/reports/models/qwen-7b/badge.svg)" in cards.stdout
    # Every relative link and image of the generated pages resolves to a built file.
    for html_file in (site / "reports").rglob("index.html"):
        soup = BeautifulSoup(html_file.read_text(encoding="utf-8"), "html.parser")
        targets = [str(img["src"]) for img in soup.select("article img[src]")]
        targets += [str(a["href"]) for a in soup.select("article a[href]")]
        targets += [str(script["src"]) for script in soup.select("script[src*=tablesort]")]
        for target in targets:
            if "://" in target or target.startswith(("#", "mailto:")):
                continue
            resolved = (html_file.parent / target.split("#")[0]).resolve()
            assert resolved.is_file() or (resolved / "index.html").is_file(), (html_file, target)


@pytest.mark.slow
def test_second_build_changes_nothing(built: dict[str, Any]) -> None:
    second = built["second"]
    assert second.returncode == 0, second.stderr
    assert "0 files written" in second.stderr and "0 removed" in second.stderr
    assert tree(built["project"] / "docs") == built["docs_after_first"]


@pytest.mark.slow
def test_plain_mkdocs_build_honours_the_folder(tmp_path: Path) -> None:
    """`mkdocs build` alone (the plugin generating) makes the same folder and nav as `traindocs build`."""
    project = existing_site(tmp_path)
    before = user_files(project)
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict"], capture_output=True, text=True,
                          check=False, cwd=project)
    assert done.returncode == 0, done.stderr
    assert user_files(project) == before
    assert (project / "docs" / "reports" / "index.md").is_file() and not (project / "docs" / "models").exists()
    assert [label for _, label, _ in primary_nav(project / "site" / "about" / "index.html")][4:] == EXPECTED_SECTION


@pytest.mark.slow
def test_without_a_nav_mkdocs_default_nav_plus_the_section(tmp_path: Path) -> None:
    project = existing_site(tmp_path, nav=False)
    # What MkDocs itself makes of the user's pages, without traindocs.
    plain = tmp_path / "plain"
    shutil.copytree(project / "docs", plain / "docs")
    (plain / "mkdocs.yml").write_text(MKDOCS_YML.format(nav="", options="").replace("  - traindocs:\n"
                                      "      registry: checkpoints.yaml\n", ""), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict"], capture_output=True, text=True,
                          check=False, cwd=plain)
    assert done.returncode == 0, done.stderr
    mkdocs_nav = primary_nav(plain / "site" / "about" / "index.html")
    # MkDocs' own nav has the hand-written page of docs/reports/ as a section "Reports"; with traindocs the
    # folder is the report's section.
    mkdocs_user_nav = [entry for entry in mkdocs_nav if entry[1] not in ("Reports", "Notes on the reports")]

    result = traindocs(project, "build", "--strict")
    assert result.returncode == 0, result.stderr
    nav = primary_nav(project / "site" / "about" / "index.html")
    labels = [label for _, label, _ in nav]
    assert nav[: len(mkdocs_user_nav)] == mkdocs_user_nav
    # The hand-written page in the report's folder closes the report's section.
    assert labels[len(mkdocs_user_nav):] == [*EXPECTED_SECTION, "Notes on the reports"]


@pytest.mark.slow
def test_removing_the_option_deletes_no_user_file(tmp_path: Path) -> None:
    project = existing_site(tmp_path)
    before = user_files(project)
    assert traindocs(project, "generate").returncode == 0
    write_mkdocs_yml(project, options="")
    result = traindocs(project, "generate")
    # The report now wants docs/index.md, which is the user's: refused, named, and the exit status says so.
    assert result.returncode == 1
    assert "docs/index.md: exists and was not written by traindocs" in result.stderr
    assert user_files(project) == before
    # The report's own files moved out of reports/; the user's page there stays.
    assert sorted(path.relative_to(project / "docs").as_posix()
                  for path in (project / "docs" / "reports").rglob("*")) == ["reports/notes.md"]


@pytest.mark.slow
def test_a_bad_folder_is_one_line_naming_the_option(tmp_path: Path) -> None:
    project = existing_site(tmp_path, options="      folder: ../outside\n")
    before = user_files(project)
    result = traindocs(project, "build")
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    assert "mkdocs.yml" in lines[0] and "'folder'" in lines[0] and "'../outside'" in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    assert user_files(project) == before
    assert not (tmp_path / "outside").exists()


# --- in Chromium -----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.browser
def test_nav_section_shows_and_its_links_open(built: dict[str, Any]) -> None:
    from browser_support import broken_images, chromium, new_page, require_browser, serve

    require_browser()
    artifacts = Path(__file__).resolve().parent / "artifacts"
    artifacts.mkdir(exist_ok=True)
    with serve(built["project"] / "site") as url, chromium() as browser, new_page(browser) as page:
        page.goto(url + "about/", wait_until="networkidle")
        sidebar = page.locator("nav.md-nav--primary")
        for section in ("Guide", "Training reports", "Models"):
            assert sidebar.get_by_text(section, exact=True).first.is_visible(), section
        for label in ("Home", "Setup", "About", "Overview", "How the figures are computed"):
            assert sidebar.get_by_role("link", name=label, exact=True).first.is_visible(), label
        page.screenshot(path=str(artifacts / "existing-site-nav.png"), full_page=False)

        def open_from_nav(*path: str) -> str:
            """Click through the sidebar (sections, then the link); the heading of the page it opens."""
            for section in path[:-1]:
                page.locator("nav.md-nav--primary").get_by_text(section, exact=True).first.click()
            page.locator("nav.md-nav--primary").get_by_role("link", name=path[-1], exact=True).first.click()
            page.wait_for_load_state("networkidle")
            assert broken_images(page) == [], path
            return str(page.locator("article h1").inner_text()).strip()

        assert open_from_nav("Overview") == "Training report"  # the report's own heading, not the site's name
        assert page.url == url + "reports/"
        assert open_from_nav("Models", "Phase 1 SFT", "Qwen 7B") == "Qwen 7B"
        assert page.url == url + "reports/models/qwen-7b/"
        assert open_from_nav("How the figures are computed")
        assert page.url == url + "reports/methodology/"
        assert open_from_nav("Home") == "Acme models"
        assert page.url == url
        page.goto(url + "reports/models/qwen-7b/", wait_until="networkidle")
        assert page.locator("article img").count() >= 2
        assert broken_images(page) == []
        page.screenshot(path=str(artifacts / "existing-site-model.png"), full_page=False)
        assert page.console_errors == []


@pytest.mark.slow
def test_a_committed_report_folder_builds_without_its_checkpoints(tmp_path: Path) -> None:
    """`generate: false` (TRAINDOCS_GENERATE=false in CI): docs/reports/ as committed, the same nav section."""
    project = existing_site(tmp_path, options=FOLDER_OPTION + "      generate: !ENV [TRAINDOCS_GENERATE, true]\n")
    assert traindocs(project, "build", "--strict").returncode == 0
    before = tree(project / "docs")
    shutil.rmtree(project / "examples")
    done = subprocess.run([sys.executable, "-m", "generator", "build", "--strict"], capture_output=True, text=True,
                          check=False, cwd=project, env={**os.environ, "TRAINDOCS_GENERATE": "false"})
    assert done.returncode == 0, done.stderr
    assert tree(project / "docs") == before
    labels = [label for _, label, _ in primary_nav(project / "site" / "about" / "index.html")]
    assert labels == ["Home", "Guide", "Setup", "About", *EXPECTED_SECTION]

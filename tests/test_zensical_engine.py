"""`traindocs build/serve --engine zensical`: the same pages and navigation as MkDocs, and the same browser checks.

Each project is built with both engines into two site folders (`site-mkdocs`, `site-zensical`)
from the same generated docs/, and every check runs on both.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse

import pytest
import test_injection
import yaml
from browser_support import broken_images, chromium, new_page, require_browser, serve
from bs4 import BeautifulSoup, Tag

from conftest import REPO, copy_example_project
from generator import engines
from generator.cli import main
from generator.records import SiteLayout

ENGINES = ("mkdocs", "zensical")

PHASES_REGISTRY = """\
checkpoints:
  - name: Zeta run
    slug: zeta
    path: examples/qwen-7b-phase1-sft
    phase: Phase B
  - name: Alpha run
    slug: alpha
    path: examples/phi-3-mini-phase2-reasoning/checkpoint-199
    phase: Phase A & friends
  - name: Beta run
    slug: beta
    path: examples/gemma-2-2b-phase2-reasoning
    phase: Phase B
  - name: Loose run
    slug: loose
    path: examples/phi-3-mini-phase2-reasoning/checkpoint-199
"""


def build_with(project: Path, engine: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """`traindocs build --strict --engine ENGINE` into project/site-ENGINE."""
    return subprocess.run(
        [sys.executable, "-m", "generator", "build", "--config", str(project / "checkpoints.yaml"), "--strict",
         "--engine", engine, "--site-dir", str(project / f"site-{engine}"), *extra],
        capture_output=True, text=True, check=False,
    )


def built(project: Path) -> dict[str, Path]:
    sites = {}
    for engine in ENGINES:
        done = build_with(project, engine)
        assert done.returncode == 0, done.stderr
        sites[engine] = project / f"site-{engine}"
    return sites


def phases_project(root: Path) -> Path:
    """Four runs in three phase groups (one without a phase) and a hand-written page."""
    project = root / "phases"
    project.mkdir()
    shutil.copy2(REPO / "mkdocs.yml", project / "mkdocs.yml")
    (project / "checkpoints.yaml").write_text(PHASES_REGISTRY, encoding="utf-8")
    shutil.copytree(REPO / "examples", project / "examples", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (project / "docs").mkdir()
    (project / "docs/notes.md").write_text("# Notes\n\nWritten by hand.\n", encoding="utf-8")
    return project


@pytest.fixture(scope="module")
def example_sites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return built(copy_example_project(tmp_path_factory.mktemp("example")))


@pytest.fixture(scope="module")
def phases_sites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return built(phases_project(tmp_path_factory.mktemp("phases")))


# --- the command line -------------------------------------------------------------------------------------------


def test_an_unknown_engine_is_a_one_line_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "--engine", "hugo"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: --engine hugo: unknown build engine; choose one of mkdocs, zensical"]


def test_without_zensical_installed_the_error_says_how_to_install_it(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], example_project: Path) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name == "zensical" else real_find_spec(name, *rest))
    status = main(["serve", "--engine", "zensical", "--config", str(example_project / "checkpoints.yaml")])
    assert status == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: --engine zensical: Zensical is not installed; install it with: pip install 'traindocs[zensical]'"]
    assert list((example_project / "docs").iterdir()) == []  # said before generating anything


def test_a_site_dir_outside_the_project_is_refused_before_generating(
        capsys: pytest.CaptureFixture[str], example_project: Path, tmp_path: Path) -> None:
    status = main(["build", "--engine", "zensical", "--config", str(example_project / "checkpoints.yaml"),
                   "--site-dir", str(tmp_path / "elsewhere")])
    assert status == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: --site-dir {tmp_path / 'elsewhere'}: Zensical builds only into a folder inside")
    assert list((example_project / "docs").iterdir()) == []


# --- the config handed to Zensical ------------------------------------------------------------------------------


class _Config:
    """The few attributes of a loaded MkDocs config that zensical_settings reads."""

    def __init__(self, nav: Any = None, extra_javascript: tuple[str, ...] = (), extra_css: tuple[str, ...] = ()):
        self.nav = nav
        self.extra_javascript = list(extra_javascript)
        self.extra_css = list(extra_css)
        self.theme = _Theme(name="material")
        self.site_name = "Runs <b>& co</b>"


class _Theme(dict[str, Any]):
    """A loaded MkDocs theme: its name as an attribute, its options as keys."""

    def __init__(self, name: str, **options: Any) -> None:
        super().__init__(options)
        self.name = name


def test_zensical_config_inherits_mkdocs_yml_and_adds_nav_scripts_and_overrides(tmp_path: Path) -> None:
    nav = [{"Overview": "index.md"}, {"Models": [{"*x & <b>": ["models/a.md"]}, {"!ENV y": ["models/b.md"]}]}]
    assets = engines.SiteAssets(("assets/traindocs/tablesort.js", "assets/traindocs/z.js"),
                                ("assets/traindocs/a.css",))
    settings = engines.zensical_settings(_Config(extra_javascript=("assets/traindocs/z.js",)), nav, assets,
                                         tmp_path / "out", tmp_path / "overrides")
    text = engines.zensical_config_text(tmp_path / "mkdocs.yml", settings)
    assert yaml.safe_load(text) == {
        "INHERIT": "mkdocs.yml",
        "theme": {"name": "material", "custom_dir": str(tmp_path / "overrides"), "variant": "classic"},
        "site_name": "Runs &lt;b&gt;&amp; co&lt;/b&gt;",  # the theme prints it unescaped
        "site_dir": str(tmp_path / "out"),
        "nav": nav,  # phase names that look like YAML syntax stay text
        "extra_javascript": ["assets/traindocs/tablesort.js"],  # z.js is in mkdocs.yml already: INHERIT appends
        "extra_css": ["assets/traindocs/a.css"],
    }


def test_a_variant_chosen_in_mkdocs_yml_is_kept() -> None:
    config = _Config()
    config.theme = _Theme(name="material", variant="modern")
    settings = engines.zensical_settings(config, None, engines.SiteAssets((), ()), None, Path("/o"))
    assert settings["theme"] == {"name": "material", "custom_dir": "/o"}  # INHERIT keeps mkdocs.yml's variant


def test_a_hand_written_nav_in_mkdocs_yml_is_kept() -> None:
    settings = engines.zensical_settings(_Config(nav=["index.md"]), [{"Overview": "index.md"}],
                                         engines.SiteAssets((), ()), None, Path("/o"))
    assert "nav" not in settings


def test_site_assets_are_the_scripts_and_stylesheets_the_generator_wrote() -> None:
    from generator.pipeline import GenerationResult

    result = GenerationResult(registry=None,  # type: ignore[arg-type]
                              written=["index.md", "assets/traindocs/tablesort.js", "models/a/loss.png"],
                              unchanged=["assets/traindocs/extra.css"], refused=["assets/traindocs/b.js"])
    assert engines.site_assets(engines.generated_files(result)) == engines.SiteAssets(
        ("assets/traindocs/b.js", "assets/traindocs/tablesort.js"), ("assets/traindocs/extra.css",))
    in_folder = ["reports/assets/traindocs/tablesort.js", "assets/traindocs/theirs.js", "reports/index.md"]
    assert engines.site_assets(in_folder, SiteLayout(folder="reports")) == engines.SiteAssets(
        ("reports/assets/traindocs/tablesort.js",), ())


@pytest.mark.slow
def test_the_build_leaves_mkdocs_yml_alone_and_removes_its_config(example_project: Path) -> None:
    before = (example_project / "mkdocs.yml").read_bytes()
    done = build_with(example_project, "zensical")
    assert done.returncode == 0, done.stderr
    assert (example_project / "mkdocs.yml").read_bytes() == before
    assert not (example_project / engines.ZENSICAL_CONFIG).exists()
    assert done.stderr.splitlines()[-1].startswith(
        f"traindocs: site built with Zensical in {example_project / 'site-zensical'} (")


@pytest.mark.slow
def test_a_failed_zensical_build_is_one_line(example_project: Path) -> None:
    (example_project / "mkdocs.yml").write_text("site_name: x\ndocs_dir: ../outside\n", encoding="utf-8")
    (example_project.parent / "outside").mkdir()
    done = build_with(example_project, "zensical")
    assert done.returncode == 1
    assert [line for line in done.stderr.splitlines() if line.startswith("error")] == [
        "error: zensical build: Error: docs_dir must be within project root"], done.stderr
    assert "Traceback" not in done.stderr


# --- the same site ----------------------------------------------------------------------------------------------


def html_pages(site: Path) -> list[str]:
    return sorted(page.relative_to(site).as_posix() for page in site.rglob("*.html"))


def page_url(relative: str) -> str:
    """The URL path a built page is served at (directory URLs)."""
    return "/" + relative.removesuffix("index.html")


def nav_entries(site: Path, page: str) -> list[tuple[int, str, str]]:
    """The primary navigation as rendered: (depth, title, target URL path or '' for a group), in order."""
    soup = BeautifulSoup((site / page).read_text(encoding="utf-8"), "html.parser")
    nav = soup.select_one("nav.md-nav--primary")
    assert isinstance(nav, Tag), page
    entries = []
    for item in nav.select("li.md-nav__item"):
        if item.find_parent("nav", class_="md-nav--secondary"):
            continue  # the page's own table of contents
        depth = len(item.find_parents("li", class_="md-nav__item"))
        # The item's own link, not its children's: the current page has a label (its table of contents'
        # toggle) and a link; a group has only a label.
        own = [link for link in item.find_all(["a", "label"], class_="md-nav__link")
               if link.find_parent("li", class_="md-nav__item") is item]
        link = next((link for link in own if link.name == "a"), own[0])
        title = " ".join(link.get_text().split())
        href = link.get("href") if link.name == "a" else None  # the current page: "." (MkDocs) or "" (Zensical)
        target = urlparse(urljoin("http://site" + page_url(page), str(href))).path if href is not None else ""
        entries.append((depth, title, target))
    return entries


@pytest.mark.slow
@pytest.mark.parametrize("project", ["example_sites", "phases_sites"])
def test_same_pages_and_navigation_as_mkdocs(project: str, request: pytest.FixtureRequest) -> None:
    sites: dict[str, Path] = request.getfixturevalue(project)
    pages = html_pages(sites["mkdocs"])
    assert html_pages(sites["zensical"]) == pages
    docs = sites["mkdocs"].parent / "docs"
    for data in [p for p in docs.rglob("*") if p.is_file() and p.suffix != ".md" and not p.name.startswith(".")]:
        for site in sites.values():
            assert (site / data.relative_to(docs)).is_file(), (site, data)
    for page in pages:
        if page == "404.html":
            continue
        assert nav_entries(sites["zensical"], page) == nav_entries(sites["mkdocs"], page), page


@pytest.mark.slow
def test_phase_groups_in_registry_order(phases_sites: dict[str, Path]) -> None:
    for site in phases_sites.values():
        groups = [(depth, title) for depth, title, target in nav_entries(site, "index.html") if not target]
        assert groups == [(0, "Models"), (1, "Phase B"), (1, "Phase A & friends"), (1, "Other runs")], site
        titles = [title for _, title, target in nav_entries(site, "index.html") if target]
        assert titles == ["Overview", "Zeta run", "Beta run", "Alpha run", "Loose run",
                          "How the figures are computed", "Notes"], site


# --- what a visitor sees ----------------------------------------------------------------------------------------


@pytest.fixture
def browser() -> Iterator[Any]:
    """One Chromium per test: test_hostile_text_runs_nothing_in_a_browser (imported below) starts its own."""
    require_browser()
    with chromium() as running:
        yield running


def _horizontal_overflow(page: Any) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("project", ["example_sites", "phases_sites"])
def test_every_page_opens_cleanly_at_desktop_and_phone_widths(project: str, engine: str, browser: Any,
                                                              request: pytest.FixtureRequest) -> None:
    site: Path = request.getfixturevalue(project)[engine]
    pages = [page_url(p) for p in html_pages(site) if p != "404.html"]
    with serve(site) as url, new_page(browser) as tab:
        failed: list[str] = []
        tab.on("requestfailed", lambda request: failed.append(request.url))
        for width in (1400, 390):
            tab.set_viewport_size({"width": width, "height": 900})
            for path in pages:
                tab.goto(url + path.lstrip("/"), wait_until="networkidle")
                assert tab.locator("article h1").count() == 1, path
                assert broken_images(tab) == [], (width, path)
                assert _horizontal_overflow(tab) <= 0, (width, path)
                if project == "example_sites" and path in ("/", "/models/qwen-7b/"):
                    name = "index" if path == "/" else "model"
                    tab.screenshot(path=str(ARTIFACTS / f"{engine}-{name}-{width}.png"), full_page=True)
        assert tab.console_errors == [], (engine, tab.console_errors)
        assert failed == [], failed  # nothing fetched from elsewhere: the site works offline


ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
ARTIFACTS.mkdir(exist_ok=True)


def _model_column(page: Any) -> list[str]:
    cells: list[str] = page.locator("article table tbody tr td:first-child").all_inner_texts()
    return cells


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_comparison_table_sorts_by_a_clicked_column(engine: str, example_sites: dict[str, Path],
                                                    browser: Any) -> None:
    with serve(example_sites[engine]) as url, new_page(browser) as tab:
        tab.goto(url, wait_until="networkidle")
        assert _model_column(tab) == ["Qwen 7B", "Phi-3 Mini", "Gemma 2 2B"]
        steps = tab.locator("article table thead th", has_text="Steps")
        steps.click()
        assert _model_column(tab) == ["Phi-3 Mini", "Gemma 2 2B", "Qwen 7B"]  # 199, 314, 2668: as numbers
        assert steps.get_attribute("aria-sort") == "ascending"
        steps.click()
        assert _model_column(tab) == ["Qwen 7B", "Gemma 2 2B", "Phi-3 Mini"]
        assert tab.console_errors == []


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_search_finds_a_model_page(engine: str, example_sites: dict[str, Path], browser: Any) -> None:
    from playwright.sync_api import expect

    with serve(example_sites[engine]) as url, new_page(browser) as tab:
        tab.goto(url, wait_until="networkidle")
        # Material's search field, or the button that opens Zensical's search dialog.
        tab.locator("input.md-search__input, button.md-search__button").locator("visible=true").first.click()
        if engine == "mkdocs":  # keys typed before Material's search worker has its index are dropped
            expect(tab.locator(".md-search-result__meta")).to_have_text("Type to start searching", timeout=10_000)
        else:
            expect(tab.locator("dialog[aria-label=Search] input")).to_be_focused(timeout=10_000)
        tab.keyboard.type("Phi-3 Mini", delay=20)
        # A result links the model's page (both themes add ?h=<terms> to highlight them).
        result = tab.locator("a[href*='models/phi-3-mini/?h=']").locator("visible=true").first
        expect(result).to_be_visible(timeout=10_000)
        assert tab.console_errors == []


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_clicking_a_plot_zooms_it(engine: str, example_sites: dict[str, Path], browser: Any) -> None:
    from playwright.sync_api import expect

    with serve(example_sites[engine]) as url, new_page(browser) as tab:
        failed: list[str] = []
        tab.on("requestfailed", lambda request: failed.append(request.url))
        tab.goto(url + "models/qwen-7b/", wait_until="networkidle")
        tab.locator(".td-chart a.td-chart__image").click()  # the chart stands in for the loss PNG; this opens it
        zoomed = tab.locator(".glightbox-container .gslide.current img")
        expect(zoomed).to_be_visible(timeout=5_000)
        assert zoomed.get_attribute("src").endswith("qwen-7b/loss.png")
        assert zoomed.evaluate("image => image.naturalWidth") > 0
        assert tab.console_errors == [] and failed == [], (tab.console_errors, failed)


# --- hostile text: the payload corpus of test_injection, built by Zensical ---------------------------------------

TITLE_BREAKER = "</title><script>window.__pwned=1</script>Evil & Co"


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """test_injection's hostile project built by Zensical; its tests below run against it."""
    project = test_injection.hostile_project(tmp_path_factory.mktemp("hostile"))
    done = build_with(project, "zensical")
    assert done.returncode == 0, done.stderr
    return project / "site-zensical"


# Collected here too, so they run with this module's hostile_site (the Zensical build).
test_hostile_text_is_inert_in_the_html = pytest.mark.slow(test_injection.test_hostile_text_is_inert_in_the_html)
test_hostile_text_runs_nothing_in_a_browser = pytest.mark.slow(test_injection.test_hostile_text_runs_nothing_in_a_browser)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_a_model_name_that_closes_the_title_stays_text(engine: str, tmp_path: Path) -> None:
    project = test_injection.hostile_project(tmp_path)
    registry = project / "checkpoints.yaml"
    registry.write_text(registry.read_text(encoding="utf-8").replace(
        '"<script>window.__pwned=4</script>Evil & Co"', json.dumps(TITLE_BREAKER)), encoding="utf-8")
    done = build_with(project, engine)
    assert done.returncode == 0, done.stderr
    page = project / f"site-{engine}/models/evil/index.html"
    title = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser").title
    assert title is not None and title.get_text().startswith(TITLE_BREAKER), title
    require_browser()
    with serve(project / f"site-{engine}") as url, chromium() as running, new_page(running) as tab:
        tab.goto(url + "models/evil/", wait_until="networkidle")
        assert tab.evaluate("window.__pwned") is None
        assert tab.title().startswith(TITLE_BREAKER)


# --- serve ------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_serve_regenerates_on_a_registry_edit_and_cleans_up(example_project: Path) -> None:
    from test_serve import fetch, free_port, wait_until

    url = f"http://127.0.0.1:{free_port()}/"
    server = subprocess.Popen(
        [sys.executable, "-m", "generator", "serve", "--engine", "zensical", "--config",
         str(example_project / "checkpoints.yaml"), "--dev-addr", url[len("http://"):-1]],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: "Remote Training Loss Analysis" in fetch(url), 120, "the first build")
        assert "Phase 2 Reasoning" in fetch(url)
        registry = example_project / "checkpoints.yaml"
        text = registry.read_text(encoding="utf-8")
        registry.write_text(text.replace("Training loss of the remote", "Renamed report: loss of the remote")
                            .replace("phase: Phase 2 Reasoning", "phase: Phase Three", 1), encoding="utf-8")
        # The page text (docs/ regenerated: the intro; the title is site_name in mkdocs.yml) and the navigation (a new phase group: the config rewritten).
        wait_until(lambda: "Renamed report" in fetch(url), 60, "the new title")
        wait_until(lambda: "Phase Three" in [" ".join(label.get_text().split()) for label in BeautifulSoup(
            fetch(url), "html.parser").select("nav.md-nav--primary label.md-nav__link")], 60, "the new phase group")
    finally:
        server.terminate()  # SIGTERM, as a service manager stops it
        server.wait(timeout=30)
    assert not (example_project / engines.ZENSICAL_CONFIG).exists()
    with pytest.raises(OSError):
        fetch(url)  # zensical serve stopped with it

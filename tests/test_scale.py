"""Large registries: a short navigation, group pages that reach every model, pages under a byte cap.

A registry of 300 tiny runs is generated and built with MkDocs in this process.
The plot functions are replaced by a 1-pixel PNG: these tests are about the
pages and the navigation, and drawing 600 real plots would take minutes.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from generator import group_pages, navigation, plots
from generator.cli import main
from generator.group_pages import LARGE_REGISTRY, ROWS_PER_PAGE, PhaseGroup, phase_groups
from tests.conftest import REPO, sft_rows, write_state

MODELS = 300
HTML_PAGE_CAP = 150 * 1024
"""No HTML page of a large site may be bigger (issue 16)."""
PHASES = ("Phase A", "Phase <b>B</b> & co", "")
"""150, 100 and 50 models; the last registered without a phase."""


def _phase(index: int) -> str:
    return PHASES[0] if index < 150 else PHASES[1] if index < 250 else PHASES[2]


def _tiny_png(*args: object, compact: bool = False, **kwargs: object) -> bytes:
    """A stand-in plot: a PNG, or a WebP when the plan asks for a large site's compact plot (the real
    compaction is tested in tests/test_site_size.py)."""
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1), "white").save(buffer, format="WEBP" if compact else "PNG")
    return buffer.getvalue()


def write_large_project(root: Path, models: int) -> Path:
    """`models` tiny SFT runs in three phases, with the repository's mkdocs.yml; returns the project folder."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "mkdocs.yml").write_text((REPO / "mkdocs.yml").read_text(encoding="utf-8"), encoding="utf-8")
    lines = ["site:", "  title: Many runs", "checkpoints:"]
    for index in range(models):
        slug = f"run-{index:04d}"
        losses = [2.0 * 0.97 ** step + 0.01 * (index % 7) for step in range(20)]
        write_state(root / "runs" / slug, sft_rows(losses))
        lines += [f"  - name: Run {index:04d}", f"    slug: {slug}", f"    path: runs/{slug}"]
        if _phase(index):
            lines.append(f"    phase: '{_phase(index)}'")
    (root / "checkpoints.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def large_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A built site of MODELS tiny runs (plots replaced by a 1-pixel PNG, one process)."""
    project = write_large_project(tmp_path_factory.mktemp("large") / "project", MODELS)
    patch = pytest.MonkeyPatch()
    for name in ("loss_plot", "panels_plot", "eval_plot", "overview_plot"):
        patch.setattr(plots, name, _tiny_png)
    try:
        status = main(["build", "--config", str(project / "checkpoints.yaml"), "--jobs", "1", "--no-cache"])
    finally:
        patch.undo()
    assert status == 0
    return project


def test_group_slugs_are_unique_and_safe() -> None:
    taken: set[str] = set()
    assert group_pages._slug("Phase 1: SFT", taken) == "phase-1-sft"
    assert group_pages._slug("phase 1 / sft", taken) == "phase-1-sft-2"
    assert group_pages._slug("../../etc", taken) == "etc"
    assert group_pages._slug("<<>>", taken) == "group"


@pytest.mark.slow
def test_large_nav_lists_groups_not_models(large_site: Path) -> None:
    """The navigation Material writes into every page holds one entry per phase, not one per model."""
    from generator.pipeline import generate

    result = generate(large_site / "checkpoints.yaml", large_site / "docs", jobs=1)
    assert len(result.reports) == MODELS > LARGE_REGISTRY
    nav = navigation.build_nav(result, large_site / "docs")
    models = next(item["Models"] for item in nav if isinstance(item, dict) and "Models" in item)
    assert len(models) == len(PHASES)
    titles = [next(iter(group)) for group in models]
    assert titles[1] == "Phase &lt;b&gt;B&lt;/b&gt; &amp; co (100 models)"  # user text, escaped for the theme
    assert "models/" not in repr(nav)


@pytest.mark.slow
def test_every_model_is_reachable_from_a_group_page(large_site: Path) -> None:
    site = large_site / "site"
    index = (site / "index.html").read_text(encoding="utf-8")
    group_dirs = sorted(path.parent for path in site.glob(f"{group_pages.GROUP_PAGE_PREFIX}*/index.html"))
    expected_pages = sum(-(-count // ROWS_PER_PAGE) for count in (150, 100, 50))
    assert len(group_dirs) == expected_pages
    linked: set[str] = set()
    for folder in group_dirs:
        assert f'href="{folder.name}/"' in index, f"the index does not link {folder.name}"
        html = (folder / "index.html").read_text(encoding="utf-8")
        linked |= set(re.findall(r'href="\.\./models/(run-\d{4})/"', html))
    assert linked == {f"run-{index:04d}" for index in range(MODELS)}


@pytest.mark.slow
def test_no_html_page_over_the_cap(large_site: Path) -> None:
    sizes = {path: path.stat().st_size for path in (large_site / "site").rglob("*.html")}
    assert len(sizes) > MODELS
    largest = max(sizes, key=sizes.__getitem__)
    assert sizes[largest] <= HTML_PAGE_CAP, f"{largest}: {sizes[largest]} bytes"


@pytest.mark.slow
def test_large_site_model_plots_use_a_palette(large_site: Path) -> None:
    """Large sites map model plots to 256 colours and store them as lossless WebP (a fifth of the drawn PNG's
    bytes, see tests/test_site_size.py); small sites keep the PNGs as drawn."""
    assert not list((large_site / "docs" / "models").glob("*/*.png"))
    with Image.open(next((large_site / "docs" / "models").glob("*/loss.webp"))) as plot:
        assert plot.format == "WEBP"


def test_small_registry_keeps_one_nav_entry_per_model(tmp_path: Path) -> None:
    """At or under the threshold nothing changes: every model is in the navigation."""
    from generator.pipeline import generate

    project = write_large_project(tmp_path / "project", 3)
    patch = pytest.MonkeyPatch()
    for name in ("loss_plot", "panels_plot", "eval_plot", "overview_plot"):
        patch.setattr(plots, name, _tiny_png)
    try:
        result = generate(project / "checkpoints.yaml", project / "docs", jobs=1, cache=False)
    finally:
        patch.undo()
    nav = navigation.build_nav(result, project / "docs")
    assert repr(nav).count("models/run-") == 3
    assert not list((project / "docs").glob(f"{group_pages.GROUP_PAGE_PREFIX}*.md"))
    with Image.open(next((project / "docs" / "models").glob("*/loss.png"))) as plot:
        assert plot.mode == "RGB"


def test_group_pages_split_at_the_page_size() -> None:
    group = PhaseGroup("p", "p", tuple(range(ROWS_PER_PAGE + 1)))  # type: ignore[arg-type]
    assert group.page_count == 2
    assert group.page_path(1) == "group-p.md" and group.page_path(2) == "group-p-2.md"
    assert len(group.page_reports(2)) == 1
    assert phase_groups([]) == []


# --- the stamp: an unchanged generation replays the last one without importing pandas or MkDocs -------


def _generate_in_subprocess(project: Path, cache: Path) -> tuple[str, list[str]]:
    """`traindocs generate` in a fresh interpreter: (its stderr, the heavy modules it imported)."""
    import os
    import subprocess
    import sys

    code = ("import json, sys; from generator.cli import main; status = main(sys.argv[1:]); "
            "print(json.dumps([m for m in ('pandas', 'matplotlib', 'mkdocs') if m in sys.modules])); "
            "sys.exit(status)")
    done = subprocess.run([sys.executable, "-c", code, "generate", "--config", str(project / "checkpoints.yaml")],
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "TRAINDOCS_CACHE_DIR": str(cache), "MPLBACKEND": "Agg"})
    assert done.returncode == 0, done.stderr
    return done.stderr, json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_unchanged_generation_replays_without_heavy_imports(tmp_path: Path) -> None:
    project = write_large_project(tmp_path / "project", 2)
    cache = tmp_path / "cache"
    first, heavy = _generate_in_subprocess(project, cache)
    assert "files written" in first and "pandas" in heavy
    again, heavy = _generate_in_subprocess(project, cache)
    assert " 0 files written" in again and heavy == []


@pytest.mark.slow
def test_stamp_notices_changed_inputs_and_outputs(tmp_path: Path) -> None:
    import os

    project = write_large_project(tmp_path / "project", 2)
    cache = tmp_path / "cache"
    _generate_in_subprocess(project, cache)
    # A generated page deleted: written again.
    page = project / "docs" / "models" / "run-0001.md"
    page.unlink()
    out, heavy = _generate_in_subprocess(project, cache)
    assert "1 files written" in out and page.is_file() and "pandas" in heavy
    # A checkpoint rewritten with the same size and modification time, as on a file system with coarse
    # timestamps: when its time was too close to the stamp's to trust, its SHA-256 tells. (A time in the
    # future stands for "modified just before the stamp", whatever this machine's speed.)
    import time

    state = project / "runs" / "run-0000" / "trainer_state.json"
    os.utime(state, ns=(time.time_ns(), time.time_ns() + 3_600 * 10**9))
    out, _ = _generate_in_subprocess(project, cache)
    assert " 0 files written" in out
    before = state.stat()
    text = state.read_text(encoding="utf-8")
    changed = text.replace('"loss": 2.0', '"loss": 3.0', 1)
    assert changed != text and len(changed) == len(text)
    state.write_text(changed, encoding="utf-8")
    os.utime(state, ns=(before.st_atime_ns, before.st_mtime_ns))
    out, heavy = _generate_in_subprocess(project, cache)
    assert "pandas" in heavy and " 0 files written" not in out
    # Nothing changed since: replayed.
    out, heavy = _generate_in_subprocess(project, cache)
    assert heavy == [] and " 0 files written" in out
    # Only the permissions changed (a checkpoint made unreadable must be reported, not replayed).
    state.chmod(0o600 if state.stat().st_mode & 0o044 else 0o644)
    out, heavy = _generate_in_subprocess(project, cache)
    assert "pandas" in heavy


@pytest.mark.slow
@pytest.mark.browser
def test_group_page_filters_and_sorts_in_chromium(large_site: Path, tmp_path: Path) -> None:
    from tests.browser_support import chromium, new_page, require_browser, serve

    require_browser()
    with serve(large_site / "site") as base, chromium() as browser, new_page(browser) as page:
        page.goto(base)
        page.click("article a[href^='group-phase-a']")
        page.wait_for_selector("article table tbody tr")
        rows = page.locator("article table tbody tr")
        assert rows.count() == ROWS_PER_PAGE
        page.screenshot(path=str(tmp_path / "group-page.png"))
        page.fill(".traindocs-filter input", "run 0007")
        assert page.locator("article table tbody tr:not([hidden])").count() == 1
        page.fill(".traindocs-filter input", "")
        assert page.locator("article table tbody tr:not([hidden])").count() == ROWS_PER_PAGE
        page.click("article table thead th:has-text('Model')")  # ascending, then descending
        page.click("article table thead th:has-text('Model')")
        assert page.locator("article table tbody tr").first.inner_text().startswith("Run 0099")
        assert page.console_errors == []


@pytest.mark.parametrize("text", [
    "site_name: x\n",
    "site_name: x\ndocs_dir: pages\nuse_directory_urls: false\nsite_url: https://a.example/b\n",
    "site_name: x\nsite_url: !ENV [TRAINDOCS_TEST_URL, 'https://fallback.example/']\n"
    "markdown_extensions:\n  - pymdownx.emoji:\n      emoji_index: !!python/name:material.extensions.emoji.twemoji\n",
])
def test_generate_reads_mkdocs_yml_as_mkdocs_does(text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`generate` reads docs_dir and the URL settings without MkDocs: the same values as MkDocs' load_config."""
    from mkdocs.config import load_config

    from generator.cli import _mkdocs_settings_without_mkdocs
    from generator.mkdocs_plugin import site_layout

    monkeypatch.setenv("TRAINDOCS_TEST_URL", "https://env.example/site")
    config_file = tmp_path / "mkdocs.yml"
    config_file.write_text(text, encoding="utf-8")
    for folder in ("docs", "pages"):
        (tmp_path / folder).mkdir()
    light = _mkdocs_settings_without_mkdocs(config_file)
    config = load_config(config_file=str(config_file))
    assert light == (Path(config.docs_dir), site_layout(config))


def test_generate_leaves_inherited_mkdocs_yml_to_mkdocs(tmp_path: Path) -> None:
    from generator.cli import _mkdocs_settings_without_mkdocs

    (tmp_path / "mkdocs.yml").write_text("INHERIT: base.yml\nsite_name: x\n", encoding="utf-8")
    assert _mkdocs_settings_without_mkdocs(tmp_path / "mkdocs.yml") is None

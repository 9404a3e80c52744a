"""Bytes of a large site (issue 16): 5,000 runs must fit in 500 MB, half of GitHub Pages' 1 GB.

Three of the benchmark's synthetic 300-row SFT runs (bench/run.py, the runs of its
`210x300` case) are built as a large site (`group_pages.LARGE_REGISTRY` lowered for
the test), with real plots and MkDocs. The tests check what each byte lever
guarantees, not how long anything takes:

- models' published files stay within the per-model budget, on average;
- plots are palette-mapped lossless WebP, the log history is gzip-compressed and
  says so on the page, and decompresses to the CSV a small site publishes;
- the JSON downloads hold the same document, without indentation;
- model pages are out of Material's search index, and the indexed group pages name
  every model;
- the index's overview chart data, which no large-site page shows, is not written.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import re
import sys
from pathlib import Path

import pytest
from PIL import Image

from generator import downloads, group_pages
from generator.cli import main
from tests.conftest import REPO

MODELS = 3
MODEL_BUDGET = 95 * 1024
"""(500 MB - the theme's ~5 MB) / 5,000 runs: what a 300-row run may publish under site/models/<slug>/, on
average."""


def _bench_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("traindocs_bench_run", REPO / "bench" / "run.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def large_site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    """(project folder, reports) of three 300-row runs built as a large site."""
    from generator.pipeline import generate

    bench = _bench_module()
    project = bench.write_project(tmp_path_factory.mktemp("size") / "project", bench.Case.parse(f"{MODELS}x300"))
    patch = pytest.MonkeyPatch()
    patch.setattr(group_pages, "LARGE_REGISTRY", MODELS - 1)
    patch.setenv("TRAINDOCS_CACHE_DIR", str(project.root / "cache"))
    try:
        status = main(["build", "--config", str(project.registry), "--jobs", "1"])
        # The reports, as the build made them (unchanged inputs: nothing is rewritten).
        reports = generate(project.registry, project.docs, jobs=1).reports
    finally:
        patch.undo()
    assert status == 0
    return project.root, reports


def _model_dirs(root: Path) -> list[Path]:
    dirs = sorted(path for path in (root / "site" / "models").iterdir() if path.is_dir())
    assert len(dirs) == MODELS
    return dirs


@pytest.mark.slow
def test_models_publish_within_the_budget(large_site: tuple[Path, list]) -> None:
    """The budget is a mean (the site's total is what counts): runs vary, 82-103 KiB over the 210 of bench's
    210x300 case, 88-92 KiB for these three."""
    root, _ = large_site
    sizes = {folder.name: {path.name: path.stat().st_size for path in folder.iterdir()} for folder in _model_dirs(root)}
    totals = [sum(files.values()) for files in sizes.values()]
    assert sum(totals) / len(totals) <= MODEL_BUDGET, sizes


@pytest.mark.slow
def test_plots_are_palette_webp(large_site: tuple[Path, list]) -> None:
    root, _ = large_site
    for folder in _model_dirs(root):
        assert not list(folder.glob("*.png"))
        images = sorted(folder.glob("*.webp"))
        assert {"loss.webp", "metrics-1.webp"} <= {image.name for image in images}
        html = (folder / "index.html").read_text(encoding="utf-8")
        for image in images:
            assert f'src="{image.name}"' in html, f"{folder.name}: the page does not show {image.name}"
            with Image.open(image) as plot:
                assert plot.format == "WEBP"
                assert plot.convert("RGB").getcolors(256) is not None  # at most 256 colours: the mapped image


@pytest.mark.slow
def test_log_history_is_gzipped_and_the_page_says_so(large_site: tuple[Path, list]) -> None:
    root, reports = large_site
    for report in reports:
        folder = root / "site" / "models" / report.entry.slug
        assert not (folder / "log_history.csv").exists()
        packed = (folder / "log_history.csv.gz").read_bytes()
        assert gzip.decompress(packed) == downloads.log_history_csv(report)  # the small site's CSV, byte for byte
        html = (folder / "index.html").read_text(encoding="utf-8")
        assert re.search(r'<a href="log_history\.csv\.gz">log history \(CSV, gzip-compressed\)</a>', html)


@pytest.mark.slow
def test_json_downloads_hold_the_same_documents(large_site: tuple[Path, list]) -> None:
    root, reports = large_site
    for report in reports:
        published = (root / "site" / "models" / report.entry.slug / "figures.json").read_bytes()
        assert b"\n " not in published  # no indentation
        assert json.loads(published) == json.loads(downloads.figures_document(report))
    summary = (root / "site" / "summary.json").read_bytes()
    assert b"\n " not in summary
    assert [model["slug"] for model in json.loads(summary)["models"]] == [r.entry.slug for r in reports]


@pytest.mark.slow
def test_model_pages_are_out_of_the_search_index(large_site: tuple[Path, list]) -> None:
    root, reports = large_site
    index = json.loads((root / "site" / "search" / "search_index.json").read_text(encoding="utf-8"))
    locations = [doc["location"] for doc in index["docs"]]
    assert not [location for location in locations if location.startswith("models/")]
    group_text = " ".join(doc["text"] for doc in index["docs"] if doc["location"].startswith("group-"))
    for report in reports:
        assert report.entry.name in group_text, f"search cannot find {report.entry.name}"
    assert "model pages themselves are not in the search index" in (root / "docs" / "index.md").read_text("utf-8")


@pytest.mark.slow
def test_no_unused_overview_chart_data(large_site: tuple[Path, list]) -> None:
    root, _ = large_site
    assets = root / "site" / "assets" / "traindocs"
    assert list(assets.glob("*-curves.png"))  # the overview plot is there...
    assert not list(assets.glob("*.chart.json"))  # ...its chart data, shown by no large-site page, is not


def test_a_compact_plot_keeps_the_mapped_pixels() -> None:
    """WebP is lossless: a large site's plot holds the pixels of the drawn plot mapped to 256 colours."""
    import numpy as np
    import pandas as pd

    from generator.kinds import standard_panels
    from generator.plots import panels_plot
    from generator.records import AnalysisSettings

    steps = np.arange(1, 301)
    train = pd.DataFrame({"step": steps, "grad_norm": 1 + np.sin(steps / 7), "learning_rate": np.linspace(1e-4, 0, 300)})
    evals = pd.DataFrame({"step": pd.Series([], dtype="int64")})
    panels = standard_panels(train.columns)
    drawn = panels_plot("m", "#0072B2", train, evals, panels, AnalysisSettings(), only=0)
    packed = panels_plot("m", "#0072B2", train, evals, panels, AnalysisSettings(), only=0, compact=True)
    assert packed == panels_plot("m", "#0072B2", train, evals, panels, AnalysisSettings(), only=0, compact=True)
    assert len(packed) < len(drawn) / 2
    with Image.open(io.BytesIO(drawn)) as png, Image.open(io.BytesIO(packed)) as webp:
        assert (png.format, webp.format) == ("PNG", "WEBP")
        mapped = png.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
        assert webp.convert("RGB").tobytes() == mapped.convert("RGB").tobytes()  # lossless: the mapped pixels


@pytest.mark.slow
@pytest.mark.browser
def test_webp_plots_show_and_the_chart_stands_in(large_site: tuple[Path, list]) -> None:
    """In Chromium: the WebP plots load, the loss chart replaces the loss image and links it, as with a PNG."""
    from browser_support import broken_images, chromium, new_page, require_browser, serve

    require_browser()
    root, reports = large_site
    slug = reports[0].entry.slug
    with serve(root / "site") as base, chromium() as browser, new_page(browser) as tab:
        tab.goto(f"{base}models/{slug}/")
        tab.wait_for_selector(".td-chart a.td-chart__image")
        assert tab.eval_on_selector_all("article img", "images => images.length") >= 5
        assert broken_images(tab) == []
        assert tab.locator(".td-chart a.td-chart__image").get_attribute("href").endswith("loss.webp")
        assert tab.console_errors == []

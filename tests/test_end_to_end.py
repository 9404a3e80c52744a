"""End to end: `mkdocs build --strict` on the example project, then the HTML a visitor gets.

The example checkpoints are reconstructed from the reference report
(../shared/seed-report.md); the built site must reproduce its summary table and
its main statements.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urljoin

import pytest
from bs4 import BeautifulSoup

from conftest import copy_example_project

pytestmark = pytest.mark.slow  # mkdocs builds of the example site

# The reference report's summary table: Model | Phase | Start | End | Convergence Speed (+ steps, base model).
REFERENCE_TABLE = [
    ["Qwen 7B", "Phase 1 SFT", "Qwen/Qwen2.5-7B-Instruct", "2668", "0.8985", "0.2598", "Steady"],
    ["Phi-3 Mini", "Phase 2 Reasoning", "microsoft/Phi-3-mini-4k-instruct", "199", "1.0539", "0.2876", "Fast"],
    ["Gemma 2 2B", "Phase 2 Reasoning", "google/gemma-2-2b-it", "314", "2.864", "0.3381",
     "Very Fast (High Initial Gap)"],
]


def mkdocs_build(project: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(project / "mkdocs.yml"), *extra],
        capture_output=True, text=True, env=env, check=False,
    )


@pytest.fixture(scope="module")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example project built once for the tests that only read it."""
    project = copy_example_project(tmp_path_factory.mktemp("end_to_end"))
    # No `traindocs generate` first: the MkDocs plugin must generate on its own.
    done = mkdocs_build(project, "-d", str(project / "site"))
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    return project / "site"


def soup(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def text_of(page: BeautifulSoup) -> str:
    return " ".join(page.get_text(" ").split())


def test_index_reproduces_the_reference_table(built_site: Path) -> None:
    page = soup(built_site / "index.html")
    table = page.select_one("article table")
    assert table is not None
    headers = [th.get_text(strip=True) for th in table.select("thead th")]
    # The reference report's columns, then the settings runs are compared by (learning rate, batch size, ...).
    assert headers[:7] == ["Model", "Phase", "Base model", "Steps", "Start Loss", "End Loss", "Convergence Speed"]
    rows = [[td.get_text(strip=True) for td in tr.select("td")][:7] for tr in table.select("tbody tr")]
    assert rows == REFERENCE_TABLE
    links = [a["href"] for a in table.select("tbody a")]
    assert links == ["models/qwen-7b/", "models/phi-3-mini/", "models/gemma-2-2b/"]
    for link in links:
        assert (built_site / link / "index.html").is_file()


def test_every_image_on_every_page_exists(built_site: Path) -> None:
    pages = sorted(built_site.rglob("index.html"))
    checked = 0
    for html_file in pages:
        page_url = html_file.relative_to(built_site).as_posix()
        for image in soup(html_file).select("article img"):
            target = urljoin(page_url, unquote(image["src"]))
            assert (built_site / target).is_file(), f"{page_url}: missing {image['src']}"
            checked += 1
    # index: the SFT overview's 4 panels (by step, share of training, epoch, tokens; all three are SFT runs);
    # each model page: loss, its 4 training-metric panels (learning rate, grad norm, token accuracy, entropy)
    # and its badge.
    assert checked == 4 + 3 * 6


def test_main_statements_of_the_reference_report(built_site: Path) -> None:
    qwen = text_of(soup(built_site / "models/qwen-7b/index.html"))
    assert "Started with a relatively low loss (0.8985 < 1.0)" in qwen
    # The seed: "Loss stabilized quickly around step 100" (its example's fall ends at step 100, then glides).
    fall_end = int(qwen.split("The fast fall of the loss ended around step ")[1].split(" ")[0])
    assert 50 <= fall_end <= 150
    accuracy = float(qwen.split("Mean token accuracy ended at ")[1].split("%")[0])
    assert accuracy > 92
    phi = text_of(soup(built_site / "models/phi-3-mini/index.html"))
    assert "Convergence speed Fast" in phi and "Entropy decreased consistently" in phi
    gemma = text_of(soup(built_site / "models/gemma-2-2b/index.html"))
    assert "High initial loss: started at 2.864" in gemma
    within = int(gemma.split("dropped below 0.7 within ")[1].split(" ")[0])
    assert within <= 50  # the seed: "dropped to < 0.7 within just 50 steps"
    index = text_of(soup(built_site / "index.html"))
    assert "Gemma 2 2B started much higher than Qwen 7B and Phi-3 Mini (2.86 vs 0.90 and 1.05" in index
    assert "Conclusion: All three runs converged" in index
    assert "example data" in index.lower()


def test_summary_json_at_the_site_root(built_site: Path) -> None:
    summary = json.loads((built_site / "summary.json").read_text())
    first = summary["models"][0]
    assert set(first) == {"name", "slug", "page", "phase", "base_model", "kind", "steps", "last_logged_step",
                          "start_step", "start_loss", "end_step", "end_loss", "min_loss", "min_loss_step",
                          "convergence", "fall_rate", "fall_end_step", "stabilised_step", "findings", "eval",
                          "best_checkpoint", "resumed", "non_finite"}
    assert {m["kind"] for m in summary["models"]} == {"sft"}
    assert [(m["slug"], m["steps"], m["start_loss"], m["end_loss"]) for m in summary["models"]] == [
        ("qwen-7b", 2668, 0.8985, 0.2598), ("phi-3-mini", 199, 1.0539, 0.2876), ("gemma-2-2b", 314, 2.864, 0.3381)
    ]
    for model in summary["models"]:
        assert (built_site / model["page"] / "index.html").is_file()


def test_navigation_groups_models_by_phase(built_site: Path) -> None:
    nav = text_of(soup(built_site / "index.html").select_one("nav.md-nav--primary"))
    assert nav.index("Phase 1 SFT") < nav.index("Qwen 7B") < nav.index("Phase 2 Reasoning") < nav.index("Phi-3 Mini")
    assert "How the figures are computed" in nav


def test_methodology_page_shows_thresholds_in_force(example_project: Path) -> None:
    registry = example_project / "checkpoints.yaml"
    registry.write_text(registry.read_text().replace("smoothing: 0.6", "smoothing: 0.8"))
    done = mkdocs_build(example_project, "-d", str(example_project / "site"))
    assert done.returncode == 0, done.stderr
    page = text_of(soup(example_project / "site/methodology/index.html"))
    assert "debiased exponential moving average with weight 0.8" in page


def test_strict_build_fails_on_an_unreadable_checkpoint(example_project: Path) -> None:
    registry = example_project / "checkpoints.yaml"
    registry.write_text(registry.read_text() + "  - {name: Ghost, path: runs/ghost}\n")
    done = mkdocs_build(example_project, "-d", str(example_project / "site"))
    assert done.returncode != 0
    assert "checkpoints[3] (Ghost): path 'runs/ghost' does not exist" in done.stderr
    assert "Traceback" not in done.stderr

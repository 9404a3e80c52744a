"""Portability: the generated docs/ (plain Markdown and images) also build with Zensical."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from generator.site import generate

pytestmark = pytest.mark.slow  # a generation and a Zensical build

ZENSICAL = Path(sys.executable).parent / "zensical"


def test_zensical_builds_the_generated_docs(example_project: Path) -> None:
    assert ZENSICAL.is_file(), "zensical is a test dependency: pip install -e '.[test]'"
    generate(example_project / "checkpoints.yaml", example_project / "docs")
    done = subprocess.run([str(ZENSICAL), "build"], cwd=example_project, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    site = example_project / "site"
    index = BeautifulSoup((site / "index.html").read_text(encoding="utf-8"), "html.parser")
    rows = [[td.get_text(strip=True) for td in tr.select("td")] for tr in index.select("article table tbody tr")]
    assert [row[0] for row in rows] == ["Qwen 7B", "Phi-3 Mini", "Gemma 2 2B"]
    header = [th.get_text(strip=True) for th in index.select("article table thead th")]
    speed = header.index("Convergence Speed")
    assert [row[speed] for row in rows] == ["Steady", "Fast", "Very Fast (High Initial Gap)"]
    images = [img["src"] for img in index.select("article img")]
    assert images and all((site / src).is_file() for src in images)
    for slug in ("qwen-7b", "phi-3-mini", "gemma-2-2b"):
        page = site / "models" / slug / "index.html"
        assert page.is_file()
        for img in BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser").select("article img"):
            assert (page.parent / img["src"]).is_file(), (slug, img["src"])
    assert (site / "summary.json").is_file()

"""Pages: escaping of user text, URLs, and golden files of the example site."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from conftest import GOLDEN
from generator.formatting import md_code, md_text
from generator.records import SiteLayout
from generator.site import generate


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Qwen 7B", "Qwen 7B"),
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        ("[click](javascript:alert(1))", "\\[click\\](javascript:alert(1))"),
        ("**bold** _it_ `code`", "\\*\\*bold\\*\\* \\_it\\_ \\`code\\`"),
        ("a | b", "a \\| b"),
        ("{: onclick=x }", "\\{: onclick=x \\}"),
        ("two\nlines", "two lines"),
        ("Q&A", "Q&amp;A"),
    ],
)
def test_md_text_escapes_markup(text: str, expected: str) -> None:
    assert md_text(text) == expected


def test_md_code() -> None:
    assert md_code("Qwen/Qwen2.5-7B-Instruct") == "`Qwen/Qwen2.5-7B-Instruct`"
    assert md_code("a`b") == "a\\`b"
    assert md_code("") == "n/a"


def test_page_urls() -> None:
    assert SiteLayout().page_url("models/qwen-7b.md") == "models/qwen-7b/"
    assert SiteLayout(use_directory_urls=False).page_url("models/qwen-7b.md") == "models/qwen-7b.html"
    assert SiteLayout().page_url("index.md") == ""
    assert SiteLayout().page_url("guide/index.md") == "guide/"
    assert SiteLayout().absolute("models/x/") == ""
    assert SiteLayout(site_url="https://a.org/r/").absolute("models/x/") == "https://a.org/r/models/x/"


GOLDEN_FILES = [
    "index.md",
    "methodology.md",
    "summary.json",
    "models/qwen-7b.md",
    "models/phi-3-mini.md",
    "models/gemma-2-2b.md",
    "models/gemma-2-2b/figures.json",
]


def test_example_site_matches_golden_files(example_project: Path, update_golden: bool) -> None:
    """The generated Markdown of the example site; refresh with `pytest --update-golden`."""
    docs = example_project / "docs"
    generate(example_project / "checkpoints.yaml", docs)
    differing = []
    for name in GOLDEN_FILES:
        produced = (docs / name).read_text(encoding="utf-8")
        golden = GOLDEN / name
        if update_golden:
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(produced, encoding="utf-8")
        elif not golden.is_file() or golden.read_text(encoding="utf-8") != produced:
            expected = golden.read_text(encoding="utf-8") if golden.is_file() else ""
            diff = difflib.unified_diff(expected.splitlines(), produced.splitlines(), f"golden/{name}",
                                        f"generated/{name}", lineterm="", n=1)
            differing.append("\n".join(list(diff)[:40]))
    assert not differing, "generated files differ from tests/golden (review, then --update-golden):\n" + "\n".join(
        differing)

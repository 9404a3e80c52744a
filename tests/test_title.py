"""One title for the site: mkdocs.yml's site_name, also on the index heading; checkpoints.yaml's site.title only
without mkdocs.yml, and a warning when the two differ."""

from __future__ import annotations

from pathlib import Path

from conftest import sft_rows, write_state
from generator.pages import DEFAULT_TITLE, site_title, title_conflict
from generator.records import SiteLayout, SiteSettings
from generator.scaffold import init_project
from generator.site import generate


def test_site_name_titles_the_site() -> None:
    assert site_title(SiteSettings(title="Registry"), SiteLayout(site_name="MkDocs")) == "MkDocs"
    assert site_title(SiteSettings(title="Registry"), SiteLayout()) == "Registry"
    assert site_title(SiteSettings(), SiteLayout()) == DEFAULT_TITLE


def test_a_title_differing_from_site_name_is_a_warning() -> None:
    assert title_conflict("checkpoints.yaml", SiteSettings(), SiteLayout(site_name="A")) is None
    assert title_conflict("checkpoints.yaml", SiteSettings(title="A"), SiteLayout()) is None
    assert title_conflict("checkpoints.yaml", SiteSettings(title=" A  report"), SiteLayout(site_name="A report")) is None
    warning = title_conflict("checkpoints.yaml", SiteSettings(title="Mine"), SiteLayout(site_name="Theirs"))
    assert warning is not None and warning.startswith("checkpoints.yaml: site.title 'Mine' differs from site_name")


def test_generation_heads_the_index_with_site_name_and_warns(tmp_path: Path) -> None:
    write_state(tmp_path / "run", sft_rows([2.0 - 0.05 * i for i in range(20)]))
    registry = tmp_path / "checkpoints.yaml"
    registry.write_text("site: {title: Old title}\ncheckpoints:\n  - {name: Run, path: run}\n", encoding="utf-8")
    result = generate(registry, tmp_path / "docs", SiteLayout(site_name="New <title>"), cache=False)
    index = (tmp_path / "docs/index.md").read_text(encoding="utf-8")
    assert "# New &lt;title&gt;\n" in index and "Old title" not in index
    assert any("site.title 'Old title' differs from site_name 'New <title>'" in w for w in result.warnings())


def test_init_writes_the_title_in_one_place(tmp_path: Path) -> None:
    init_project(tmp_path / "report")
    assert "site_name: Training report" in (tmp_path / "report/mkdocs.yml").read_text(encoding="utf-8")
    registry = (tmp_path / "report/checkpoints.yaml").read_text(encoding="utf-8")
    assert "title:" not in registry.replace("# title", "")

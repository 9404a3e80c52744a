"""The site navigation: overview, models grouped by phase, methodology.

A report that owns the whole of docs/ gets its own nav with hand-written pages
last (`build_nav`). A report in a folder of an existing site (the plugin's
`folder` option) is one section of the site's nav: appended to the user's own
nav (`with_report_section`), or to MkDocs' default nav of the user's pages when
mkdocs.yml has none (`default_nav_with_report`). The user's entries are kept as
they are.

Material writes the whole navigation into every page, so a site of more than
`group_pages.LARGE_REGISTRY` models lists one entry per group (its first page)
instead of every model: the navigation's size then depends on the number of
phases, not of models, and each model page is reached from its group's page.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generator import group_pages, pages
from generator.group_pages import NO_PHASE
from generator.ownership import OwnedFiles
from generator.records import CheckpointEntry, Registry, SiteLayout
from generator.site import GenerationResult

DEFAULT_SECTION = "Training reports"


def report_items(entries: Sequence[CheckpointEntry], layout: SiteLayout) -> list[Any]:
    """The report's own entries: overview, models (by phase when there are phases), methodology.

    Model entries carry no title: MkDocs takes it from the page's heading,
    which the generator has already escaped.
    """
    items: list[Any] = [{"Overview": layout.docs_path(pages.INDEX_PAGE)}]
    if group_pages.is_large(len(entries)):
        # One entry per phase group (its first page), not per model: Material writes the nav into every page.
        items.append({"Models": [{html.escape(title): layout.docs_path(path)}
                                 for title, path in group_pages.group_nav_entries(entries)]})
        items.append({"How the figures are computed": layout.docs_path(pages.METHODOLOGY_PAGE)})
        return items
    groups: dict[str, list[str]] = {}
    for entry in entries:
        groups.setdefault(entry.phase or NO_PHASE, []).append(layout.docs_path(pages.model_page_path(entry.slug)))
    if len(groups) == 1 and NO_PHASE in groups:
        items.append({"Models": groups[NO_PHASE]})
    elif groups:
        # MkDocs themes print nav titles unescaped: a phase is user text.
        items.append({"Models": [{html.escape(phase): paths} for phase, paths in groups.items()]})
    items.append({"How the figures are computed": layout.docs_path(pages.METHODOLOGY_PAGE)})
    return items


@dataclass(frozen=True)
class ReportPages:
    """What the nav needs of a report: its models in registry order and the files traindocs owns."""

    entries: tuple[CheckpointEntry, ...]
    owned: frozenset[str]
    """Paths under docs/ that are the report's (never listed as hand-written pages)."""

    @classmethod
    def generated(cls, result: GenerationResult) -> ReportPages:
        """The report a generation just wrote."""
        return cls(tuple(report.entry for report in result.reports),
                   frozenset(result.written) | frozenset(result.unchanged) | frozenset(result.refused)
                   | frozenset(result.deferred))

    @classmethod
    def on_disk(cls, registry: Registry, docs_dir: Path, layout: SiteLayout) -> ReportPages:
        """The report as docs/ holds it, not generated now (`generate: false`, e.g. a committed docs/): the
        registry's models whose page exists, and the files of the manifest (when there is one)."""
        entries = tuple(entry for entry in registry.entries
                        if (docs_dir / layout.docs_path(pages.model_page_path(entry.slug))).is_file())
        owned = set(OwnedFiles(docs_dir).previous)
        owned |= {layout.docs_path(path) for path in (pages.INDEX_PAGE, pages.METHODOLOGY_PAGE)}
        owned |= {layout.docs_path(pages.model_page_path(entry.slug)) for entry in entries}
        return cls(entries, frozenset(owned))


def build_nav(report: ReportPages | GenerationResult, docs_dir: Path, layout: SiteLayout | None = None) -> list[Any]:
    """MkDocs `nav` for a site that is the report: its entries, then hand-written pages."""
    if isinstance(report, GenerationResult):
        report = ReportPages.generated(report)
    nav = report_items(report.entries, layout or SiteLayout())
    if docs_dir.is_dir():
        for page in sorted(docs_dir.rglob("*.md")):
            relative = page.relative_to(docs_dir).as_posix()
            if relative not in report.owned and not any(part.startswith(".")
                                                        for part in page.relative_to(docs_dir).parts):
                nav.append(relative)
    return nav


def _nav_paths(nav: Any) -> Iterable[str]:
    """Every page path a MkDocs nav names (titles and sections walked through)."""
    if isinstance(nav, str):
        yield nav
    elif isinstance(nav, list):
        for item in nav:
            yield from _nav_paths(item)
    elif isinstance(nav, dict):
        for value in nav.values():
            yield from _nav_paths(value)


def mentions_folder(nav: Any, folder: str) -> bool:
    """Whether a nav already links a page of the report's folder: then its author placed the report."""
    prefix = folder.rstrip("/") + "/"
    return any(path.removeprefix("./").startswith(prefix) for path in _nav_paths(nav))


def report_section(report: ReportPages, layout: SiteLayout, title: str) -> dict[str, list[Any]]:
    """The report as one nav section (a title from mkdocs.yml is shown as text, like a phase)."""
    return {html.escape(title): report_items(report.entries, layout)}


def with_report_section(nav: list[Any], report: ReportPages, layout: SiteLayout, title: str) -> list[Any]:
    """The user's nav with the report's section appended; unchanged when it already links the report."""
    if mentions_folder(nav, layout.folder):
        return nav
    return [*nav, report_section(report, layout, title)]


def default_nav_with_report(user_pages: Iterable[str], report: ReportPages, layout: SiteLayout,
                            title: str) -> list[Any]:
    """MkDocs' own nav of the user's pages (`user_pages` in MkDocs' order), then the report's section, which
    ends with the hand-written pages inside the report's folder."""
    from mkdocs.utils import nest_paths  # what MkDocs builds when mkdocs.yml has no nav

    prefix = layout.folder + "/"
    user_pages = list(user_pages)
    nav: list[Any] = nest_paths(path for path in user_pages if not path.startswith(prefix))
    section = report_section(report, layout, title)
    for items in section.values():
        items.extend(path for path in user_pages if path.startswith(prefix) and path not in report.owned)
    return [*nav, section]

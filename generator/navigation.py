"""The site navigation: overview, models grouped by phase, methodology.

Material writes the whole navigation into every page, so a site of more than
`group_pages.LARGE_REGISTRY` models lists one entry per group (its first page)
instead of every model: the navigation's size then depends on the number of
phases, not of models, and each model page is reached from its group's page.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from generator import group_pages, pages
from generator.group_pages import NO_PHASE
from generator.site import GenerationResult

__all__ = ["NO_PHASE", "build_nav"]


def build_nav(result: GenerationResult, docs_dir: Path) -> list[Any]:
    """MkDocs `nav` for a generated site, hand-written pages last.

    Model entries carry no title: MkDocs takes it from the page's heading,
    which the generator has already escaped.
    """
    nav: list[Any] = [{"Overview": pages.INDEX_PAGE}]
    if group_pages.is_large(len(result.reports)):
        # MkDocs themes print nav titles unescaped: a phase is user text.
        nav.append({"Models": [{html.escape(group.nav_title()): group.page_path(1)}
                               for group in group_pages.phase_groups(result.reports)]})
    else:
        groups: dict[str, list[str]] = {}
        for report in result.reports:
            groups.setdefault(report.entry.phase or NO_PHASE, []).append(pages.model_page_path(report.entry.slug))
        if len(groups) == 1 and NO_PHASE in groups:
            nav.append({"Models": groups[NO_PHASE]})
        elif groups:
            nav.append({"Models": [{html.escape(phase): paths} for phase, paths in groups.items()]})
    nav.append({"How the figures are computed": pages.METHODOLOGY_PAGE})
    owned = set(result.written) | set(result.unchanged) | set(result.refused)
    if docs_dir.is_dir():
        for page in sorted(docs_dir.rglob("*.md")):
            relative = page.relative_to(docs_dir).as_posix()
            if relative not in owned and not any(part.startswith(".") for part in page.relative_to(docs_dir).parts):
                nav.append(relative)
    return nav

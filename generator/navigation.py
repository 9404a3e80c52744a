"""The site navigation: overview, models grouped by phase, methodology."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from generator import pages
from generator.site import GenerationResult

NO_PHASE = "Other runs"


def build_nav(result: GenerationResult, docs_dir: Path) -> list[Any]:
    """MkDocs `nav` for a generated site, hand-written pages last.

    Model entries carry no title: MkDocs takes it from the page's heading,
    which the generator has already escaped.
    """
    groups: dict[str, list[str]] = {}
    for report in result.reports:
        groups.setdefault(report.entry.phase or NO_PHASE, []).append(pages.model_page_path(report.entry.slug))
    nav: list[Any] = [{"Overview": pages.INDEX_PAGE}]
    if len(groups) == 1 and NO_PHASE in groups:
        nav.append({"Models": groups[NO_PHASE]})
    elif groups:
        # MkDocs themes print nav titles unescaped: a phase is user text.
        nav.append({"Models": [{html.escape(phase): paths} for phase, paths in groups.items()]})
    nav.append({"How the figures are computed": pages.METHODOLOGY_PAGE})
    owned = set(result.written) | set(result.unchanged) | set(result.refused)
    if docs_dir.is_dir():
        for page in sorted(docs_dir.rglob("*.md")):
            relative = page.relative_to(docs_dir).as_posix()
            if relative not in owned and not any(part.startswith(".") for part in page.relative_to(docs_dir).parts):
                nav.append(relative)
    return nav

"""Large registries: an index of groups, and one paginated page per group of models.

Above LARGE_REGISTRY models, listing every model in the navigation and in the
index's tables does not scale: Material writes the whole navigation into every
page (5,000 models made 1.37 MB of navigation per page, a 6.9 GB site), and one
table of 5,000 rows is neither readable nor small. So a large site has:

- an index with one row per group (the checkpoint's `phase`), its number of
  models and its pages, then the overview plot of each kind of run;
- per group, pages of at most ROWS_PER_PAGE models, each with the index's table
  (`pages._index_row_cells`, one table per kind of run), sortable by column
  (tablesort.js) and filterable by text (a small inline script), with links to
  the other pages of the group;
- a navigation listing the overview, one entry per group and the methodology
  (see `generator.navigation`); model pages are reached from their group page;
- model pages left out of Material's search index (the group pages' tables are
  indexed and name every model), plots as palette-mapped lossless WebP, the log
  history gzip-compressed, the JSON downloads without indentation
  (`plan.large_model_files`, `downloads`): a 300-row run publishes ~92 KiB
  instead of ~147 KiB, so 5,000 runs make ~473 MB (bench/README.md, "Large sites").

Group pages live next to index.md (not in a folder) so the model links that
`_index_row_cells` writes (`models/<slug>.md`) resolve from them unchanged.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from generator import pages
from generator.colors import LEGEND_LIMIT
from generator.formatting import fmt_count, md_text
from generator.records import CheckpointEntry, EntryProblem, ModelReport, SiteSettings

LARGE_REGISTRY = 200
"""Sites with more models than this get group pages and a short navigation."""
ROWS_PER_PAGE = 100
"""Models per group page: 100 rows of the widest table (preference runs) stay well under 150 KB of HTML."""
NO_PHASE = "Other runs"
"""The group of models registered without a phase."""
GROUP_PAGE_PREFIX = "group-"


def is_large(model_count: int) -> bool:
    """Whether a site of this many models gets group pages instead of one full index table."""
    return model_count > LARGE_REGISTRY


@dataclass(frozen=True)
class PhaseGroup:
    """The models of one phase, in registry order, and where their pages go."""

    name: str
    """The phase as registered (user text), or NO_PHASE."""
    slug: str
    """Unique among the site's groups; names the group's page files."""
    reports: tuple[ModelReport, ...]

    @property
    def page_count(self) -> int:
        return max(1, math.ceil(len(self.reports) / ROWS_PER_PAGE))

    def page_path(self, number: int) -> str:
        """Path under docs/ of the group's page `number` (1-based)."""
        return group_page_path(self.slug, number)

    def page_reports(self, number: int) -> tuple[ModelReport, ...]:
        start = (number - 1) * ROWS_PER_PAGE
        return self.reports[start : start + ROWS_PER_PAGE]

    def nav_title(self) -> str:
        """Plain text (the caller escapes it): the phase and how many models it holds."""
        return group_title(self.name, len(self.reports))


def group_page_path(slug: str, number: int) -> str:
    """Path under docs/ of page `number` (1-based) of the group `slug`."""
    suffix = "" if number == 1 else f"-{number}"
    return f"{GROUP_PAGE_PREFIX}{slug}{suffix}.md"


def group_title(name: str, count: int) -> str:
    """Plain text: a phase and how many models it holds."""
    return f"{name} ({fmt_count(count)} model{'s' if count != 1 else ''})"


def group_nav_entries(entries: Sequence[CheckpointEntry]) -> list[tuple[str, str]]:
    """(title, first page) of each phase group of registry entries, in the order of `phase_groups`:
    what the navigation lists instead of every model."""
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.phase or NO_PHASE] = counts.get(entry.phase or NO_PHASE, 0) + 1
    taken: set[str] = set()
    return [(group_title(name, count), group_page_path(_slug(name, taken), 1)) for name, count in counts.items()]


def _slug(text: str, taken: set[str]) -> str:
    """A file-name-safe, unique slug of a phase name ('Phase 1: SFT' -> 'phase-1-sft')."""
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60].strip("-") or "group"
    slug, number = base, 2
    while slug in taken:
        slug, number = f"{base}-{number}", number + 1
    taken.add(slug)
    return slug


def phase_groups(reports: Sequence[ModelReport]) -> list[PhaseGroup]:
    """Reports by phase, phases in order of first appearance, models in registry order."""
    members: dict[str, list[ModelReport]] = {}
    for report in reports:
        members.setdefault(report.entry.phase or NO_PHASE, []).append(report)
    taken: set[str] = set()
    return [PhaseGroup(name, _slug(name, taken), tuple(group)) for name, group in members.items()]


def _page_links(group: PhaseGroup, current: int) -> str:
    """'Pages: 1 2 [3] 4' with the current page in bold and not linked."""
    links = [f"**{number}**" if number == current else f"[{number}]({group.page_path(number)})"
             for number in range(1, group.page_count + 1)]
    return "Pages: " + " · ".join(links) + "\n"


def group_page(group: PhaseGroup, number: int) -> str:
    """One page of a group: its models' rows of the index table, one table per kind of run."""
    shown = group.page_reports(number)
    first = (number - 1) * ROWS_PER_PAGE + 1
    parts = ["---\nhide:\n  - toc\n---\n", f"# {md_text(group.name)}\n", pages.GENERATED_NOTE]
    total = len(group.reports)
    where = (f"models {fmt_count(first)} to {fmt_count(first + len(shown) - 1)}, page {number} of {group.page_count}"
             if group.page_count > 1 else "all on this page")
    parts.append(f"{fmt_count(total)} model{'s' if total != 1 else ''} in this group ({where}). "
                 f"Back to the [overview]({pages.INDEX_PAGE}); every column sorts this page's table "
                 "when its header is clicked.\n")
    if group.page_count > 1:
        parts.append(_page_links(group, number))
    kinds = pages.kind_groups(shown)
    for kind, members in kinds:
        if len(kinds) > 1:
            parts.append(f"## {md_text(kind.about.label)}\n")
        parts.append(pages._index_table(members))  # the index's table: same columns, filter box and sorting
    if group.page_count > 1:
        parts.append(_page_links(group, number))
    return "\n".join(parts)


def group_pages(groups: Sequence[PhaseGroup]) -> list[tuple[str, str]]:
    """(path under docs/, Markdown) of every group page."""
    return [(group.page_path(number), group_page(group, number))
            for group in groups for number in range(1, group.page_count + 1)]


def large_index_page(site: SiteSettings, kind_groups: Sequence[pages.IndexGroup], groups: Sequence[PhaseGroup],
                     problems: Sequence[EntryProblem]) -> str:
    """The index of a large site: the groups with their counts and pages, then each kind's overview plot.

    The per-model comparison sentences of the small index (one per run) are left
    out: thousands of them are not read. Each group page has the numbers in a
    sortable table, and each model page its own findings.
    """
    parts = ["---\nhide:\n  - toc\n---\n", f"# {md_text(site.title)}\n", pages.GENERATED_NOTE]
    if site.intro:
        parts.append(md_text(site.intro) + "\n")
    total = sum(len(group.reports) for group in groups)
    parts.append(f"{fmt_count(total)} models in {fmt_count(len(groups))} group{'s' if len(groups) != 1 else ''} "
                 f"(by phase). Each group's page lists its models, {ROWS_PER_PAGE} a page, in a table that sorts "
                 "by any column and filters by text. The search box finds a model by name, phase or base model in "
                 "these tables; at this size model pages themselves are not in the search index.\n")
    parts.append("## Groups\n")
    rows = []
    for group in groups:
        kinds = pages.kind_groups(group.reports)
        kind_counts = ", ".join(f"{fmt_count(len(members))} {md_text(kind.about.label)}" for kind, members in kinds)
        page_links = " ".join(f"[{number}]({group.page_path(number)})" for number in range(1, group.page_count + 1))
        rows.append([f"[{md_text(group.name)}]({group.page_path(1)})", fmt_count(len(group.reports)), kind_counts,
                     page_links])
    parts.append(pages._table(["Group", "Models", "Kinds of run", "Pages"], rows, [":---", "---:", ":---", ":---"]))
    for index_group in kind_groups:
        if not index_group.overview:
            continue
        what = index_group.kind.about.headline
        parts.append(f"## {md_text(index_group.kind.about.label)}: {what} curves\n")
        parts.append(f"![Smoothed {what} of every run by step, share of training, epoch and tokens]"
                     f"({index_group.overview})\n")
        if len(index_group.reports) > LEGEND_LIMIT:
            parts.append(f"With more than {LEGEND_LIMIT} runs the curves carry no legend; "
                         "each model's own page shows its curve.\n")
    if problems:
        parts.append("## Entries that could not be built\n")
        parts.append(pages._table(["Entry", "Problem"], [[md_text(p.label), md_text(p.message)] for p in problems]))
    return "\n".join(parts)

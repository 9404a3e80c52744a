"""Every file of the site, planned: where it goes, the hash of its inputs, how to make it.

`plan_artefacts` turns the reports of a generation into `Artefact`s (pages, plots,
downloads, the index with its comparison sentences). Nothing is rendered here:
each artefact carries a renderer, and `generator.ownership` renders only those
whose inputs changed. Plots are typed jobs (`LossPlot`, `PanelsPlot`, `EvalPlot`,
`OverviewPlot`): picklable for a worker process, and importing `generator.plots`
(matplotlib) only when called, so a generation that redraws nothing never loads it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from generator import __version__, charts, downloads, fonts, group_pages, narrative, pages
from generator.badges import badge_svg
from generator.cache import code_version
from generator.formatting import fmt_number
from generator.kinds import Panel
from generator.overview import can_thin, overview_panels, thinned
from generator.records import (
    AnalysisSettings,
    Curve,
    EntryProblem,
    Figures,
    ModelReport,
    Registry,
    SiteLayout,
    TrainingRun,
)
from generator.sanitize import home_folders

STATIC_DIR = Path(__file__).parent / "static"
TABLESORT_FILE = STATIC_DIR / "tablesort.js"
"""Makes the comparison table sortable (a few lines of our own, no CDN)."""
STATIC_FILES = {
    pages.TABLESORT_SCRIPT: TABLESORT_FILE,
    pages.TABLEFILTER_SCRIPT: STATIC_DIR / "tablefilter.js",  # the index table's filter box
    pages.STYLESHEET: STATIC_DIR / "traindocs.css",  # tables that fit a phone; the index table's sticky header
    pages.PLOTS_STYLESHEET: STATIC_DIR / "traindocs-plots.css",  # panels two a row on wide screens, one on phones
}
"""Files shipped as they are into docs/ (paths under docs/: files of the package)."""


@functools.cache
def matplotlib_version() -> str:
    """From the package metadata: importing matplotlib only to read its version would cost 0.3 s."""
    return importlib.metadata.version("matplotlib")


@dataclass(frozen=True)
class Artefact:
    """One output file: where it goes, what it depends on, how to make it."""

    path: str
    """Relative to docs/, with forward slashes."""
    key: str
    """Hash of every input; equal keys mean equal bytes."""
    render: Callable[[], bytes]
    """Makes the bytes; for expensive artefacts a picklable callable (it may run in a worker)."""
    expensive: bool = False
    """Worth a worker process (plots, big CSVs); cheap ones render inline."""
    first: bool = False
    """Handed to the workers before the others: a long job (an overview of every run) started last would
    keep one worker busy after the rest are done."""
    deferrable: bool = False
    """May be drawn after the pages are published (`traindocs serve`: see `OwnedFiles.update`'s `defer`): an
    image or chart of many runs, slow to draw, whose last version may be shown for a moment."""


# --- plot jobs: what to draw, drawn when called (in this process or a worker) -------------------------


@dataclass(frozen=True, eq=False)
class LossPlot:
    """A model's loss plot (`plots.loss_plot`)."""

    name: str
    color: str
    run: TrainingRun
    """Its tables are used when the plot is drawn: an unchanged run's stay unbuilt (`DeferredTable`)."""
    figures: Figures
    settings: AnalysisSettings
    resumed_at: int | None = None
    compact: bool = False
    """A palette-mapped lossless WebP (`plots._encoded`'s `compact`): large sites."""

    def __call__(self) -> bytes:
        from generator import plots  # matplotlib: only when something is drawn

        return plots.loss_plot(self.name, self.color, self.run.train, self.run.eval, self.figures, self.settings,
                               self.resumed_at, compact=self.compact)


@dataclass(frozen=True, eq=False)
class PanelsPlot:
    """A grid of metric panels (`plots.panels_plot`): training metrics, the kind's metrics, other metrics."""

    title: str
    color: str
    run: TrainingRun
    panels: tuple[Panel, ...]
    settings: AnalysisSettings
    figures: Figures | None = None
    compact: bool = False
    only: int | None = None
    """Draw panel number `only` alone (a model page shows each panel as its own image); None: the grid."""

    def __call__(self) -> bytes:
        from generator import plots

        return plots.panels_plot(self.title, self.color, self.run.train, self.run.eval, self.panels, self.settings,
                                 self.figures, self.only, compact=self.compact)


@dataclass(frozen=True, eq=False)
class EvalPlot:
    """One panel per eval metric, one line per eval set (`plots.eval_plot`)."""

    name: str
    run: TrainingRun
    groups: dict[str, dict[str, str]]
    figures: Figures
    compact: bool = False
    only: int | None = None
    """Draw metric number `only` alone; None: the grid."""

    def __call__(self) -> bytes:
        from generator import plots

        return plots.eval_plot(self.name, self.run.eval, self.groups, self.figures, self.only, compact=self.compact)


@dataclass(frozen=True, eq=False)
class OverviewPlot:
    """Every model of one kind on shared axes (`plots.overview_plot`), one panel (`only`) or all."""

    curves: tuple[Curve, ...]
    """Each run's curve (`ModelReport.curve`), smoothed when its checkpoint was read."""
    settings: AnalysisSettings
    what: str
    only: str | None = None
    legend: bool = True
    thin: bool = False
    """Sent to a worker process with each curve thinned to what this one panel draws (`overview.thinned`; only
    when `overview.can_thin`): the full curves of many runs cost as much to send as to draw."""

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        if self.thin and self.only:
            state["curves"] = tuple(thinned(curve, self.only) for curve in self.curves)
        return state

    def __call__(self) -> bytes:
        from generator import plots

        return plots.overview_plot(self.curves, self.settings, self.what, self.only, self.legend)


PlotJob = LossPlot | PanelsPlot | EvalPlot | OverviewPlot

OVERVIEW_IN_WORKERS = 20
"""Runs up to which an overview plot is drawn in a worker process (see plan_artefacts)."""


LARGE_IMAGE_SUFFIX = ".webp"
"""Model plots of a large site: palette-mapped lossless WebP (`plots` with `compact`) instead of PNG."""
LARGE_CSV_SUFFIX = ".csv.gz"
"""A large site's log_history.csv is published gzip-compressed (`downloads.gzip_bytes`); the page says so."""


def large_model_files(files: pages.ModelFiles) -> pages.ModelFiles:
    """A model's files in a large site: plots as WebP (`LARGE_IMAGE_SUFFIX`), the log history gzip-compressed."""

    def webp(path: str) -> str:
        return path.removesuffix(".png") + LARGE_IMAGE_SUFFIX

    return dataclasses.replace(
        files,
        log_csv=files.log_csv.removesuffix(".csv") + LARGE_CSV_SUFFIX,
        loss=webp(files.loss) if files.loss else None,
        metric_plots=tuple(map(webp, files.metric_plots)),
        kind_plots=tuple(map(webp, files.kind_plots)),
        eval_plots=tuple(map(webp, files.eval_plots)),
        other_plots=tuple(map(webp, files.other_plots)),
    )


LARGE_PAGE_FRONT_MATTER = "---\nsearch:\n  exclude: true\n---\n"
"""Model pages of a large site stay out of Material's search index: ~5 KB a model (24 MB at 5,000, one file
every visitor who searches loads); the group pages' tables, which are indexed, name every model, its phase and
base model."""


def _key(*parts: object, then: bytes = b"") -> str:
    """Hash of the parts, each as JSON ended by a NUL byte, then of `then` (`_parts` of more parts)."""
    return hashlib.sha256(_parts(*parts) + then).hexdigest()


def _parts(*parts: object) -> bytes:
    """What `_key` hashes of these parts: a model's inputs shared by its plots are encoded once, not per plot."""
    return b"".join(json.dumps(part, sort_keys=True, default=str).encode("utf-8") + b"\0" for part in parts)


def plan_artefacts(registry: Registry, reports: list[ModelReport], problems: list[EntryProblem],
                   layout: SiteLayout) -> list[Artefact]:
    """Every file the site needs, each with its input hash and a renderer."""
    settings = registry.analysis
    settings_json = dataclasses.asdict(settings)
    # Rendered files are keyed by their inputs, and the code is one of them: what a plot shows is
    # decided in kinds, analysis and here as much as in plots, so the whole package counts.
    versions = (__version__, matplotlib_version(), code_version())
    large = group_pages.is_large(len(reports))
    registry_dir = registry.file.resolve().parent
    # What a model page depends on beside its report (paths are shown relative to the registry or from ~).
    page_context = _parts(versions, layout, str(registry_dir), registry.site.show_paths,
                          [str(home) for home in home_folders()], large)
    artefacts: list[Artefact] = []
    for report in reports:
        slug, name = report.entry.slug, report.entry.name
        run = report.run
        files = pages.ModelFiles.for_report(report)
        if large:
            files = large_model_files(files)
        plot_inputs = (versions, name, report.color, run.state_sha256, settings_json, large,
                       fonts.fonts_key([name, *run.column_names()]))
        shared = _parts(*plot_inputs)
        plans: list[tuple[str | None, str, PlotJob]] = [
            (files.loss, "loss", LossPlot(name, report.color, run, report.figures, settings,
                                          run.resumes[-1][0] if run.resumes else None, compact=large)),
        ]
        # Each panel its own image (pages._panel_images lays them out); the job names its panel by number.
        sections = [("metrics", files.metric_plots, files.metric_panels, None),
                    ("kind", files.kind_plots, files.kind_panels, report.figures),
                    ("other", files.other_plots, files.other_panels, None)]
        for what, paths, panels, marked in sections:
            plans += [(path, what, PanelsPlot(name, report.color, run, panels, settings, marked,
                                              compact=large, only=n)) for n, path in enumerate(paths)]
        eval_groups = {metric: dict(sets) for metric, sets in files.eval_groups}
        plans += [(path, "eval", EvalPlot(name, run, eval_groups, report.figures, compact=large, only=n))
                  for n, path in enumerate(files.eval_plots)]
        for plot_path, what, job in plans:
            if plot_path:
                artefacts.append(Artefact(plot_path, _key(what, plot_path, then=shared), job, expensive=True))
        # Handed out first: a long run's CSV is the longest job of a generation (100,000 rows: ~0.3 s against
        # 0.04-0.11 s a plot), and queued after the plots it ran alone at the end (measured).
        artefacts.append(
            Artefact(files.log_csv, _key("csv", versions, run.state_sha256, large),
                     partial(downloads.log_history_csv, report, compressed=large), expensive=True, first=True)
        )
        # Keyed by its inputs, so an unchanged model's figures.json is not even serialised.
        figures_inputs = (versions, name, slug, report.base_model, run.state_sha256, settings_json, large)
        artefacts.append(Artefact(files.figures_json, _key("figures", *figures_inputs),
                                  partial(downloads.figures_document, report, compact=large)))
        if charts.has_model_chart(report):
            chart = pages.model_asset_path(slug, charts.MODEL_CHART)
            artefacts.append(Artefact(chart, _key("chart", chart, then=shared),
                                      partial(charts.model_chart_bytes, report, settings), expensive=True))
        label, _, last = report.figures.headline()  # an RL loss says nothing of progress: its reward does
        badge = badge_svg(label, fmt_number(last))
        artefacts.append(_bytes_artefact(files.badge, badge))
        page_path = pages.model_page_path(slug)
        write_page = partial(_model_page_bytes, report, files, settings, layout, registry_dir,
                             registry.site.show_paths, large)
        if report.reading_key:
            # Keyed by its inputs, so an unchanged model's page is not even written in memory (1,000 pages: ~0.4
            # s of planning each generation, measured). The report is the cached reading (its key, the state
            # file's hash) given to the entry (every field), shown from the registry's folder.
            page_inputs = (report.reading_key, run.state_sha256, report.entry, report.base_model, report.color)
            artefacts.append(Artefact(page_path, _key("page", page_path, *page_inputs, then=page_context), write_page))
        else:
            artefacts.append(_bytes_artefact(page_path, write_page()))  # read without a cache: keyed by its text

    groups = []
    for kind, members in pages.kind_groups(reports):
        named = [(r.entry.name, r.figures) for r in members]
        compared = [narrative.Compared(r.entry.name, r.figures, narrative.comparison_group(r.entry, r.base_model))
                    for r in members]
        overview = None
        what = kind.about.headline
        overview_images: list[tuple[str, str]] = []
        if any(_has_overview_curve(r) for r in members):
            overview_inputs = (
                versions,
                [(r.entry.name, r.color, r.run.state_sha256, r.figures.steps) for r in members],
                settings_json,
                fonts.fonts_key([r.entry.name for r in members]),
            )
            # Each panel its own image, the legend under the first: see pages._overview_images.
            curves = tuple(r.curve for r in members)
            axes = overview_panels(curves)
            overview_images = [(axis, pages.overview_path(kind, axis)) for axis in axes]
            overview = overview_images[0][1]
            # Many runs' overviews take seconds to draw: `traindocs serve` publishes the pages before them.
            many = len(members) > OVERVIEW_IN_WORKERS
            # A few runs' overview goes to the workers with the model plots, so this process is free to write
            # the pages meanwhile; so does that of so many runs that each is drawn from its few points, sent
            # thinned (1,000 runs: ~2 MB a panel). Between the two, every run's whole curve would cost more to
            # send to a worker than to draw here, while the workers draw the model plots.
            thin = many and can_thin(curves)
            for position, (axis, path) in enumerate(overview_images):
                artefacts.append(Artefact(path, _key(path, overview_inputs),
                                          OverviewPlot(curves, settings, what, axis, position == 0, thin=thin),
                                          expensive=not many or thin, first=True,
                                          deferrable=many))
            # The large index shows the overview PNGs, not the interactive chart: its data (~6 KB a run, growing
            # with the runs) would be an unused file.
            if not large:
                chart = charts.chart_file_for(overview)
                artefacts.append(Artefact(chart, _key(chart, overview_inputs),
                                          partial(charts.overview_chart_bytes, tuple(members), settings, what),
                                          deferrable=many))
        if large:
            sentences, closing = [], ""  # one sentence per run: not read at thousands (see group_pages)
        elif not kind.about.reads_loss:
            sentences, closing = narrative.reward_comparison(named), narrative.reward_conclusion(named)
        else:
            sentences, closing = narrative.comparison(compared, settings), narrative.conclusion(compared, settings)
        groups.append(pages.IndexGroup(kind, tuple(members), tuple(sentences), closing, overview, tuple(overview_images)))
    titled = dataclasses.replace(registry.site, title=pages.site_title(registry.site, layout))
    if large:
        # Thousands of rows in one table, and in every page's navigation, do not scale: see group_pages.
        phases = group_pages.phase_groups(reports)
        index = group_pages.large_index_page(titled, groups, phases, problems)
        for path, text in group_pages.group_pages(phases):
            artefacts.append(_bytes_artefact(path, text.encode("utf-8")))
    else:
        index = pages.index_page(titled, groups, problems)
    artefacts.append(_bytes_artefact(pages.INDEX_PAGE, index.encode("utf-8")))
    artefacts.append(_bytes_artefact(pages.METHODOLOGY_PAGE, pages.methodology_page(settings).encode("utf-8")))
    summary = downloads.summary_document(reports, problems, layout, compact=large)
    artefacts.append(_bytes_artefact(pages.SUMMARY_FILE, summary))
    artefacts += [_bytes_artefact(path, _static_file(source)) for path, source in STATIC_FILES.items()]
    artefacts += [_bytes_artefact(f"{pages.ASSETS_DIR}/{name}", _static_file(STATIC_DIR / name))
                  for name in charts.STATIC_FILES]
    # Pages link each other and their images relatively: the whole report moves into its folder as is.
    if not layout.folder:
        return artefacts
    return [dataclasses.replace(artefact, path=layout.docs_path(artefact.path)) for artefact in artefacts]


def _model_page_bytes(report: ModelReport, files: pages.ModelFiles, settings: AnalysisSettings,
                      layout: SiteLayout, registry_dir: Path, show_paths: bool, large: bool) -> bytes:
    page = pages.model_page(report, files, settings, layout, registry_dir, show_paths)
    if large:
        page = LARGE_PAGE_FRONT_MATTER + page
    return page.encode("utf-8")


@functools.cache
def _static_file(source: Path) -> bytes:
    return source.read_bytes()


def _has_overview_curve(report: ModelReport) -> bool:
    if not report.figures.kind.about.reads_loss:
        return report.figures.series_for(report.figures.kind.about.headline) is not None
    return report.figures.logged_rows > 0


def _bytes_artefact(path: str, data: bytes) -> Artefact:
    """An artefact that is cheap to make: keyed by its own bytes."""
    return Artefact(path, _key("bytes", hashlib.sha256(data).hexdigest()), lambda: data)

"""The pipeline: read everything, then plan the site, then write what changed.

`build_reports` reads and analyses every registered checkpoint (registry ->
reader -> analysis -> narrative, from the cache when unchanged, in worker
processes when there are many); `plan_artefacts` (`generator.plan`) lists every
file of the site with the hash of its inputs; `OwnedFiles` (`generator.ownership`)
renders and writes the ones that changed under the generation lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from generator import fonts, narrative, workers
from generator.analysis import analyse
from generator.cache import Cached, RunCache, inputs_key
from generator.colors import color_for
from generator.errors import CheckpointError, ConfigError
from generator.overview import run_curve
from generator.ownership import OwnedFiles, generation_lock
from generator.pages import title_conflict
from generator.plan import plan_artefacts
from generator.reader import locate_state_file, read_run
from generator.records import (
    AnalysisSettings,
    CheckpointEntry,
    Curve,
    EntryProblem,
    Figures,
    ModelReport,
    Registry,
    SiteLayout,
    TrainingRun,
)
from generator.registry import load_registry
from generator.remote import shown_url
from generator.sanitize import looks_local, shown_base_model
from generator.workers import Progress, WorkerPool

if TYPE_CHECKING:
    from generator.remote import RemoteOptions


@dataclass
class GenerationResult:
    """What a generation did, for the CLI's summary line and exit status."""

    registry: Registry
    reports: list[ModelReport] = field(default_factory=list)
    problems: list[EntryProblem] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    """Files that exist but were not written by traindocs: left alone."""
    deferred: list[str] = field(default_factory=list)
    """Files out of date but left as they are for now (`generate`'s `defer`): the next generation draws them."""
    docs_dir: Path = Path("docs")
    """The folder written to."""
    notes: list[str] = field(default_factory=list)
    """Warnings about docs/ itself (a manifest entry ignored, ...), one line each."""

    def warnings(self) -> list[str]:
        """Doubts of the reader (skipped rows or values), then notes about docs/, one line each."""
        left_out = [
            f"{report.entry.label}: {len(report.figures.other_metrics_left_out)} more metric keys than a page plots "
            f"were left out of the plots ({', '.join(report.figures.other_metrics_left_out[:3])}, ...); they are in "
            "its log history download (log_history.csv, or .csv.gz on a large site)" for report in self.reports
            if report.figures.other_metrics_left_out]
        undrawable = [warning for report in self.reports
                      for warning in fonts.undrawable_warnings(report.entry.label, _plotted_texts(report))]
        return ([warning for report in self.reports for warning in report.run.warnings] + left_out + undrawable
                + self.notes)

    def refusals(self) -> list[str]:
        """One line per generated file that a hand-written file blocked."""
        return [
            f"{(self.docs_dir / path).as_posix()}: exists and was not written by traindocs; left as it is "
            "(move or rename it to let traindocs generate this page)"
            for path in self.refused
        ]


def _plotted_texts(report: ModelReport) -> list[str]:
    """What a model's plots write: its name and its metric keys."""
    return [report.entry.name, *report.run.column_names()]


def generate(registry_file: Path, docs_dir: Path, layout: SiteLayout | None = None, jobs: int = 1,
             progress: Progress | None = None, remote: RemoteOptions | None = None,
             cache: RunCache | bool = True, defer: bool = False) -> GenerationResult:
    """Read the registry and its checkpoints, then bring docs/ up to date.

    With `jobs` > 1, checkpoints are read and plots rendered in that many worker
    processes; the output is the same bytes as with one. `cache`: True keeps
    readings in the default cache folder (see `generator.cache`), False reads
    every file again. `defer` (`traindocs serve`) leaves the overviews of many runs to the next generation
    when an older version of them is there (see `OwnedFiles.update`).
    """
    if cache is True:
        cache = RunCache.default()
    registry = load_registry(registry_file, display=registry_file.name)
    base = registry_file.resolve().parent
    pool = WorkerPool(jobs)
    try:
        reports, problems = build_reports(registry, base, pool, progress, remote, cache or None)
        _freeze_reports()
        result = GenerationResult(registry=registry, reports=reports, problems=problems, docs_dir=docs_dir)
        conflict = title_conflict(registry_file.name, registry.site, layout or SiteLayout())
        if conflict:
            result.notes.append(conflict)
        artefacts = plan_artefacts(registry, reports, problems, layout or SiteLayout())
        with generation_lock(docs_dir):
            OwnedFiles(docs_dir).update(artefacts, result, pool, progress, defer=defer)
    finally:
        pool.close()
    return result


def _freeze_reports() -> None:
    """Take what exists now (the reports, the imported modules) out of the garbage collector's passes.

    The reports live until the generation's caller is done with them, and the collector's full passes walked
    all of them for nothing while the pages were planned, the plots drawn and the stamp written (one changed
    among 1,000 runs: full passes 0.19-0.24 s before, 0.09-0.14 s after, measured). Workers forked from here on share them untouched, as gc.freeze's documentation
    recommends before a fork. The young garbage is collected first, so none is frozen; the previous
    generation's objects are unfrozen first (`traindocs serve` generates again in the same process), so those
    it no longer uses are collected as usual: at most one generation's objects are frozen at a time.
    """
    gc.unfreeze()
    gc.collect(1)
    gc.freeze()


def build_reports(registry: Registry, shown_base: Path, pool: WorkerPool | None = None,
                  progress: Progress | None = None, remote: RemoteOptions | None = None,
                  cache: RunCache | None = None) -> tuple[list[ModelReport], list[EntryProblem]]:
    """Read and analyse every entry; unreadable ones become problems.

    Entries found in `cache` are taken from it; the others are read in `pool`'s
    workers when there are enough of them (READ_POOL_THRESHOLD). The order of
    the results is the registry's, whatever order the work finishes in.
    """
    registry_shown = _shown(registry.file, shown_base)
    settings = registry.analysis
    entries = registry.entries
    outcomes: dict[int, ModelReport | EntryProblem] = {}
    if cache is not None:
        # Decoding makes no reference cycles, only many objects: the collector's passes over them would find
        # nothing (loading 1,000 cached runs: 109 passes, 0.04-0.05 s, against one, measured).
        with _collector_paused():
            for position, entry in enumerate(entries):
                if not _is_remote(entry.path):  # a remote entry is checked against its server first
                    hit = _cached_report(entry, settings, shown_base, cache)
                    if isinstance(hit, ModelReport):
                        outcomes[position] = hit
                    elif hit is _TO_READ and pool is not None:
                        pool.start_early()  # a run to read is plots to draw: the workers get ready meanwhile
    pending = [position for position in range(len(entries)) if position not in outcomes]
    jobs = [(entries[p], settings, registry_shown, shown_base, remote, cache) for p in pending]
    pooled = pool.for_work(len(jobs), workers.READ_POOL_THRESHOLD) if pool is not None else None
    results: Iterable[ModelReport | EntryProblem]
    if pooled is not None and jobs:
        results = pooled.map(_report_for, *zip(*jobs, strict=True))
    else:
        results = (_report_for(*job) for job in jobs)
    done = len(outcomes)
    for position, outcome in zip(pending, results, strict=True):
        outcomes[position] = outcome
        done += 1
        if progress:
            progress("read", done, len(entries), outcome.name if isinstance(outcome, EntryProblem) else outcome.entry.name)
    reports: list[ModelReport] = []
    problems = list(registry.problems)
    for position in range(len(entries)):
        outcome = outcomes[position]
        if isinstance(outcome, EntryProblem):
            problems.append(outcome)
        elif not registry.site.show_paths and looks_local(outcome.base_model):
            # `site: show_paths: false`: a base model that is a path on the training machine stays off the pages.
            reports.append(dataclasses.replace(outcome, base_model="a local model (path not shown)"))
        else:
            reports.append(outcome)
    return reports, problems


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a block that makes no cycles (as it was, afterwards)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_TO_READ = "to read"
"""`_cached_report`: the entry's checkpoint is there and not in the cache (the run will be read and drawn)."""


def _cached_report(entry: CheckpointEntry, settings: AnalysisSettings, shown_base: Path,
                   cache: RunCache) -> ModelReport | str | None:
    """The entry's report from the cache, when its files have not changed; `_TO_READ` when its checkpoint
    must be read; None when there is none to read (`_report_for` reports the problem)."""
    try:
        state_file = locate_state_file(entry)
    except (CheckpointError, OSError):
        return None
    shown = _shown(state_file, shown_base)
    key = inputs_key(state_file, entry.resolved, shown, settings)
    cached = cache.load(state_file, key)
    if cached is None:
        return _TO_READ
    return _report(entry, _labelled(cached.run, entry, shown), cached.figures, cached.analysis, cached.curve,
                   shown_base, key)


def _warning_prefix(entry: CheckpointEntry, shown: str) -> str:
    """How the reader starts an entry's warnings: `file (checkpoints[i] (name)): `."""
    return f"{shown} ({entry.label}): "


def _unlabelled(run: TrainingRun, entry: CheckpointEntry, shown: str) -> TrainingRun:
    """The run as cached: its warnings without the entry's label, since two entries may read one
    file and an entry's index or name may change while its file does not."""
    prefix = _warning_prefix(entry, shown)
    return run.with_warnings(tuple(w[len(prefix):] if w.startswith(prefix) else w for w in run.warnings))


def _labelled(run: TrainingRun, entry: CheckpointEntry, shown: str) -> TrainingRun:
    """A cached run's warnings labelled with the entry that uses it now."""
    prefix = _warning_prefix(entry, shown)
    return run.with_warnings(tuple(prefix + warning for warning in run.warnings))


def _report(entry: CheckpointEntry, run: TrainingRun, figures: Figures, analysis: tuple[str, ...], curve: Curve,
            shown_base: Path, reading_key: str) -> ModelReport:
    # A local base model path is shown relative to the registry or from ~: pages never publish a home folder.
    base_model = shown_base_model(entry.base_model or run.base_model, shown_base)
    color = color_for(entry.index)
    return ModelReport(entry=entry, run=run, figures=figures, analysis=analysis, base_model=base_model,
                       color=color, curve=dataclasses.replace(curve, name=entry.name, color=color),
                       reading_key=reading_key)


def _report_for(entry: CheckpointEntry, settings: AnalysisSettings, registry_shown: str,
                shown_base: Path, remote: RemoteOptions | None = None,
                cache: RunCache | None = None) -> ModelReport | EntryProblem:
    """One entry read and analysed, or the problem that stopped it (runs in a worker)."""
    try:
        try:
            if _is_remote(entry.path):
                # Remote entries are read from a local mirror of their small files.
                from generator.remote import localise, options_from_env

                entry = localise(entry, remote or options_from_env())
            state_file = locate_state_file(entry)
        except CheckpointError as exc:
            raise CheckpointError(f"{registry_shown}: {exc}") from None
        shown = _remote_shown(entry, state_file) or _shown(state_file, shown_base)
        key = inputs_key(state_file, entry.resolved, shown, settings) if cache is not None else ""
        cached = cache.load(state_file, key) if cache is not None else None
        if cached is not None:
            return _report(entry, _labelled(cached.run, entry, shown), cached.figures, cached.analysis, cached.curve,
                           shown_base, key)
        run = read_run(entry, shown_file=shown)
    except CheckpointError as exc:
        return EntryProblem(label=entry.label, message=str(exc), name=entry.name)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        message = f"{registry_shown}: {entry.label}: path '{shown_url(entry.path)}': cannot read: {reason}"
        return EntryProblem(label=entry.label, message=message, name=entry.name)
    figures = analyse(run, settings)
    analysis = tuple(narrative.model_analysis(figures, settings))
    curve = run_curve(run, figures, settings.smoothing)  # named and coloured by the entry (_report)
    if cache is not None:
        cache.store(key, Cached(_unlabelled(run, entry, shown), figures, analysis, curve))
    return _report(entry, run, figures, analysis, curve, shown_base, key)


def _is_remote(path: str) -> bool:
    """A URL that generator.remote reads; imported only then, since fsspec and its backends are optional."""
    if "://" not in path:
        return False
    from generator.remote import is_remote

    return is_remote(path)


def _remote_shown(entry: CheckpointEntry, state_file: Path) -> str:
    """Where a remote entry's state file lives, as a URL safe to show; '' for local entries."""
    if not _is_remote(entry.path):
        return ""
    inner = state_file.relative_to(entry.resolved).as_posix() if state_file != entry.resolved else ""
    return shown_url(entry.path.rstrip("/") + ("/" + inner if inner else ""))


def _shown(path: Path, base: Path) -> str:
    """A path as users see it in messages: relative to the registry's folder when inside it."""
    try:
        return path.resolve().relative_to(base).as_posix()
    except ValueError:
        return str(path)


def watched_files(registry_file: Path) -> list[Path]:
    """The registry and every readable checkpoint file it points at (for `mkdocs serve`)."""
    files = [registry_file.resolve()]
    try:
        registry = load_registry(registry_file)
    except ConfigError:
        return files
    for entry in registry.entries:
        if _is_remote(entry.path):
            continue  # a remote object changes without a local file event; rebuild to refresh
        try:
            files.append(locate_state_file(entry))
        except (CheckpointError, OSError):
            if entry.resolved.parent.exists():
                files.append(entry.resolved.parent)
    return files

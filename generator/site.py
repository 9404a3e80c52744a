"""The pipeline, and the files it owns under docs/.

`generate` reads everything first (registry -> reader -> analysis -> narrative),
then renders what changed (plots -> pages), writing each file as it is rendered. A manifest
(`docs/.traindocs-manifest.json`, hidden from MkDocs) lists every file traindocs
wrote with the hash of its inputs: unchanged artefacts are not re-rendered,
files are rewritten only when their bytes change (so `mkdocs serve` does not
loop), stale files of removed models are deleted, and a file traindocs did not
write is never overwritten.
"""

from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import importlib.metadata
import json
import multiprocessing
import os
import re
import signal
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

try:  # POSIX; elsewhere generations are not locked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from generator import __version__, narrative, pages
from generator.analysis import analyse, finite_series
from generator.badges import badge_svg
from generator.cache import Cached, RunCache, inputs_key
from generator.colors import color_for
from generator.errors import CheckpointError, ConfigError, GenerationBusyError
from generator.files import write_atomic
from generator.formatting import fmt_number
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
from generator.sanitize import shown_base_model

if TYPE_CHECKING:
    from generator.remote import RemoteOptions

MANIFEST = ".traindocs-manifest.json"
LOCK_FILE = ".traindocs.lock"
TEMPORARY_NAME = re.compile(r"^\..+\.traindocs-[a-z0-9_]+\.tmp$")
"""Names that `write_atomic` gives its temporary files."""


# Rendered files are keyed by their inputs, and the code is one of them: what a plot shows is
# decided in kinds, analysis and here as much as in plots, so the whole package counts.
# (From the package metadata: importing matplotlib only to read its version would cost 0.3 s.)
MATPLOTLIB_VERSION = importlib.metadata.version("matplotlib")
GENERATOR_CODE = hashlib.sha256(
    b"".join(path.read_bytes() for path in sorted(Path(__file__).parent.glob("*.py")))
).hexdigest()
# Makes the comparison table sortable (a few lines of our own, no CDN).
TABLESORT_JS = (Path(__file__).parent / "static" / "tablesort.js").read_bytes()


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
    docs_dir: Path = Path("docs")
    """The folder written to."""
    notes: list[str] = field(default_factory=list)
    """Warnings about docs/ itself (a manifest entry ignored, ...), one line each."""

    def warnings(self) -> list[str]:
        """Doubts of the reader (skipped rows or values), then notes about docs/, one line each."""
        left_out = [
            f"{report.entry.label}: {len(report.figures.other_metrics_left_out)} more metric keys than a page plots "
            f"were left out of the plots ({', '.join(report.figures.other_metrics_left_out[:3])}, ...); they are in "
            "its log_history.csv" for report in self.reports if report.figures.other_metrics_left_out]
        return [warning for report in self.reports for warning in report.run.warnings] + left_out + self.notes

    def refusals(self) -> list[str]:
        """One line per generated file that a hand-written file blocked."""
        return [
            f"{(self.docs_dir / path).as_posix()}: exists and was not written by traindocs; left as it is "
            "(move or rename it to let traindocs generate this page)"
            for path in self.refused
        ]


def _key(*parts: object) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, default=str).encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


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
        for position, entry in enumerate(entries):
            if not _is_remote(entry.path):  # a remote entry is checked against its server first
                hit = _cached_report(entry, settings, shown_base, cache)
                if hit is not None:
                    outcomes[position] = hit
    pending = [position for position in range(len(entries)) if position not in outcomes]
    jobs = [(entries[p], settings, registry_shown, shown_base, remote, cache) for p in pending]
    workers = pool.for_work(len(jobs), READ_POOL_THRESHOLD) if pool is not None else None
    results: Iterable[ModelReport | EntryProblem]
    if workers is not None and jobs:
        results = workers.map(_report_for, *zip(*jobs, strict=True))
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
        else:
            reports.append(outcome)
    return reports, problems


def _cached_report(entry: CheckpointEntry, settings: AnalysisSettings, shown_base: Path,
                   cache: RunCache) -> ModelReport | None:
    """The entry's report from the cache, when its files have not changed; None otherwise."""
    try:
        state_file = locate_state_file(entry)
    except (CheckpointError, OSError):
        return None  # _report_for reports the problem
    shown = _shown(state_file, shown_base)
    cached = cache.load(state_file, inputs_key(state_file, entry.resolved, shown, settings))
    if cached is None:
        return None
    return _report(entry, _labelled(cached.run, entry, shown), cached.figures, cached.analysis, shown_base)


def _warning_prefix(entry: CheckpointEntry, shown: str) -> str:
    """How the reader starts an entry's warnings: `file (checkpoints[i] (name)): `."""
    return f"{shown} ({entry.label}): "


def _unlabelled(run: TrainingRun, entry: CheckpointEntry, shown: str) -> TrainingRun:
    """The run as cached: its warnings without the entry's label, since two entries may read one
    file and an entry's index or name may change while its file does not."""
    prefix = _warning_prefix(entry, shown)
    return dataclasses.replace(run, warnings=tuple(w[len(prefix):] if w.startswith(prefix) else w
                                                   for w in run.warnings))


def _labelled(run: TrainingRun, entry: CheckpointEntry, shown: str) -> TrainingRun:
    """A cached run's warnings labelled with the entry that uses it now."""
    prefix = _warning_prefix(entry, shown)
    return dataclasses.replace(run, warnings=tuple(prefix + warning for warning in run.warnings))


def _report(entry: CheckpointEntry, run: TrainingRun, figures: Figures, analysis: tuple[str, ...],
            shown_base: Path) -> ModelReport:
    # A local base model path is shown relative to the registry or from ~: pages never publish a home folder.
    base_model = shown_base_model(entry.base_model or run.base_model, shown_base)
    return ModelReport(entry=entry, run=run, figures=figures, analysis=analysis, base_model=base_model,
                       color=color_for(entry.index))


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
            return _report(entry, _labelled(cached.run, entry, shown), cached.figures, cached.analysis, shown_base)
        run = read_run(entry, shown_file=shown)
    except CheckpointError as exc:
        return EntryProblem(label=entry.label, message=str(exc), name=entry.name)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        message = f"{registry_shown}: {entry.label}: path '{shown_url(entry.path)}': cannot read: {reason}"
        return EntryProblem(label=entry.label, message=message, name=entry.name)
    figures = analyse(run, settings)
    analysis = tuple(narrative.model_analysis(figures, run, settings))
    if cache is not None:
        cache.store(key, Cached(_unlabelled(run, entry, shown), figures, analysis))
    return _report(entry, run, figures, analysis, shown_base)


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


def plan_artefacts(registry: Registry, reports: list[ModelReport], problems: list[EntryProblem],
                   layout: SiteLayout) -> list[Artefact]:
    """Every file the site needs, each with its input hash and a renderer."""
    settings = registry.analysis
    settings_json = dataclasses.asdict(settings)
    versions = (__version__, MATPLOTLIB_VERSION, GENERATOR_CODE)
    artefacts: list[Artefact] = []
    for report in reports:
        slug, name = report.entry.slug, report.entry.name
        files = pages.ModelFiles.for_report(report)
        plot_inputs = (versions, name, report.color, report.run.state_sha256, settings_json)
        plans: list[tuple[str | None, str, Callable[[], bytes]]] = [
            (files.loss, "loss", partial(_loss_png, report, settings)),
            (files.metrics, "metrics", partial(_draw, "panels_plot", f"{name}: training metrics", report.color,
                                               report.run.train, report.run.eval, files.metric_panels, settings)),
            (files.kind_plot, "kind", partial(_draw, "panels_plot", f"{name}: {report.figures.kind.about.section}",
                                              report.color, report.run.train, report.run.eval, files.kind_panels,
                                              settings, report.figures)),
            (files.eval_plot, "eval", partial(_draw, "eval_plot", name, report.run.eval,
                                              {metric: dict(sets) for metric, sets in files.eval_groups},
                                              report.figures)),
        ]
        for other_path, panels in files.other_plots:
            plans.append((other_path, "other", partial(_draw, "panels_plot", f"{name}: other metrics", report.color,
                                                 report.run.train, report.run.eval, panels, settings)))
        for plot_path, what, render in plans:
            if plot_path:
                artefacts.append(Artefact(plot_path, _key(what, plot_path, *plot_inputs), render, expensive=True))
        artefacts.append(
            Artefact(files.log_csv, _key("csv", versions, report.run.state_sha256),
                     partial(pages.log_history_csv, report), expensive=True)
        )
        # Keyed by its inputs, so an unchanged model's figures.json is not even serialised.
        figures_inputs = (versions, name, slug, report.base_model, report.run.state_sha256, settings_json)
        artefacts.append(Artefact(files.figures_json, _key("figures", *figures_inputs),
                                  partial(pages.figures_document, report)))
        label, _, last = report.figures.headline()  # an RL loss says nothing of progress: its reward does
        badge = badge_svg(label, fmt_number(last))
        artefacts.append(_bytes_artefact(files.badge, badge))
        page = pages.model_page(report, files, settings, layout, registry.file.resolve().parent)
        artefacts.append(_bytes_artefact(pages.model_page_path(slug), page.encode("utf-8")))

    groups = []
    for kind, members in pages.kind_groups(reports):
        named = [(r.entry.name, r.figures) for r in members]
        compared = [narrative.Compared(r.entry.name, r.figures, narrative.comparison_group(r.entry, r.base_model))
                    for r in members]
        overview = None
        what = kind.about.headline
        if any(_has_overview_curve(r) for r in members):
            overview = pages.overview_path(kind)
            overview_inputs = (
                versions,
                [(r.entry.name, r.color, r.run.state_sha256, r.figures.steps) for r in members],
                settings_json,
            )
            # Drawn in this process while the workers draw the model plots: its inputs
            # (every run's curve) would cost more to send to a worker than to draw here.
            artefacts.append(Artefact(overview, _key(overview, overview_inputs),
                                      partial(_overview_png, tuple(members), settings, what)))
        if not kind.about.reads_loss:
            sentences, closing = narrative.reward_comparison(named), narrative.reward_conclusion(named)
        else:
            sentences, closing = narrative.comparison(compared, settings), narrative.conclusion(compared, settings)
        groups.append(pages.IndexGroup(kind, tuple(members), tuple(sentences), closing, overview))
    index = pages.index_page(registry.site, groups, problems)
    artefacts.append(_bytes_artefact(pages.INDEX_PAGE, index.encode("utf-8")))
    artefacts.append(_bytes_artefact(pages.METHODOLOGY_PAGE, pages.methodology_page(settings).encode("utf-8")))
    artefacts.append(_bytes_artefact(pages.SUMMARY_FILE, pages.summary_document(reports, problems, layout)))
    artefacts.append(_bytes_artefact(pages.TABLESORT_SCRIPT, TABLESORT_JS))
    return artefacts


def _draw(function: str, *args: Any) -> bytes:
    """Render with generator.plots, imported on first use: a generation that redraws nothing never loads matplotlib."""
    from generator import plots

    drawn: bytes = getattr(plots, function)(*args)
    return drawn


def _has_overview_curve(report: ModelReport) -> bool:
    if not report.figures.kind.about.reads_loss:
        return report.figures.series_for(report.figures.kind.about.headline) is not None
    return report.figures.logged_rows > 0


def _overview_png(members: tuple[ModelReport, ...], settings: AnalysisSettings, what: str) -> bytes:
    return _draw("overview_plot", [_overview_curve(report) for report in members], settings, what)


def _overview_curve(report: ModelReport) -> Curve:
    """The curve a run adds to its kind's overview: the reward for RL runs, the loss otherwise."""
    train = report.run.train
    values = finite_series(train, report.figures.kind.about.headline)
    tokens = finite_series(train, "num_tokens")
    if tokens.empty:
        tokens = finite_series(train, "num_input_tokens_seen")
    epochs = finite_series(train, "epoch")
    return Curve(report.entry.name, report.color, values, report.figures.steps,
                       epochs=epochs if len(epochs) else None, tokens=tokens if len(tokens) else None)


def _loss_png(report: ModelReport, settings: AnalysisSettings) -> bytes:
    run = report.run
    resumed_at = run.resumes[-1][0] if run.resumes else None
    return _draw("loss_plot", report.entry.name, report.color, run.train, run.eval, report.figures, settings, resumed_at)


def _bytes_artefact(path: str, data: bytes) -> Artefact:
    """An artefact that is cheap to make: keyed by its own bytes."""
    return Artefact(path, _key("bytes", hashlib.sha256(data).hexdigest()), lambda: data)


Progress = Callable[[str, int, int, str], None]
"""progress(stage, done, total, label): called as work advances ('read', 'render')."""

READ_POOL_THRESHOLD = 40
"""Checkpoints to read before worker processes pay off. Here, starting two spawned
workers (imports included) made the 3-model example 1.5 s slower (3.98 s vs 2.49 s),
and reading one 3,000-row log takes about 50 ms."""
RENDER_POOL_THRESHOLD = 16
"""Plots and CSVs to render before worker processes pay off."""


PR_SET_PDEATHSIG = 1
"""Linux prctl option: a signal for this process when its parent dies."""


def _die_with_parent(parent: int | None = None) -> None:
    """In a worker: exit when the generating process dies, even by SIGKILL (Linux).

    Without this, killed generations leave their idle workers behind. SIGKILL, not
    SIGTERM: a worker blocked reading its call queue does not run Python signal
    handlers in time. A parent that died before this ran (the signal is then never
    sent) is seen by the worker's parent id no longer being `parent`.
    """
    try:
        libc = ctypes.CDLL(None)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: workers end with the pool as usual
        return
    if parent is not None and os.getppid() != parent:
        os._exit(1)


class WorkerPool:
    """Worker processes started on first real need, and only then (see READ_POOL_THRESHOLD)."""

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs
        self._pool: ProcessPoolExecutor | None = None

    def for_work(self, amount: int, threshold: int) -> Executor | None:
        """The pool when `amount` of work reaches `threshold` and jobs > 1; else None (work inline)."""
        if self.jobs <= 1 or amount < threshold:
            return None
        if self._pool is None:
            # spawn, not fork: forking a process that may hold threads (MkDocs' server) can deadlock.
            self._pool = ProcessPoolExecutor(
                max_workers=self.jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_die_with_parent,
                initargs=(os.getpid(),),
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


def default_jobs() -> int:
    """Worker processes by default: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def generate(registry_file: Path, docs_dir: Path, layout: SiteLayout | None = None, jobs: int = 1,
             progress: Progress | None = None, remote: RemoteOptions | None = None,
             cache: RunCache | bool = True) -> GenerationResult:
    """Read the registry and its checkpoints, then bring docs/ up to date.

    With `jobs` > 1, checkpoints are read and plots rendered in that many worker
    processes; the output is the same bytes as with one. `cache`: True keeps
    readings in the default cache folder (see `generator.cache`), False reads
    every file again.
    """
    if cache is True:
        cache = RunCache.default()
    registry = load_registry(registry_file, display=registry_file.name)
    base = registry_file.resolve().parent
    pool = WorkerPool(jobs)
    try:
        reports, problems = build_reports(registry, base, pool, progress, remote, cache or None)
        result = GenerationResult(registry=registry, reports=reports, problems=problems, docs_dir=docs_dir)
        artefacts = plan_artefacts(registry, reports, problems, layout or SiteLayout())
        with generation_lock(docs_dir):
            OwnedFiles(docs_dir).update(artefacts, result, pool, progress)
    finally:
        pool.close()
    return result


@contextmanager
def generation_lock(docs_dir: Path) -> Iterator[None]:
    """Hold docs/.traindocs.lock while writing: two generations at once would mix their files."""
    docs_dir.mkdir(parents=True, exist_ok=True)
    path = docs_dir / LOCK_FILE
    # Opened for appending and never written: its mtime stays put, so
    # `mkdocs serve` sees no change in docs/ from locking.
    with open(path, "a") as handle:
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise GenerationBusyError(
                    f"{path}: another traindocs generation is writing to {docs_dir}; "
                    "wait for it to finish and run again"
                ) from None
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)


class OwnedFiles:
    """The files traindocs owns under one docs/ folder, tracked by a manifest."""

    def __init__(self, docs_dir: Path) -> None:
        self.docs_dir = docs_dir
        self.manifest_path = docs_dir / MANIFEST
        self.ignored: list[str] = []
        self.previous = self._load_manifest()

    def _load_manifest(self) -> dict[str, dict[str, str]]:
        try:
            document = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        files = document.get("files") if isinstance(document, dict) else None
        if not isinstance(files, dict):
            return {}
        kept = {}
        for path, entry in files.items():
            if not isinstance(entry, dict):
                continue
            if not isinstance(path, str) or not _is_inside_path(path):
                self.ignored.append(f"{self.manifest_path}: files: {str(path)[:80]!r} is not a path inside "
                                    f"{self.docs_dir}; entry ignored (traindocs writes and deletes only there)")
                continue
            kept[path] = entry
        return kept

    def _current_hash(self, path: Path, known: dict[str, str] | None) -> str | None:
        """SHA-256 of the file on disk (None when absent); the manifest's when size and mtime match."""
        try:
            stamp = _stat_stamp(path.stat())
            if known and known.get("sha256") and all(known.get(k) == v for k, v in stamp.items()):
                return known["sha256"]
            return hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            return None

    def update(self, artefacts: list[Artefact], result: GenerationResult, pool: WorkerPool | None = None,
               progress: Progress | None = None) -> None:
        """Render what changed, write it, drop stale files, save the manifest."""
        result.notes.extend(self.ignored)
        self._remove_leftover_temporaries({artefact.path for artefact in artefacts} | set(self.previous))
        manifest: dict[str, dict[str, str]] = {}
        stale: list[tuple[Artefact, str | None]] = []
        for artefact in artefacts:
            target = self.docs_dir / artefact.path
            known = self.previous.get(artefact.path)
            on_disk = self._current_hash(target, known)
            if known is None and on_disk is not None:
                # Somebody else's file: never overwrite it.
                result.refused.append(artefact.path)
                continue
            if known and known.get("key") == artefact.key and on_disk == known.get("sha256"):
                manifest[artefact.path] = known
                result.unchanged.append(artefact.path)
                continue
            stale.append((artefact, on_disk))
        # Claim every path about to be rendered before writing any: a run killed half-way
        # leaves them listed as ours, and the next run repairs them instead of refusing them.
        claimed = dict(self.previous)
        for artefact, _ in stale:
            claimed.setdefault(artefact.path, {"key": "", "sha256": ""})
        if claimed != self.previous:
            self._save(claimed)
        # Each file is written as soon as it is rendered: holding 200 models' plots and
        # CSVs until the end cost ~100 MB.
        on_disk_of = {artefact.path: on_disk for artefact, on_disk in stale}
        for artefact, data in _render_each([artefact for artefact, _ in stale], pool or WorkerPool(1), progress):
            digest = hashlib.sha256(data).hexdigest()
            manifest[artefact.path] = {"key": artefact.key, "sha256": digest}
            if digest == on_disk_of[artefact.path]:
                result.unchanged.append(artefact.path)
            else:
                write_atomic(self.docs_dir / artefact.path, data, inside=self.docs_dir)
                result.written.append(artefact.path)
        result.written.sort()  # completion order varies with the workers; reports do not
        result.unchanged.sort()
        for path in sorted(set(self.previous) - set(manifest)):
            target = self.docs_dir / path
            if not _resolves_inside(target, self.docs_dir):
                result.notes.append(f"{target}: leads outside {self.docs_dir} through a symbolic link; not removed")
                continue
            if target.is_file():
                target.unlink()
                result.removed.append(path)
                _remove_empty_parents(target.parent, self.docs_dir)
        for path, entry in manifest.items():
            if "mtime_ns" not in entry:
                # Remember size and mtime: the next run trusts the hash without reading the file.
                manifest[path] = {**entry, **_stat_stamp((self.docs_dir / path).stat())}
        self._save(manifest)

    def _remove_leftover_temporaries(self, paths: set[str]) -> None:
        """Delete temporary files of ours that a killed run left behind."""
        for folder in sorted({(self.docs_dir / path).parent for path in paths} | {self.docs_dir}):
            if folder.is_dir():
                for leftover in folder.glob(".*.tmp"):
                    if TEMPORARY_NAME.match(leftover.name):
                        leftover.unlink(missing_ok=True)

    def _save(self, files: dict[str, dict[str, str]]) -> None:
        document = {"generator": f"traindocs {__version__}", "files": dict(sorted(files.items()))}
        write_atomic(self.manifest_path, (json.dumps(document, indent=1) + "\n").encode("utf-8"), inside=self.docs_dir)


def _is_inside_path(path: str) -> bool:
    """A manifest path as traindocs writes them: relative, forward slashes, no '..', no NUL."""
    parts = path.split("/")
    return bool(path) and "\0" not in path and "\\" not in path and not path.startswith("/") \
        and not re.match(r"^[A-Za-z]:", path) and all(part not in ("", ".", "..") for part in parts)


def _resolves_inside(path: Path, folder: Path) -> bool:
    """Whether `path`'s folder, with every symbolic link followed, is inside `folder` (followed too)."""
    real_folder = os.path.realpath(folder)
    real = os.path.realpath(path.parent)
    return real == real_folder or real.startswith(real_folder.rstrip(os.sep) + os.sep)


def _stat_stamp(stat: os.stat_result) -> dict[str, str]:
    """Size and modification time: a file that still has both still has its bytes."""
    return {"size": str(stat.st_size), "mtime_ns": str(stat.st_mtime_ns)}


def _render_each(artefacts: list[Artefact], pool: WorkerPool,
                 progress: Progress | None) -> Iterator[tuple[Artefact, bytes]]:
    """Render artefacts, yielding each as it is done: the expensive ones in worker processes
    when there are enough, the others here meanwhile."""
    expensive = [artefact for artefact in artefacts if artefact.expensive]
    workers = pool.for_work(len(expensive), RENDER_POOL_THRESHOLD)
    futures = {workers.submit(artefact.render): artefact for artefact in expensive} if workers else {}
    done = 0
    for artefact in artefacts:
        if artefact.expensive and workers is not None:
            continue
        yield artefact, artefact.render()
        if progress and artefact.expensive:
            done += 1
            progress("render", done, len(expensive), artefact.path)
    for future in as_completed(futures):
        artefact = futures.pop(future)  # let the result go once written: 200 models' CSVs add up
        yield artefact, future.result()
        done += 1
        if progress:
            progress("render", done, len(expensive), artefact.path)


def _remove_empty_parents(folder: Path, stop: Path) -> None:
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


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

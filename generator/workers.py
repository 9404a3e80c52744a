"""Worker processes: started on first real need, killed with the generation that started them.

Reading checkpoints and rendering plots are spread over `WorkerPool`'s processes
only when there is enough of that work (READ_POOL_THRESHOLD, RENDER_POOL_THRESHOLD);
`render_each` hands out the expensive artefacts and renders the cheap ones here
meanwhile.
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import logging
import multiprocessing
import os
import signal
import threading
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from generator.plan import Artefact

Progress = Callable[[str, int, int, str], None]
"""progress(stage, done, total, label): called as work advances ('read', 'render')."""

READ_POOL_THRESHOLD = 40
"""Checkpoints to read before worker processes pay off. Here, starting two spawned
workers (imports included) made the 3-model example 1.5 s slower (3.98 s vs 2.49 s),
and reading one 3,000-row log takes about 50 ms."""
RENDER_POOL_THRESHOLD = 16
"""Plots and CSVs to render before worker processes pay off."""
FORKED_READ_THRESHOLD = 8
FORKED_RENDER_THRESHOLD = 4
"""The same when workers are forked (see `_start_method`): a forked worker starts in tens of milliseconds
with pandas and matplotlib already imported, instead of ~1 s of imports, so a few plots already pay."""
PRELOADED = ("generator.plots",)
"""Imported before forking, so every worker has matplotlib without importing it again."""


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


def _start_worker(parent: int, preload: tuple[str, ...]) -> None:
    """A worker started early (`WorkerPool.start_early`): tied to its parent, then importing what it draws with.

    It may be forked while its parent has the garbage collector paused (loading cached runs): a fork inherits
    that, and a worker drawing thousands of figures must collect their reference cycles."""
    gc.enable()
    _die_with_parent(parent)
    for module in preload:
        importlib.import_module(module)


def _nothing() -> None:
    """Submitted to launch a pool's workers: a pool forks them with its first job."""


def _start_method() -> str:
    """'fork' when this process runs a single thread (the `traindocs generate` command), else 'spawn'.

    Forking a process that holds other threads (MkDocs' server, its file watcher)
    can deadlock on a lock held by a thread that does not exist in the child, so
    the plugin under `mkdocs serve` keeps spawning. A single-threaded process forks
    safely, and its workers share its imports.
    """
    if "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1:
        return "fork"
    return "spawn"


class WorkerPool:
    """Worker processes started on first real need, and only then (see READ_POOL_THRESHOLD)."""

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs
        self._pool: ProcessPoolExecutor | None = None
        self._method = _start_method()

    def for_work(self, amount: int, threshold: int) -> Executor | None:
        """The pool when `amount` of work reaches `threshold` and jobs > 1; else None (work inline).

        Forked workers are cheap to start: the thresholds given for spawned ones are lowered."""
        if self._method == "fork":
            forked = FORKED_READ_THRESHOLD if threshold == READ_POOL_THRESHOLD else FORKED_RENDER_THRESHOLD
            threshold = min(threshold, forked)
        if self.jobs <= 1 or amount < threshold:
            return None
        if self._pool is None:  # else started early, or for earlier work
            if self._method == "fork":
                for module in PRELOADED:
                    importlib.import_module(module)
            self._pool = ProcessPoolExecutor(
                max_workers=self.jobs, mp_context=multiprocessing.get_context(self._method),
                initializer=_die_with_parent, initargs=(os.getpid(),),
            )
        return self._pool

    def start_early(self) -> None:
        """Fork the workers now, when work for them is sure to come, each importing PRELOADED itself.

        A checkpoint to read means plots to draw: forked now, the workers import matplotlib while this process
        goes on loading the other runs and planning, instead of this process importing it before forking them
        (one changed among 1,000 cached runs: ~0.3 s of imports off the critical path). Only with fork (a
        spawned worker imports everything anyway) and more than one job."""
        if self.jobs <= 1 or self._pool is not None or self._method != "fork":
            return
        self._pool = ProcessPoolExecutor(
            max_workers=self.jobs, mp_context=multiprocessing.get_context(self._method),
            initializer=_start_worker, initargs=(os.getpid(), PRELOADED),
        )
        self._pool.submit(_nothing)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


def default_jobs() -> int:
    """Worker processes by default: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class _Captured(logging.Handler):
    """Collects log records (matplotlib reports a font it cannot find through `logging`)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name}: {record.getMessage()}")


CAPTURED_LOGGERS = ("matplotlib", "PIL")


def render_capturing(render: Callable[[], bytes]) -> tuple[bytes, tuple[str, ...]]:
    """`render()`, with what the libraries warn about meanwhile (Python warnings, log records of
    `CAPTURED_LOGGERS`) returned as lines instead of printed: run in the worker that renders, so the
    warnings travel back with the bytes and the generation reports them (and `--strict` counts them)."""
    handler = _Captured()
    loggers = [logging.getLogger(name) for name in CAPTURED_LOGGERS]
    propagate = [logger.propagate for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            data = render()
    finally:
        for logger, was in zip(loggers, propagate, strict=True):
            logger.removeHandler(handler)
            logger.propagate = was
    lines = [f"{warning.category.__name__}: {warning.message}" for warning in caught] + handler.messages
    return data, tuple(dict.fromkeys(lines))


def render_each(artefacts: list[Artefact], pool: WorkerPool, progress: Progress | None,
                notes: list[str] | None = None) -> Iterator[tuple[Artefact, bytes]]:
    """Render artefacts, yielding each as it is done: the expensive ones in worker processes
    when there are enough, the others here meanwhile. What a library warned about while
    rendering goes to `notes` (one line each, `path: warning`, sorted when all are done)."""
    expensive = sorted((artefact for artefact in artefacts if artefact.expensive), key=lambda a: not a.first)
    workers = pool.for_work(len(expensive), RENDER_POOL_THRESHOLD)
    futures = ({workers.submit(render_capturing, artefact.render): artefact for artefact in expensive}
               if workers else {})
    said: list[str] = []
    done = 0
    for artefact in artefacts:
        if artefact.expensive and workers is not None:
            continue
        data, lines = render_capturing(artefact.render)
        said += [f"{artefact.path}: while rendering: {line}" for line in lines]
        yield artefact, data
        if progress and artefact.expensive:
            done += 1
            progress("render", done, len(expensive), artefact.path)
    for future in as_completed(futures):
        artefact = futures.pop(future)  # let the result go once written: 200 models' CSVs add up
        data, lines = future.result()
        said += [f"{artefact.path}: while rendering: {line}" for line in lines]
        yield artefact, data
        done += 1
        if progress:
            progress("render", done, len(expensive), artefact.path)
    if notes is not None:
        notes.extend(sorted(said))  # workers finish in any order; the report does not

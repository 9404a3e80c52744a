"""The files traindocs owns under docs/: the manifest, the generation lock, leftover temporaries.

A manifest (`docs/.traindocs-manifest.json`, hidden from MkDocs) lists every file
traindocs wrote with the hash of its inputs and of its bytes: unchanged artefacts
are not re-rendered, files are rewritten only when their bytes change (so
`mkdocs serve` does not loop), stale files of removed models are deleted, and a
file traindocs did not write is never overwritten. A damaged manifest is said so;
files are then taken back only where their bytes are exactly what traindocs
generates, and nothing it cannot vouch for is deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from generator import __version__, workers
from generator.errors import GenerationBusyError
from generator.files import held_lock, write_atomic
from generator.workers import Progress, WorkerPool

if TYPE_CHECKING:
    from generator.pipeline import GenerationResult
    from generator.plan import Artefact

MANIFEST = ".traindocs-manifest.json"
LOCK_FILE = ".traindocs.lock"
TEMPORARY_NAME = re.compile(r"^\..+\.traindocs-[a-z0-9_]+\.tmp$")
"""Names that `write_atomic` gives its temporary files."""


@contextmanager
def generation_lock(docs_dir: Path) -> Iterator[None]:
    """Hold docs/.traindocs.lock while writing: two generations at once would mix their files."""
    docs_dir.mkdir(parents=True, exist_ok=True)
    path = docs_dir / LOCK_FILE
    lock = ExitStack()
    try:
        lock.enter_context(held_lock(path, wait=False))
    except BlockingIOError:
        raise GenerationBusyError(
            f"{path}: another traindocs generation is writing to {docs_dir}; wait for it to finish and run again"
        ) from None
    with lock:
        yield


class OwnedFiles:
    """The files traindocs owns under one docs/ folder, tracked by a manifest."""

    def __init__(self, docs_dir: Path) -> None:
        self.docs_dir = docs_dir
        self.manifest_path = docs_dir / MANIFEST
        self.ignored: list[str] = []
        self.damaged = False
        """The manifest exists but cannot be trusted as a whole (not JSON, not a manifest's shape)."""
        self.previous = self._load_manifest()

    def _load_manifest(self) -> dict[str, dict[str, str]]:
        try:
            text = self.manifest_path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            return self._damaged(f"cannot be read ({exc.strerror if isinstance(exc, OSError) else 'not UTF-8'})")
        try:
            document = json.loads(text)
        except (ValueError, RecursionError):
            return self._damaged("not JSON")
        files = document.get("files") if isinstance(document, dict) else None
        if not isinstance(files, dict):
            return self._damaged("not a traindocs manifest: no 'files' object")
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

    def _damaged(self, what: str) -> dict[str, dict[str, str]]:
        self.damaged = True
        self.ignored.append(
            f"{self.manifest_path}: {what}; rebuilt: files identical to what traindocs generates are taken back, "
            "the others are left as they are and files of removed models are not deleted"
        )
        return {}

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
               progress: Progress | None = None, defer: bool = False) -> None:
        """Render what changed, write it, drop stale files, save the manifest.

        With `defer` (`traindocs serve`), a changed `deferrable` artefact whose last version is on disk is
        left as it is, listed in `result.deferred`: its manifest entry keeps the old key, so the next
        generation without `defer` draws it. The server runs that one right after publishing the pages.
        """
        result.notes.extend(self.ignored)
        self._remove_leftover_temporaries({artefact.path for artefact in artefacts} | set(self.previous))
        manifest: dict[str, dict[str, str]] = {}
        stale: list[tuple[Artefact, str | None]] = []
        unvouched: set[str] = set()
        """With a damaged manifest: existing files, taken back only if rendering gives their very bytes."""
        for artefact in artefacts:
            target = self.docs_dir / artefact.path
            known = self.previous.get(artefact.path)
            on_disk = self._current_hash(target, known)
            if known is None and on_disk is not None:
                if self.damaged and target.is_file():
                    unvouched.add(artefact.path)
                    stale.append((artefact, on_disk))
                    continue
                # Somebody else's file: never overwrite it.
                result.refused.append(artefact.path)
                continue
            if known and known.get("key") == artefact.key and on_disk == known.get("sha256"):
                manifest[artefact.path] = known
                result.unchanged.append(artefact.path)
                continue
            if defer and artefact.deferrable and known and on_disk is not None and on_disk == known.get("sha256"):
                manifest[artefact.path] = known  # the last version, still ours; its old key marks it out of date
                result.deferred.append(artefact.path)
                continue
            stale.append((artefact, on_disk))
        # Claim every path about to be rendered before writing any: a run killed half-way
        # leaves them listed as ours, and the next run repairs them instead of refusing them.
        claimed = dict(self.previous)
        for artefact, _ in stale:
            if artefact.path not in unvouched:
                claimed.setdefault(artefact.path, {"key": "", "sha256": ""})
        if claimed != self.previous or self.damaged:
            self._save(claimed)
        # Each file is written as soon as it is rendered: holding 200 models' plots and
        # CSVs until the end cost ~100 MB.
        on_disk_of = {artefact.path: on_disk for artefact, on_disk in stale}
        for artefact, data in workers.render_each([artefact for artefact, _ in stale], pool or WorkerPool(1),
                                                  progress, result.notes):
            digest = hashlib.sha256(data).hexdigest()
            if artefact.path in unvouched and digest != on_disk_of[artefact.path]:
                result.refused.append(artefact.path)  # not what traindocs makes: maybe a hand edit
                continue
            manifest[artefact.path] = {"key": artefact.key, "sha256": digest}
            if digest == on_disk_of[artefact.path]:
                result.unchanged.append(artefact.path)
            else:
                write_atomic(self.docs_dir / artefact.path, data, inside=self.docs_dir)
                result.written.append(artefact.path)
        result.written.sort()  # completion order varies with the workers; reports do not
        result.unchanged.sort()
        if unvouched:
            result.refused.sort()
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
        """Delete temporary files of ours that a killed run left behind.

        Folders listed with os.scandir, paths joined as strings: a site has a folder per model, and
        pathlib's glob in each was ~0.1 s at 1,000 models (measured)."""
        docs = str(self.docs_dir)
        for folder in sorted({os.path.dirname(os.path.join(docs, path)) for path in paths} | {docs}):
            try:
                with os.scandir(folder) as listing:
                    names = [entry.name for entry in listing if TEMPORARY_NAME.match(entry.name)]
            except OSError:  # not there (yet), or not a folder
                continue
            for name in names:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(folder, name))

    def _save(self, files: dict[str, dict[str, str]]) -> None:
        document = {"generator": f"traindocs {__version__}", "files": dict(sorted(files.items()))}
        write_atomic(self.manifest_path, (json.dumps(document, indent=1) + "\n").encode("utf-8"), inside=self.docs_dir)


FOLDER_PART = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")


def report_folder(text: str) -> str:
    """The plugin's `folder` option as a path under docs/ ('reports/' -> 'reports'); ValueError says what is wrong.

    Letters, digits, '.', '_' and '-' in each part: the folder is part of every URL of the report, and
    MkDocs skips folders whose name starts with a dot.
    """
    folder = text.strip().strip("/")
    if not folder:
        return ""
    if not _is_inside_path(folder) or not all(FOLDER_PART.match(part) for part in folder.split("/")):
        raise ValueError(f"{text!r} is not a folder inside docs/: use letters, digits, '-', '_' and '.' "
                         "(not first) in each part, separated by '/', e.g. 'reports'")
    return folder


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


def _remove_empty_parents(folder: Path, stop: Path) -> None:
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent

"""Writing files whole, and locking between processes.

A reader in another process (MkDocs' server, a second generation, a worker
filling the cache) sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from generator.errors import TraindocsError

try:  # POSIX; elsewhere (Windows) processes are not serialised
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def _file_mode() -> int:
    """Permissions of a new file under the current umask (mkstemp makes 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()


class UnsafeWriteError(TraindocsError, OSError):
    """Writing would go through a symbolic link to a place outside the folder it belongs in."""


def check_inside(path: Path, inside: Path) -> None:
    """Raise `UnsafeWriteError` when `path`, or the folder it would be created in, leads out of
    `inside` through a symbolic link (`docs/models` linked to another folder, a link to a
    file elsewhere). `inside` itself may be a link: the check is against where it leads."""
    root = os.path.realpath(inside)
    where = os.path.realpath(path)  # follows a link at the end too, dangling or not
    if where != root and not where.startswith(root.rstrip(os.sep) + os.sep):
        raise UnsafeWriteError(
            f"{path}: leads to {where} through a symbolic link, outside {inside}; "
            "traindocs does not write through it (remove the link, or point it inside)"
        )


def write_atomic(path: Path, data: bytes, inside: Path | None = None) -> bool:
    """Write through a temporary file and rename; skip when the bytes are equal.

    With `inside`, refuse (`UnsafeWriteError`) to write when a symbolic link in the
    way leads out of that folder. Returns whether the file changed.
    """
    if inside is not None:
        check_inside(path, inside)
    mode = FILE_MODE
    try:
        if path.read_bytes() == data:
            return False
        mode = path.stat().st_mode & 0o7777  # a rewrite keeps the file's permissions
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.traindocs-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        if exc.filename is None:  # a failed write names no file: name the one being written
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return True


@contextmanager
def held_lock(path: Path, wait: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on `path` between processes: a file (created if missing) or a folder.

    A file is opened for appending and never written: its mtime stays put, so `mkdocs serve`
    sees no change from locking. A folder is locked itself, for files that are replaced rather
    than written in place (a lock on the replaced file would exclude no one). With `wait=False`
    a lock held by another process raises `BlockingIOError` at once instead of waiting.
    """
    flags = os.O_RDONLY if path.is_dir() else os.O_WRONLY | os.O_CREAT | os.O_APPEND
    handle = os.open(path, flags, 0o666)
    try:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        os.close(handle)

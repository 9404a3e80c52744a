"""Writing files whole: through a temporary file renamed into place.

A reader in another process (MkDocs' server, a second generation, a worker
filling the cache) sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _file_mode() -> int:
    """Permissions of a new file under the current umask (mkstemp makes 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()


def write_atomic(path: Path, data: bytes) -> bool:
    """Write through a temporary file and rename; skip when the bytes are equal.

    Returns whether the file changed.
    """
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
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return True

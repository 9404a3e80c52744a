"""A generation's stamp: when nothing it read or wrote has changed since, `traindocs generate` has nothing to do.

An unchanged generation still imported pandas, MkDocs' configuration and its
plugins, and loaded every cached run, to find that no file needs writing: about
0.5 s for three models, most of it imports. After each `traindocs generate`,
`record` stores in the cache folder what the generation depended on:

- the bytes' identity (size, modification time, inode) of the registry,
  mkdocs.yml, every registered checkpoint folder and every file in the folder a
  checkpoint was read from (so a new checkpoint-N or an edited
  adapter_config.json counts), of traindocs' own source files, and of every file
  it wrote or left under docs/ (so a deleted or edited page counts);
- the traindocs, Python and matplotlib versions, the TRAINDOCS_* variables and
  the variables mkdocs.yml reads with !ENV;
- the lines it printed and its counts, to print the same summary again.

`replay` (called by the CLI before importing anything heavy) checks all of it
with `os.stat` calls and, when every one matches, prints what the last
generation printed with "0 files written". A file modified within
SETTLE_SECONDS before it was stamped may change again within the same
timestamp: its SHA-256 is stored and compared too, as git does for "racily
clean" files. Remote entries, --no-cache and --fail-on never take this path.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import sys
import time
from pathlib import Path
from stat import S_ISDIR
from typing import TYPE_CHECKING, Any

from generator import __version__

if TYPE_CHECKING:
    from generator.pipeline import GenerationResult

STAMPS_DIR = "stamps"
SETTLE_SECONDS = 2.0
PACKAGE = Path(__file__).resolve().parent
FORMAT = 2


def stamp_file(cache_dir: Path, registry: Path, mkdocs_yml: Path, docs_dir_option: Path | None) -> Path:
    """Where the stamp of this (registry, mkdocs.yml, --docs-dir) lives in the cache folder."""
    where = json.dumps([str(registry.resolve()), str(mkdocs_yml.resolve()),
                        str(docs_dir_option.resolve()) if docs_dir_option else ""])
    return cache_dir / STAMPS_DIR / (hashlib.sha256(where.encode("utf-8")).hexdigest()[:32] + ".json")


def _identity(path: str | Path) -> list[int] | None:
    """(size, mtime ns, inode, is a folder, mode) of a path; None when it does not exist.
    The mode counts: a checkpoint made unreadable must be reported, not replayed as fine. Paths of many
    files are joined as strings: pathlib's joining cost more than the stat calls (10,000 files a stamp)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino, int(S_ISDIR(stat.st_mode)), stat.st_mode]


def _environment(mkdocs_yml: Path) -> dict[str, str | None]:
    """TRAINDOCS_* variables and those mkdocs.yml reads with !ENV: they change what is generated."""
    names = {name for name in os.environ if name.startswith("TRAINDOCS_")}
    try:
        text = mkdocs_yml.read_text(encoding="utf-8")
    except OSError:
        text = ""
    for match in re.finditer(r"!ENV\s*\[?([^\]\n]+)", text):
        names |= {part.strip().strip("'\"") for part in match.group(1).split(",") if part.strip()}
    return {name: os.environ.get(name) for name in sorted(names)}


def _versions() -> dict[str, Any]:
    """Python, traindocs' sources and matplotlib's installed files: another version draws other bytes."""
    # find_spec locates matplotlib without importing it (importlib.metadata alone costs ~0.1 s of imports).
    spec = importlib.util.find_spec("matplotlib")
    matplotlib = Path(spec.origin).parent if spec is not None and spec.origin else None
    sources = {path.relative_to(PACKAGE).as_posix(): _identity(path)
               for path in sorted(PACKAGE.rglob("*")) if path.is_file() and "__pycache__" not in path.parts}
    return {"traindocs": __version__, "python": sys.version,
            "matplotlib": [_identity(matplotlib / name) for name in ("__init__.py", "_version.py")] if matplotlib else None,
            "sources": sources}


def _inputs(result: GenerationResult, mkdocs_yml: Path) -> list[Path]:
    paths = [result.registry.file.resolve(), mkdocs_yml.resolve()]
    for entry in result.registry.entries:
        paths += [entry.resolved, entry.resolved.parent]
        if entry.resolved.is_dir():
            paths += sorted(entry.resolved.iterdir())
    for report in result.reports:
        folder = report.run.checkpoint_dir
        paths += [folder, *sorted(folder.iterdir())] if folder.is_dir() else [folder]
    return list(dict.fromkeys(paths))


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
    except OSError:
        return ""


def record(stamp: Path, result: GenerationResult, mkdocs_yml: Path, printed: list[str], strict: bool) -> None:
    """Store what this generation depended on and printed (nothing when it cannot be replayed)."""
    if any("://" in entry.path for entry in result.registry.entries):
        return  # a remote object changes without a local file changing
    now = time.time_ns()
    settle = int(SETTLE_SECONDS * 1e9)
    inputs = {}
    for path in _inputs(result, mkdocs_yml):
        identity = _identity(path)
        racy = identity is not None and not identity[3] and identity[1] >= now - settle
        inputs[str(path)] = {"identity": identity, "sha256": _sha256(path) if racy else ""}
    docs = result.docs_dir.resolve()
    outputs = {path: _identity(os.path.join(docs, path))
               for path in [*result.written, *result.unchanged, *result.refused]}
    outputs[".traindocs-manifest.json"] = _identity(docs / ".traindocs-manifest.json")
    document = {
        "format": FORMAT,
        "versions": _versions(),
        "environment": _environment(mkdocs_yml),
        "strict": strict,
        "docs_dir": str(docs),
        "inputs": inputs,
        "outputs": outputs,
        "printed": printed,
        "models": len(result.reports),
        "problems": len(result.problems),
        "files": len(outputs) - 1,
        "failed": bool(result.refused) or (strict and bool(result.problems or result.warnings())),
    }
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        temporary = stamp.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(document), encoding="utf-8")
        os.replace(temporary, stamp)
    except OSError:
        pass  # no stamp: the next generation does the whole work, as without one


def forget(stamp: Path) -> None:
    with contextlib.suppress(OSError):
        stamp.unlink()


def replay(stamp: Path, mkdocs_yml: Path, strict: bool, started: float) -> int | None:
    """When nothing recorded in `stamp` has changed: print what that generation printed, return its exit
    status. None otherwise (the caller generates)."""
    try:
        document = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    try:
        if document.get("format") != FORMAT or document["strict"] != strict:
            return None
        if document["environment"] != _environment(mkdocs_yml):
            return None
        # The inputs first: an edited checkpoint, the usual change, is found before the site's files are checked.
        for path, known in document["inputs"].items():
            if _identity(path) != known["identity"]:
                return None
            if known["sha256"] and _sha256(Path(path)) != known["sha256"]:
                return None
        docs = document["docs_dir"]
        for path, identity in document["outputs"].items():
            if _identity(os.path.join(docs, path)) != identity:
                return None
        if document["versions"] != _versions():
            return None
        for line in document["printed"]:
            print(line, file=sys.stderr)
        print(f"traindocs: {document['models']} models, {document['problems']} problems; 0 files written, "
              f"{document['files']} unchanged, 0 removed ({time.perf_counter() - started:.2f} s)", file=sys.stderr)
        return 1 if document["failed"] else 0
    except (KeyError, TypeError, AttributeError):
        return None

"""What reading and analysing a checkpoint produced, kept for the next generation.

An unchanged trainer_state.json is then neither parsed nor analysed again: with
hundreds of long logs, parsing is most of the time of a generation in which
nothing changed.

An entry is found by the file's identity (path, size, modification time, inode)
together with everything else the result depends on: the small files read beside
it, the checkpoint folders of its run, the analysis settings and the code of the
reading and analysing modules. Like git's index, a file modified within a few
seconds of being cached is checked by its SHA-256 rather than trusted by its
timestamp, which file systems record coarsely.

Entries are JSON plus a `.bin` of the arrays (the tables and the overview curve)
back to back, which the JSON describes: plain integers and floats, read with
`np.frombuffer`, so nothing in the cache can run code. A damaged or foreign entry
is ignored and rewritten.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import json
import math
import mmap
import os
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from generator import __version__
from generator.files import write_atomic
from generator.folders import SIDE_FILES
from generator.records import AnalysisSettings, Curve, DeferredTable, Figures, TrainingRun

RUNS_DIR = "runs"
FORMAT = 4
RACY_SECONDS = 3.0
"""A file modified this close to the moment it was cached is verified by hash, not by its timestamp."""



@functools.cache
def code_version() -> str:
    """Hash of traindocs' version and of every module of the package, computed on first use.

    Results of other code are never reused: the reader, the analysis or the plots may have
    changed. One policy for the cache and for the rendered files (`generator.plan`): what a
    reading or a plot holds is decided in many modules, so the whole package counts.
    """
    package = Path(__file__).parent
    digest = hashlib.sha256(__version__.encode())
    for path in sorted(package.glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class Cached:
    """A reading and its analysis, as cached."""

    run: TrainingRun
    figures: Figures
    analysis: tuple[str, ...]
    curve: Curve
    """The run's overview curve, without a name or colour (the entry using the run gives them)."""


def _stamp(path: Path) -> list[int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino]


def inputs_key(state_file: Path, resolved: Path, shown: str, settings: AnalysisSettings) -> str:
    """Hash of everything a cached result depends on except the state file's bytes."""
    folders = [state_file.parent] + ([resolved] if resolved.is_dir() and resolved != state_file.parent else [])
    side = [[str(folder / name), _stamp(folder / name)] for folder in folders for name in SIDE_FILES]
    try:  # the run folder's checkpoints: the progression table lists them
        listing = sorted(child.name for child in resolved.iterdir()) if resolved.is_dir() else []
    except OSError:
        listing = []
    document = [FORMAT, code_version(), str(state_file), str(resolved), shown, side, listing,
                dataclasses.asdict(settings)]
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode("utf-8")).hexdigest()


LOADED_ENTRIES = 20_000
_LOADED: dict[tuple[Any, ...], Cached] = {}
"""Entries this process has loaded, by the same entry file, key, stamp and time of caching: `mkdocs serve`
generates again on every change, and decoding hundreds of unchanged runs' tables took seconds of each reload.
The objects are shared, never modified (results are replaced, as `dataclasses.replace` does)."""


class RunCache:
    """Cached readings under one folder (normally `<cache dir>/runs`)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def default(cls) -> RunCache:
        """`runs/` in traindocs' cache folder ($TRAINDOCS_CACHE_DIR, else the user's cache folder)."""
        from generator.remote import default_cache_dir

        return cls(default_cache_dir() / RUNS_DIR)

    def _paths(self, state_file: Path) -> tuple[Path, Path]:
        # One slot per state file: a newer reading replaces the older one, so the cache stays bounded.
        name = hashlib.sha256(str(state_file).encode("utf-8")).hexdigest()
        folder = self.root / name[:2]
        return folder / f"{name}.json", folder / f"{name}.bin"

    def load(self, state_file: Path, key: str) -> Cached | None:
        """The cached result when `key` matches and the file has not changed since; else None."""
        meta_path, tables_path = self._paths(state_file)
        stamp = _stamp(state_file)
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            if meta.get("key") != key or stamp is None or meta.get("stamp") != stamp:
                return None
            if stamp[1] / 1e9 > meta["cached_at"] - RACY_SECONDS and _sha256(state_file) != meta["run"]["state_sha256"]:
                return None
            loaded = (str(meta_path), key, tuple(stamp), meta["cached_at"])
            if loaded in _LOADED:
                return _LOADED[loaded]
            arrays = _read_arrays(tables_path, meta["arrays"])
            train = _table(meta["train"], arrays, "t")
            evals = _table(meta["eval"], arrays, "e")  # DataFrames when first used (see DeferredTable)
            run = _decode(TrainingRun, {**meta["run"], "train": train, "eval": evals})
            curve = meta["curve"]
            # name -> the name its arrays are stored under (points shared by two names are stored once)
            few = None if curve["few"] is None else {
                str(name): (arrays[f"c_few_{stored}_x"], arrays[f"c_few_{stored}_y"])
                for name, stored in curve["few"].items()}
            cached = Cached(run, _decode(Figures, meta["figures"]), tuple(meta["analysis"]),
                            Curve("", "", int(curve["steps"]), arrays["c_at"], arrays["c_smoothed"],
                                  epochs=arrays.get("c_epochs"), tokens=arrays.get("c_tokens"),
                                  tokens_seen=_decode(float | None, curve["tokens_seen"]), few=few))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # absent, damaged or from another version: read the file again
        if len(_LOADED) >= LOADED_ENTRIES:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[loaded] = cached
        return cached

    def store(self, key: str, cached: Cached) -> None:
        """Keep a result; a cache that cannot be written only costs time."""
        run = cached.run
        stamp = _stamp(run.state_file)
        if stamp is None:
            return
        meta_path, tables_path = self._paths(run.state_file)
        arrays: dict[str, np.ndarray] = {}
        for prefix, table in (("t", run.train), ("e", run.eval)):
            # Two arrays a table (steps, and every other column as one matrix): each array read costs.
            arrays[f"{prefix}_steps"] = table["step"].to_numpy(dtype="int64")
            arrays[f"{prefix}_values"] = table.drop(columns="step").to_numpy(dtype="float64")
        curve = cached.curve
        arrays["c_at"], arrays["c_smoothed"] = curve.at, curve.smoothed
        if curve.epochs is not None:
            arrays["c_epochs"] = curve.epochs
        if curve.tokens is not None:
            arrays["c_tokens"] = curve.tokens
        few = curve.few or {}
        stored_as: dict[str, str] = {}  # a curve without step 0 has one pair of points for two names: stored once
        for name, points in few.items():
            stored_as[name] = next((other for other in stored_as if few[other] is points), name)
            if stored_as[name] == name:
                arrays[f"c_few_{name}_x"], arrays[f"c_few_{name}_y"] = points
        fields = {f.name: getattr(run, f.name) for f in dataclasses.fields(run) if f.name not in ("train", "eval")}
        meta = {
            "key": key,
            "stamp": stamp,
            "cached_at": _now(),
            "train": [str(c) for c in run.train.columns],
            "eval": [str(c) for c in run.eval.columns],
            "run": _encode(fields),
            "figures": _encode(dataclasses.asdict(cached.figures)),
            "analysis": list(cached.analysis),
            "curve": {"steps": curve.steps, "tokens_seen": _encode(curve.tokens_seen),
                      "few": None if curve.few is None else stored_as},
            "arrays": [[name, _DTYPES[array.dtype.kind], list(array.shape)] for name, array in arrays.items()],
        }
        try:
            write_atomic(tables_path, b"".join(np.ascontiguousarray(array, dtype=_DTYPES[array.dtype.kind]).tobytes()
                                               for array in arrays.values()))
            write_atomic(meta_path, json.dumps(meta).encode("utf-8"))  # last: it makes the entry valid
            # The tables of a cache written before FORMAT 2 (an .npz in the same slot) are never read again.
            tables_path.with_suffix(".npz").unlink(missing_ok=True)
        except OSError:
            pass


_DTYPES = {"i": "<i8", "f": "<f8"}
"""How the arrays are stored, by numpy's dtype kind: 8-byte little-endian integers and floats only."""


def _read_arrays(path: Path, described: list[list[Any]]) -> dict[str, np.ndarray]:
    """The arrays of a `.bin` as its entry's JSON describes them (name, dtype, shape), back to back.

    Writable views of one private (copy-on-write) memory map: only the pages used are read. An unchanged
    run's tables are usually never used (see `DeferredTable`), so of a 3,000-row run's ~260 KB only the
    overview curve's are; reading whole files instead made loading 1,000 cached runs 0.96-1.10 s against
    0.73-0.87 s (measured). A newer entry replaces the file by renaming (`write_atomic`): a map keeps the file it was made
    of. Only the two dtypes of `_DTYPES`, and the sizes must add up to the file's."""
    with open(path, "rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        # mmap refuses an empty file; a private map (ACCESS_COPY) gives writable arrays, never written back.
        data = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_COPY) if size else bytearray()
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for name, dtype, shape in described:
        if dtype not in _DTYPES.values():
            raise ValueError(f"unexpected dtype {dtype!r}")
        if not all(type(size) is int and size >= 0 for size in shape):
            raise ValueError(f"unexpected shape {shape!r}")  # np.frombuffer reads a count of -1 as 'the rest'
        count = math.prod(shape)
        if offset + 8 * count > size:
            raise ValueError("the arrays run past the end of the file")
        arrays[name] = np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(shape)
        offset += 8 * count
    if offset != size:
        raise ValueError("the arrays do not fill the file")
    return arrays


def _now() -> float:
    import time

    return time.time()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _table(columns: list[str], arrays: dict[str, np.ndarray], prefix: str) -> DeferredTable:
    """A table as the reader makes it, when used: `step` first (int64), then float columns."""
    others = [c for c in columns if c != "step"]
    values = arrays[f"{prefix}_values"]
    if values.shape != (len(arrays[f"{prefix}_steps"]), len(others)):
        raise ValueError("a table's arrays do not match its columns")
    return DeferredTable(("step", *others), arrays[f"{prefix}_steps"], values)


# --- records <-> JSON -----------------------------------------------------------------------------
# JSON has no NaN or Infinity and no tuples: floats that are not finite travel as
# {"float": "nan"}, and the record types say where tuples and dataclasses go back.


def _encode(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _encode(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(key): _encode(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(item) for item in value]
    return value


def _decode(kind: Any, value: Any) -> Any:
    """`value` (from JSON) as the annotated type `kind`."""
    return _decoder(kind)(value)


def _special(value: Any) -> Any:
    """{"float": "nan"} back to a float; anything else as it is."""
    if isinstance(value, dict) and len(value) == 1 and "float" in value:
        return float(value["float"])
    return value


@functools.cache
def _decoder(kind: Any) -> Callable[[Any], Any]:
    """A function turning JSON into `kind`, built once per type (a generic walk per value was
    a third of an unchanged 200-model generation)."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        inner = _decoder(next(option for option in typing.get_args(kind) if option is not type(None)))
        if inner is _as_is:
            return _as_is
        return lambda value: None if value is None else inner(value)
    if kind is Path:
        return lambda value: Path(value)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return kind  # RunKind, Severity, SpeedClass, Direction: from their JSON value
    if dataclasses.is_dataclass(kind):
        # Only the fields whose JSON differs from their value are converted: a call per string or integer
        # field was most of decoding 1,000 cached runs (profiled). Tables come as they are (`load`).
        converted = {name: decoder for name, hint in typing.get_type_hints(kind).items()
                     if (decoder := _decoder(hint)) is not _as_is and hint is not pd.DataFrame}
        build = typing.cast(Any, kind)

        def dataclass_from(value: dict[str, Any]) -> Any:
            fields = dict(value)
            for name in converted.keys() & fields.keys():
                fields[name] = converted[name](fields[name])
            return build(**fields)

        return dataclass_from
    if origin is tuple:
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            item = _decoder(args[0])
            if item is _as_is:
                return tuple
            return lambda value: tuple(item(element) for element in value)
        items = [_decoder(arg) for arg in args]
        return lambda value: tuple(item(element) for item, element in zip(items, value, strict=True))
    if origin is dict:
        item = _decoder(typing.get_args(kind)[1])
        return lambda value: {key: item(element) for key, element in value.items()}
    if kind is float:
        return lambda value: float(_special(value))
    if kind in (str, int, bool):
        return _as_is  # JSON holds these as they are (`_encode` changes only floats that are not finite)
    return _special


def _as_is(value: Any) -> Any:
    return value

"""Checkpoint folder -> `TrainingRun`.

Reads `trainer_state.json` as the transformers `Trainer` and TRL write it, plus
`adapter_config.json`, `config.json` and the model card's front matter when
present. Only JSON and YAML are parsed: `training_args.bin` and other pickles
are never loaded.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import itertools
import json
import math
import operator
import os
import posixpath
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import yaml

from generator.errors import CheckpointError
from generator.folders import (
    JSONL_LOG,
    MAX_SIDE_BYTES,
    MAX_STATE_BYTES,
    STATE_FILE,
    STATE_SUFFIXES,
    checkpoint_number,
    missing,
    not_a_state_file,
    nothing_to_read,
)
from generator.records import AdapterInfo, CheckpointEntry, NonFinite, TrainingRun

LFS_POINTER_PREFIX = b"version https://git-lfs"
MAX_CARD_BYTES = 1000 * 1000
"""Of a model card (README.md) only this much is read: its front matter is at the top."""
MAX_KEY_LENGTH = 200
"""Longer metric keys are skipped with a warning: a key is a column, a panel title, a CSV header."""

# Older or custom trainers spell some keys differently.
KEY_ALIASES = {"lr": "learning_rate"}
STATE_KEYS = (
    "global_step",
    "max_steps",
    "num_train_epochs",
    "epoch",
    "train_batch_size",
    "logging_steps",
    "eval_steps",
    "save_steps",
    "best_metric",
    "best_model_checkpoint",
    "best_global_step",
    "num_input_tokens_seen",
    "total_flos",
)


def locate_state_file(entry: CheckpointEntry) -> Path:
    """The `trainer_state.json` an entry's `path` points at.

    `path` may be the file itself, a checkpoint folder holding it, or a
    training output folder whose `checkpoint-N` with the highest N is used.
    """
    where = f"{entry.label}: path '{entry.path}'"
    target = entry.resolved
    try:
        target.resolve(strict=True)
    except FileNotFoundError:
        raise CheckpointError(missing(where)) from None
    except RuntimeError:  # Python < 3.13 reports a symlink loop this way
        raise CheckpointError(f"{where} is a symbolic link loop") from None
    except ValueError:  # an embedded NUL byte
        raise CheckpointError(f"{where} is not a valid path") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise CheckpointError(f"{where} is a symbolic link loop") from None
        raise CheckpointError(f"{where} cannot be read: {exc.strerror or exc}") from None
    if target.is_file():
        if not target.name.endswith(STATE_SUFFIXES):
            raise CheckpointError(not_a_state_file(where))
        return target
    if not target.is_dir():
        raise CheckpointError(f"{where} is neither a file nor a folder")
    direct = target / STATE_FILE
    if direct.is_file():
        return direct
    checkpoints = latest_checkpoints(target)
    if not checkpoints and (target / JSONL_LOG).is_file():
        return target / JSONL_LOG
    if not checkpoints:
        raise CheckpointError(nothing_to_read(where))
    return checkpoints[-1] / STATE_FILE


def checkpoint_step(folder: Path) -> int:
    """N of a `checkpoint-N` folder."""
    number = checkpoint_number(folder.name)
    if number is None:
        raise ValueError(f"{folder} is not a checkpoint-N folder")
    return number


def latest_checkpoints(run_dir: Path) -> list[Path]:
    """`checkpoint-N` folders holding a trainer_state.json, by N as a number."""
    found = []
    for child in run_dir.iterdir():
        number = checkpoint_number(child.name)
        if number is not None and (child / STATE_FILE).is_file():
            found.append((number, child))
    return [path for _, path in sorted(found)]


def read_run(entry: CheckpointEntry, shown_file: str | None = None) -> TrainingRun:
    """Read the checkpoint an entry registers. Raises `CheckpointError`."""
    state_file = locate_state_file(entry)
    shown = f"{shown_file or state_file} ({entry.label})"
    data = _read_limited(state_file, shown)
    if state_file.name.endswith(".jsonl"):
        state = parse_jsonl_log(data, shown)
        source_format = JSONL_LOG
    else:
        state = parse_state(data, shown)
        source_format = STATE_FILE
    tables = split_log_history(state["log_history"])
    warnings = [f"{shown}: {message}" for message in tables.skipped]
    train, evals = tables.train, tables.eval
    if len(train) and ("loss" not in train or not train["loss"].notna().any()):
        warnings.append(f"{shown}: log_history: no row has a numeric 'loss'; the page has no loss figures")
    if train.empty and evals.empty and not tables.summary:
        raise CheckpointError(f"{shown}: log_history: no training or evaluation rows with a step and a number")
    top = {key: state[key] for key in STATE_KEYS if key in state}
    folders = [state_file.parent]
    if entry.resolved.is_dir() and entry.resolved != state_file.parent:
        folders.append(entry.resolved)
    side = SideFiles(folders)
    adapter = read_adapter(side)
    base_model, source = find_base_model(side, adapter)
    model_type, vocabulary = _model_type(side), _vocabulary(side)
    base_shown = shown_file or str(state_file)
    warnings += [f"{shown}: {_side_shown(path, state_file, base_shown)}: {problem}" for path, problem in side.problems]
    saved: tuple[int, ...] = ()
    if entry.resolved.is_dir() and state_file.parent != entry.resolved:
        saved = tuple(checkpoint_step(path) for path in latest_checkpoints(entry.resolved))
    return TrainingRun(
        state_file=state_file,
        checkpoint_dir=state_file.parent,
        train=train,
        eval=evals,
        summary=tables.summary,
        state=top,
        state_sha256=hashlib.sha256(data).hexdigest(),
        base_model=base_model,
        base_model_source=source,
        adapter=adapter,
        model_type=model_type,
        **vocabulary,
        warnings=tuple(warnings),
        predict=tables.predict,
        resumes=tables.resumes,
        source_format=source_format,
        saved_checkpoints=saved,
        non_finite=tables.non_finite,
    )


def parse_jsonl_log(data: bytes, shown: str) -> dict[str, Any]:
    """LLaMA-Factory's trainer_log.jsonl as a trainer_state-shaped dict.

    One JSON object per line: `current_steps` is the step, `total_steps` the
    planned length (max_steps), `lr` the learning rate; a line with an
    `eval_loss` is an evaluation. Elapsed and remaining times are strings.
    """
    history: list[Any] = []
    max_steps: float | None = None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{shown}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise CheckpointError(f"{shown}: line {number} is not JSON: {exc}") from None
        if not isinstance(record, dict):
            raise CheckpointError(f"{shown}: line {number}: expected a JSON object, got {type(record).__name__}")
        row = {key: value for key, value in record.items() if key not in JSONL_PROGRESS_KEYS and value is not None}
        if "current_steps" in record:
            row["step"] = record["current_steps"]
        if isinstance(record.get("total_steps"), (int, float)) and not isinstance(record["total_steps"], bool):
            max_steps = record["total_steps"]
        if _number(row.get("eval_loss")) is not None:
            row = {k: v for k, v in row.items() if k != "loss"}  # an evaluation line, not a train row
        history.append(row)
    if not history:
        raise CheckpointError(f"{shown}: the file is empty")
    state: dict[str, Any] = {"log_history": history}
    if max_steps is not None:
        state["max_steps"] = max_steps
    return state


JSONL_PROGRESS_KEYS = frozenset({"current_steps", "total_steps", "percentage", "elapsed_time", "remaining_time"})
"""trainer_log.jsonl fields about progress, not training metrics."""


class NotRegularFile(OSError):
    """A FIFO, device, socket or folder where a file was expected."""


def read_regular(path: Path, limit: int, truncate: bool = False) -> bytes:
    """At most `limit` bytes of a regular file, checked before a byte is read.

    Opened without blocking (a FIFO would wait for a writer forever) and checked
    with fstat on the open descriptor (no race with a swapped link): a FIFO,
    device (/dev/zero) or folder raises `NotRegularFile`. A file larger than
    `limit` raises `OSError(EFBIG)`, or with `truncate` gives its first `limit`
    bytes. Reads stop at `limit` even when the file grows meanwhile.
    """
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(errno.EINVAL, "not a regular file", str(path))
        if info.st_size > limit and not truncate:
            raise OSError(errno.EFBIG, f"{info.st_size} bytes, more than the {limit} read", str(path))
        chunks: list[bytes] = []
        total = 0
        while total < limit + (0 if truncate else 1):
            chunk = os.read(descriptor, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        data = b"".join(chunks)
        if len(data) > limit:
            if not truncate:
                raise OSError(errno.EFBIG, f"more than the {limit} bytes read", str(path))
            data = data[:limit]
        return data
    finally:
        os.close(descriptor)


def _read_limited(path: Path, shown: str) -> bytes:
    """The file's bytes, refusing files too large to be a trainer_state.json."""
    try:
        return read_regular(path, MAX_STATE_BYTES)
    except NotRegularFile:
        raise CheckpointError(f"{shown}: not a regular file (a FIFO, device or folder); point it at a file") from None
    except OSError as exc:
        if exc.errno == errno.EFBIG:
            size = path.stat().st_size
            raise CheckpointError(
                f"{shown}: the file is {size / 1e6:.0f} MB, more than the {MAX_STATE_BYTES / 1e6:.0f} MB "
                "traindocs reads; is it really a trainer_state.json?"
            ) from None
        raise CheckpointError(f"{shown}: cannot read: {exc.strerror or exc}") from None


def clean_text(text: str) -> str:
    """`text` with lone surrogates (from JSON escapes such as \\ud800) replaced by U+FFFD:
    they cannot be written as UTF-8, and one would stop the whole build."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def parse_state(data: bytes, shown: str) -> dict[str, Any]:
    """Decode trainer_state.json bytes, refusing what is not one."""
    if not data or data.isspace():  # not data.strip(): that copies a 30 MB file to look at its ends
        raise CheckpointError(f"{shown}: the file is empty")
    if data.startswith(LFS_POINTER_PREFIX):
        raise CheckpointError(f"{shown}: this is a Git LFS pointer, not the file; run 'git lfs pull' first")
    try:
        # orjson is several times faster on long logs; it refuses the NaN and
        # Infinity tokens Trainer can write (and BOMs, huge integers), so those
        # files, and every error message, go through the standard library.
        state = orjson.loads(data)
    except orjson.JSONDecodeError:
        state = _parse_with_json(data, shown)
    return _checked_state(state, shown)


def _parse_with_json(data: bytes, shown: str) -> Any:
    try:
        return json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{shown}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except RecursionError:
        raise CheckpointError(f"{shown}: the JSON is nested too deeply to be a trainer_state.json") from None
    except json.JSONDecodeError as exc:
        # A file cut off while copying fails at its very end, or inside a string
        # that never closes (then pos is where that string starts).
        if exc.pos >= len(data.decode("utf-8-sig").rstrip()) or exc.msg.startswith("Unterminated string"):
            raise CheckpointError(
                f"{shown}: the JSON ends early (line {exc.lineno}); is the checkpoint still being copied?"
            ) from None
        raise CheckpointError(f"{shown}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise CheckpointError(f"{shown}: invalid JSON: {exc}") from None


def _checked_state(state: Any, shown: str) -> dict[str, Any]:
    if not isinstance(state, dict):
        raise CheckpointError(f"{shown}: expected a JSON object, got {type(state).__name__}")
    history = state.get("log_history")
    if history is None:
        raise CheckpointError(f"{shown}: no 'log_history' key; this is not a trainer_state.json")
    if not isinstance(history, list):
        raise CheckpointError(f"{shown}: log_history: expected a list, got {type(history).__name__}")
    if not history:
        raise CheckpointError(f"{shown}: log_history is empty; nothing was logged before this checkpoint")
    return state


def _number(value: object) -> float | None:
    """A JSON number as float (NaN/inf kept); None for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:  # an integer beyond any float
        return math.inf if value > 0 else -math.inf


def _describe(value: object) -> str:
    """A JSON value as an error message quotes it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = value if len(value) <= 30 else value[:27] + "..."
        return f"a string {shown!r}"
    return f"a {type(value).__name__}" if isinstance(value, (list, dict)) else repr(value)


class _Skipped:
    """Skipped rows and values, counted per kind, each with its first location."""

    def __init__(self) -> None:
        self.first: dict[str, str] = {}
        self.count: dict[str, int] = {}

    def add(self, kind: str, message: str) -> None:
        self.first.setdefault(kind, message)
        self.count[kind] = self.count.get(kind, 0) + 1

    def messages(self) -> list[str]:
        lines = []
        for kind in sorted(self.first):
            more = self.count[kind] - 1
            lines.append(self.first[kind] + (f" (and {more} more like it)" if more else ""))
        return lines


MAX_STEP = 2**53
"""Steps above this are not exact as floats: treated as invalid."""


IGNORED_STRING_KEYS = frozenset({"remaining_time", "elapsed_time", "throughput"})
"""Progress fields some trainers write as text ('0:01:03'): not metrics, not worth a note."""


@dataclass
class LogTables:
    """`log_history` sorted into what the pages use."""

    train: pd.DataFrame
    eval: pd.DataFrame
    summary: dict[str, float]
    predict: dict[str, float]
    """`predict_*` results, logged without a step."""
    resumes: tuple[tuple[int, int], ...]
    """(step the log went back to, highest step before it), in file order."""
    skipped: list[str]
    non_finite: tuple[NonFinite, ...] = ()


def split_log_history(history: list[Any]) -> LogTables:
    """Sort `log_history` rows into train rows, eval rows and the summary row.

    The usual log (rows of a few key sets, every value a number, steps never going back) is read column by
    column (`_split_columns`); any other goes row by row (`_split_rows`). Both give the same tables, messages
    and records, bit for bit: tests/test_reader_columns.py compares them.
    """
    tables = _split_columns(history)
    return tables if tables is not None else _split_rows(history)


def _split_rows(history: list[Any]) -> LogTables:
    """Sort `log_history` rows into train rows, eval rows and the summary row, row by row.

    Each table has an integer `step` column, sorted and unique, plus one float
    column per numeric key. A row whose step is lower than one logged before it
    starts a new segment (a run resumed from a checkpoint, or a second writer):
    the rows of earlier segments from that step on are dropped, so the latest
    segment wins; rows of one step are merged, a later value winning. What is skipped is
    reported with its first location, e.g.
    `log_history[12].loss: expected a number, got null; not plotted`.
    """
    kept: list[tuple[str, dict[str, float]]] = []
    kept_steps: list[float] = []  # the step of each kept row
    summary: dict[str, float] = {}
    predict: dict[str, float] = {}
    resumes: list[tuple[int, int]] = []
    highest = -1
    skipped = _Skipped()
    # Two processes writing one log interleave their rows (1020, 1010, 1030, 1020, ...): when small steps
    # back (no more than the usual step forward) are a pattern, they are merged, not read as hundreds of
    # restarts; a lone step back is a resume, as before.
    interleave_limit = _interleave_limit(history)
    interleaved = 0
    # A long log repeats a handful of key sets (train row, eval row): what the keys decide is worked out
    # once per set, and each row only checks its values.
    shapes: dict[tuple[Any, ...], _RowShape] = {}
    for index, row in enumerate(history):
        if not isinstance(row, dict):
            skipped.add("row", f"log_history[{index}]: expected an object, got {_describe(row)}; skipped")
            continue
        keys = tuple(row)
        shape = shapes.get(keys)
        if shape is None:
            shape = shapes[keys] = _RowShape.of(row)
        for key in shape.long_keys:
            skipped.add(f"long:{key[:40]}", f"log_history[{index}]: the key {key[:40]!r}... is {len(key)} "
                        f"characters long, more than {MAX_KEY_LENGTH}; not plotted")
        numbers = _plain_numbers(row) if shape.plain else None
        if numbers is None:
            numbers = _numbers(row, shape, index, skipped)
        if len(numbers) == shape.names:
            is_summary, has_eval, has_metric = shape.is_summary, shape.has_eval, shape.has_metric
        else:  # some values were not numbers: decide on those that were
            is_summary, has_eval, has_metric = _row_kind(numbers)
        if is_summary:
            summary.update(numbers)
            continue
        if "step" not in row:
            if any(key.startswith("predict_") for key in numbers):
                predict.update(numbers)  # predict results: a table of their own, not part of the curve
            else:
                skipped.add("nostep", f"log_history[{index}]: no 'step'; row skipped")
            continue
        step = numbers.get("step")
        if step is None or not math.isfinite(step) or not 0 <= step <= MAX_STEP or step != int(step):
            skipped.add(
                "step", f"log_history[{index}].step: expected a whole number >= 0, got {_describe(row['step'])}; row skipped"
            )
            continue
        if has_eval:
            kind = "eval"
        elif has_metric:
            kind = "train"
        else:
            continue  # a row with only an epoch logs no metric
        if step < highest and highest - step <= interleave_limit:
            interleaved += 1  # merged by step below, the later value winning
        elif step < highest:
            resumes.append((int(step), highest))
            # Rare (a restart): keep only what was logged before the step the log went back to.
            kept_steps_rows = [(s, r) for s, r in zip(kept_steps, kept, strict=True) if s < step]
            kept_steps = [s for s, _ in kept_steps_rows]
            kept = [r for _, r in kept_steps_rows]
            highest = int(step)
        else:
            highest = int(step)
        kept.append((kind, numbers))
        kept_steps.append(step)
    if interleaved:
        skipped.add("interleaved", f"log_history: {interleaved} rows step back by at most {interleave_limit:g} steps "
                    "(the usual step forward), as when two processes write one log; rows of one step are merged, "
                    "the later value winning")
    train_rows = _last_per_step([r for k, r in kept if k == "train"])
    eval_rows = _last_per_step([r for k, r in kept if k == "eval"])
    return LogTables(
        _table(train_rows),
        _table(eval_rows),
        summary,
        predict,
        tuple(resumes),
        skipped.messages(),
        _first_non_finite(train_rows + eval_rows),
    )


MAX_COLUMN_GROUPS = 64
"""A log of more key sets than this is read row by row: the column-wise path works once per key set."""


def _split_columns(history: list[Any]) -> LogTables | None:
    """`_split_rows`'s result for the usual log, column by column; None for a log it does not take.

    It takes a log whose rows are all objects of at most MAX_COLUMN_GROUPS key sets (in their order), with
    no key too long and no two keys naming one column, each key of a set holding numbers in every row (or
    text in every row, for a key of IGNORED_STRING_KEYS), whose steps are whole numbers in range and never
    go back in file order (no resume, no interleaving: rows of one step are merged). Every number goes
    through `float` as in `_plain_numbers`, so the values are bit for bit the same; NaN and infinities are
    kept and recorded as `_first_non_finite` does. Anything else (a null, a bool, a string where numbers
    are, a step back, an integer beyond any float) is left to `_split_rows`, which says what it skipped.
    """
    if not history or set(map(type, history)) != {dict}:
        return None
    count = len(history)
    keys_per_row = list(map(tuple, history))
    key_sets = {keys: number for number, keys in enumerate(dict.fromkeys(keys_per_row))}
    if len(key_sets) > MAX_COLUMN_GROUPS:
        return None
    group_of = np.fromiter(map(key_sets.__getitem__, keys_per_row), dtype=np.intp, count=count)
    by_group = np.argsort(group_of, kind="stable")
    bounds = np.searchsorted(group_of[by_group], np.arange(len(key_sets) + 1))
    all_steps = np.full(count, np.nan)  # each row's step, NaN for none: the file order must never go back
    summary_rows: list[tuple[int, dict[str, np.ndarray], int]] = []
    stepless: list[tuple[int, dict[str, np.ndarray], int]] = []
    parts: dict[str, list[tuple[np.ndarray, dict[str, np.ndarray]]]] = {"train": [], "eval": []}
    for keys, group in key_sets.items():
        rows_at = by_group[bounds[group]:bounds[group + 1]]
        rows = [history[i] for i in rows_at.tolist()]
        shape = _RowShape.of(rows[0])
        if shape.long_keys or shape.names != len(shape.fields):
            return None
        columns = _group_columns(rows, shape)
        if columns is None:
            return None
        if len(columns) == shape.names:
            is_summary, has_eval, has_metric = shape.is_summary, shape.has_eval, shape.has_metric
        else:
            is_summary, has_eval, has_metric = _row_kind(dict.fromkeys(columns, 0.0))
        if "step" in keys:
            all_steps[rows_at] = columns["step"]
        if is_summary:
            summary_rows += [(int(at), columns, position) for position, at in enumerate(rows_at.tolist())]
            continue
        if "step" not in keys:
            stepless += [(int(at), columns, position) for position, at in enumerate(rows_at.tolist())]
            continue
        steps = columns["step"]
        if not (np.isfinite(steps).all() and (steps >= 0).all() and (steps <= MAX_STEP).all()
                and (steps == np.floor(steps)).all()):
            return None  # `_split_rows` says which row
        if has_eval:
            parts["eval"].append((rows_at, columns))
        elif has_metric:
            parts["train"].append((rows_at, columns))
    written = all_steps[np.isfinite(all_steps)]
    if (written[1:] < written[:-1]).any():
        return None  # a resume or two writers: `_split_rows` decides which
    summary: dict[str, float] = {}
    for _, columns, position in sorted(summary_rows, key=operator.itemgetter(0)):
        summary.update({name: float(values[position]) for name, values in columns.items()})
    predict: dict[str, float] = {}
    skipped = _Skipped()
    for index, columns, position in sorted(stepless, key=operator.itemgetter(0)):
        if any(name.startswith("predict_") for name in columns):
            predict.update({name: float(values[position]) for name, values in columns.items()})
        else:
            skipped.add("nostep", f"log_history[{index}]: no 'step'; row skipped")
    train, train_cells = _column_table(parts["train"])
    evals, eval_cells = _column_table(parts["eval"])
    return LogTables(train, evals, summary, predict, (), skipped.messages(),
                     _first_non_finite_columns(train, train_cells, evals, eval_cells))


def _group_columns(rows: list[dict[Any, Any]], shape: _RowShape) -> dict[str, np.ndarray] | None:
    """Rows of one key set (no key too long) as a float column per key: a key holding text in every row is
    left out when it is one of IGNORED_STRING_KEYS; None when a key holds anything else."""
    cells = list(itertools.chain.from_iterable(map(dict.values, rows)))  # row by row, each in `shape`'s order
    columns: dict[str, np.ndarray] = {}
    try:
        if set(map(type, cells)) <= _PLAIN_TYPES:  # the usual key set: all numbers, converted in one go
            grid = np.fromiter(map(float, cells), dtype=np.float64, count=len(cells)).reshape(len(rows), -1)
            for place, (_, _, name) in enumerate(shape.fields):
                columns[name] = grid[:, place].copy()
            return columns
        for raw_key, key, name in shape.fields:
            values = list(map(operator.itemgetter(raw_key), rows))
            types = set(map(type, values))
            if types <= _PLAIN_TYPES:
                columns[name] = np.fromiter(map(float, values), dtype=np.float64, count=len(values))
            elif not (types == {str} and key in IGNORED_STRING_KEYS):
                return None
    except OverflowError:  # an integer beyond any float: `_number` says what it is
        return None
    return columns


def _column_table(parts: list[tuple[np.ndarray, dict[str, np.ndarray]]]) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """`_table(_last_per_step(rows))` for rows given per key set as (their places in the file, their columns);
    with, per column, which cells a row wrote (the others are NaN because no row of that step had the key)."""
    if not parts:
        return _table([]), {}
    places = np.sort(np.concatenate([at for at, _ in parts]))
    values: dict[str, np.ndarray] = {}
    written: dict[str, np.ndarray] = {}
    for at, columns in parts:
        where = np.searchsorted(places, at)
        for name, column in columns.items():
            if name not in values:
                values[name] = np.full(len(places), np.nan)
                written[name] = np.zeros(len(places), dtype=bool)
            values[name][where] = column
            written[name][where] = True
    steps = values["step"]
    if not (steps[1:] > steps[:-1]).all():
        # Rows of one step (several eval sets): merged, a later value winning, as `_last_per_step` does.
        unique = np.unique(steps)
        for name in list(values):
            rows = np.flatnonzero(written[name])
            row_steps = steps[rows]
            last = rows[np.append(row_steps[1:] != row_steps[:-1], True)]  # steps never go back here
            merged = np.full(len(unique), np.nan)
            merged_written = np.zeros(len(unique), dtype=bool)
            where = np.searchsorted(unique, steps[last])
            merged[where] = values[name][last]
            merged_written[where] = True
            values[name], written[name] = merged, merged_written
    order = ["step", *sorted(name for name in values if name != "step")]
    table = pd.DataFrame({name: values[name] for name in order})
    table["step"] = table["step"].astype("int64")
    return table, written


def _first_non_finite_columns(train: pd.DataFrame, train_written: dict[str, np.ndarray], evals: pd.DataFrame,
                              eval_written: dict[str, np.ndarray]) -> tuple[NonFinite, ...]:
    """`_first_non_finite` of the train rows then the eval rows, column by column."""
    first: dict[str, NonFinite] = {}
    for table, written in ((train, train_written), (evals, eval_written)):
        for column, cells in written.items():
            values = table[column].to_numpy()
            bad = np.flatnonzero(cells & ~np.isfinite(values))
            if not len(bad):
                continue
            known = first.get(column)
            if known is None:
                value = float(values[bad[0]])
                text = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
                first[column] = NonFinite(column, int(table["step"].to_numpy()[bad[0]]), text, len(bad))
            else:
                first[column] = dataclasses.replace(known, count=known.count + len(bad))
    return tuple(sorted(first.values(), key=lambda item: (item.step, item.column)))


_PLAIN_TYPES = frozenset({float, int})


def _plain_numbers(row: dict[str, Any]) -> dict[str, float] | None:
    """The row as floats when every value is a plain JSON number (the usual row), else None."""
    if not set(map(type, row.values())) <= _PLAIN_TYPES:
        return None
    try:
        return {key: float(value) for key, value in row.items()}
    except OverflowError:  # an integer beyond any float: `_number` says what it is
        return None


def _numbers(row: dict[str, Any], shape: _RowShape, index: int, skipped: _Skipped) -> dict[str, float]:
    """The row's numeric values by column name; the others are reported to `skipped`."""
    numbers: dict[str, float] = {}
    for raw_key, key, name in shape.fields:
        value = row[raw_key]
        number = _number(value)
        if number is None:
            if not (isinstance(value, str) and key in IGNORED_STRING_KEYS):
                skipped.add(f"value:{key}",
                            f"log_history[{index}].{key}: expected a number, got {_describe(value)}; not plotted")
            continue
        numbers[name] = number
    return numbers


def _row_kind(numbers: dict[str, float]) -> tuple[bool, bool, bool]:
    """(the summary row, an evaluation row, logs a metric) for a row's numeric values."""
    return (
        "train_runtime" in numbers or ("train_loss" in numbers and "loss" not in numbers),
        any(key.startswith("eval_") for key in numbers),
        any(key not in ("step", "epoch") for key in numbers),
    )


@dataclass(frozen=True)
class _RowShape:
    """What a row's keys decide, whatever its values: shared by every row with the same keys in the same order."""

    fields: tuple[tuple[Any, str, str], ...]
    """(key as written, key with lone surrogates replaced, column name) of the keys that may hold a number."""
    long_keys: tuple[str, ...]
    """Keys longer than MAX_KEY_LENGTH: not plotted."""
    names: int
    """How many columns the fields fill (two keys may clean to one name)."""
    plain: bool
    """Every key is its own column name: no alias, no lone surrogate, none too long."""
    is_summary: bool
    has_eval: bool
    has_metric: bool
    """`_row_kind` when every field holds a number."""

    @classmethod
    def of(cls, row: dict[Any, Any]) -> _RowShape:
        fields, long_keys = [], []
        for raw_key in row:
            key = clean_text(raw_key)
            if len(key) > MAX_KEY_LENGTH:
                long_keys.append(key)
                continue
            name = str(KEY_ALIASES.get(key, key))
            if name in row and name != key:
                name = key  # both spellings logged: keep them apart
            fields.append((raw_key, key, name))
        names = {name: 0.0 for _, _, name in fields}
        plain = not long_keys and all(raw_key == name for raw_key, _, name in fields)
        return cls(tuple(fields), tuple(long_keys), len(names), plain, *_row_kind(names))


INTERLEAVED_SHARE = 0.05
"""Small steps back on at least this share of the rows (and 3 or more) mean interleaved writers."""


def _interleave_limit(history: list[Any]) -> float:
    """How far back a row may step and still be another writer's row: the usual step forward (the median
    positive step between rows in file order) when such small steps back are a pattern, else 0."""
    steps = []
    for row in history:
        step = row.get("step") if isinstance(row, dict) else None
        if type(step) is not float:
            step = _number(step)
        if step is not None and math.isfinite(step):
            steps.append(step)
    if all(map(operator.le, steps, steps[1:])):
        return 0.0  # never a step back (the usual log): nothing to merge
    forward = sorted(b - a for a, b in itertools.pairwise(steps) if b > a)
    if not forward:
        return 0.0
    usual = forward[len(forward) // 2]
    highest, small = float("-inf"), 0
    for step in steps:
        if highest - usual <= step < highest:
            small += 1
        highest = max(highest, step)
    return usual if small >= max(3, INTERLEAVED_SHARE * len(steps)) else 0.0


def _last_per_step(rows: list[dict[str, float]]) -> list[dict[str, float]]:
    """One row per step, ordered by step: rows of one step are merged, a later value winning.

    Several eval sets log one row each at the same step; a key logged twice at
    one step keeps its last value.
    """
    steps = [row["step"] for row in rows]
    if all(map(operator.lt, steps, steps[1:])):
        return list(rows)  # one row a step, in order (the usual log)
    by_step: dict[int, dict[str, float]] = {}
    for row in rows:
        step = int(row["step"])
        if step in by_step:
            by_step[step] = {**by_step[step], **row}
        else:
            by_step[step] = row
    return [by_step[step] for step in sorted(by_step)]


def _first_non_finite(rows: list[dict[str, float]]) -> tuple[NonFinite, ...]:
    """Per column, the first NaN / infinite value written in the file (a key a row lacks is not one)."""
    first: dict[str, NonFinite] = {}
    for row in rows:
        if math.isfinite(sum(row.values())):
            continue  # NaN and infinities carry through a sum: none here (an overflowing sum is checked below)
        for column, value in row.items():
            if math.isfinite(value):
                continue
            known = first.get(column)
            if known is None:
                text = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
                first[column] = NonFinite(column, int(row["step"]), text, 1)
            else:
                first[column] = dataclasses.replace(known, count=known.count + 1)
    return tuple(sorted(first.values(), key=lambda item: (item.step, item.column)))


def _table(rows: list[dict[str, float]]) -> pd.DataFrame:
    """Rows (one per step, ordered) as a table with an int64 `step` column."""
    if not rows:
        return pd.DataFrame({"step": pd.Series([], dtype="int64")})
    table = pd.DataFrame.from_records(rows)
    table["step"] = table["step"].astype("int64")
    columns = ["step", *sorted(c for c in table.columns if c != "step")]
    return table[columns].reset_index(drop=True)


ADAPTER_FIELDS: dict[str, tuple[str, tuple[type, ...]]] = {
    "peft_type": ("text", (str,)),
    "task_type": ("text", (str,)),
    "r": ("a whole number", (int,)),
    "lora_alpha": ("a number", (int, float)),
    "lora_dropout": ("a number", (int, float)),
    "target_modules": ("a name or a list of names", (str, list)),
    "base_model_name_or_path": ("text", (str,)),
}
"""The adapter_config.json fields the reader uses: what each must be (null is allowed: absent)."""
CONFIG_FIELDS: dict[str, tuple[str, tuple[type, ...]]] = {
    "_name_or_path": ("text", (str,)),
    "vocab_size": ("a whole number", (int,)),
    "architectures": ("a list of names", (list,)),
    "model_type": ("text", (str,)),
}
"""The config.json fields the reader uses."""


class SideFiles:
    """The side files beside a state file (`folders`: its folder, then the run folder), each read once.

    What is wrong with one (not JSON, not an object, a field of the wrong type, front matter that does not
    load) is kept in `problems` with the file, for the run's warnings; the reading goes on without it.
    """

    def __init__(self, folders: list[Path]) -> None:
        self.folders = folders
        self.problems: list[tuple[Path, str]] = []
        self._json: dict[Path, dict[str, Any] | None] = {}
        self._front: dict[Path, dict[str, Any]] = {}

    def json_object(self, folder: Path, name: str) -> dict[str, Any] | None:
        """`name` in `folder` as a JSON object; None when absent, unreadable or malformed."""
        path = folder / name
        if path not in self._json:
            self._json[path] = self._load_json(path)
        return self._json[path]

    def _load_json(self, path: Path) -> dict[str, Any] | None:
        try:
            data = read_regular(path, MAX_SIDE_BYTES)
        except OSError:
            return None  # absent, or not a regular file, or too large: the page does without it
        try:
            value = json.loads(data.decode("utf-8-sig"))
        except UnicodeDecodeError:
            return self._problem(path, "not UTF-8 text; ignored")
        except RecursionError:
            return self._problem(path, "nested too deeply; ignored")
        except ValueError as exc:
            return self._problem(path, f"not JSON ({' '.join(str(exc).split())[:120]}); ignored")
        if not isinstance(value, dict):
            return self._problem(path, f"not a JSON object but {_json_kind(value)}; ignored")
        fields = ADAPTER_FIELDS if path.name == "adapter_config.json" else CONFIG_FIELDS
        for key, (expected, types) in fields.items():
            item = value.get(key)
            if item is not None and (isinstance(item, bool) or not isinstance(item, types)):
                self.problems.append((path, f"'{key}' is {_json_kind(item)}, not {expected}; ignored"))
            elif isinstance(item, list) and not all(isinstance(element, str) for element in item):
                self.problems.append((path, f"'{key}' holds something other than names; those are ignored"))
        return value

    def _problem(self, path: Path, message: str) -> dict[str, Any] | None:
        """Note what is wrong with `path`; its value is then None (ignored)."""
        self.problems.append((path, message))
        return None

    def front_matter(self, folder: Path) -> dict[str, Any]:
        """The YAML front matter of `folder`'s model card (README.md); {} when absent or invalid."""
        path = folder / "README.md"
        if path not in self._front:
            self._front[path] = read_front_matter(path, self.problems)
        return self._front[path]


def _json_kind(value: object) -> str:
    """A JSON value's type in words, with a short excerpt: 'text "eight"', 'a list', ..."""
    if isinstance(value, bool):
        return f"{str(value).lower()} (true/false)"
    if isinstance(value, str):
        return f"text {json.dumps(value[:40], ensure_ascii=False)}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"[:60]
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "null"


def _side_shown(path: Path, state_file: Path, state_shown: str) -> str:
    """A side file as users see it: beside `state_shown` (how the state file is shown) when it is there."""
    folder = posixpath.dirname(state_shown)
    if path.parent == state_file.parent:
        return posixpath.join(folder, path.name)
    if path.parent == state_file.parent.parent and folder:
        return posixpath.join(posixpath.dirname(folder), path.name)
    return str(path)


def _text_field(value: object) -> str:
    """A side file's value as clean text ('' for none)."""
    return clean_text(str(value)) if value else ""


def read_adapter(side: SideFiles) -> AdapterInfo | None:
    """PEFT settings from the first `adapter_config.json` found."""
    for folder in side.folders:
        config = side.json_object(folder, "adapter_config.json")
        if config is None:
            continue
        modules = config.get("target_modules")
        if isinstance(modules, str):
            modules = [modules]
        return AdapterInfo(
            peft_type=_text_field(config.get("peft_type")),
            task_type=_text_field(config.get("task_type")),
            r=config["r"] if isinstance(config.get("r"), int) else None,
            lora_alpha=_number(config.get("lora_alpha")),
            lora_dropout=_number(config.get("lora_dropout")),
            target_modules=tuple(sorted(_text_field(m) for m in modules)) if isinstance(modules, list) else (),
            base_model=_text_field(config.get("base_model_name_or_path")),
        )
    return None


def find_base_model(side: SideFiles, adapter: AdapterInfo | None) -> tuple[str, str]:
    """Base model id and the file it came from, in the documented order."""
    if adapter and adapter.base_model:
        return adapter.base_model, "adapter_config.json"
    for folder in side.folders:
        config = side.json_object(folder, "config.json")
        if config and isinstance(config.get("_name_or_path"), str) and config["_name_or_path"]:
            return clean_text(config["_name_or_path"]), "config.json"
    for folder in side.folders:
        front = side.front_matter(folder)
        value = front.get("base_model")
        if isinstance(value, list) and value:
            value = value[0]
        if isinstance(value, str) and value:
            return clean_text(value), "README.md"
    return "", ""


def read_front_matter(path: Path, problems: list[tuple[Path, str]] | None = None) -> dict[str, Any]:
    """The YAML front matter of a model card, or {} when absent or invalid (then noted in `problems`)."""
    try:
        text = read_regular(path, MAX_CARD_BYTES, truncate=True).decode("utf-8-sig", errors="replace")
    except OSError:
        return {}
    match = re.match(r"^---\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", text, re.DOTALL)
    if not match:
        return {}
    try:
        front = yaml.safe_load(match.group(1))
    except RecursionError:
        reason = "nested too deeply"
    except Exception as exc:
        # PyYAML's constructors raise more than YAMLError (an impossible date ValueError, `!!timestamp x`
        # AttributeError): a model card is never worth a crash
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
    else:
        return front if isinstance(front, dict) else {}
    if problems is not None:
        problems.append((path, f"front matter is not valid YAML ({reason}); ignored"))
    return {}



LANGUAGE_MODEL_HEADS = ("ForCausalLM", "ForConditionalGeneration", "LMHeadModel", "ForMaskedLM",
                        "EncoderDecoderModel")


def _vocabulary(side: SideFiles) -> dict[str, Any]:
    """`vocab_size` of config.json, and whether its `architectures` predict tokens (loss on the ln(V) scale)."""
    for folder in side.folders:
        config = side.json_object(folder, "config.json")
        if not config:
            continue
        vocab = config.get("vocab_size")
        architectures = config.get("architectures")
        heads = [a for a in architectures if isinstance(a, str)] if isinstance(architectures, list) else []
        return {
            "vocab_size": vocab if isinstance(vocab, int) and not isinstance(vocab, bool) and 1 < vocab < 10**9 else None,
            "language_model": any(a.endswith(LANGUAGE_MODEL_HEADS) for a in heads),
        }
    return {}


def _model_type(side: SideFiles) -> str:
    for folder in side.folders:
        config = side.json_object(folder, "config.json")
        if config and isinstance(config.get("model_type"), str):
            return clean_text(config["model_type"])
    return ""

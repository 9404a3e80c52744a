"""Making user and checkpoint text safe where it is published outside the pages' Markdown.

- `csv_safe_cell` / `csv_safe_table`: a CSV opened in a spreadsheet runs a cell that
  starts with `=`, `+`, `-`, `@`, a tab or a carriage return as a formula
  (`=HYPERLINK(...)` in a metric key becomes a header cell of `log_history.csv`).
  As OWASP advises, such text cells get a leading `'`; numbers, negative ones
  included, stay numbers.
- `shown_local_path`: a local path as a published page may show it: relative to the
  registry's folder when inside it, else with the home folder written `~`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePath

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What a spreadsheet reads as the start of a formula (OWASP, 'CSV Injection')."""


def csv_safe_cell(text: str) -> str:
    """`text` prefixed with `'` when a spreadsheet would run it as a formula; otherwise unchanged.

    For text cells only (headers and string values): a number is written by the
    CSV writer as a number, and `-0.5` is one, not a formula.
    """
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def csv_safe_table(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of `table` whose header and text cells are `csv_safe_cell`ed; number columns untouched."""
    safe = table.rename(columns=lambda column: csv_safe_cell(str(column)))
    for position in range(safe.shape[1]):
        column = safe.iloc[:, position]
        if column.dtype == object or pd.api.types.is_string_dtype(column.dtype):
            safe.isetitem(position, column.map(lambda value: csv_safe_cell(value) if isinstance(value, str) else value))
    return safe


def shown_local_path(path: str, registry_dir: Path) -> str:
    """A local path as a published page shows it: never an absolute path into a home folder.

    Relative to `registry_dir` (the folder of checkpoints.yaml) when the path is
    inside it; else, when inside the user's home folder, written from `~`; other
    absolute paths (`/data/runs/x`) as they are. A relative path is taken
    against `registry_dir`. URLs and Hub ids (`Qwen/Qwen2.5-7B`) are not local
    paths: the caller shows those as they are.
    """
    windows = _WINDOWS_HOME.match(path)
    if windows:
        return "~" + path[windows.end():].replace("\\", "/")
    given = PurePath(os.path.expanduser(path)) if path.startswith("~") else PurePath(path)
    absolute = Path(os.path.normpath(registry_dir / given)) if not given.is_absolute() else Path(os.path.normpath(given))
    base = Path(os.path.normpath(registry_dir.absolute()))
    # is_relative_to rather than `in absolute.parents`, which builds and compares every parent: a fifth of
    # planning a 1,000-model site's pages went into these tests (profiled).
    if absolute == base:
        return "."
    if absolute.is_relative_to(base):
        return absolute.relative_to(base).as_posix()
    for home in home_folders():
        if absolute == home:
            return "~"
        if absolute.is_relative_to(home):
            return "~/" + absolute.relative_to(home).as_posix()
    other = _OTHER_HOME.match(absolute.as_posix())  # another user's, or the training machine's
    if other:
        return "~" + absolute.as_posix()[other.end():]
    return absolute.as_posix()


_OTHER_HOME = re.compile(r"^/(?:(?:home|Users|users)/[^/]+|root|var/home/[^/]+)(?=/|$)")
_WINDOWS_HOME = re.compile(r"^[A-Za-z]:[\\/](?:Users|Documents and Settings)[\\/][^\\/]+(?=[\\/]|$)")
_LOCAL_LOOKING = re.compile(r"^(?:/|~|\.{1,2}(?:/|$)|[A-Za-z]:[\\/]|\\\\)")


def looks_local(text: str) -> bool:
    """Whether a base model or path names a local file rather than a Hub id or a URL."""
    return bool(_LOCAL_LOOKING.match(text))


def shown_base_model(text: str, registry_dir: Path) -> str:
    """A base model as published: a local path through `shown_local_path`, a Hub id or URL as it is."""
    return shown_local_path(text, registry_dir) if looks_local(text) else text


def home_folders() -> list[Path]:
    """The home folder by $HOME and by the password database (they may differ)."""
    homes = []
    for home in (os.environ.get("HOME", ""), os.path.expanduser("~")):
        if home and os.path.isabs(home) and os.path.normpath(home) != "/":
            path = Path(os.path.normpath(home))
            if path not in homes:
                homes.append(path)
    return homes

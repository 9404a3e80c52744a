"""The downloads beside the pages: summary.json, each model's figures.json and log_history.csv.

Numbers are written exactly as read or computed; JSON has no NaN, so a value that
is not finite is null. The CSV is opened in spreadsheets: its text cells are
neutralised against formulas.

Large sites (`group_pages.is_large`) write the same content in fewer bytes: the JSON
without indentation, and log_history.csv gzip-compressed (log_history.csv.gz, ~40% of
the bytes; the model page's download link says so).
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import json
import math
from collections.abc import Sequence

import numpy as np
import orjson
import pandas as pd

from generator.pages import model_page_path
from generator.records import EntryProblem, Figures, Finding, ModelReport, SiteLayout
from generator.sanitize import csv_safe_cell


def summary_document(reports: Sequence[ModelReport], problems: Sequence[EntryProblem], layout: SiteLayout,
                     compact: bool = False) -> bytes:
    """summary.json: every model's headline figures, numbers as read; without indentation when `compact`."""
    models = []
    for report in reports:
        f: Figures = report.figures
        page = layout.page_url(model_page_path(report.entry.slug))
        model: dict[str, object] = {
            "name": report.entry.name,
            "slug": report.entry.slug,
            "page": page,
        }
        if layout.site_url:
            model["url"] = layout.absolute(page)
        model.update(
            {
                "phase": report.entry.phase,
                "base_model": report.base_model,
                "kind": f.kind.value,
                "steps": f.steps,
                "last_logged_step": f.last_logged_step,
                "start_step": f.start_step,
                "start_loss": _json_number(f.start_loss),
                "end_step": f.end_step,
                "end_loss": _json_number(f.end_loss),
                "min_loss": _json_number(f.min_loss),
                "min_loss_step": f.min_loss_step,
                "convergence": f.convergence_label,
                "fall_rate": _json_number(f.fall_rate),
                "fall_end_step": f.fall_end_step,
                "stabilised_step": f.stabilised_step,
                "findings": [finding_document(finding) for finding in f.findings],
                "eval": {
                    m.column: {
                        "last": _json_number(m.last),
                        "last_step": m.last_step,
                        "best": _json_number(m.best),
                        "best_step": m.best_step,
                        "direction": m.direction,
                    }
                    for m in f.eval_metrics
                },
                "best_checkpoint": _json_value(dataclasses.asdict(f.best_checkpoint)) if f.best_checkpoint else None,
                "resumed": [{"at_step": at, "after_step": after} for at, after in report.run.resumes],
                "non_finite": [
                    {"column": item.column, "step": item.step, "value": item.value} for item in f.non_finite
                ],
            }
        )
        models.append(model)
    document = {
        "models": models,
        "problems": [{"entry": p.label, "message": p.message} for p in problems],
    }
    return _json_bytes(document, compact)


def finding_document(finding: Finding) -> dict[str, object]:
    """A finding as summary.json lists it: what a CI job needs to act on it."""
    return {
        "code": finding.code,
        "severity": finding.severity.value,
        "subject": finding.subject,
        "values": {key: _json_number(value) for key, value in finding.values.items()},
        "steps": list(finding.steps),
    }


def figures_document(report: ModelReport, compact: bool = False) -> bytes:
    """figures.json of one model: every computed figure, exactly as computed; without indentation when
    `compact`."""
    figures = dataclasses.asdict(report.figures)
    figures["convergence_label"] = report.figures.convergence_label
    figures["level_crossings"] = [{"level": level, "step": step} for level, step in report.figures.level_crossings]
    figures["findings"] = [finding_document(finding) for finding in report.figures.findings]
    document = {
        "name": report.entry.name,
        "slug": report.entry.slug,
        "base_model": report.base_model,
        "trainer_state_sha256": report.run.state_sha256,
        "figures": {key: _json_value(value) for key, value in figures.items()},
        "analysis": list(report.analysis),
    }
    return _json_bytes(document, compact)


def log_history_csv(report: ModelReport, compressed: bool = False) -> bytes:
    """The train and eval rows as one CSV, by step; `kind` tells which is which. Gzip-compressed when
    `compressed` (`gzip_bytes`)."""
    if compressed:
        return gzip_bytes(log_history_csv(report))
    tables = [table.assign(kind=kind) for kind, table in (("train", report.run.train), ("eval", report.run.eval))
              if len(table)]
    if not tables:
        return b"step,kind\n"
    merged = pd.concat(tables, ignore_index=True, sort=False)
    merged["_order"] = merged["kind"].map({"train": 0, "eval": 1})
    merged = merged.sort_values(["step", "_order"], kind="stable").drop(columns="_order")
    columns = ["step", "kind", *sorted(c for c in merged.columns if c not in ("step", "kind"))]
    return table_csv(merged[columns])


def table_csv(table: pd.DataFrame) -> bytes:
    """`table` as CSV bytes, written as pandas' `to_csv(index=False)` writes it (tests compare the two),
    three to five times as fast (a 3,000-row log: 8-11 ms against 29-51 ms): numbers as Python writes them,
    NaN as an empty cell. Keys and text cells starting like a formula are neutralised (`csv_safe_cell`):
    the CSV is opened in spreadsheets."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([csv_safe_cell(str(column)) for column in table.columns])
    columns = [_csv_cells(table.iloc[:, position]) for position in range(table.shape[1])]
    text = [cells for position, cells in enumerate(columns) if _is_text(table.iloc[:, position])]
    rows = zip(*columns, strict=True)
    if table.shape[1] > 1 and not any(_needs_quotes(cell) for cells in text for cell in set(cells)):
        # Numbers and plain words need no quoting: joined directly, several times faster than csv.writer.
        buffer.writelines(",".join(row) + "\n" for row in rows)
    else:
        writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _is_text(column: pd.Series) -> bool:
    return not (pd.api.types.is_float_dtype(column.dtype) or pd.api.types.is_integer_dtype(column.dtype)
                or pd.api.types.is_bool_dtype(column.dtype))


def _needs_quotes(cell: str) -> bool:
    return any(character in cell for character in ',"\r\n')


def _csv_cells(column: pd.Series) -> list[str]:
    if pd.api.types.is_float_dtype(column.dtype):
        return _float_cells(np.ascontiguousarray(column.to_numpy(dtype="float64")))
    if pd.api.types.is_integer_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
        return [str(value) for value in column.tolist()]
    return ["" if value is None or value != value else csv_safe_cell(str(value)) for value in column.tolist()]


def gzip_bytes(data: bytes) -> bytes:
    """Gzip with no time or file name in the header: the same bytes in give the same bytes out.

    Level 6 (gzip's default), not 9: a 3,000-row log_history.csv (393 KB) compresses in 20 ms instead of
    38, to 151.0 KB instead of 150.2 (measured here)."""
    return gzip.compress(data, compresslevel=6, mtime=0)


def _json_bytes(document: object, compact: bool = False) -> bytes:
    if compact:
        text = json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    else:
        text = json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def _json_value(value: object) -> object:
    if isinstance(value, float):
        return _json_number(value)
    if isinstance(value, (list, tuple)):
        return [_json_value(item) for item in value]
    if isinstance(value, dict):
        return {key: _json_value(item) for key, item in value.items()}
    return value


def _json_number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


REPR_BELOW = 1e-4
"""Python writes floats below this (in magnitude) with an exponent ('1e-05'); orjson does not ('0.00001').
From 1e16 on both write one ('1e+16')."""


def _float_cells(values: np.ndarray) -> list[str]:
    """Each float as Python's repr writes it (as pandas' to_csv does), NaN as an empty cell.

    orjson writes the same shortest round-trip digits about three times faster than repr one by one
    (1.6 million random floats: 0.33 s against 0.90 s; the bench's 100,000-row log_history.csv: 0.52 ->
    0.33 s in all, measured here), except for what it
    writes another way: NaN and infinities (null), and magnitudes below REPR_BELOW; those go through
    repr. tests/test_hostile_sanitize.py compares the result with repr on values of every exponent, and
    the CSV with pandas'."""
    if len(values) == 0:
        return []
    # orjson writes NaN and the infinities as null: all become empty cells at once (a sparse eval column
    # is mostly NaN), then the infinities get their repr below.
    text = orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY).decode("ascii")[1:-1]
    cells = text.replace("null", "").split(",")
    magnitude = np.abs(values)
    other = np.isinf(values) | ((magnitude > 0) & (magnitude < REPR_BELOW))
    for position in np.flatnonzero(other).tolist():
        cells[position] = repr(float(values[position]))
    return cells

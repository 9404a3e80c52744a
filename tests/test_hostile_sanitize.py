"""generator.sanitize: CSV cells a spreadsheet would run, and local paths a page would publish."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pandas as pd
import pytest

from generator.sanitize import csv_safe_cell, csv_safe_table, looks_local, shown_base_model, shown_local_path


@pytest.mark.parametrize("text", ['=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd", "=1"])
def test_formula_cells_are_neutralised(text: str) -> None:
    assert csv_safe_cell(text) == "'" + text


@pytest.mark.parametrize("text", ["loss", "eval_loss", "rewards/margins", "", "a=b", "x-1", "'quoted"])
def test_ordinary_cells_are_unchanged(text: str) -> None:
    assert csv_safe_cell(text) == text


def test_a_table_keeps_its_numbers_and_neutralises_header_and_text() -> None:
    table = pd.DataFrame({
        "step": [1, 2],
        "kind": ["train", "=cmd|' /C calc'!A0"],
        '=HYPERLINK("http://evil","x")': [-0.5, -1e-3],
        "loss": [-0.25, 1.5],
    })
    text = csv_safe_table(table).to_csv(index=False, lineterminator="\n")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["step", "kind", '\'=HYPERLINK("http://evil","x")', "loss"]
    assert rows[1] == ["1", "train", "-0.5", "-0.25"]
    assert rows[2] == ["2", "'=cmd|' /C calc'!A0", "-0.001", "1.5"]
    assert list(table.columns)[2].startswith("=")  # the input is not changed


def test_paths_inside_the_registry_folder_are_relative(tmp_path: Path) -> None:
    assert shown_local_path(str(tmp_path / "runs" / "a"), tmp_path) == "runs/a"
    assert shown_local_path("runs/a/../b", tmp_path) == "runs/b"
    assert shown_local_path(str(tmp_path), tmp_path) == "."


def test_a_home_folder_is_never_published(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    home = tmp_path / "home" / "alice"
    monkeypatch.setenv("HOME", str(home))
    registry = tmp_path / "elsewhere"
    for path in (str(home / "models" / "llama"), "~/models/llama", "/home/bob/models/llama",
                 "/Users/bob/models/llama", "/root/models/llama", "C:\\Users\\bob\\models\\llama"):
        shown = shown_local_path(path, registry)
        assert shown == "~/models/llama", (path, shown)
        assert "alice" not in shown and "bob" not in shown
    assert shown_local_path("/data/runs/x", registry) == "/data/runs/x"
    assert os.path.expanduser("~") not in shown_local_path(os.path.expanduser("~/x"), registry)


def test_base_models_that_are_hub_ids_or_urls_are_kept(tmp_path: Path) -> None:
    assert shown_base_model("Qwen/Qwen2.5-7B-Instruct", tmp_path) == "Qwen/Qwen2.5-7B-Instruct"
    assert shown_base_model("s3://bucket/model", tmp_path) == "s3://bucket/model"
    assert shown_base_model("/home/carol/llama", tmp_path) == "~/llama"
    assert looks_local("./model") and looks_local("../model") and not looks_local("org/model")


@pytest.mark.parametrize("seed", range(30))
def test_the_fast_csv_writer_writes_what_pandas_writes(seed: int) -> None:
    # log_history.csv is written by downloads.table_csv, not pandas (faster): same bytes, on tables
    # with every kind of float (tiny, huge, negative zero, NaN, infinities, whole), ints and text cells.
    import numpy as np
    import pandas as pd

    from generator.downloads import table_csv
    from generator.sanitize import csv_safe_table

    rng = np.random.default_rng(seed)
    rows = int(rng.integers(0, 300))
    pool = np.array([0.0, -0.0, 1.0, 1e-5, 1e-4, 9.999e15, 1e16, 1.5e300, 5e-324, 0.1 + 0.2, np.nan, np.inf, -np.inf,
                     123456789.0, 2.0**53, -7.25e-12])
    table = pd.DataFrame({
        "step": rng.integers(0, 2**40, rows),
        "kind": rng.choice(["train", "eval"], rows),
        "loss": rng.choice(pool, rows) * rng.choice([1.0, rng.normal()], rows),
        "=cmd|'/c calc'!A1": rng.normal(0, 10.0 ** int(rng.integers(-20, 20)), rows),
        'a "quoted", key\nwith a newline': rng.lognormal(size=rows),
        "flag": rng.integers(0, 2, rows).astype(bool),
    })
    table.loc[rng.random(rows) < 0.2, "=cmd|'/c calc'!A1"] = np.nan
    if seed % 2:  # text that must be quoted, now and then
        table["note"] = rng.choice(np.array(["a,b", 'say "hi"', "x\ny", "plain", "-1+1", None], dtype=object), rows)
    expected = csv_safe_table(table).to_csv(index=False, lineterminator="\n").encode("utf-8")
    assert table_csv(table) == expected


@pytest.mark.parametrize("seed", range(20))
def test_float_cells_are_pythons_repr_at_every_exponent(seed: int) -> None:
    # Floats are written by orjson where it writes what repr writes: check that on values of every
    # exponent, subnormals, zeros of both signs, whole numbers, NaN and infinities.
    import numpy as np

    from generator.downloads import _float_cells

    rng = np.random.default_rng(seed)
    count = 5000
    exponents = rng.uniform(-324, 308, count) if seed % 2 else rng.uniform(-8, 20, count)
    values = rng.choice([-1.0, 1.0], count) * rng.random(count) * 10.0 ** exponents
    for special, share in ((np.nan, 0.01), (np.inf, 0.005), (-np.inf, 0.005), (0.0, 0.01), (-0.0, 0.01)):
        values[rng.random(count) < share] = special
    whole = rng.random(count) < 0.1
    values[whole] = rng.integers(-10**6, 10**6, count)[whole]
    assert _float_cells(values) == ["" if v != v else repr(v) for v in values.tolist()]
    assert _float_cells(np.array([], dtype="float64")) == []

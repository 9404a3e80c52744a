"""Hostile input as the published pages and downloads see it (issue 13, items 5, 10 and 12)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from conftest import sft_rows, write_state
from generator.site import generate

pytestmark = pytest.mark.slow  # builds sites: an integration test, out of the fast unit subset


def project(tmp_path: Path, entries: str) -> Path:
    registry = tmp_path / "checkpoints.yaml"
    registry.write_text(f"checkpoints:\n{entries}", encoding="utf-8")
    return registry


def test_a_formula_as_metric_key_is_neutralised_in_the_csv(tmp_path: Path) -> None:
    rows = [dict(row, **{'=HYPERLINK("http://evil.example","x")': 1.0, "+cmd": 2.0}) for row in sft_rows([2.0, 1.5, 1.2])]
    write_state(tmp_path / "run", rows)
    registry = project(tmp_path, "  - name: Run\n    path: run\n")
    generate(registry, tmp_path / "docs")
    text = (tmp_path / "docs/models/run/log_history.csv").read_text(encoding="utf-8")
    header = next(csv.reader(io.StringIO(text)))
    assert "'=HYPERLINK(\"http://evil.example\",\"x\")" in header and "'+cmd" in header
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in header)
    assert "1.0" in text.splitlines()[1]  # numbers stay numbers


def test_pages_never_publish_the_home_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home" / "alice"
    run = home / "runs" / "secret-project" / "checkpoint-30"
    write_state(run, sft_rows([2.0, 1.5, 1.2]))
    (run / "adapter_config.json").write_text(
        f'{{"base_model_name_or_path": "{home}/models/base", "peft_type": "LORA"}}', encoding="utf-8")
    monkeypatch.setenv("HOME", str(home))
    (tmp_path / "site").mkdir()
    registry = project(tmp_path / "site", f"  - name: Run\n    path: {run}\n")
    generate(registry, tmp_path / "site" / "docs")
    published = "\n".join(path.read_text(encoding="utf-8") for path in (tmp_path / "site/docs").rglob("*")
                          if path.suffix in (".md", ".json", ".csv"))
    assert str(home) not in published
    assert "~/runs/secret-project/checkpoint-30" in published
    assert "~/models/base" in published


def test_a_log_of_many_keys_draws_a_bounded_number_of_panels(tmp_path: Path) -> None:
    # Values that change from row to row: a metric with one value throughout is stated, not drawn.
    rows = [dict(row, **{f"metric_{n:03d}": float(n) + 0.5 * i for n in range(60)})
            for i, row in enumerate(sft_rows([2.0, 1.5, 1.2]))]
    write_state(tmp_path / "run", rows)
    registry = project(tmp_path, "  - name: Run\n    path: run\n")
    result = generate(registry, tmp_path / "docs")
    images = {path.name for path in (tmp_path / "docs/models/run").glob("other-metrics*.png")}
    assert images == {f"other-metrics-{n}.png" for n in range(1, 49)}  # one image per panel, 48 at most
    assert any("12 more metric keys than a page plots were left out of the plots (metric_048, metric_049, "
               "metric_050, ...)" in warning for warning in result.warnings())
    assert "12 more keys are not drawn" in (tmp_path / "docs/models/run.md").read_text(encoding="utf-8")
    assert "metric_059" in (tmp_path / "docs/models/run/log_history.csv").read_text(encoding="utf-8")


def test_show_paths_false_keeps_paths_off_the_pages(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "secret-project" / "checkpoint-30"
    write_state(run, sft_rows([2.0, 1.5, 1.2]))
    (run / "adapter_config.json").write_text('{"base_model_name_or_path": "/data/models/base", "peft_type": "LORA"}',
                                             encoding="utf-8")
    registry = tmp_path / "checkpoints.yaml"
    registry.write_text(f"site:\n  show_paths: false\ncheckpoints:\n  - name: Run\n    path: {run}\n", encoding="utf-8")
    generate(registry, tmp_path / "docs")
    published = "\n".join(path.read_text(encoding="utf-8") for path in (tmp_path / "docs").rglob("*")
                          if path.suffix in (".md", ".json"))
    assert "secret-project" not in published and "/data/models" not in published
    assert "a local model (path not shown)" in published
    assert "SHA-256" in published  # the rest of the Source section stays

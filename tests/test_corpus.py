"""Every real trainer_state.json of the shared corpus is read without a crash.

Each file either becomes a report (figures, sentences, a page) or is refused
with a traindocs error that names the file; no other exception escapes.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from generator.analysis import analyse
from generator.errors import CheckpointError
from generator.narrative import model_analysis
from generator.reader import read_run
from generator.records import AnalysisSettings, CheckpointEntry
from generator.site import generate

pytestmark = [pytest.mark.corpus, pytest.mark.slow]


def corpus_files(corpus: Path) -> list[Path]:
    return sorted(corpus.glob("*/trainer_state.json"))


def entry_for(index: int, path: Path) -> CheckpointEntry:
    return CheckpointEntry(index=index, name=path.parent.name, slug=f"run-{index}", path=str(path), resolved=path)


def test_each_corpus_file_is_read_or_refused_with_a_reason(corpus_dir: Path) -> None:
    files = corpus_files(corpus_dir)
    assert len(files) >= 90, "the corpus should hold about a hundred trainer_state.json files"
    read, refused = 0, []
    for index, path in enumerate(files):
        entry = entry_for(index, path)
        try:
            run = read_run(entry)
        except CheckpointError as exc:
            assert str(path) in str(exc) or path.name in str(exc)
            refused.append(path.parent.name)
            continue
        figures = analyse(run, AnalysisSettings())
        sentences = model_analysis(figures, AnalysisSettings())
        read += 1
        # Independent reading: the first and last finite train losses in file order.
        history = json.loads(path.read_text(encoding="utf-8-sig"))["log_history"]
        losses = [
            (row["step"], row["loss"]) for row in history
            if isinstance(row, dict) and isinstance(row.get("loss"), (int, float)) and isinstance(row.get("step"), (int, float))
            and math.isfinite(row["loss"]) and not any(k.startswith("eval_") for k in row)
        ]
        if losses and len({step for step, _ in losses}) == len(losses):
            assert figures.start_loss == min(losses)[1], path
            assert figures.end_loss == max(losses)[1], path
        for sentence in sentences:
            # A bare 'nan' would be a number printed without a check ('NaN' names a logged value).
            assert not re.search(r"\bnan\b", sentence), (path, sentence)
    # Files known to hold no training log at all (empty log_history, unrelated JSON) are refused.
    assert read >= 85, f"only {read} corpus files were readable; refused: {refused}"
    assert "030_Math-Riddle-Factory" in refused and "046_LogShort" in refused


def test_the_whole_corpus_builds_as_one_site(corpus_dir: Path, tmp_path: Path) -> None:
    files = corpus_files(corpus_dir)
    lines = ["site:\n  title: Corpus\ncheckpoints:\n"]
    lines += [f"  - name: {json.dumps(path.parent.name)}\n    path: {json.dumps(str(path))}\n" for path in files]
    registry = tmp_path / "checkpoints.yaml"
    registry.write_text("".join(lines), encoding="utf-8")
    result = generate(registry, tmp_path / "docs")
    assert len(result.reports) + len(result.problems) == len(files)
    for report in result.reports:
        assert (tmp_path / "docs" / f"models/{report.entry.slug}.md").is_file()
    (tmp_path / "mkdocs.yml").write_text(
        "site_name: Corpus\ntheme: {name: material, font: false}\nplugins: [search, traindocs]\n", encoding="utf-8"
    )
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "-f", str(tmp_path / "mkdocs.yml"), "-d", str(tmp_path / "site")],
        capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    built = sorted((tmp_path / "site/models").glob("*/index.html"))
    assert len(built) == len(result.reports)

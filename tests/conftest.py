"""Shared fixtures: the repository's example project, the shared corpus, golden files."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from generator.records import TrainingRun

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("TRAINDOCS_CORPUS") or REPO.parent / "shared" / "corpus")
"""Real trainer_state.json files: $TRAINDOCS_CORPUS, else ../shared/corpus beside the repository."""
GOLDEN = Path(__file__).resolve().parent / "golden"


@pytest.fixture(autouse=True, scope="session")
def private_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """traindocs' cache (readings, remote mirrors) in a folder of this test session, never the user's."""
    folder = tmp_path_factory.mktemp("traindocs-cache")
    os.environ["TRAINDOCS_CACHE_DIR"] = str(folder)
    return folder


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite tests/golden/ from the current output (review the diff before committing)",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture
def example_project(tmp_path: Path) -> Path:
    """A copy of the shipped example project (registry, mkdocs.yml, example checkpoints)."""
    return copy_example_project(tmp_path)


def copy_example_project(root: Path) -> Path:
    """Copy the shipped example project into root/project (for module-scoped fixtures too); returns it."""
    project = root / "project"
    project.mkdir()
    for name in ("checkpoints.yaml", "mkdocs.yml"):
        shutil.copy2(REPO / name, project / name)
    shutil.copytree(REPO / "examples", project / "examples", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (project / "docs").mkdir()
    return project


@pytest.fixture
def corpus_dir() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"the shared corpus is not here ({CORPUS}); it exists beside the repository on dev machines and in "
                    "CI, or set TRAINDOCS_CORPUS to a folder of trainer_state.json folders")
    return CORPUS


def write_state(folder: Path, rows: list[dict[str, object]], **top: object) -> Path:
    """Write a trainer_state.json with `rows` as log_history; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    state: dict[str, object] = {"global_step": max((int(r.get("step", 0)) for r in rows), default=0)}  # type: ignore[call-overload]
    state.update(top)
    state["log_history"] = rows
    path = folder / "trainer_state.json"
    path.write_text(json.dumps(state, indent=2), encoding="utf-8")
    return path


def sft_rows(losses: list[float], every: int = 10) -> list[dict[str, object]]:
    """TRL-style train rows with the given losses at steps every, 2*every, ..."""
    return [
        {"loss": loss, "learning_rate": 1e-4, "grad_norm": 0.5, "step": every * (i + 1), "epoch": 0.1 * (i + 1)}
        for i, loss in enumerate(losses)
    ]


def run_from(train: dict[str, Any], evals: dict[str, Any] | None = None,
             state: dict[str, object] | None = None, summary: dict[str, float] | None = None) -> TrainingRun:
    """A TrainingRun as the reader makes it, from plain columns (for analysis and narrative tests)."""
    return TrainingRun(
        state_file=Path("trainer_state.json"),
        checkpoint_dir=Path("."),
        train=pd.DataFrame(train),
        eval=pd.DataFrame(evals or {"step": pd.Series([], dtype="int64")}),
        summary=summary or {},
        state=state or {},
        state_sha256="0" * 64,
    )


def run_of_state(state: dict[str, Any]) -> TrainingRun:
    """What the reader makes of a trainer_state.json document (its tables, summary row and state), in memory."""
    from generator.reader import STATE_KEYS, split_log_history

    tables = split_log_history(list(state["log_history"]))
    assert not tables.skipped, tables.skipped
    return TrainingRun(
        state_file=Path("trainer_state.json"),
        checkpoint_dir=Path("."),
        train=tables.train,
        eval=tables.eval,
        summary=tables.summary,
        state={key: state[key] for key in STATE_KEYS if key in state},
        state_sha256="0" * 64,
        resumes=tables.resumes,
        non_finite=tables.non_finite,
    )

"""`generate(defer=True)`, as `traindocs serve` runs it: the pages of a change first, the overviews of many runs
by the generation after; that one leaves docs/ as a cold generation does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import sft_rows, write_state
from generator.plan import OVERVIEW_IN_WORKERS
from generator.site import MANIFEST, generate

pytestmark = pytest.mark.slow  # generates sites of 21 runs, several times

RUNS = OVERVIEW_IN_WORKERS + 1
"""Enough runs of one kind for its overviews to be deferrable."""


def project_of(root: Path, runs: int = RUNS) -> Path:
    entries = "".join(f"  - name: Run {n}\n    path: runs/run-{n}\n" for n in range(runs))
    for n in range(runs):
        write_state(root / "runs" / f"run-{n}", sft_rows([2.0 - 0.01 * n, 1.5, 1.0, 0.8, 0.7, 0.6]))
    registry = root / "checkpoints.yaml"
    registry.write_text("site:\n  title: Test report\ncheckpoints:\n" + entries, encoding="utf-8")
    return registry


def edit_last_loss(state: Path, loss: float) -> None:
    document = json.loads(state.read_text(encoding="utf-8"))
    document["log_history"][-1]["loss"] = loss
    state.write_text(json.dumps(document, indent=2), encoding="utf-8")


def snapshot(docs: Path) -> dict[str, bytes]:
    return {p.relative_to(docs).as_posix(): p.read_bytes() for p in sorted(docs.rglob("*"))
            if p.is_file() and p.name != MANIFEST}


def test_deferred_overviews_wait_for_the_next_generation_which_matches_a_cold_one(tmp_path: Path) -> None:
    registry = project_of(tmp_path / "project")
    docs = tmp_path / "project" / "docs"
    generate(registry, docs, cache=False)
    before = snapshot(docs)
    edit_last_loss(tmp_path / "project" / "runs" / "run-3" / "trainer_state.json", 0.1234)

    first = generate(registry, docs, cache=False, defer=True)
    assert first.deferred, "the overviews of more than OVERVIEW_IN_WORKERS runs are left for later"
    assert all(path.startswith("assets/traindocs/") for path in first.deferred), first.deferred
    assert not set(first.deferred) & set(first.written + first.unchanged)
    assert "models/run-3.md" in first.written and "0.1234" in (docs / "models/run-3.md").read_text()
    for path in first.deferred:  # the last version, still there (never a missing image)
        assert (docs / path).read_bytes() == before[path]

    second = generate(registry, docs, cache=False)  # the follow-up build's generation
    assert not second.deferred
    assert set(first.deferred) <= set(second.written), "every deferred file is drawn now"
    assert set(second.written) <= set(first.deferred)  # and nothing else was redone
    cold = tmp_path / "cold"
    generate(registry, cold, cache=False)
    assert snapshot(docs) == snapshot(cold)
    assert not generate(registry, docs, cache=False).written


def test_without_defer_or_with_few_runs_nothing_is_deferred(tmp_path: Path) -> None:
    many = project_of(tmp_path / "many")
    few = project_of(tmp_path / "few", runs=OVERVIEW_IN_WORKERS)
    for registry in (many, few):
        generate(registry, registry.parent / "docs", cache=False)
        edit_last_loss(registry.parent / "runs" / "run-3" / "trainer_state.json", 0.1234)
    assert not generate(many, many.parent / "docs", cache=False).deferred  # `generate` and `build`: complete
    assert not generate(few, few.parent / "docs", cache=False, defer=True).deferred  # drawn in the workers: quick


def test_a_new_overview_is_drawn_at_once_even_when_deferring(tmp_path: Path) -> None:
    registry = project_of(tmp_path / "project")
    docs = tmp_path / "project" / "docs"
    result = generate(registry, docs, cache=False, defer=True)  # nothing to show yet: no image is left missing
    assert not result.deferred
    assert any(path.startswith("assets/traindocs/") and path.endswith(".png") for path in result.written)

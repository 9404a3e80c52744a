"""The reading cache: an unchanged checkpoint is not parsed again, a changed one always is."""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from conftest import sft_rows, write_state
from generator import pages, pipeline, site
from generator.analysis import analyse
from generator.cache import RUNS_DIR, Cached, RunCache, _read_arrays, inputs_key
from generator.cli import main
from generator.narrative import model_analysis
from generator.overview import run_curve
from generator.reader import read_run
from generator.records import AnalysisSettings, CheckpointEntry, DeferredTable, SiteLayout, TrainingRun

pytestmark = pytest.mark.slow  # builds sites: an integration test, out of the fast unit subset

SETTINGS = AnalysisSettings()


def _project(tmp_path: Path) -> Path:
    rows = [*sft_rows([2.0, 1.5, 1.2, float("nan"), 0.9]), {"eval_loss": 1.1, "eval_accuracy": 0.7, "step": 50}]
    write_state(tmp_path / "run" / "checkpoint-50", rows, best_model_checkpoint="out\\checkpoint-50", best_metric=1.1)
    (tmp_path / "checkpoints.yaml").write_text("checkpoints:\n  - {name: Run, path: run}\n", encoding="utf-8")
    return tmp_path / "checkpoints.yaml"


def _generate(registry: Path, cache: RunCache) -> dict[str, bytes]:
    docs = registry.parent / "docs"
    site.generate(registry, docs, cache=cache)
    return {p.relative_to(docs).as_posix(): p.read_bytes() for p in sorted(docs.rglob("*")) if p.is_file()}


def test_an_unchanged_checkpoint_is_not_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry, cache = _project(tmp_path), RunCache(tmp_path / "cache")
    first = _generate(registry, cache)

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("read_run called for an unchanged checkpoint")

    monkeypatch.setattr(pipeline, "read_run", no_reading)
    second = _generate(registry, cache)
    assert second == first


def test_the_cached_reading_equals_a_fresh_one(tmp_path: Path) -> None:
    registry = _project(tmp_path)
    state = tmp_path / "run" / "checkpoint-50" / "trainer_state.json"
    entry = CheckpointEntry(0, "Run", "run", "run", tmp_path / "run")
    run = read_run(entry, shown_file="run/checkpoint-50/trainer_state.json")
    figures = analyse(run, SETTINGS)
    analysis = tuple(model_analysis(figures, SETTINGS))
    cache = RunCache(tmp_path / "cache")
    key = inputs_key(state, entry.resolved, "shown", SETTINGS)
    curve = run_curve(run, figures, SETTINGS.smoothing)
    assert curve.epochs is not None and len(curve.at) > 1  # every array of a curve goes through the cache
    cache.store(key, Cached(run, figures, analysis, curve))

    loaded = cache.load(state, key)

    assert loaded is not None and registry.is_file()
    assert loaded.figures == figures  # nested records, NaN-free tuples, floats exact
    assert loaded.analysis == analysis
    assert loaded.run.train.equals(run.train) and loaded.run.eval.equals(run.eval)
    assert list(loaded.run.train.dtypes.astype(str)) == list(run.train.dtypes.astype(str))
    fields = [f.name for f in dataclasses.fields(run) if f.name not in ("train", "eval")]
    assert {f: getattr(loaded.run, f) for f in fields} == {f: getattr(run, f) for f in fields}
    for array in ("at", "smoothed", "epochs", "tokens"):
        mine, theirs = getattr(loaded.curve, array), getattr(curve, array)
        assert (mine is None and theirs is None) or np.array_equal(mine, theirs, equal_nan=True), array
    assert (loaded.curve.steps, loaded.curve.tokens_seen) == (curve.steps, curve.tokens_seen)
    assert loaded.curve.few is not None and curve.few is not None and list(loaded.curve.few) == list(curve.few)
    for name, (x, y) in curve.few.items():
        assert np.array_equal(loaded.curve.few[name][0], x) and np.array_equal(loaded.curve.few[name][1], y), name
    # Logged from step 10: the log step axis's points are the step axis's, held once, and read back shared.
    assert curve.few["step-log"] is curve.few["step"]
    assert all(a is b for a, b in zip(loaded.curve.few["step-log"], loaded.curve.few["step"], strict=True))
    assert cache.load(state, inputs_key(state, entry.resolved, "shown", AnalysisSettings(smoothing=0.9))) is None


def test_a_file_rewritten_with_the_same_size_and_time_is_read_again(tmp_path: Path) -> None:
    # Timestamps are coarse: a file changed within seconds of being cached is checked by its hash.
    registry, cache = _project(tmp_path), RunCache(tmp_path / "cache")
    state = tmp_path / "run" / "checkpoint-50" / "trainer_state.json"
    first = _generate(registry, cache)
    before = state.stat()
    text = state.read_text(encoding="utf-8")
    changed = text.replace('"loss": 2.0', '"loss": 3.0')
    assert len(changed) == len(text)
    with open(state, "r+", encoding="utf-8") as stream:  # in place: same inode
        stream.write(changed)
    os.utime(state, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert state.stat().st_mtime_ns == before.st_mtime_ns and state.stat().st_size == before.st_size

    second = _generate(registry, cache)
    assert second["models/run.md"] != first["models/run.md"]
    assert "| Start loss | 3 (step 10) |" in second["models/run.md"].decode()


def test_a_damaged_or_foreign_cache_entry_is_ignored(tmp_path: Path) -> None:
    registry, cache = _project(tmp_path), RunCache(tmp_path / "cache")
    first = _generate(registry, cache)
    tables = next((tmp_path / "cache").rglob("*.bin"))
    whole = tables.read_bytes()
    for damaged in (whole[:100], whole + b"\0" * 8, b""):
        tables.write_bytes(damaged)
        assert _generate(registry, cache) == first
        assert tables.read_bytes() == whole  # read again and rewritten
    for meta in (tmp_path / "cache").rglob("*.json"):
        meta.write_text("{not json", encoding="utf-8")
    assert _generate(registry, cache) == first


def test_a_change_beside_the_state_file_is_seen(tmp_path: Path) -> None:
    registry, cache = _project(tmp_path), RunCache(tmp_path / "cache")
    _generate(registry, cache)
    (tmp_path / "run" / "checkpoint-50" / "adapter_config.json").write_text(
        '{"base_model_name_or_path": "org/base", "peft_type": "LORA", "r": 8}', encoding="utf-8")
    page = _generate(registry, cache)["models/run.md"].decode()
    assert "`org/base` (from adapter_config.json)" in page
    write_state(tmp_path / "run" / "checkpoint-60", sft_rows([2.0, 1.0]), global_step=60)
    page = _generate(registry, cache)["models/run.md"].decode()
    assert "| Steps | 60 |" in page  # the new checkpoint of the run folder is read


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the entries `site` parses from here on (the real reader still runs)."""
    reads: list[str] = []
    real = pipeline.read_run

    def counting(entry: CheckpointEntry, *args: object, **kwargs: object) -> TrainingRun:
        reads.append(entry.name)
        return real(entry, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "read_run", counting)
    return reads


def _stored(folder: Path) -> list[str]:
    """The files a cache folder holds."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_generate_without_a_cache_reads_every_time_and_stores_nothing(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    registry = _project(tmp_path)
    default = tmp_path / "default-cache"  # where cache=True would keep its entries
    monkeypatch.setenv("TRAINDOCS_CACHE_DIR", str(default))
    docs = tmp_path / "docs"
    reads = _count_reads(monkeypatch)

    site.generate(registry, docs, cache=False)
    site.generate(registry, docs, cache=False)
    assert reads == ["Run", "Run"], "cache=False must parse the unchanged checkpoint again"
    assert _stored(default) == []

    # The control: the same spy and folder see the default cache at work (stored once, then not read).
    site.generate(registry, docs)
    assert _stored(default / RUNS_DIR) != []
    site.generate(registry, docs)
    assert reads == ["Run", "Run", "Run"]
    site.generate(registry, docs, cache=False)  # an entry exists now, and is still not used
    assert reads == ["Run", "Run", "Run", "Run"]


def test_no_cache_on_the_command_line_reads_every_checkpoint_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    registry = _project(tmp_path)
    cache_dir = tmp_path / "cache-dir"
    monkeypatch.setenv("TRAINDOCS_CACHE_DIR", str(cache_dir))  # also restores it after the CLI sets it
    command = ["generate", "--config", str(registry), "--cache-dir", str(cache_dir), "--jobs", "1"]
    reads = _count_reads(monkeypatch)

    assert main([*command, "--no-cache"]) == 0
    assert reads == ["Run"] and _stored(cache_dir / RUNS_DIR) == []
    assert main(command) == 0  # cached now
    assert reads == ["Run", "Run"] and _stored(cache_dir / RUNS_DIR) != []
    assert main(command) == 0  # the control: taken from the cache
    assert reads == ["Run", "Run"]
    assert main([*command, "--no-cache"]) == 0  # the entry is there and --no-cache does not use it
    assert reads == ["Run", "Run", "Run"]
    assert "Traceback" not in capsys.readouterr().err


def test_cached_arrays_are_read_only_as_their_entry_describes_them(tmp_path: Path) -> None:
    path = tmp_path / "arrays.bin"
    path.write_bytes(np.arange(6, dtype="<i8").tobytes() + np.array([0.5, np.nan], dtype="<f8").tobytes())
    arrays = _read_arrays(path, [["a", "<i8", [2, 3]], ["b", "<f8", [2]]])
    assert arrays["a"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert arrays["b"][0] == 0.5 and np.isnan(arrays["b"][1])
    assert arrays["a"].flags.writeable  # pandas may modify a table in place
    # Object arrays (pickle), other dtypes, and sizes that do not add up to the file's are refused.
    for described in ([["a", "|O", [8]]], [["a", "<i4", [16]]], [["a", "<i8", [2, 3]]],
                      [["a", "<i8", [2, 3]], ["b", "<f8", [3]]], [["a", "<i8", [-1]]],
                      [["a", "<i8", [2, 3]], ["b", "<f8", [-1]]], [["a", "<i8", [8.0]]], [["a", "<i8", [True] * 8]]):
        with pytest.raises(ValueError):
            _read_arrays(path, described)
    empty = tmp_path / "empty.bin"  # a run without a table row or a curve point: nothing to map
    empty.write_bytes(b"")
    assert _read_arrays(empty, [["a", "<f8", [0]]])["a"].shape == (0,)


def test_cached_arrays_are_private_copies_of_their_file(tmp_path: Path) -> None:
    # The arrays are a copy-on-write map of the file: writing to them never reaches the cache, and an entry
    # rewritten meanwhile (renamed over the file, as the cache stores) leaves arrays already loaded as they were.
    path = tmp_path / "arrays.bin"
    original = np.arange(4, dtype="<f8").tobytes()
    path.write_bytes(original)
    arrays = _read_arrays(path, [["a", "<f8", [4]]])
    arrays["a"][0] = 99.0
    assert path.read_bytes() == original
    replacement = tmp_path / "new.bin"
    replacement.write_bytes(np.full(4, 7.0, dtype="<f8").tobytes())
    os.replace(replacement, path)
    assert arrays["a"].tolist() == [99.0, 1.0, 2.0, 3.0]
    assert _read_arrays(path, [["a", "<f8", [4]]])["a"].tolist() == [7.0] * 4


def _runs(tmp_path: Path, count: int) -> Path:
    lines = ["checkpoints:"]
    for n in range(count):
        write_state(tmp_path / f"run{n}" / "checkpoint-50", sft_rows([2.0 - 0.1 * n, 1.5, 1.2 + 0.01 * n, 1.0, 0.9]))
        lines.append(f"  - {{name: Run {n}, path: run{n}}}")
    (tmp_path / "checkpoints.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp_path / "checkpoints.yaml"


def test_planning_does_not_build_the_tables_of_cached_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cached run's tables become DataFrames only when something is drawn or written from them."""
    registry, cache = _runs(tmp_path, 3), RunCache(tmp_path / "cache")
    first = _generate(registry, cache)
    built: list[DeferredTable] = []
    build = DeferredTable.build
    monkeypatch.setattr(DeferredTable, "build", lambda table: built.append(table) or build(table))
    assert _generate(registry, cache) == first
    assert built == []
    # When the files are gone, the same readings are drawn and written again, from the deferred tables.
    (registry.parent / "docs" / "models" / "run-1.md").unlink()
    (registry.parent / "docs" / "models" / "run-1" / "loss.png").unlink()
    assert _published(_generate(registry, cache)) == _published(first)
    # Run 1's train and eval tables, for its loss plot (its third loss is 1.21); no other run's.
    assert len(built) == 2 and any(1.21 in table.values for table in built)


def test_cached_runs_drawn_in_worker_processes_give_the_same_bytes(tmp_path: Path) -> None:
    """Deferred tables travel to the workers (pickled) and are built there."""
    registry, cache = _runs(tmp_path, 3), RunCache(tmp_path / "cache")
    docs = registry.parent / "docs"
    first = _generate(registry, cache)
    shutil.rmtree(docs)
    site.generate(registry, docs, cache=cache, jobs=2)
    again = {p.relative_to(docs).as_posix(): p.read_bytes() for p in sorted(docs.rglob("*")) if p.is_file()}
    assert _published(again) == _published(first)


def _published(files: dict[str, bytes]) -> dict[str, bytes]:
    """The files of docs/ but traindocs' manifest, which records the files' modification times."""
    return {path: data for path, data in files.items() if path != ".traindocs-manifest.json"}


def test_an_older_cache_entry_is_replaced_and_its_tables_file_removed(tmp_path: Path) -> None:
    """Before FORMAT 2 the tables were an .npz beside the entry's JSON: read again, and the .npz goes."""
    registry, cache = _project(tmp_path), RunCache(tmp_path / "cache")
    first = _generate(registry, cache)
    meta = next((tmp_path / "cache").rglob("*.json"))
    old_tables = meta.with_suffix(".npz")
    old_tables.write_bytes(b"PK\x03\x04 an old zip of tables")
    meta.write_text(meta.read_text(encoding="utf-8").replace('"key": "', '"key": "old', 1), encoding="utf-8")
    assert _published(_generate(registry, cache)) == _published(first)
    assert not old_tables.exists() and meta.with_suffix(".bin").is_file()


def test_repeated_generations_in_one_process_freeze_one_generation_at_most(tmp_path: Path) -> None:
    # A generation freezes its reports out of the garbage collector's passes (pipeline._freeze_reports). In a
    # process that generates again (`traindocs serve`), the previous generation's objects must return to the
    # collector, or every reload would add its objects to those it can never free.
    import gc

    registry, cache = _project(tmp_path), RunCache(tmp_path / "cache")
    gc.unfreeze()
    try:
        _generate(registry, cache)
        frozen_once = gc.get_freeze_count()
        assert frozen_once > 0 and gc.isenabled()
        for _ in range(3):
            _generate(registry, cache)
        # What exists when a generation freezes is the whole process, so the count is about the same each
        # time; with the older generations kept frozen as well it was 1.7 times the first (measured).
        assert gc.get_freeze_count() < frozen_once * 1.2
        assert gc.isenabled()
    finally:
        gc.unfreeze()


def test_workers_are_started_early_when_a_checkpoint_must_be_read(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # A run missing from the cache means plots to draw: the workers are forked while the other runs load
    # (WorkerPool.start_early); with every run cached there may be nothing to draw, and none is started.
    from generator import workers

    registry, cache = _runs(tmp_path, 3), RunCache(tmp_path / "cache")
    early: list[int] = []
    start_early = workers.WorkerPool.start_early
    monkeypatch.setattr(workers.WorkerPool, "start_early", lambda pool: early.append(1) or start_early(pool))
    docs = registry.parent / "docs"
    site.generate(registry, docs, cache=cache, jobs=2)
    assert early  # cold: every run is read
    cold = {p.relative_to(docs).as_posix(): p.read_bytes() for p in sorted(docs.rglob("*")) if p.is_file()}
    early.clear()
    site.generate(registry, docs, cache=cache, jobs=2)
    assert early == []
    state = tmp_path / "run1" / "checkpoint-50" / "trainer_state.json"
    write_state(state.parent, sft_rows([1.9, 1.5, 1.25, 1.0, 0.9]))
    site.generate(registry, docs, cache=cache, jobs=2)
    assert early
    # The same bytes as one process reading and drawing everything.
    write_state(state.parent, sft_rows([1.9, 1.5, 1.21, 1.0, 0.9]))
    site.generate(registry, docs, cache=cache, jobs=2)
    again = {p.relative_to(docs).as_posix(): p.read_bytes() for p in sorted(docs.rglob("*")) if p.is_file()}
    shutil.rmtree(docs)
    site.generate(registry, docs, cache=RunCache(tmp_path / "other cache"), jobs=1)
    serial = {p.relative_to(docs).as_posix(): p.read_bytes() for p in sorted(docs.rglob("*")) if p.is_file()}
    assert _published(again) == _published(serial) == _published(cold)
    # A checkpoint that is not there is a problem to report, not a run to draw: no workers for it.
    early.clear()
    shutil.rmtree(tmp_path / "run1")
    site.generate(registry, docs, cache=cache, jobs=2)
    assert early == []


# --- model pages keyed by their inputs (plan: a cached run's page is not written again to be compared) -------


def _pages_project(tmp_path: Path) -> dict[str, Any]:
    """Two runs, one inside the registry's folder and one outside it (shown from ~ when HOME holds it); A's
    last loss is a string, which makes a reader's note naming the entry by its place in the registry."""
    write_state(tmp_path / "proj" / "runs" / "a" / "checkpoint-50", _rows_a(1.3))
    write_state(tmp_path / "other" / "b" / "checkpoint-30", sft_rows([3.0, 2.0, 1.5]))
    return {"registry": tmp_path / "proj" / "checkpoints.yaml", "site": {}, "analysis": {},
            "checkpoints": [{"name": "A", "path": "runs/a"}, {"name": "B", "path": "../other/b"}]}


def _rows_a(third_loss: float, *more: float) -> list[dict[str, object]]:
    return [*sft_rows([2.0, 1.6, third_loss, 1.1, 1.0, *more]), {"loss": "oops", "step": 100}]


def _write_registry(project: dict[str, Any]) -> Path:
    registry: Path = project["registry"]
    document = {key: project[key] for key in ("site", "analysis", "checkpoints") if project[key]}
    registry.parent.mkdir(parents=True, exist_ok=True)
    registry.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return registry


def _markdown(docs: Path) -> dict[str, str]:
    return {p.relative_to(docs).as_posix(): p.read_text(encoding="utf-8") for p in sorted(docs.rglob("*.md"))}


def test_a_page_kept_by_its_inputs_equals_the_page_written_afresh(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Each input a model page shows is changed in turn; the page kept or rewritten by its key must be the
    one a generation without a cache or an earlier site writes. A key that misses an input keeps a stale page."""
    monkeypatch.setenv("HOME", str(tmp_path / "elsewhere"))
    project = _pages_project(tmp_path)
    docs, cache = tmp_path / "docs", RunCache(tmp_path / "cache")
    layout = SiteLayout()
    entries = project["checkpoints"]
    state_a = tmp_path / "proj" / "runs" / "a" / "checkpoint-50" / "trainer_state.json"

    def moved_registry() -> None:  # paths are shown from the registry's folder
        project["registry"] = tmp_path / "proj" / "sub" / "checkpoints.yaml"
        for entry in entries:
            entry["path"] = "../" + entry["path"]

    def site_url() -> None:
        nonlocal layout
        layout = SiteLayout(site_url="https://example.org/reports/", site_name="Runs")

    changes: list[tuple[str, Callable[[], object]]] = [
        ("description", lambda: entries[0].update(description="A longer run.")),
        ("name", lambda: entries[1].update(name="B renamed")),
        ("tags", lambda: entries[0].update(tags=["lora", "sft"])),
        ("phase", lambda: entries[0].update(phase="Phase 2")),
        ("base model", lambda: entries[1].update(base_model="org/base-7b")),
        ("order", lambda: entries.reverse()),
        ("a file beside the state file", lambda: (state_a.parent / "adapter_config.json").write_text(
            '{"base_model_name_or_path": "org/other", "peft_type": "LORA", "r": 8}', encoding="utf-8")),
        ("analysis settings", lambda: project["analysis"].update(smoothing=0.3, loss_levels=[1.2])),
        ("home folder", lambda: monkeypatch.setenv("HOME", str(tmp_path))),
        ("registry's folder", moved_registry),
        ("show_paths", lambda: project["site"].update(show_paths=False)),
        ("site_url and site_name", site_url),
        ("a loss", lambda: write_state(state_a.parent, _rows_a(1.25))),
        ("a newer checkpoint", lambda: write_state(state_a.parent.parent / "checkpoint-60",
                                                   _rows_a(1.3, 0.9))),
    ]
    site.generate(_write_registry(project), docs, layout, cache=cache)
    for n, (what, change) in enumerate(changes):
        before = _markdown(docs)
        change()
        registry = _write_registry(project)
        site.generate(registry, docs, layout, cache=cache)
        fresh = tmp_path / f"fresh-{n}"
        site.generate(registry, fresh, layout, cache=False)  # pages keyed by their text, every run read again
        kept, afresh = _markdown(docs), _markdown(fresh)
        assert kept == afresh, f"after changing the {what}: a kept page differs from the page written afresh"
        assert [p for p in afresh if p.startswith("models/") and afresh[p] != before.get(p)], \
            f"the {what} changed no model page: the step tests nothing"


def test_an_unchanged_model_page_is_not_written_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry, cache = _project(tmp_path), RunCache(tmp_path / "cache")
    first = _generate(registry, cache)
    written: list[str] = []
    real = pages.model_page

    def spy(report: Any, *args: Any, **kwargs: Any) -> str:
        written.append(report.entry.name)
        return real(report, *args, **kwargs)

    monkeypatch.setattr(pages, "model_page", spy)
    page = "models/run.md"
    assert _generate(registry, cache)[page] == first[page]
    assert written == []
    (tmp_path / "docs" / page).write_text("edited by hand", encoding="utf-8")
    assert _generate(registry, cache)[page] == first[page]  # a page changed on disk is written again
    assert written == ["Run"]


@pytest.mark.parametrize("record", [SiteLayout(), CheckpointEntry(0, "n", "s", "p", Path("p"))])
def test_a_page_key_sees_every_field_of_the_entry_and_layout(record: object) -> None:
    # The key takes these records by their repr: a field left out of it would be left out of the key.
    assert all(f"{field.name}=" in repr(record) for field in dataclasses.fields(record))  # type: ignore[arg-type]

"""The catalogue of bad input: one folder per case under tests/fixtures/bad/, each with the exact line
traindocs prints. Every case leaves the good checkpoint's page built; --strict turns each into status 1."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO
from generator.cli import main

pytestmark = pytest.mark.slow  # builds sites: an integration test, out of the fast unit subset

FIXTURES = REPO / "tests" / "fixtures"
STATE = "run/trainer_state.json (checkpoints[1] (Bad))"

# (case folder, kind of line, the exact message after "error: " or "warning: ")
CATALOGUE = [
    ("yaml-syntax", "fatal", "checkpoints.yaml:6:1: YAML syntax error: expected ',' or ']', but got '<stream end>'"),
    ("unknown-key", "error", "checkpoints.yaml: checkpoints[1] (Bad): unknown key 'pahse' (did you mean 'phase'?)"),
    ("wrong-type", "error", "checkpoints.yaml: checkpoints[1]: name: expected a string, got a list"),
    ("duplicate-name", "error", "checkpoints.yaml: checkpoints[1] (Good): name: 'Good' is already used by checkpoints[0]"),
    ("duplicate-slug", "error", "checkpoints.yaml: checkpoints[1] (good): slug: 'good' is already used by "
     "checkpoints[0]; give one of them a distinct 'slug'"),
    ("missing-path", "error", "checkpoints.yaml: checkpoints[1] (Bad): path 'runs/missing' does not exist"),
    ("wrong-kind-file", "error", "checkpoints.yaml: checkpoints[1] (Bad): path 'run/adapter_model.safetensors' is a "
     "file but not a trainer_state.json; point it at a checkpoint folder, a training output folder or the "
     "trainer_state.json itself"),
    ("no-trainer-state", "error", "checkpoints.yaml: checkpoints[1] (Bad): path 'run' holds no trainer_state.json, "
     "no checkpoint-N folder with one and no trainer_log.jsonl; point it at a checkpoint folder, a training output folder or the file itself"),
    ("empty-file", "error", f"{STATE}: the file is empty"),
    ("truncated-json", "error", f"{STATE}: the JSON ends early (line 5); is the checkpoint still being copied?"),
    ("not-an-object", "error", f"{STATE}: expected a JSON object, got list"),
    ("empty-log-history", "error", f"{STATE}: log_history is empty; nothing was logged before this checkpoint"),
    ("lfs-pointer", "error", f"{STATE}: this is a Git LFS pointer, not the file; run 'git lfs pull' first"),
    ("no-loss-row", "warning", f"{STATE}: log_history: no row has a numeric 'loss'; the page has no loss figures"),
    ("string-for-number", "warning", f"{STATE}: log_history[1].loss: expected a number, got a string 'nan?'; not plotted"),
    ("null-for-number", "warning", f"{STATE}: log_history[1].loss: expected a number, got null; not plotted"),
    ("negative-step", "warning", f"{STATE}: log_history[1].step: expected a whole number >= 0, got -5; row skipped"),
    ("non-integer-step", "warning", f"{STATE}: log_history[1].step: expected a whole number >= 0, got 12.5; row skipped"),
    ("unreadable", "error", f"{STATE}: cannot read: Permission denied"),
    ("symlink-loop", "error", "checkpoints.yaml: checkpoints[1] (Bad): path 'run' is a symbolic link loop"),
    ("huge-file", "error", f"{STATE}: the file is 200 MB, more than the 128 MB traindocs reads; is it really a "
     "trainer_state.json?"),
]


def prepare(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the case folder (plus the shared good run), with what git cannot hold made here."""
    shutil.copytree(FIXTURES / "good-run", tmp_path / "good-run")
    project = tmp_path / "bad" / case
    shutil.copytree(FIXTURES / "bad" / case, project)
    if case == "symlink-loop":
        os.symlink(project / "loop-b", project / "run")
        os.symlink(project / "run", project / "loop-b")
    elif case == "huge-file":
        (project / "run").mkdir()
        with open(project / "run/trainer_state.json", "wb") as handle:
            handle.truncate(200 * 1000 * 1000)  # sparse: no disk used
    elif case == "unreadable":
        # Tests run as root in CI, where chmod 000 does not stop a read: make the
        # read itself fail the way the operating system does.
        target = str((project / "run/trainer_state.json").resolve())
        real_open = os.open

        def refusing_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            if os.path.realpath(os.fspath(path)) == target:
                raise PermissionError(13, "Permission denied", os.fspath(path))
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", refusing_open)
    return project


@pytest.mark.parametrize(("case", "kind", "message"), CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_catalogue_case(case: str, kind: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> None:
    project = prepare(case, tmp_path, monkeypatch)
    registry = str(project / "checkpoints.yaml")
    status = main(["generate", "--config", registry])
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "Traceback" not in err
    prefix = "warning: " if kind == "warning" else "error: "
    assert prefix + message in lines, err
    docs = project / "docs"
    if kind == "fatal":
        assert status == 1 and not (docs / "index.md").exists()
        return
    assert status == 0
    assert (docs / "models/good.md").is_file(), "the good checkpoint must still get its page"
    if kind == "error":
        index = (docs / "index.md").read_text(encoding="utf-8")
        assert "Entries that could not be built" in index and "checkpoints\\[1\\]" in index
    assert main(["generate", "--config", registry, "--strict"]) == 1


def test_every_fixture_folder_is_in_the_catalogue() -> None:
    folders = {path.name for path in (FIXTURES / "bad").iterdir() if path.is_dir()}
    assert folders == {case for case, _, _ in CATALOGUE}


def test_debug_shows_the_traceback_of_an_internal_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(FIXTURES / "good-run", tmp_path / "good-run")
    registry = tmp_path / "checkpoints.yaml"
    registry.write_text("checkpoints:\n  - {name: Good, path: good-run}\n")

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("simulated bug")

    monkeypatch.setattr("generator.pipeline.analyse", broken)
    assert main(["generate", "--config", str(registry)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "error: internal error (ZeroDivisionError: simulated bug); this is a traindocs bug" in err
    with pytest.raises(ZeroDivisionError):
        main(["generate", "--config", str(registry), "--debug"])

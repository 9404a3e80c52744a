"""Where traindocs writes and deletes: never outside docs/ (or the project), and failures named."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from conftest import sft_rows, write_state
from generator import files
from generator.cli import main
from generator.errors import TraindocsError
from generator.scaffold import init_project
from generator.site import generate

pytestmark = pytest.mark.slow  # builds sites: an integration test, out of the fast unit subset


def small_project(root: Path, entries: int = 1, same_file: bool = False) -> Path:
    write_state(root / "run", sft_rows([2.0, 1.5, 1.2, 1.0, 0.9]))
    write_state(root / "run2", sft_rows([2.0, 1.5, 1.2, 1.0, 0.9]))
    rows = [{"name": f"M{n}", "slug": f"m{n}", "path": "run" if same_file or n == 0 else f"run{n + 1}"}
            for n in range(entries)]
    registry = root / "checkpoints.yaml"
    registry.write_text(json.dumps({"checkpoints": rows}), encoding="utf-8")
    return registry


def test_a_crafted_manifest_deletes_nothing_outside_docs(tmp_path: Path) -> None:
    registry = small_project(tmp_path)
    docs = tmp_path / "docs"
    generate(registry, docs, cache=False)
    victim, sibling = tmp_path / "victim.txt", tmp_path / "keep.md"
    victim.write_text("mine")
    sibling.write_text("mine")
    manifest = json.loads((docs / ".traindocs-manifest.json").read_text())
    for path in (str(victim), "../keep.md", "models/../../keep.md", "C:/x", "a\\..\\..\\keep.md"):
        manifest["files"][path] = {"key": "", "sha256": ""}
    (docs / ".traindocs-manifest.json").write_text(json.dumps(manifest))
    result = generate(registry, docs, cache=False)
    assert victim.read_text() == "mine" and sibling.read_text() == "mine"
    assert result.removed == []
    assert any("not a path inside" in note and "keep.md" in note for note in result.warnings())


def test_pages_are_not_written_through_a_link_out_of_docs(tmp_path: Path) -> None:
    registry = small_project(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/models").symlink_to(elsewhere)
    with pytest.raises(TraindocsError, match="symbolic link"):
        generate(registry, tmp_path / "docs", cache=False)
    assert list(elsewhere.iterdir()) == []


def test_link_cards_does_not_append_to_a_file_a_card_links_to(tmp_path: Path) -> None:
    registry = small_project(tmp_path)
    (tmp_path / "mkdocs.yml").write_text("site_name: x\nsite_url: https://example.org/r/\n", encoding="utf-8")
    outside = tmp_path / "outside.txt"
    outside.write_text("private\n")
    (tmp_path / "run/README.md").symlink_to(outside)
    status = main(["link-cards", "--config", str(registry)])
    assert status == 1
    assert outside.read_text() == "private\n"


def test_init_does_not_create_the_targets_of_dangling_links(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    target = tmp_path / "created-elsewhere.yml"
    (project / "mkdocs.yml").symlink_to(target)
    with pytest.raises(TraindocsError, match="already exists"):
        init_project(project)
    assert not target.exists()


def test_write_atomic_refuses_a_folder_linked_elsewhere(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "root/sub").symlink_to(tmp_path / "out")
    with pytest.raises(files.UnsafeWriteError):
        files.write_atomic(tmp_path / "root/sub/x.md", b"x", inside=tmp_path / "root")
    assert files.write_atomic(tmp_path / "root/y.md", b"y", inside=tmp_path / "root")


def test_two_entries_reading_one_file_have_their_own_warnings(tmp_path: Path) -> None:
    registry = small_project(tmp_path, entries=2, same_file=True)
    state = json.loads((tmp_path / "run/trainer_state.json").read_text())
    state["log_history"].append({"step": 60, "loss": None})  # one warning
    (tmp_path / "run/trainer_state.json").write_text(json.dumps(state))
    from generator.cache import RunCache

    cache = RunCache(tmp_path / "cache")
    for _ in range(2):  # the second run reads both from the cache
        result = generate(registry, tmp_path / "docs", cache=cache)
        first, second = (report.run.warnings for report in result.reports)
        assert first and all("checkpoints[0] (M0)" in w for w in first), first
        assert second and all("checkpoints[1] (M1)" in w and "M0" not in w for w in second), second
        assert "checkpoints[0]" not in (tmp_path / "docs/models/m1.md").read_text()


@pytest.mark.parametrize(("code", "words"), [(errno.ENOSPC, "disk is full"), (errno.EFBIG, "too large"),
                                             (errno.EROFS, "read-only")])
def test_disk_faults_are_named_not_called_bugs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str], code: int, words: str) -> None:
    registry = small_project(tmp_path)

    def failing_replace(source: object, target: object) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(files.os, "replace", failing_replace)
    status = main(["generate", "--config", str(registry), "--jobs", "1", "--no-cache"])
    err = capsys.readouterr().err
    assert status == 1
    assert "internal error" not in err and "bug" not in err, err
    line = next(line for line in err.splitlines() if words in line)
    assert line.startswith("error: ") and str(tmp_path / "docs") in line, line

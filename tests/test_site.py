"""The pipeline and its owned files: idempotent, incremental, never touching others' files."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest

from conftest import sft_rows, write_state
from generator import plan, site, workers
from generator.errors import ConfigError
from generator.site import MANIFEST, generate, watched_files

pytestmark = pytest.mark.slow  # builds sites: an integration test, out of the fast unit subset


def registry(project: Path, entries: str) -> Path:
    path = project / "checkpoints.yaml"
    path.write_text("site:\n  title: Test report\ncheckpoints:\n" + entries, encoding="utf-8")
    return path


def snapshot(docs: Path) -> dict[str, bytes]:
    return {p.relative_to(docs).as_posix(): p.read_bytes() for p in sorted(docs.rglob("*")) if p.is_file()}


def test_same_input_same_bytes_and_no_rewrite(example_project: Path, tmp_path: Path) -> None:
    docs = example_project / "docs"
    first = generate(example_project / "checkpoints.yaml", docs)
    assert len(first.reports) == 3 and not first.problems
    before = snapshot(docs)
    mtimes = {p: p.stat().st_mtime_ns for p in docs.rglob("*") if p.is_file() and p.name != MANIFEST}
    second = generate(example_project / "checkpoints.yaml", docs)
    assert second.written == [] and second.removed == []
    assert snapshot(docs) == before
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    # A fresh generation elsewhere gives identical bytes (plots included).
    other = tmp_path / "other"
    shutil.copytree(example_project, other, ignore=shutil.ignore_patterns("docs"))
    generate(other / "checkpoints.yaml", other / "docs")
    # The hidden manifest records file times; every file the site serves is identical.
    elsewhere = snapshot(other / "docs")
    assert elsewhere.pop(MANIFEST) != b"" and before.pop(MANIFEST) != b""
    assert elsewhere == before


def test_generated_files_are_world_readable(example_project: Path) -> None:
    docs = example_project / "docs"
    generate(example_project / "checkpoints.yaml", docs)
    for path in docs.rglob("*.png"):
        assert path.stat().st_mode & stat.S_IROTH, path


def test_changing_one_checkpoint_rerenders_only_what_depends_on_it(example_project: Path) -> None:
    docs = example_project / "docs"
    generate(example_project / "checkpoints.yaml", docs)
    state = example_project / "examples/phi-3-mini-phase2-reasoning/checkpoint-199/trainer_state.json"
    document = json.loads(state.read_text())
    document["log_history"][-2]["loss"] = 0.2
    state.write_text(json.dumps(document, indent=2))
    result = generate(example_project / "checkpoints.yaml", docs)
    assert "models/phi-3-mini/loss.png" in result.written
    assert "models/phi-3-mini.md" in result.written
    assert not any(path.startswith(("models/qwen-7b", "models/gemma-2-2b")) for path in result.written)


def test_a_bad_entry_is_listed_and_the_others_still_build(tmp_path: Path) -> None:
    write_state(tmp_path / "good", sft_rows([2.0, 1.5, 1.0, 0.8, 0.7, 0.6]))
    reg = registry(tmp_path, "  - {name: Good, path: good}\n  - {name: Missing, path: runs/x}\n  - {name: Typo, path: good, pahse: 1}\n")
    result = generate(reg, tmp_path / "docs")
    assert [r.entry.name for r in result.reports] == ["Good"]
    messages = [p.message for p in result.problems]
    assert "checkpoints.yaml: checkpoints[1] (Missing): path 'runs/x' does not exist" in messages
    assert any("checkpoints[2] (Typo): unknown key 'pahse' (did you mean 'phase'?)" in m for m in messages)
    index = (tmp_path / "docs/index.md").read_text()
    assert "Entries that could not be built" in index and "runs/x" in index
    summary = json.loads((tmp_path / "docs/summary.json").read_text())
    assert [m["slug"] for m in summary["models"]] == ["good"] and len(summary["problems"]) == 2


def test_a_hand_written_file_is_never_overwritten(tmp_path: Path) -> None:
    write_state(tmp_path / "run", sft_rows([1.0, 0.9, 0.8]))
    reg = registry(tmp_path, "  - {name: Run, path: run}\n")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# My own home page\n")
    (docs / "about.md").write_text("# About\n")
    result = generate(reg, docs)
    assert result.refused == ["index.md"]
    assert (docs / "index.md").read_text() == "# My own home page\n"
    assert (docs / "about.md").read_text() == "# About\n"
    assert (docs / "models/run.md").is_file()


def test_removed_entry_loses_its_page_and_plots_only(tmp_path: Path) -> None:
    for name in ("a", "b"):
        write_state(tmp_path / name, sft_rows([1.0, 0.9, 0.8]))
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.md").write_text("mine\n")
    generate(registry(tmp_path, "  - {name: A, path: a}\n  - {name: B, path: b}\n"), docs)
    assert (docs / "models/b/loss.png").is_file()
    result = generate(registry(tmp_path, "  - {name: A, path: a}\n"), docs)
    # sft_rows logs one learning rate and one grad norm throughout: stated on the page, no metrics plot.
    # One run left: its overview is one panel by step, the panels by share of training and epoch go.
    assert sorted(result.removed) == [
        "assets/traindocs/sft-curves-epoch.png", "assets/traindocs/sft-curves-progress.png",
        "models/b.md", "models/b/badge.svg", "models/b/chart.json", "models/b/figures.json", "models/b/log_history.csv",
        "models/b/loss.png",
    ]
    assert not (docs / "models/b").exists() and (docs / "models/a.md").is_file()
    assert (docs / "notes.md").read_text() == "mine\n"
    manifest = json.loads((docs / MANIFEST).read_text())
    assert not any(path.startswith("models/b") for path in manifest["files"])


def test_a_broken_registry_stops_before_writing(tmp_path: Path) -> None:
    reg = tmp_path / "checkpoints.yaml"
    reg.write_text("checkpoints:\n  - name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"checkpoints.yaml:\d+:\d+: YAML syntax error"):
        generate(reg, tmp_path / "docs")
    assert not (tmp_path / "docs").exists()


def test_watched_files_include_the_registry_and_each_state_file(example_project: Path) -> None:
    watched = watched_files(example_project / "checkpoints.yaml")
    names = [p.relative_to(example_project.resolve()).as_posix() for p in watched]
    assert names == [
        "checkpoints.yaml",
        "examples/qwen-7b-phase1-sft/checkpoint-2668/trainer_state.json",
        "examples/phi-3-mini-phase2-reasoning/checkpoint-199/trainer_state.json",
        "examples/gemma-2-2b-phase2-reasoning/checkpoint-314/trainer_state.json",
    ]


@pytest.mark.slow
def test_parallel_generation_gives_the_same_bytes(example_project: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Six entries, with the pool thresholds lowered so that workers read and render."""
    monkeypatch.setattr(workers, "READ_POOL_THRESHOLD", 2)
    monkeypatch.setattr(workers, "RENDER_POOL_THRESHOLD", 2)
    registry = example_project / "checkpoints.yaml"
    text = registry.read_text()
    entries = text[text.index("checkpoints:\n") + len("checkpoints:\n"):]
    copies = entries.replace("name: ", "name: Copy of ").replace("slug: ", "slug: copy-")
    registry.write_text(text + copies)
    serial = generate(registry, tmp_path / "serial", jobs=1)
    parallel = generate(registry, tmp_path / "parallel", jobs=2)
    assert len(serial.reports) == len(parallel.reports) == 6
    one, two = snapshot(tmp_path / "serial"), snapshot(tmp_path / "parallel")
    one.pop(MANIFEST), two.pop(MANIFEST)
    assert one == two


def test_a_change_of_the_code_re_renders_plots_downloads_and_figures(
        example_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # What a plot shows is decided in kinds and analysis as much as in plots: any code change counts.
    config = example_project / "checkpoints.yaml"
    generate(config, example_project / "docs")
    monkeypatch.setattr(plan, "code_version", lambda: "another version of the code")
    rendered: list[str] = []
    real = workers.render_each

    def recording(artefacts: list[site.Artefact], *args: object) -> object:
        rendered.extend(artefact.path for artefact in artefacts)
        return real(artefacts, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(workers, "render_each", recording)
    result = generate(config, example_project / "docs")
    assert result.written == []  # same bytes: nothing rewritten
    assert {"models/qwen-7b/loss.png", "models/qwen-7b/metrics-1.png", "models/qwen-7b/log_history.csv",
            "models/qwen-7b/figures.json", "assets/traindocs/sft-curves.png"} <= set(rendered)


def test_a_generation_that_redraws_nothing_never_imports_matplotlib(example_project: Path) -> None:
    # The plot jobs of generator.plan import generator.plots (matplotlib, ~0.3 s) only when called.
    import subprocess
    import sys

    config = example_project / "checkpoints.yaml"
    generate(config, example_project / "docs")
    code = ("import sys; from pathlib import Path; from generator.site import generate; "
            f"result = generate(Path({str(config)!r}), Path({str(example_project / 'docs')!r})); "
            "print(len(result.written), 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["0", "False"]

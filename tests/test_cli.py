"""The command line: exit codes, one-line errors, init -> build."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import sft_rows, write_state
from generator.cli import main

pytestmark = pytest.mark.slow  # builds sites: an integration test, out of the fast unit subset


def test_help_reads_like_a_man_page(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for word in ("init [DIR]", "generate", "build", "serve", "examples:"):
        assert word in out


def test_no_command_is_a_usage_error() -> None:
    assert main([]) == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--no-such-flag"])
    assert exit_info.value.code == 2


@pytest.mark.slow
def test_generate_the_example_site(example_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--config", str(example_project / "checkpoints.yaml")]) == 0
    err = capsys.readouterr().err
    assert "traindocs: 3 models, 0 problems; 47 files written" in err
    assert (example_project / "docs/index.md").is_file()


def test_a_bad_registry_is_one_line_and_status_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = tmp_path / "checkpoints.yaml"
    registry.write_text("checkpoint:\n  - name: x\n")
    assert main(["generate", "--config", str(registry)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "error: checkpoints.yaml: unknown key 'checkpoint' (did you mean 'checkpoints'?)" in err


def test_missing_registry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--config", str(tmp_path / "nope.yaml")]) == 1
    assert "file not found" in capsys.readouterr().err


def test_strict_turns_an_unreadable_checkpoint_into_status_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_state(tmp_path / "good", sft_rows([1.0, 0.9]))
    registry = tmp_path / "checkpoints.yaml"
    registry.write_text("checkpoints:\n  - {name: Good, path: good}\n  - {name: Gone, path: gone}\n")
    assert main(["generate", "--config", str(registry)]) == 0
    assert main(["generate", "--config", str(registry), "--strict"]) == 1
    err = capsys.readouterr().err
    assert "error: checkpoints.yaml: checkpoints[1] (Gone): path 'gone' does not exist" in err


@pytest.mark.slow
def test_init_then_build_a_site(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "report"
    assert main(["init", str(project)]) == 0
    assert {p.name for p in project.iterdir()} >= {"mkdocs.yml", "checkpoints.yaml", "docs", ".gitignore"}
    assert main(["init", str(project)]) == 1  # never overwrites
    assert "already exists" in capsys.readouterr().err
    write_state(project / "runs/checkpoint-30", sft_rows([1.0, 0.8, 0.7]))
    registry = project / "checkpoints.yaml"
    registry.write_text(registry.read_text().replace("checkpoints: []", "checkpoints:\n  - {name: My run, path: runs}"))
    assert main(["build", "--config", str(registry), "--strict"]) == 0
    assert (project / "site/models/my-run/index.html").is_file()
    assert (project / "site/summary.json").is_file()


def test_python_dash_m_runs_the_cli() -> None:
    done = subprocess.run([sys.executable, "-m", "generator", "--version"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.startswith("traindocs ")


CARD = "---\r\nbase_model: Qwen/Qwen2.5-7B-Instruct\r\nlibrary_name: peft\r\n---\r\n\r\n# Qwen 7B adapter\r\n\r\nKeep this line.  \r\n"


def test_link_cards_inserts_a_section_once_and_keeps_every_other_byte(
    example_project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINDOCS_SITE_URL", "https://example.org/report/")
    card = example_project / "examples/qwen-7b-phase1-sft/README.md"
    card.write_bytes(CARD.encode())
    registry = str(example_project / "checkpoints.yaml")

    assert main(["link-cards", "--config", registry, "--dry-run", "qwen-7b"]) == 0
    captured = capsys.readouterr()
    assert card.read_bytes() == CARD.encode()  # a dry run writes nothing
    assert "+## Training report" in captured.out and "would update" in captured.err

    assert main(["link-cards", "--config", registry]) == 0
    text = card.read_bytes().decode()
    assert text.startswith(CARD)  # front matter and body untouched, CRLF kept
    assert "(https://example.org/report/models/qwen-7b/badge.svg)](https://example.org/report/models/qwen-7b/)" in text
    assert "| End loss | 0.2598 |" in text
    assert "created" in capsys.readouterr().err  # the other two checkpoints had no card yet
    first = {path: path.read_bytes() for path in example_project.rglob("README.md")}
    assert len(first) == 3

    assert main(["link-cards", "--config", registry]) == 0
    assert "0 of 3 model cards changed" in capsys.readouterr().err
    assert {path: path.read_bytes() for path in example_project.rglob("README.md")} == first


def test_link_cards_needs_site_url(example_project: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRAINDOCS_SITE_URL", raising=False)
    assert main(["link-cards", "--config", str(example_project / "checkpoints.yaml")]) == 1
    assert "site_url is not set" in capsys.readouterr().err
    assert not list(example_project.rglob("README.md"))


def test_offline_and_cache_dir_options(example_project: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # Offline needs no backend and no network: an entry never fetched is one line, the others build.
    with pytest.raises(SystemExit):
        main(["build", "--help"])
    out = capsys.readouterr().out
    assert "--offline" in out and "--cache-dir DIR" in out
    registry = example_project / "checkpoints.yaml"
    with registry.open("a", encoding="utf-8") as stream:
        stream.write("  - {name: Bucket run, path: 's3://bucket/run'}\n")
    cache = example_project / "cache"

    assert main(["generate", "--config", str(registry), "--offline", "--cache-dir", str(cache)]) == 0
    err = capsys.readouterr().err
    assert (f"error: checkpoints.yaml: checkpoints[3] (Bucket run): path 's3://bucket/run': not in the cache "
            f"({cache}); run once without --offline to fetch it") in err.splitlines()
    assert "traindocs: 3 models, 1 problems" in err

    monkeypatch.setenv("TRAINDOCS_OFFLINE", "1")
    monkeypatch.setenv("TRAINDOCS_CACHE_DIR", str(cache))
    assert main(["generate", "--config", str(registry), "--strict"]) == 1
    assert "not in the cache" in capsys.readouterr().err


def test_link_cards_leaves_remote_checkpoints_alone(example_project: Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from fsspec.implementations.memory import MemoryFileSystem

    from generator import remote

    hub = MemoryFileSystem()
    hub.store.clear()
    hub.pipe_file("/someone/run/checkpoint-9/trainer_state.json",
                  (example_project / "examples/phi-3-mini-phase2-reasoning/checkpoint-199/trainer_state.json").read_bytes())
    remote.register_filesystem("hf", hub)
    try:
        monkeypatch.setenv("TRAINDOCS_SITE_URL", "https://example.org/report/")
        registry = example_project / "checkpoints.yaml"
        with registry.open("a", encoding="utf-8") as stream:
            stream.write("  - {name: Hub run, path: 'hf://someone/run'}\n")

        assert main(["link-cards", "--config", str(registry), "--cache-dir", str(example_project / "cache")]) == 0
        err = capsys.readouterr().err
        assert "skipped: Hub run: its path is a URL" in err
        assert "3 of 3 model cards changed" in err
        # Nothing written into the cache's mirror of the Hub run, nor upstream.
        assert not list((example_project / "cache").rglob("README.md"))
        assert not hub.exists("/someone/run/README.md")
    finally:
        remote.register_filesystem("hf", None)
        hub.store.clear()


def test_fail_on_turns_findings_into_status_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--fail-on warning: a CI job can stop on an overfitting run; the example runs have no warning."""
    losses = [2.0 * 0.97**i for i in range(60)]
    evals = {100: 1.0, 200: 0.8, 300: 0.85, 400: 1.0, 500: 1.2, 600: 1.4}
    rows: list[dict[str, float]] = []
    for i, loss in enumerate(losses):  # in file order, as the Trainer writes them: eval after the train row
        step = 10 * (i + 1)
        rows.append({"loss": loss, "step": step})
        if step in evals:
            rows.append({"eval_loss": evals[step], "step": step})
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": 600, "log_history": rows}), encoding="utf-8")
    registry = tmp_path / "checkpoints.yaml"
    registry.write_text("checkpoints:\n  - name: Overfit\n    path: run\n", encoding="utf-8")
    assert main(["generate", "--config", str(registry)]) == 0
    capsys.readouterr()
    assert main(["generate", "--config", str(registry), "--fail-on", "warning"]) == 1
    err = capsys.readouterr().err
    assert "warning: checkpoints[0] (Overfit): eval_loss_rising: Overfitting: the eval loss was lowest at step 200" in err


def test_fail_on_passes_a_site_without_findings(example_project: Path) -> None:
    assert main(["generate", "--config", str(example_project / "checkpoints.yaml"), "--fail-on", "warning"]) == 0


def test_importing_the_cli_imports_neither_mkdocs_nor_pandas() -> None:
    # `traindocs --help`, `init` and a usage error answer at once; generate imports what it needs when it runs.
    code = ("import sys, generator.cli; "
            "print(sorted(m for m in ('mkdocs', 'pandas', 'numpy', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_serve_hands_its_options_to_the_plugin_not_to_the_environment(
        example_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from generator import mkdocs_plugin

    seen: dict[str, object] = {}

    def fake_serve(mkdocs_yml: Path, first_config: object, generated: object, args: object) -> None:
        # What the server does on every reload: load mkdocs.yml (a new plugin) and build.
        from mkdocs.config import load_config

        config = load_config(config_file=str(mkdocs_yml))
        plugin = config.plugins["traindocs"]
        seen["registry"] = plugin.registry_file(config)
        assert mkdocs_plugin.command_line is not None
        seen["remote"] = mkdocs_plugin.command_line.remote

    monkeypatch.setattr("generator.cli._serve", fake_serve)
    other = example_project / "other.yaml"
    other.write_text((example_project / "checkpoints.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    before = {key: value for key, value in os.environ.items() if key.startswith("TRAINDOCS_")}
    status = main(["serve", "--config", str(other), "--mkdocs-config", str(example_project / "mkdocs.yml"),
                   "--offline", "--timeout", "5", "--cache-dir", str(tmp_path / "cache"), "--jobs", "1"])
    assert status == 0
    assert seen["registry"] == other.resolve()
    remote = seen["remote"]
    assert remote.offline and remote.timeout == 5 and remote.cache_dir == (tmp_path / "cache").resolve()  # type: ignore[attr-defined]
    assert {key: value for key, value in os.environ.items() if key.startswith("TRAINDOCS_")} == before
    assert mkdocs_plugin.command_line is None  # a later build in this process reads mkdocs.yml again

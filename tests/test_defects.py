"""Defects of issue 11: damaged or foreign inputs are warnings with a location, never silence, never a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import sft_rows, write_state
from generator.cli import main

pytestmark = pytest.mark.slow  # builds sites: an integration test, out of the fast unit subset

MANIFEST = ".traindocs-manifest.json"


def _project(tmp_path: Path, side: dict[str, str] | None = None) -> Path:
    """A registry with one small run ('run/'), and the given side files beside its trainer_state.json."""
    write_state(tmp_path / "run", sft_rows([2.0, 1.6, 1.3, 1.1, 1.0]))
    for name, text in (side or {}).items():
        (tmp_path / "run" / name).write_text(text, encoding="utf-8")
    registry = tmp_path / "checkpoints.yaml"
    registry.write_text("checkpoints:\n  - {name: Run, slug: run, path: run}\n", encoding="utf-8")
    return registry


def _generate(registry: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, list[str]]:
    status = main(["generate", "--config", str(registry), "--jobs", "1", "--no-cache", *extra])
    return status, capsys.readouterr().err.splitlines()


# --- a model card whose front matter does not load ------------------------------------------------


@pytest.mark.parametrize("front", [
    "base_model: org/model\ndate: 2024-02-30",  # an impossible date: PyYAML raises ValueError
    "base_model: org/model\ndate: !!timestamp not-a-date",  # PyYAML raises AttributeError
])
def test_a_model_card_with_front_matter_that_does_not_load_is_a_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], front: str) -> None:
    registry = _project(tmp_path, {"README.md": f"---\n{front}\n---\n# Model card\n"})
    status, err = _generate(registry, capsys)
    assert status == 0, err
    assert not any("internal error" in line for line in err), err
    warnings = [line for line in err if line.startswith("warning:") and "run/README.md" in line]
    assert len(warnings) == 1, err
    assert "front matter" in warnings[0] and "ignored" in warnings[0]
    assert (tmp_path / "docs" / "models" / "run.md").is_file()


def test_a_model_card_with_valid_front_matter_gives_no_warning(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    registry = _project(tmp_path, {"README.md": "---\nbase_model: org/model\ndate: 2024-02-29\n---\n# Card\n"})
    status, err = _generate(registry, capsys)
    assert status == 0 and not [line for line in err if line.startswith("warning:")], err
    assert "org/model" in (tmp_path / "docs" / "models" / "run.md").read_text(encoding="utf-8")


# --- a damaged manifest ---------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["{not json", '["a list"]', '{"files": 3}'])
def test_a_damaged_manifest_is_named_and_the_site_is_rebuilt(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             damage: str) -> None:
    registry = _project(tmp_path)
    assert _generate(registry, capsys)[0] == 0
    docs = tmp_path / "docs"
    page = docs / "models" / "run.md"
    generated = page.read_bytes()
    edited = docs / "index.md"
    edited.write_text("# My own notes\n", encoding="utf-8")  # changed by hand since: not traindocs' any more
    foreign = docs / "notes.md"
    foreign.write_text("mine\n", encoding="utf-8")
    (docs / MANIFEST).write_text(damage, encoding="utf-8")

    status, err = _generate(registry, capsys)
    notes = [line for line in err if MANIFEST in line]
    assert len(notes) == 1, err
    assert notes[0].startswith("warning: ") and str(docs / MANIFEST) in notes[0]
    # Files with exactly the bytes traindocs makes are its own again; the edited one is refused, not overwritten.
    assert page.read_bytes() == generated
    assert edited.read_text(encoding="utf-8") == "# My own notes\n"
    assert foreign.read_text(encoding="utf-8") == "mine\n"
    refused = [line for line in err if line.startswith("error:")]
    assert len(refused) == 1 and "index.md" in refused[0], err
    assert status == 1
    # The manifest is whole again and lists what traindocs vouches for.
    files = json.loads((docs / MANIFEST).read_text(encoding="utf-8"))["files"]
    assert "models/run.md" in files and "index.md" not in files and "notes.md" not in files

    # Once the edited file is moved away, the next run is clean and says nothing of the manifest.
    edited.unlink()
    status, err = _generate(registry, capsys)
    assert status == 0 and not any(MANIFEST in line for line in err), err


def test_a_damaged_manifest_never_deletes_files_it_cannot_vouch_for(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    registry = _project(tmp_path)
    write_state(tmp_path / "second", sft_rows([3.0, 2.0, 1.0]))
    registry.write_text(registry.read_text() + "  - {name: Second, slug: second, path: second}\n", encoding="utf-8")
    assert _generate(registry, capsys)[0] == 0
    docs = tmp_path / "docs"
    (docs / MANIFEST).write_text("garbage", encoding="utf-8")
    registry.write_text("checkpoints:\n  - {name: Run, slug: run, path: run}\n", encoding="utf-8")
    status, err = _generate(registry, capsys)
    assert (docs / "models" / "second.md").is_file()  # no longer registered, but no manifest vouches for it
    assert (docs / "models" / "second" / "loss.png").is_file()
    # The index (and the overview, summary.json) now differ from the files on disk, which nothing vouches
    # for: refused, not overwritten.
    refused = [line for line in err if line.startswith("error:")]
    assert status == 1 and f"error: {(docs / 'index.md').as_posix()}: exists and was not written by traindocs; " \
        "left as it is (move or rename it to let traindocs generate this page)" in refused, err
    assert not any("models/run" in line for line in refused), err


# --- malformed adapter_config.json / config.json ------------------------------------------------------------


@pytest.mark.parametrize(("name", "text", "what"), [
    ("adapter_config.json", "{\"r\": 8,", "not JSON"),
    ("adapter_config.json", "[1, 2]", "not a JSON object"),
    ("adapter_config.json", '{"r": "eight", "base_model_name_or_path": "org/model"}', "'r'"),
    ("adapter_config.json", '{"target_modules": 5}', "'target_modules'"),
    ("adapter_config.json", '{"lora_alpha": "big"}', "'lora_alpha'"),
    ("config.json", "{'vocab_size': 3}", "not JSON"),
    ("config.json", '"a string"', "not a JSON object"),
    ("config.json", '{"vocab_size": "32000"}', "'vocab_size'"),
    ("config.json", '{"architectures": "LlamaForCausalLM"}', "'architectures'"),
    ("config.json", '{"_name_or_path": 42}', "'_name_or_path'"),
    ("config.json", '{"model_type": ["llama"]}', "'model_type'"),
])
def test_a_malformed_side_file_is_a_warning_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      name: str, text: str, what: str) -> None:
    registry = _project(tmp_path, {name: text})
    status, err = _generate(registry, capsys)
    assert status == 0, err
    warnings = [line for line in err if line.startswith("warning:") and f"run/{name}" in line]
    assert len(warnings) == 1, err
    assert what in warnings[0], warnings[0]
    assert (tmp_path / "docs" / "models" / "run.md").is_file()


def test_well_formed_side_files_give_no_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = _project(tmp_path, {
        "adapter_config.json": json.dumps({"peft_type": "LORA", "r": 16, "lora_alpha": 32, "lora_dropout": 0.05,
                                           "target_modules": ["q_proj", "v_proj"],
                                           "base_model_name_or_path": "org/model"}),
        "config.json": json.dumps({"_name_or_path": "org/model", "vocab_size": 32000, "model_type": "llama",
                                   "architectures": ["LlamaForCausalLM"]}),
    })
    status, err = _generate(registry, capsys)
    assert status == 0 and not [line for line in err if line.startswith("warning:")], err

"""Hostile files beside the state file, hostile keys and names: each entry fails alone, nothing hangs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import sft_rows, write_state
from generator.reader import MAX_KEY_LENGTH

pytestmark = pytest.mark.slow  # builds sites: an integration test, out of the fast unit subset

SIDE_FILES = ("adapter_config.json", "config.json", "README.md")


def project_with(tmp_path: Path, bad: dict[str, object], names: tuple[str, str] = ("Good", "Bad")) -> Path:
    """A registry of two entries: `good` (plain) and `bad`, whose folder gets `bad`'s side files
    (bytes, or the string 'fifo', or ('link', target))."""
    for folder in ("good", "bad"):
        write_state(tmp_path / folder, sft_rows([2.0, 1.5, 1.2, 1.0, 0.9]))
    for name, what in bad.items():
        path = tmp_path / "bad" / name
        if what == "fifo":
            os.mkfifo(path)
        elif isinstance(what, tuple):
            path.symlink_to(what[1])
        elif isinstance(what, int):  # a sparse file of that many bytes
            with open(path, "wb") as stream:
                stream.write(b"---\nbase_model: x/y\n---\n")
                stream.truncate(what)
        else:
            assert isinstance(what, bytes)
            path.write_bytes(what)
    registry = tmp_path / "checkpoints.yaml"
    registry.write_text(json.dumps({"checkpoints": [
        {"name": names[0], "slug": "good", "path": "good"}, {"name": names[1], "slug": "bad", "path": "bad"},
    ]}), encoding="utf-8")
    return registry


def generate(registry: Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """`traindocs generate` in a fresh process, killed (and the test failed) if it hangs."""
    try:
        return subprocess.run(
            [sys.executable, "-m", "generator", "generate", "--config", str(registry), "--jobs", "1", "--no-cache"],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"traindocs generate hung for {timeout} s")


def assert_built(registry: Path, done: subprocess.CompletedProcess[str], bad_built: bool = True) -> None:
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    docs = registry.parent / "docs"
    assert (docs / "models/good.md").is_file(), done.stderr
    assert (docs / "models/bad.md").is_file() is bad_built, done.stderr


@pytest.mark.parametrize("name", SIDE_FILES)
def test_a_fifo_beside_the_state_file_does_not_hang(tmp_path: Path, name: str) -> None:
    registry = project_with(tmp_path, {name: "fifo"})
    assert_built(registry, generate(registry, timeout=60))


@pytest.mark.parametrize("name", SIDE_FILES)
def test_a_link_to_dev_zero_is_not_read(tmp_path: Path, name: str) -> None:
    registry = project_with(tmp_path, {name: ("link", "/dev/zero")})
    assert_built(registry, generate(registry, timeout=60))


def test_a_huge_model_card_is_not_read_whole(tmp_path: Path) -> None:
    registry = project_with(tmp_path, {"README.md": 4 * 1000 * 1000 * 1000})  # 4 GB, sparse
    done = generate(registry, timeout=60)
    assert_built(registry, done)
    assert "`x/y`" in (registry.parent / "docs/models/bad.md").read_text(encoding="utf-8")  # its front matter


def test_deep_nesting_and_lone_surrogates_in_side_files(tmp_path: Path) -> None:
    registry = project_with(tmp_path, {
        "adapter_config.json": b'{"base_model_name_or_path": "org/m\\ud800", "peft_type": "LORA\\udfff", '
                               b'"target_modules": ["q\\ud800"]}',
        "config.json": b'{"a": ' + b"[" * 1100 + b"]" * 1100 + b"}",
        "README.md": b'---\nbase_model: "x\\ud800"\n---\n',
    })
    done = generate(registry)
    assert_built(registry, done)
    page = (registry.parent / "docs/models/bad.md").read_text(encoding="utf-8")
    assert "org/m\ufffd" in page


def test_mathtext_and_surrogates_in_names_and_keys_are_drawn_as_text(tmp_path: Path) -> None:
    registry = project_with(tmp_path, {}, names=("Good", "Bad $\\invalidcmd$ $\\frac{$"))
    rows = sft_rows([2.0, 1.5, 1.2, 1.0, 0.9])
    for n, row in enumerate(rows):  # values that vary: a flat metric is stated in a line, not drawn
        row["$\\invalidcmd$"] = 0.5 + n / 100
        row["k\ud800ey"] = 0.25 + n / 100
        row["$x^{$"] = 0.1 + n / 100
    (tmp_path / "bad/trainer_state.json").write_text(
        json.dumps({"global_step": 50, "log_history": rows}, ensure_ascii=True), encoding="utf-8")
    done = generate(registry)
    assert_built(registry, done)
    assert (registry.parent / "docs/models/bad/other-metrics-1.png").is_file()


def test_overlong_metric_keys_are_skipped_with_a_warning(tmp_path: Path) -> None:
    registry = project_with(tmp_path, {})
    rows = sft_rows([2.0, 1.5, 1.2, 1.0, 0.9])
    long_key = "k" * 100_000
    for row in rows:
        row[long_key] = 0.5
        row["ok_metric"] = 0.5
    write_state(tmp_path / "bad", rows)
    done = generate(registry)
    assert_built(registry, done)
    assert f"more than {MAX_KEY_LENGTH}" in done.stderr and "'kkkkkkkkkk" in done.stderr, done.stderr
    assert long_key not in done.stderr
    csv = (registry.parent / "docs/models/bad/log_history.csv").read_text(encoding="utf-8")
    assert "ok_metric" in csv and long_key not in csv

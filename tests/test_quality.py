"""The code stays ruff- and mypy-clean (both are test dependencies)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *command], cwd=REPO, capture_output=True, text=True, check=False)


def test_ruff() -> None:
    done = run("ruff", "check", "--no-cache", "generator", "tests", "examples")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_mypy() -> None:
    done = run("mypy", "--no-incremental", "generator")
    assert done.returncode == 0, done.stdout + done.stderr

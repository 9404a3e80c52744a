"""traindocs as a package: the wheel a clone builds, installed in a fresh venv (and with pipx) like a user would.

These tests build from a copy of the checkout's files (what a clone holds), install the
wheel with its dependencies from the package index (or pip's cache) into a new virtual
environment, and run it there with no PYTHONPATH: the code under test is the installed
wheel, not this checkout.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, copy_example_project
from generator import __version__

pytestmark = pytest.mark.slow

PIP_OWN_NOTICES = re.compile(r"^\s*WARNING: (Location '|Retrying |The directory '|Skipping link)")
"""pip's remarks about this machine's index configuration or network, not about the package."""


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without this checkout on the path (the installed package must be what runs).

    PYTHONDONTWRITEBYTECODE makes setuptools print "byte-compiling is disabled" warnings of its own.
    """
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV")}
    env.update(extra)
    return env


def clone_of_checkout(target: Path) -> Path:
    """The checkout's files as a clone has them: tracked and new files, not what .gitignore leaves out."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, check=False)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: cannot tell a clone's files")
    for name in listed.stdout.decode().split("\0"):
        source = REPO / name
        if name and source.is_file() and not name.startswith(("tests/", "bench/", "screenshots/")):
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return clone_of_checkout(tmp_path_factory.mktemp("clone") / "traindocs")


@pytest.fixture(scope="module")
def wheel_build(clone: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`pip wheel` of the clone: the wheel and everything the build printed (verbose)."""
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(clone), "--no-deps", "-w", str(out), "-v"],
                          capture_output=True, text=True, check=False, env=clean_env())
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    wheels = list(out.glob("traindocs-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0], done.stdout + done.stderr


@pytest.fixture(scope="module")
def installed(wheel_build: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (no system site-packages) with the wheel and its dependencies; its bin/."""
    environment = tmp_path_factory.mktemp("venv") / "venv"
    venv.create(environment, with_pip=True)
    done = subprocess.run([str(environment / "bin" / "python"), "-m", "pip", "install", "--quiet",
                           str(wheel_build[0])], capture_output=True, text=True, check=False, env=clean_env())
    if done.returncode != 0 and re.search(r"(?i)no matching distribution|connection|network", done.stderr):
        pytest.skip("the dependencies cannot be downloaded here: " + done.stderr.strip().splitlines()[-1])
    assert done.returncode == 0, done.stderr[-3000:]
    return environment / "bin"


def test_wheel_builds_without_warnings(wheel_build: tuple[Path, str]) -> None:
    _, output = wheel_build
    warnings = [line for line in output.splitlines()
                if re.search(r"(?i)warn|deprecat", line) and not PIP_OWN_NOTICES.match(line)]
    assert warnings == []


def test_wheel_holds_the_code_static_files_and_entry_points(wheel_build: tuple[Path, str]) -> None:
    with zipfile.ZipFile(wheel_build[0]) as archive:
        names = set(archive.namelist())
        modules = {f"generator/{path.name}" for path in (REPO / "generator").glob("*.py")}
        assert modules <= names, sorted(modules - names)
        static = {f"generator/static/{path.name}" for path in (REPO / "generator" / "static").iterdir()}
        assert static and static <= names, sorted(static - names)
        info = next(name.split("/")[0] for name in names if name.endswith(".dist-info/METADATA"))
        assert info == f"traindocs-{__version__}.dist-info"
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert re.search(r"\[console_scripts\]\s*\ntraindocs = generator\.cli:run", entry_points), entry_points
    assert re.search(r"\[mkdocs\.plugins\]\s*\ntraindocs = generator\.mkdocs_plugin:TraindocsPlugin",
                     entry_points), entry_points
    assert not any(name.startswith(("tests/", "bench/", "examples/")) for name in names)


def test_installed_wheel_runs_and_builds_the_example(installed: Path, tmp_path: Path) -> None:
    version = subprocess.run([str(installed / "traindocs"), "--version"], capture_output=True, text=True,
                             check=False, env=clean_env())
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"traindocs {__version__}"
    where = subprocess.run([str(installed / "python"), "-c", "import generator; print(generator.__file__)"],
                           capture_output=True, text=True, check=False, env=clean_env(), cwd=tmp_path)
    assert where.stdout.strip().startswith(str(installed.parent)), where.stdout  # the wheel, not this checkout
    project = copy_example_project(tmp_path)
    build = subprocess.run([str(installed / "traindocs"), "build", "--strict"], capture_output=True, text=True,
                           check=False, env=clean_env(), cwd=project)
    assert build.returncode == 0, build.stderr
    assert "3 models, 0 problems" in build.stderr
    # The static file comes from the wheel's package data, and MkDocs found the plugin by its entry point.
    assert (project / "site" / "assets" / "traindocs" / "tablesort.js").is_file()
    assert (project / "site" / "models" / "qwen-7b" / "index.html").is_file()
    plain = subprocess.run([str(installed / "mkdocs"), "build", "--strict"], capture_output=True, text=True,
                           check=False, env=clean_env(), cwd=project)
    assert plain.returncode == 0, plain.stderr


def test_pipx_install_from_a_clone(clone: Path, tmp_path: Path) -> None:
    """`pipx install ./traindocs`, pipx itself installed from the package index into a throwaway venv."""
    tools = tmp_path / "pipx-venv"
    venv.create(tools, with_pip=True)
    got_pipx = subprocess.run([str(tools / "bin" / "python"), "-m", "pip", "install", "--quiet", "pipx"],
                              capture_output=True, text=True, check=False, env=clean_env())
    if got_pipx.returncode != 0:
        pytest.skip("pipx cannot be installed here: " + got_pipx.stderr.strip().splitlines()[-1])
    home = tmp_path / "pipx-home"
    env = clean_env(PIPX_HOME=str(home), PIPX_BIN_DIR=str(home / "bin"), PIPX_MAN_DIR=str(home / "man"))
    done = subprocess.run([str(tools / "bin" / "pipx"), "install", str(clone)], capture_output=True, text=True,
                          check=False, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "installed package traindocs" in done.stdout
    version = subprocess.run([str(home / "bin" / "traindocs"), "--version"], capture_output=True, text=True,
                             check=False, env=env)
    assert version.stdout.strip() == f"traindocs {__version__}", version.stderr
    project = copy_example_project(tmp_path)
    build = subprocess.run([str(home / "bin" / "traindocs"), "build", "--strict"], capture_output=True, text=True,
                           check=False, env=env, cwd=project)
    assert build.returncode == 0, build.stderr

"""`traindocs init --github-pages`: the Pages workflow of a report repository.

The workflow is parsed and checked, then its `run:` steps are executed in order, as
the runner would, in a fresh venv inside a fresh git repository made by `traindocs
init`, with the install source (TRAINDOCS_PACKAGE) pointed at a copy of this
checkout instead of the network.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_packaging import clean_env, clone_of_checkout

from conftest import REPO
from generator.cli import main
from generator.errors import TraindocsError
from generator.scaffold import BACKENDS, WORKFLOW_PATH, _git_remote, init_project

BASE_URL = "https://acme.github.io/report"
"""What actions/configure-pages would answer for this repository."""


def load_workflow(project: Path) -> dict[Any, Any]:
    document = yaml.safe_load((project / WORKFLOW_PATH).read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    # YAML 1.1 reads the key `on` as True.
    document["on"] = document.pop(True, document.get("on"))
    return document


def step_using(steps: list[dict[str, Any]], action: str) -> dict[str, Any]:
    matches = [step for step in steps if str(step.get("uses", "")).startswith(action + "@")]
    assert len(matches) == 1, (action, steps)
    return matches[0]


def test_init_writes_the_workflow_only_when_asked(tmp_path: Path) -> None:
    assert main(["init", str(tmp_path / "plain")]) == 0
    assert not (tmp_path / "plain" / ".github").exists()
    assert main(["init", "--github-pages", str(tmp_path / "pages")]) == 0
    assert (tmp_path / "pages" / WORKFLOW_PATH).is_file()
    assert main(["init", "--github-pages", str(tmp_path / "pages")]) == 1  # never overwrites


def test_init_does_not_write_the_workflow_through_a_linked_folder(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    project = tmp_path / "project"
    project.mkdir()
    (project / ".github").symlink_to(elsewhere)
    with pytest.raises(TraindocsError, match="already exists"):
        init_project(project, github_pages=True)
    assert list(elsewhere.iterdir()) == []


def test_workflow_builds_strict_caches_and_deploys(tmp_path: Path) -> None:
    init_project(tmp_path, github_pages=True)
    workflow = load_workflow(tmp_path)
    assert workflow["on"]["push"]["branches"] == ["main"]
    assert workflow["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    requirement = workflow["env"]["TRAINDOCS_PACKAGE"]
    assert requirement.startswith(f"traindocs[{BACKENDS}]"), requirement
    steps = workflow["jobs"]["build"]["steps"]
    runs = [step["run"] for step in steps if "run" in step]
    assert runs == ['python -m pip install "$TRAINDOCS_PACKAGE"', "traindocs build --strict"]
    build = next(step for step in steps if step.get("run") == "traindocs build --strict")
    cache = step_using(steps, "actions/cache")
    # The cache step saves and restores the very folder the build uses, keyed by the registry.
    assert cache["with"]["path"] == build["env"]["TRAINDOCS_CACHE_DIR"]
    assert "hashFiles('checkpoints.yaml')" in cache["with"]["key"]
    assert "github.run_id" in cache["with"]["key"]  # a new key each run: the updated cache is saved
    assert all(key.startswith("traindocs-") for key in cache["with"]["restore-keys"].splitlines())
    assert steps.index(cache) < steps.index(build)
    assert build["env"]["HF_TOKEN"] == "${{ secrets.HF_TOKEN }}"
    assert build["env"]["AWS_SECRET_ACCESS_KEY"] == "${{ secrets.AWS_SECRET_ACCESS_KEY }}"
    assert build["env"]["TRAINDOCS_SITE_URL"] == "${{ steps.pages.outputs.base_url }}/"
    assert step_using(steps, "actions/upload-pages-artifact")["with"]["path"] == "site"
    deploy = workflow["jobs"]["deploy"]
    assert deploy["needs"] == "build"
    assert step_using(deploy["steps"], "actions/deploy-pages")["id"] == "deployment"


def git(folder: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=True,
                          env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
                               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"})
    return done.stdout.strip()


def test_install_source_is_the_clones_remote_at_its_commit(tmp_path: Path) -> None:
    clone = tmp_path / "traindocs"
    clone.mkdir()
    git(clone, "init", "-q")
    (clone / "file").write_text("x")
    git(clone, "add", "file")
    git(clone, "commit", "-qm", "x")
    assert _git_remote(clone) is None  # no remote: nothing a runner can install from
    git(clone, "remote", "add", "origin", "git@github.com:acme/traindocs.git")
    commit = git(clone, "rev-parse", "HEAD")
    assert _git_remote(clone) == ("https://github.com/acme/traindocs.git", commit)
    git(clone, "remote", "set-url", "origin", "/srv/git/traindocs")
    assert _git_remote(clone) is None


EXPRESSION = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")


def evaluated(text: str, runner_temp: Path) -> str:
    """A workflow value with its `${{ }}` expressions as the runner would give them (no secrets here)."""
    def value(match: re.Match[str]) -> str:
        expression = match.group(1)
        if expression == "runner.temp":
            return str(runner_temp)
        if expression == "steps.pages.outputs.base_url":
            return BASE_URL
        if expression.startswith(("secrets.", "vars.")):
            return ""  # a secret that is not set is empty
        raise AssertionError(f"the test does not know the expression {expression!r}")
    return EXPRESSION.sub(value, text)


@pytest.mark.slow
def test_workflow_steps_build_a_fresh_repository(tmp_path: Path) -> None:
    # A fresh report repository: `traindocs init --github-pages`, the example checkpoints' trainer_state.json
    # files committed beside the registry (the case CI can read without a token).
    repository = tmp_path / "report"
    assert main(["init", "--github-pages", str(repository)]) == 0
    shutil.copytree(REPO / "examples", repository / "examples", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    shutil.copy2(REPO / "checkpoints.yaml", repository / "checkpoints.yaml")
    git(repository, "init", "-q", "-b", "main")
    git(repository, "add", ".")
    git(repository, "commit", "-qm", "Training report")
    assert git(repository, "status", "--porcelain") == ""

    workflow = load_workflow(repository)
    environment = tmp_path / "runner-python"  # actions/setup-python: a Python of its own, first on PATH
    venv.create(environment, with_pip=True)
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    clone = clone_of_checkout(tmp_path / "traindocs")
    env = clean_env(PATH=f"{environment / 'bin'}{os.pathsep}{os.environ['PATH']}", CI="true", GITHUB_ACTIONS="true")
    env.pop("TRAINDOCS_CACHE_DIR", None)  # the workflow sets its own
    env.update({name: evaluated(str(value), runner_temp) for name, value in workflow["env"].items()})
    # The install source, pointed at this checkout with the workflow's extras instead of the network.
    assert env["TRAINDOCS_PACKAGE"].startswith(f"traindocs[{BACKENDS}]")
    env["TRAINDOCS_PACKAGE"] = f"{clone}[{BACKENDS}]"
    for step in workflow["jobs"]["build"]["steps"]:
        if "run" not in step:
            continue
        step_env = {**env, **{name: evaluated(str(value), runner_temp) for name, value in step.get("env", {}).items()}}
        done = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=repository, env=step_env,
                              capture_output=True, text=True, check=False)
        if done.returncode != 0 and "pip install" in step["run"] and re.search(
                r"(?i)no matching distribution|connection", done.stderr):
            pytest.skip("the dependencies cannot be downloaded here")
        assert done.returncode == 0, f"{step['run']}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        if "--strict" in step["run"]:
            assert "3 models, 0 problems" in done.stderr
    site = repository / "site"
    assert (site / "index.html").is_file()
    qwen = (site / "models" / "qwen-7b" / "index.html").read_text(encoding="utf-8")
    assert f"{BASE_URL}/models/qwen-7b/" in qwen  # TRAINDOCS_SITE_URL reached mkdocs.yml's site_url
    # The cache folder the actions/cache step keeps was filled by the build.
    cache_dir = Path(evaluated(step_using(workflow["jobs"]["build"]["steps"], "actions/cache")["with"]["path"],
                               runner_temp))
    assert cache_dir.is_dir() and any(cache_dir.rglob("*"))
    # The build leaves the repository's tracked files as they were, and .gitignore covers what it wrote.
    assert git(repository, "status", "--porcelain") == ""
    installed = subprocess.run([str(environment / "bin" / "python"), "-c", "import generator; print(generator.__file__)"],
                               capture_output=True, text=True, check=True, env=clean_env(), cwd=tmp_path)
    assert installed.stdout.startswith(str(environment)), installed.stdout


@pytest.mark.slow
def test_committed_docs_build_where_the_checkpoints_are_not(tmp_path: Path) -> None:
    """Checkpoints on a local disk: generate there, commit docs/, and CI builds it as it is (TRAINDOCS_GENERATE)."""
    from test_existing_site import primary_nav, tree

    repository = tmp_path / "report"
    assert main(["init", "--github-pages", str(repository)]) == 0
    shutil.copytree(REPO / "examples", repository / "examples", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    shutil.copy2(REPO / "checkpoints.yaml", repository / "checkpoints.yaml")
    traindocs = [sys.executable, "-m", "generator", "build", "--strict"]
    on_the_training_machine = subprocess.run(traindocs, cwd=repository, capture_output=True, text=True, check=False)
    assert on_the_training_machine.returncode == 0, on_the_training_machine.stderr
    nav_there = primary_nav(repository / "site" / "models" / "qwen-7b" / "index.html")
    docs = tree(repository / "docs")
    shutil.rmtree(repository / "examples")  # CI has the repository, not the training machine's disk
    shutil.rmtree(repository / "site")

    workflow = load_workflow(repository)
    assert "# TRAINDOCS_GENERATE: \"false\"" in (repository / WORKFLOW_PATH).read_text()
    build = next(step for step in workflow["jobs"]["build"]["steps"] if step.get("run") == "traindocs build --strict")
    env = {**os.environ, **{name: evaluated(str(value), tmp_path) for name, value in build["env"].items()},
           "TRAINDOCS_GENERATE": "false"}
    in_ci = subprocess.run(traindocs, cwd=repository, capture_output=True, text=True, check=False, env=env)
    assert in_ci.returncode == 0, in_ci.stderr
    assert "generate is off" in in_ci.stderr
    assert tree(repository / "docs") == docs  # nothing regenerated, nothing removed
    assert primary_nav(repository / "site" / "models" / "qwen-7b" / "index.html") == nav_there
    assert f"{BASE_URL}/" in (repository / "site" / "sitemap.xml").read_text()
    # Without the switch, the unreachable checkpoints fail the strict build.
    env.pop("TRAINDOCS_GENERATE")
    assert subprocess.run(traindocs, cwd=repository, capture_output=True, text=True, check=False,
                          env=env).returncode == 1

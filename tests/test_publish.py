"""Publishing: the Pages workflow, `mkdocs gh-deploy` to a git remote, permalinks with site_url."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from generator.records import SiteLayout
from generator.site import generate

pytestmark = pytest.mark.slow  # builds sites: an integration test, out of the fast unit subset

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "traindocs tests", "GIT_AUTHOR_EMAIL": "tests@traindocs.invalid",
    "GIT_COMMITTER_NAME": "traindocs tests", "GIT_COMMITTER_EMAIL": "tests@traindocs.invalid",
}


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True,
                          env={**os.environ, **GIT_IDENTITY})
    return done.stdout


def test_pages_workflow_builds_strictly_and_deploys_on_push_to_main() -> None:
    workflow = yaml.safe_load((REPO / ".github/workflows/pages.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as the boolean True
    assert triggers["push"]["branches"] == ["main"]
    build_steps = workflow["jobs"]["build"]["steps"]
    commands = [step.get("run", "") for step in build_steps]
    assert any("pip install -e ." in command for command in commands)
    assert "traindocs build --strict" in commands
    uploads = [step for step in build_steps if step.get("uses", "").startswith("actions/upload-pages-artifact")]
    assert uploads and uploads[0]["with"]["path"] == "site"
    deploy = workflow["jobs"]["deploy"]
    assert deploy["needs"] == "build"
    assert any(step.get("uses", "").startswith("actions/deploy-pages") for step in deploy["steps"])
    assert workflow["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}


@pytest.mark.slow
def test_gh_deploy_from_a_clone_pushes_the_built_site(example_project: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    git("init", "--bare", "--quiet", str(remote), cwd=tmp_path)
    git("init", "--quiet", "-b", "main", cwd=example_project)
    git("add", "-A", cwd=example_project)
    git("commit", "--quiet", "-m", "report", cwd=example_project)
    git("remote", "add", "origin", str(remote), cwd=example_project)
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "gh-deploy", "--strict", "--force", "--no-history",
         "-f", str(example_project / "mkdocs.yml")],
        cwd=example_project, capture_output=True, text=True, check=False,
        env={**os.environ, **GIT_IDENTITY, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stderr
    files = set(git("ls-tree", "-r", "--name-only", "gh-pages", cwd=remote).split())
    for expected in ("index.html", "summary.json", "models/qwen-7b/index.html", "models/gemma-2-2b/loss.png",
                     "models/phi-3-mini/badge.svg", "models/phi-3-mini/log_history.csv",
                     "assets/traindocs/sft-curves.png", "methodology/index.html", ".nojekyll"):
        assert expected in files, expected
    summary = json.loads(git("show", "gh-pages:summary.json", cwd=remote))
    assert [m["slug"] for m in summary["models"]] == ["qwen-7b", "phi-3-mini", "gemma-2-2b"]


def test_site_url_gives_absolute_permalinks_that_follow_the_slug(example_project: Path) -> None:
    layout = SiteLayout(site_url="https://example.org/report/")
    registry = example_project / "checkpoints.yaml"
    generate(registry, example_project / "docs", layout)
    summary = json.loads((example_project / "docs/summary.json").read_text())
    assert summary["models"][0]["url"] == "https://example.org/report/models/qwen-7b/"
    page = (example_project / "docs/models/qwen-7b.md").read_text()
    assert "Permalink: <https://example.org/report/models/qwen-7b/>" in page
    assert ("[![Training report: Qwen 7B](https://example.org/report/models/qwen-7b/badge.svg)]"
            "(https://example.org/report/models/qwen-7b/)") in page
    # Renaming the model keeps its URL: the slug is what the URL is made of.
    registry.write_text(registry.read_text().replace("name: Qwen 7B", "name: Qwen 2.5 7B (LoRA)"))
    generate(registry, example_project / "docs", layout)
    renamed = json.loads((example_project / "docs/summary.json").read_text())["models"][0]
    assert (renamed["name"], renamed["url"]) == ("Qwen 2.5 7B (LoRA)", "https://example.org/report/models/qwen-7b/")


def test_without_site_url_the_snippet_says_how_to_get_one(example_project: Path) -> None:
    generate(example_project / "checkpoints.yaml", example_project / "docs")
    page = (example_project / "docs/models/qwen-7b.md").read_text()
    assert "Permalink" not in page
    assert "Set `site_url` in mkdocs.yml" in page
    assert "url" not in json.loads((example_project / "docs/summary.json").read_text())["models"][0]

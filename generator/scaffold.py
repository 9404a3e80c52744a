"""`traindocs init`: the files of a new report project.

With `--github-pages` it also writes `.github/workflows/pages.yml`, which installs
traindocs from where this one was installed (`install_requirement`), builds with
`traindocs build --strict`, keeps the traindocs cache between runs and deploys to
GitHub Pages.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from generator.errors import TraindocsError
from generator.files import write_atomic

MKDOCS_YML = """\
site_name: Training report  # the site's title: the top bar, the browser tab and the index heading
# Where the site is published (e.g. https://USER.github.io/REPO/): it gives every
# model page a stable absolute URL. The GitHub Pages workflow sets TRAINDOCS_SITE_URL;
# or write the address here instead.
site_url: !ENV [TRAINDOCS_SITE_URL, null]

theme:
  name: material
  font: false  # no requests to Google Fonts: the site works offline
  features:
    - navigation.sections
    - navigation.top
    - search.highlight
    - content.code.copy  # a copy button on the model-card snippet
  palette:
    - media: "(prefers-color-scheme: light)"
      scheme: default
      toggle:
        icon: material/weather-night
        name: Switch to dark mode
    - media: "(prefers-color-scheme: dark)"
      scheme: slate
      toggle:
        icon: material/weather-sunny
        name: Switch to light mode

plugins:
  - search
  - glightbox  # click a plot to zoom it
  # Regenerates the pages from checkpoints.yaml on every `mkdocs build` and
  # `mkdocs serve`, and reloads when a registered trainer_state.json changes.
  - traindocs:
      registry: checkpoints.yaml
      # TRAINDOCS_GENERATE=false builds a committed docs/ as it is, where the checkpoints are not (CI).
      generate: !ENV [TRAINDOCS_GENERATE, true]

markdown_extensions:
  - tables
  - toc:
      permalink: true
  - pymdownx.highlight
  - pymdownx.superfences
"""

CHECKPOINTS_YAML = """\
# traindocs registry: one entry per checkpoint to report on.
# Paths are relative to this file. `path` may be a checkpoint folder (holding
# trainer_state.json), a training output folder (its highest checkpoint-N is
# used) or a trainer_state.json file.

site:   # the title is site_name in mkdocs.yml
  intro: Loss curves and analysis of our fine-tuning runs.

# Thresholds of the analysis (all optional; these are the defaults).
# analysis:
#   smoothing: 0.6          # TensorBoard-style EMA weight, 0 = off
#   low_start_loss: 1.0
#   high_start_loss: 2.0
#   loss_levels: [0.7]

checkpoints: []
# - name: Qwen 7B
#   path: outputs/qwen-7b-sft          # or .../checkpoint-2668, or .../trainer_state.json
#   phase: Phase 1 SFT                 # optional; groups the navigation
#   base_model: Qwen/Qwen2.5-7B-Instruct  # optional; else read from adapter_config.json
#   slug: qwen-7b                      # optional; the page lives at models/<slug>/
#   description: LoRA r=16 on our support tickets.
#   tags: [lora, sft]
"""

GITIGNORE = """\
site/
.cache/
# Written by traindocs from checkpoints.yaml on every build:
docs/.traindocs-manifest.json
docs/.traindocs.lock
docs/index.md
docs/methodology.md
docs/summary.json
docs/models/
docs/assets/traindocs/
"""

WORKFLOW_PATH = ".github/workflows/pages.yml"
PLACEHOLDER_REPOSITORY = "https://github.com/OWNER/traindocs"
BACKENDS = "hf,s3"
"""Extras the workflow installs: reading hf:// and s3:// checkpoints (the case CI can reach)."""

PAGES_YML = """\
# Build the training report with traindocs and publish it on GitHub Pages on every push to main.
# Written by `traindocs init --github-pages`. In the repository settings, set Pages > Source to
# "GitHub Actions".
#
# CI reads the checkpoints named in checkpoints.yaml, so their paths must be reachable from here:
# - on the Hugging Face Hub (hf://...) or S3 (s3://...): add the token as a repository secret
#   (Settings > Secrets and variables > Actions): HF_TOKEN for private Hub repositories,
#   AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for S3 (AWS_DEFAULT_REGION and AWS_ENDPOINT_URL
#   as repository variables when needed);
# - trainer_state.json files committed to this repository (they are small JSON files).
# Checkpoints on a local disk are not reachable: build on that machine instead (`mkdocs gh-deploy`).
name: Publish training report

on:
  push:
    branches: [main]
  workflow_dispatch:

permissions:
  contents: read
  pages: write
  id-token: write

concurrency:
  group: pages
  cancel-in-progress: false

env:
  # What pip installs: traindocs from where `traindocs init` was installed, with the Hub and S3 readers.
  TRAINDOCS_PACKAGE: "{requirement}"
  # Checkpoints on a local disk, and the generated docs/ committed (see .gitignore)? Then build docs/
  # as it is instead of reading the checkpoints:
  # TRAINDOCS_GENERATE: "false"

jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.12"
      - id: pages
        uses: actions/configure-pages@v5
      # traindocs keeps what it read (and its mirror of remote checkpoints, checked against each
      # object's ETag) in a cache: restored here, an unchanged checkpoint is neither downloaded
      # nor parsed again. A new key each run saves the updated cache; the newest one of the same
      # registry is restored, else any.
      - name: Restore the traindocs cache
        uses: actions/cache@v4
        with:
          path: ${{{{ runner.temp }}}}/traindocs-cache
          key: traindocs-${{{{ runner.os }}}}-${{{{ hashFiles('checkpoints.yaml') }}}}-${{{{ github.run_id }}}}
          restore-keys: |
            traindocs-${{{{ runner.os }}}}-${{{{ hashFiles('checkpoints.yaml') }}}}-
            traindocs-${{{{ runner.os }}}}-
      - name: Install traindocs
        run: python -m pip install "$TRAINDOCS_PACKAGE"
      - name: Build the site
        run: traindocs build --strict
        env:
          TRAINDOCS_CACHE_DIR: ${{{{ runner.temp }}}}/traindocs-cache
          # Gives every model page its absolute permalink (mkdocs.yml reads it as site_url).
          TRAINDOCS_SITE_URL: ${{{{ steps.pages.outputs.base_url }}}}/
          HF_TOKEN: ${{{{ secrets.HF_TOKEN }}}}
          AWS_ACCESS_KEY_ID: ${{{{ secrets.AWS_ACCESS_KEY_ID }}}}
          AWS_SECRET_ACCESS_KEY: ${{{{ secrets.AWS_SECRET_ACCESS_KEY }}}}
          AWS_DEFAULT_REGION: ${{{{ vars.AWS_DEFAULT_REGION }}}}
          AWS_ENDPOINT_URL: ${{{{ vars.AWS_ENDPOINT_URL }}}}
      - uses: actions/upload-pages-artifact@v3
        with:
          path: site

  deploy:
    needs: build
    runs-on: ubuntu-latest
    environment:
      name: github-pages
      url: ${{{{ steps.deployment.outputs.page_url }}}}
    steps:
      - id: deployment
        uses: actions/deploy-pages@v4
"""

FILES = {
    "mkdocs.yml": MKDOCS_YML,
    "checkpoints.yaml": CHECKPOINTS_YAML,
    ".gitignore": GITIGNORE,
}


@dataclass(frozen=True)
class Requirement:
    """How CI installs traindocs: a pip requirement, and whether it is a guess the user must edit."""

    text: str
    placeholder: bool = False


def install_requirement() -> Requirement:
    """The pip requirement that installs this very traindocs elsewhere.

    From the installed package's record of its origin (PEP 610 direct_url.json): a git URL with its
    commit; a local clone's `origin` remote at its current commit; a release from an index at its
    version. A clone without a reachable remote gives a placeholder to edit.
    """
    extras = f"traindocs[{BACKENDS}]"
    try:
        distribution: importlib.metadata.Distribution | None = importlib.metadata.distribution("traindocs")
    except importlib.metadata.PackageNotFoundError:
        distribution = None
    origin = _direct_url(distribution)
    if distribution is not None and not _is_this_copy(distribution, origin):
        distribution = origin = None  # another install than the code running (a checkout on PYTHONPATH)
    if distribution is not None and origin is None and distribution.read_text("INSTALLER"):
        return Requirement(f"{extras}=={distribution.version}")  # a release from a package index
    url = str(origin.get("url", "")) if origin else ""
    vcs = origin.get("vcs_info") if origin else None
    if isinstance(vcs, dict) and url:
        commit = vcs.get("commit_id")
        return Requirement(f"{extras} @ git+{url}" + (f"@{commit}" if commit else ""))
    # Installed from a folder (`pip install ./traindocs`, `-e .`), or run from a checkout: that clone's remote.
    clone = Path(unquote(urlsplit(url).path)) if url.startswith("file://") else Path(__file__).resolve().parents[1]
    remote = _git_remote(clone)
    if remote is not None:
        return Requirement(f"{extras} @ git+{remote[0]}@{remote[1]}")
    return Requirement(f"{extras} @ git+{PLACEHOLDER_REPOSITORY}", placeholder=True)


def _is_this_copy(distribution: importlib.metadata.Distribution, origin: dict[str, object] | None) -> bool:
    """Whether the installed distribution is the code running now."""
    running = Path(__file__).resolve()
    if Path(str(distribution.locate_file("generator/scaffold.py"))).resolve() == running:
        return True
    url = str(origin.get("url", "")) if origin else ""
    dir_info = origin.get("dir_info") if origin else None
    editable = isinstance(dir_info, dict) and dir_info.get("editable") is True
    return editable and url.startswith("file://") and running.is_relative_to(Path(unquote(urlsplit(url).path)).resolve())


def _direct_url(distribution: importlib.metadata.Distribution | None) -> dict[str, object] | None:
    if distribution is None:
        return None
    try:
        document = json.loads(distribution.read_text("direct_url.json") or "null")
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _git_remote(clone: Path) -> tuple[str, str] | None:
    """(origin as an https URL, HEAD commit) of a git clone; None when it has neither."""
    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", "-C", str(clone), *args], capture_output=True, text=True, timeout=10,
                                  check=False)
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    url, commit = git("remote", "get-url", "origin"), git("rev-parse", "HEAD")
    scp_like = re.fullmatch(r"[\w.-]+@([\w.-]+):(.+)", url)  # git@github.com:owner/repo.git
    if scp_like:
        url = f"https://{scp_like.group(1)}/{scp_like.group(2)}"
    if not url.startswith("https://") or not commit:
        return None  # a local path or ssh: not something a CI runner can install from
    return url, commit


def pages_workflow(requirement: Requirement) -> str:
    """The GitHub Pages workflow of a report repository."""
    return PAGES_YML.format(requirement=requirement.text)


def init_project(target: Path, github_pages: bool = False) -> list[Path]:
    """Create a new report project in `target`; refuse to overwrite anything.

    `github_pages`: also write the Pages workflow (see `pages_workflow`).
    """
    files = dict(FILES)
    if github_pages:
        files[WORKFLOW_PATH] = pages_workflow(install_requirement())
    # lexists: a dangling symbolic link counts, or writing would create the file it points at.
    existing = [target / name for name in (*files, "docs") if os.path.lexists(target / name)
                and not (name == "docs" and (target / name).is_dir() and not (target / name).is_symlink())]
    # A folder on the way (.github/) that is a link could lead the workflow out of the project.
    existing += sorted({target / parent for name in files for parent in Path(name).parents
                        if parent != Path(".") and (target / parent).is_symlink()})
    if existing:
        names = ", ".join(str(path) for path in existing)
        raise TraindocsError(f"{names}: already exists; traindocs init does not overwrite files")
    target.mkdir(parents=True, exist_ok=True)
    created = []
    for name, text in files.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, text.encode("utf-8"), inside=target)
        created.append(path)
    (target / "docs").mkdir(exist_ok=True)
    created.append(target / "docs")
    return created

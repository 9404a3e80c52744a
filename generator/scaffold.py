"""`traindocs init`: the files of a new report project."""

from __future__ import annotations

import os
from pathlib import Path

from generator.errors import TraindocsError
from generator.files import write_atomic

MKDOCS_YML = """\
site_name: Training report  # the site's title: the top bar, the browser tab and the index heading
# Set this to where the site is published (e.g. https://USER.github.io/REPO/):
# it gives every model page a stable absolute URL.
# site_url: https://example.github.io/training-report/

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

FILES = {
    "mkdocs.yml": MKDOCS_YML,
    "checkpoints.yaml": CHECKPOINTS_YAML,
    ".gitignore": GITIGNORE,
}


def init_project(target: Path) -> list[Path]:
    """Create a new report project in `target`; refuse to overwrite anything."""
    # lexists: a dangling symbolic link counts, or writing would create the file it points at.
    existing = [target / name for name in (*FILES, "docs") if os.path.lexists(target / name)
                and not (name == "docs" and (target / name).is_dir() and not (target / name).is_symlink())]
    if existing:
        names = ", ".join(str(path) for path in existing)
        raise TraindocsError(f"{names}: already exists; traindocs init does not overwrite files")
    target.mkdir(parents=True, exist_ok=True)
    created = []
    for name, text in FILES.items():
        path = target / name
        write_atomic(path, text.encode("utf-8"), inside=target)
        created.append(path)
    (target / "docs").mkdir(exist_ok=True)
    created.append(target / "docs")
    return created

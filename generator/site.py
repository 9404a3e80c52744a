"""The façade of the pipeline: the names other modules and tests import, defined elsewhere.

The work is split by job:

- `generator.pipeline`: `generate` and `build_reports` (read everything, then plan, then write);
- `generator.plan`: `plan_artefacts`, the `Artefact` record and the typed plot jobs;
- `generator.ownership`: the files traindocs owns under docs/ (manifest, lock, leftover temporaries);
- `generator.workers`: the worker processes (`WorkerPool`, `default_jobs`).

Nothing is defined here: patch a name where it is defined, not here.
"""

from __future__ import annotations

from generator.ownership import LOCK_FILE, MANIFEST, TEMPORARY_NAME, OwnedFiles, generation_lock
from generator.pipeline import GenerationResult, build_reports, generate, watched_files
from generator.plan import Artefact, plan_artefacts
from generator.workers import (
    READ_POOL_THRESHOLD,
    RENDER_POOL_THRESHOLD,
    Progress,
    WorkerPool,
    default_jobs,
    render_each,
)

__all__ = [
    "LOCK_FILE",
    "MANIFEST",
    "READ_POOL_THRESHOLD",
    "RENDER_POOL_THRESHOLD",
    "TEMPORARY_NAME",
    "Artefact",
    "GenerationResult",
    "OwnedFiles",
    "Progress",
    "WorkerPool",
    "build_reports",
    "default_jobs",
    "generate",
    "generation_lock",
    "plan_artefacts",
    "render_each",
    "watched_files",
]

"""`python -m generator` runs the traindocs CLI."""

from __future__ import annotations

import sys

from generator.cli import run

sys.exit(run())

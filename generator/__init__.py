"""traindocs: training-report sites from Hugging Face `trainer_state.json` files."""

from __future__ import annotations

__version__ = "0.1.0"

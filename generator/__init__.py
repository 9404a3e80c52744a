"""traindocs: training-report sites from Hugging Face `trainer_state.json` files."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # `TraindocsCallback` subclasses transformers' TrainerCallback: made on first access, so that
    # `import generator` (and the CLI) never imports transformers or torch.
    if name == "TraindocsCallback":
        from generator.callback import callback_class

        return callback_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

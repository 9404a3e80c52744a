"""The errors traindocs reports to a user, one line each.

Every message names where the problem is (file, entry, field) and what was
expected, so the user can act on it without a traceback.
"""

from __future__ import annotations


class TraindocsError(Exception):
    """Base class: a problem with the user's input, reported as one line."""


class ConfigError(TraindocsError):
    """`checkpoints.yaml` (or a setting in it) is invalid."""


class CheckpointError(TraindocsError):
    """A registered checkpoint cannot be read or makes no sense."""


class OwnershipError(TraindocsError):
    """Writing would overwrite a file that traindocs did not write."""


class GenerationBusyError(TraindocsError):
    """Another generation holds the lock on the same docs/ folder."""


def located(file: str, where: str, message: str) -> str:
    """Format `file: where: message`, leaving out empty parts."""
    return ": ".join(part for part in (file, where, message) if part)

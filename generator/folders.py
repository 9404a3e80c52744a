"""Where a registered path leads: the file names and folder rules shared by the local reader
(`generator.reader`) and the remote mirror (`generator.remote`), with the messages both give.

A registered `path` is a state file itself, a checkpoint folder holding `trainer_state.json`,
or a training output folder whose `checkpoint-N` with the highest N (holding one) is used;
a folder with neither but with LLaMA-Factory's `trainer_log.jsonl` is read from that log.
Beside the state file, only `SIDE_FILES` are ever read.
"""

from __future__ import annotations

import re

STATE_FILE = "trainer_state.json"
JSONL_LOG = "trainer_log.jsonl"
"""LLaMA-Factory's own log, read when a folder has no trainer_state.json."""
CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")
SIDE_FILES = ("adapter_config.json", "config.json", "README.md")
"""What the reader reads beside a state file; with the state files, all a remote mirror ever downloads."""
STATE_SUFFIXES = (".json", ".jsonl")
"""A registered file with another ending is not a state file."""
MAX_STATE_BYTES = 128 * 1000 * 1000
"""A 100,000-step log is tens of MB; far beyond that, the file is something else."""
MAX_SIDE_BYTES = 16 * 1000 * 1000
"""adapter_config.json / config.json (and a mirrored model card) beyond this are not read: the page does
without them."""


def checkpoint_number(name: str) -> int | None:
    """N of a folder named `checkpoint-N`; None for any other name."""
    match = CHECKPOINT_DIR.match(name)
    return int(match.group(1)) if match else None


def missing(where: str) -> str:
    return f"{where} does not exist"


def not_a_state_file(where: str) -> str:
    return (f"{where} is a file but not a trainer_state.json; "
            "point it at a checkpoint folder, a training output folder or the trainer_state.json itself")


def nothing_to_read(where: str) -> str:
    return (f"{where} holds no {STATE_FILE}, no checkpoint-N folder with one and no {JSONL_LOG}; "
            "point it at a checkpoint folder, a training output folder or the file itself")

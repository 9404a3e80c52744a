"""The naive baseline: plots drawn the way common training-log scripts draw them.

For every checkpoint: `json.load` the trainer_state.json, put `log_history` in a
pandas DataFrame, then one fresh pyplot figure per metric, `plt.savefig` to a
PNG and `plt.close`. One process, no cache, no analysis, no pages: this is the
floor a script that "just plots the logs" pays, which traindocs' cold run is
compared with.

Usage: python bench/naive.py --out OUT_DIR RUNS_DIR
(RUNS_DIR holds <run>/<checkpoint>/trainer_state.json, as bench/run.py writes them.)
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd

METRICS = ("loss", "learning_rate", "grad_norm", "mean_token_accuracy", "entropy")


def plot_checkpoint(state_file: Path, out_dir: Path) -> int:
    """Five PNGs for one checkpoint; returns how many were written."""
    with open(state_file, encoding="utf-8") as stream:
        state = json.load(stream)
    frame = pd.DataFrame(state["log_history"])
    name = state_file.parent.parent.name
    written = 0
    for metric in METRICS:
        if metric not in frame.columns:
            continue
        rows = frame.dropna(subset=[metric])
        plt.figure(figsize=(10, 5))
        plt.plot(rows["step"], rows[metric])
        plt.xlabel("step")
        plt.ylabel(metric)
        plt.title(f"{name}: {metric}")
        plt.grid(True)
        plt.savefig(out_dir / f"{name}_{metric}.png")
        plt.close()
        written += 1
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Plot every trainer_state.json under RUNS_DIR into OUT_DIR."""
    parser = argparse.ArgumentParser(description="Naive baseline: one pyplot figure per metric and checkpoint.")
    parser.add_argument("runs", type=Path, metavar="RUNS_DIR")
    parser.add_argument("--out", type=Path, required=True, metavar="OUT_DIR")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    files = sorted(args.runs.glob("*/*/trainer_state.json"))
    if not files:
        parser.error(f"no */*/trainer_state.json under {args.runs}")
    plots = sum(plot_checkpoint(path, args.out) for path in files)
    print(f"naive: {plots} plots from {len(files)} checkpoints")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

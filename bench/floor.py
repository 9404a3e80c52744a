"""The matplotlib floor: seconds per figure when one figure is reused for every plot.

Draws the training loss of each trainer_state.json under RUNS_DIR on one reused
Figure (the size and DPI of traindocs' loss plot), replacing the line's data
each time and saving a PNG to memory. No pages, no analysis, no process start-up
counted: the least a PNG of a log can cost with matplotlib on this machine.
bench/run.py multiplies it by the figures a generation draws and divides by the
cores to get the floor of a cold run.

Usage: python bench/floor.py RUNS_DIR [--figures 30]
Prints one line of JSON: {"seconds_per_figure": ..., "figures": ..., "rows": ...}.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

WIDTH, HEIGHT, DPI = 8.0, 4.2, 110
"""traindocs' loss plot (generator/plots.py)."""


def loss_curve(state_file: Path) -> tuple[list[float], list[float]]:
    rows = json.loads(state_file.read_text(encoding="utf-8"))["log_history"]
    points = [(float(row["step"]), float(row["loss"])) for row in rows if "loss" in row]
    return [step for step, _ in points], [loss for _, loss in points]


def seconds_per_figure(files: Sequence[Path], figures: int) -> float:
    """Median seconds to draw and save one figure, after one warm-up figure."""
    figure = Figure(figsize=(WIDTH, HEIGHT), dpi=DPI, facecolor="white")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    (line,) = axes.plot([], [], linewidth=1.0)
    axes.set_xlabel("Step")
    axes.set_ylabel("Loss")
    title = axes.set_title("", loc="left")
    curves = [loss_curve(path) for path in files]  # parsing is not drawing: done before timing
    times = []
    for index in range(figures + 1):
        steps, losses = curves[index % len(curves)]
        started = time.perf_counter()
        line.set_data(steps, losses)
        title.set_text(f"run {index}: loss")
        axes.relim()
        axes.autoscale_view()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DPI, facecolor="white", metadata={"Software": None})
        if index:  # the first figure pays for fonts and caches
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Seconds per figure with one reused matplotlib figure.")
    parser.add_argument("runs", type=Path, metavar="RUNS_DIR")
    parser.add_argument("--figures", type=int, default=30)
    args = parser.parse_args(argv)
    files = sorted(args.runs.glob("*/*/trainer_state.json"))[: args.figures]
    if not files:
        parser.error(f"no */*/trainer_state.json under {args.runs}")
    seconds = seconds_per_figure(files, args.figures)
    rows = len(loss_curve(files[0])[0])
    print(json.dumps({"seconds_per_figure": seconds, "figures": args.figures, "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

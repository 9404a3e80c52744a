"""The time TraindocsCallback adds to a training run.

Usage:  python bench/callback.py [--runs 2]   (needs torch, transformers, TRL: `pip install -e '.[train]' trl`)

1. Per event: the trainer's CallbackHandler dispatching on_step_begin, on_step_end and
   on_log, with and without the callback (it does nothing there: the inherited no-ops).
2. Per save and at the end of training: the tiny SFT run of tests/test_callback.py
   (30 CPU steps, a save every 10) with the callback writing pages only, then with
   build=True; the callback's own timings, wall and CPU, and train() without it.
Wall times move with the machine's load; the CPU times of the callback's events less so.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", WANDB_DISABLED="true")
REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from test_callback import SENTENCES, common_args, tiny_model, tiny_tokenizer  # noqa: E402

from generator import TraindocsCallback  # noqa: E402


def per_event(report_dir: Path, repeats: int = 100_000) -> None:
    from transformers import TrainerControl, TrainerState, TrainingArguments
    from transformers.trainer_callback import CallbackHandler, DefaultFlowCallback

    args = TrainingArguments(output_dir=str(report_dir / "out"), report_to="none", use_cpu=True)
    state, control = TrainerState(), TrainerControl()

    def seconds_per_call(callbacks: list[Any], event: str) -> float:
        handler = CallbackHandler(callbacks, None, None, None, None)
        call = getattr(handler, event)
        extra = {"logs": {"loss": 1.0}} if event == "on_log" else {}
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(repeats):
                call(args, state, control, **extra)
            best = min(best, (time.perf_counter() - started) / repeats)
        return best

    for event in ("on_step_begin", "on_step_end", "on_log"):
        without = seconds_per_call([DefaultFlowCallback], event)
        with_callback = seconds_per_call([DefaultFlowCallback, TraindocsCallback(report_dir=report_dir / "r")], event)
        print(f"{event}: {without * 1e6:.2f} us without the callback, {with_callback * 1e6:.2f} us with it "
              f"(+{(with_callback - without) * 1e9:.0f} ns per event)")


def sft_run(tokenizer: Any, build: bool | None) -> tuple[float, list[Any]]:
    """train() seconds and the callback's timings (build None: no callback)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    work = Path(tempfile.mkdtemp())
    try:
        callback = TraindocsCallback(report_dir=work / "report", build=build) if build is not None else None
        trainer = SFTTrainer(model=tiny_model(tokenizer), args=SFTConfig(**common_args(work / "out", 30, 10),
                             max_length=32), train_dataset=Dataset.from_dict({"text": SENTENCES}),
                             processing_class=tokenizer, callbacks=[callback] if callback else [])
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            trainer.train()
        return time.perf_counter() - started, callback.timings if callback else []
    finally:
        shutil.rmtree(work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2, help="training runs of each kind (default 2)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        per_event(Path(folder))
    tokenizer = tiny_tokenizer()
    for label, build in (("pages only", False), ("build=True", True)):
        for run in range(options.runs):
            total, timings = sft_run(tokenizer, build)
            events = ", ".join(f"{t.event}@{t.step} {t.seconds:.2f} s (CPU {t.cpu_seconds:.2f} s)" for t in timings)
            print(f"{label}, run {run + 1}: train() {total:.2f} s; {events}")
    for run in range(options.runs):
        print(f"no callback, run {run + 1}: train() {sft_run(tokenizer, None)[0]:.2f} s")


if __name__ == "__main__":
    main()

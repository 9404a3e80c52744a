"""A family of training logs consistent with the seed report's text, for the three seed runs.

The seed report (a hand-written analysis traindocs must be able to reproduce)
gives, per run, only: the step count, the first and last logged loss, and a few
sentences. Qwen 7B: 2668 steps, 0.8985 to 0.2598, "stabilized quickly around
step 100", final mean token accuracy > 92%, label Steady. Phi-3 Mini: 199 steps,
1.0539 to 0.2876, "rapid convergence", "entropy decreased consistently", label
Fast. Gemma 2 2B: 314 steps, 2.864 to 0.3381, "dropped to < 0.7 within 50
steps", label Very Fast.

Many curves fit that text. `family(name)` yields a deterministic grid of them,
built from the text alone (never fitted to a traindocs rule), using the curve of
examples/make_examples.py (a fall to a plateau, 95% done at the knee, then a
slow glide to the end loss, plus seeded noise):

- knee: where the first fall is 95% done, within what the text allows
  (Qwen 50/100/150, Phi-3 20/35/50, Gemma 20/30/40);
- plateau: 1.0, 1.2 or 1.4 x the end loss (1.0: flat after the knee, no glide);
- glide: linear or exponential (only for a plateau above the end loss);
- noise: 0%, 2% or 4% of the level;
- logging_steps: 1, 5 or 10, wherever that still leaves at least 20 logged rows.

Grid points that contradict the text are left out (`seed_text_violations`): only
12 of Gemma's 15 with the knee at step 40 and logging every 10 steps (all but the
flat plateau), whose smoothed loss is still above 0.7 at step 50 (the first row,
2.864, keeps 6% of the EMA's weight there). Counts: Qwen 135, Phi-3 90 (no
logging every 10 steps: 19 rows), Gemma 123.

A convergence label that means what the seed means must give `SEED_LABELS[name]`
on every member.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_MAKE_EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "make_examples.py"


def _load_examples() -> Any:
    name = "traindocs_make_examples"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _MAKE_EXAMPLES)
    assert spec is not None and spec.loader is not None, _MAKE_EXAMPLES
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


examples = _load_examples()

SEED_LABELS = {"qwen-7b": "Steady", "phi-3-mini": "Fast", "gemma-2-2b": "Very Fast"}
"""The seed report's 'Convergence Speed' column (Gemma's '(High Initial Gap)' suffix aside)."""

SEED_FIGURES = {name: (run.steps, run.start_loss, run.end_loss) for name, run in examples.SEED_RUNS.items()}
"""(steps, first logged loss, last logged loss) as published."""

KNEES = {"qwen-7b": (50, 100, 150), "phi-3-mini": (20, 35, 50), "gemma-2-2b": (20, 30, 40)}
PLATEAUS = (1.0, 1.2, 1.4)
GLIDES = ("linear", "exponential")
NOISES = (0.0, 0.02, 0.04)
LOGGING_STEPS = (1, 5, 10)
MIN_ROWS = 20


def shapes(name: str) -> Iterator[Any]:
    """The grid of shapes for one seed run, in a fixed order."""
    steps = examples.SEED_RUNS[name].steps
    for knee, plateau, glide, noise, logging in itertools.product(KNEES[name], PLATEAUS, GLIDES, NOISES, LOGGING_STEPS):
        if plateau == 1.0 and glide != GLIDES[0]:
            continue  # no glide: both glide shapes are the same curve
        if steps // logging < MIN_ROWS:
            continue
        yield examples.Shape(knee=knee, plateau=plateau, glide=glide, noise=noise, logging_steps=logging)


def state_for(name: str, shape: Any) -> dict[str, Any]:
    """The finished trainer_state.json document of `name` with `shape`."""
    run = examples.SEED_RUNS[name]
    return examples.trainer_state(run, shape, examples.log_rows(run, shape), run.steps)  # type: ignore[no-any-return]


def family(name: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(case id, trainer_state dict) for every seed-consistent variant of `name`."""
    if name not in examples.SEED_RUNS:
        raise KeyError(f"{name!r}: one of {sorted(examples.SEED_RUNS)}")
    for shape in shapes(name):
        state = state_for(name, shape)
        if seed_text_violations(name, state):
            continue  # contradicts the text (12 Gemma points: knee 40, logging every 10 steps)
        yield f"{name}/{shape.case_id}", state


def write_state(state: dict[str, Any], folder: Path) -> Path:
    """Write `state` as folder/trainer_state.json; returns the file's path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "trainer_state.json"
    path.write_text(json.dumps(state, indent=2), encoding="utf-8")
    return path


def _ema(values: list[float], weight: float = 0.6) -> list[float]:
    """TensorBoard's debiased EMA (pandas ewm(alpha=1 - weight, adjust=True)), written out."""
    out, num, den = [], 0.0, 0.0
    for value in values:
        num = weight * num + value
        den = weight * den + 1.0
        out.append(num / den)
    return out


def seed_text_violations(name: str, state: dict[str, Any]) -> list[str]:
    """The seed report's statements about `name` that `state` contradicts (empty: consistent)."""
    steps, start, end = SEED_FIGURES[name]
    rows = [row for row in state["log_history"] if "loss" in row]
    loss = [row["loss"] for row in rows]
    problems = []
    if not (state["global_step"] == state["max_steps"] == steps):
        problems.append(f"steps {state['global_step']}/{state['max_steps']} != {steps}")
    if loss[0] != start or loss[-1] != end:
        problems.append(f"first/last loss {loss[0]}/{loss[-1]} != {start}/{end}")
    if len(rows) < MIN_ROWS:
        problems.append(f"only {len(rows)} logged rows")
    if "train_runtime" not in state["log_history"][-1]:
        problems.append("no summary row")
    if name == "qwen-7b" and not rows[-1]["mean_token_accuracy"] > 0.92:
        problems.append(f"final token accuracy {rows[-1]['mean_token_accuracy']:.3f} <= 0.92")
    if name == "phi-3-mini":
        entropy = [row["entropy"] for row in rows]
        tenth = max(1, len(entropy) // 10)
        means = [sum(entropy[i : i + tenth]) / len(entropy[i : i + tenth]) for i in range(0, len(entropy), tenth)]
        if any(b >= a for a, b in itertools.pairwise(means)):
            problems.append("entropy does not decrease consistently (tenth means)")
    if name == "gemma-2-2b":
        smoothed = _ema(loss)
        by_50 = [i for i, row in enumerate(rows) if row["step"] <= 50]
        if not by_50 or min(loss[i] for i in by_50) >= 0.7 or min(smoothed[i] for i in by_50) >= 0.7:
            problems.append("loss (raw or smoothed) not below 0.7 by step 50")
    return problems


if __name__ == "__main__":
    for seed in SEED_LABELS:
        print(seed, sum(1 for _ in family(seed)), "of", sum(1 for _ in shapes(seed)), "grid points")

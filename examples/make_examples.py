"""Write the example checkpoints shipped with traindocs.

EXAMPLE DATA: these runs are rebuilt from the TEXT of a hand-written training
report alone (its steps, first and last logged loss, "stabilized quickly around
step 100", "rapid convergence", "dropped to < 0.7 within 50 steps", "mean token
accuracy > 92%", "entropy decreased consistently"), with seeded noise in
between. They are not real training logs, and they are not shaped to make any
traindocs rule give a particular answer.

Every run has the same plainly described shape (`loss_curve`):

1. a fall from the report's start loss to a plateau, 95% done by the *knee* step
   (an exponential decay);
2. then a slow glide from the plateau to the report's end loss at the last
   logged step (linear, or exponential with a time constant of a third of the
   remaining run);
3. plus Gaussian batch noise with a standard deviation of `noise` x the level;
   the first and last logged losses are the report's figures exactly.

The shipped examples all use the middle shape of the family that
tests/seed_family.py generates around them: plateau at 1.2 x the end loss, an
exponential glide, 2% noise, and the middle knee the report's text allows
(Qwen: step 100, "stabilized quickly around step 100"; Phi-3: step 35, "rapid
convergence" in 199 steps; Gemma: step 30, "< 0.7 within 50 steps").

Each file looks like what TRL's SFTTrainer writes: train rows every
`logging_steps` steps with loss, grad_norm, learning_rate, mean_token_accuracy,
entropy, num_tokens, epoch and step; a final summary row; an
adapter_config.json next to it.

Run `python examples/make_examples.py` to rewrite them; the output is the same
bytes every time. tests/seed_family.py imports `SEED_RUNS`, `Shape`,
`log_rows` and `trainer_state` from this file.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class SeedRun:
    """What the report says about one run, plus the invented run settings (LR, LoRA rank, batch)."""

    name: str
    folder: str
    base_model: str
    steps: int
    start_loss: float
    """First logged loss, as published."""
    end_loss: float
    """Last logged loss, as published."""
    entropy: tuple[float, float]
    """Entropy of the first and last rows (invented; it falls over the run)."""
    steps_per_epoch: int
    tokens_per_step: int
    peak_lr: float
    lora_r: int
    saved_steps: tuple[int, ...] = ()
    """Earlier checkpoints to save as well (checkpoint-N folders)."""


@dataclass(frozen=True)
class Shape:
    """The shape of a loss curve between the published first and last loss."""

    knee: int
    """Step by which 95% of the first fall (start loss to plateau) is done."""
    plateau: float
    """Level the first fall ends at, as a multiple of the end loss (1.0: no glide)."""
    glide: str
    """How the plateau glides to the end loss: 'linear' or 'exponential'."""
    noise: float
    """Standard deviation of the batch noise, as a share of the level."""
    logging_steps: int

    @property
    def case_id(self) -> str:
        glide = "flat" if self.plateau == 1.0 else self.glide[:3]
        return (
            f"knee{self.knee}-plateau{self.plateau:.1f}-{glide}-noise{round(self.noise * 100)}pct"
            f"-log{self.logging_steps}"
        )


SEED_RUNS = {
    "qwen-7b": SeedRun(
        name="qwen-7b",
        folder="qwen-7b-phase1-sft",
        base_model="Qwen/Qwen2.5-7B-Instruct",
        steps=2668,
        start_loss=0.8985,
        end_loss=0.2598,
        entropy=(0.92, 0.38),
        steps_per_epoch=1334,
        tokens_per_step=15_872,
        peak_lr=2e-4,
        lora_r=16,
        saved_steps=(500,),
    ),
    "phi-3-mini": SeedRun(
        name="phi-3-mini",
        folder="phi-3-mini-phase2-reasoning",
        base_model="microsoft/Phi-3-mini-4k-instruct",
        steps=199,
        start_loss=1.0539,
        end_loss=0.2876,
        entropy=(1.21, 0.47),
        steps_per_epoch=100,
        tokens_per_step=9_216,
        peak_lr=1e-4,
        lora_r=32,
    ),
    "gemma-2-2b": SeedRun(
        name="gemma-2-2b",
        folder="gemma-2-2b-phase2-reasoning",
        base_model="google/gemma-2-2b-it",
        steps=314,
        start_loss=2.864,
        end_loss=0.3381,
        entropy=(1.64, 0.52),
        steps_per_epoch=157,
        tokens_per_step=8_704,
        peak_lr=1e-4,
        lora_r=16,
    ),
}

EXAMPLE_SHAPES = {
    "qwen-7b": Shape(knee=100, plateau=1.2, glide="exponential", noise=0.02, logging_steps=10),
    "phi-3-mini": Shape(knee=35, plateau=1.2, glide="exponential", noise=0.02, logging_steps=5),
    "gemma-2-2b": Shape(knee=30, plateau=1.2, glide="exponential", noise=0.02, logging_steps=5),
}
"""The one shape per shipped example: the middle of tests/seed_family.py's grid."""


def logged_steps(run: SeedRun, shape: Shape) -> list[int]:
    """Steps a Trainer logs at: every `logging_steps`, no first-step row."""
    return list(range(shape.logging_steps, run.steps + 1, shape.logging_steps))


def loss_curve(run: SeedRun, shape: Shape, step: float, first: int, last: int) -> tuple[float, float]:
    """(noise-free loss, share of the first fall still to go) at `step`."""
    plateau = shape.plateau * run.end_loss
    tau = (shape.knee - first) / math.log(20.0)  # 95% of the fall done at the knee
    fall_left = math.exp(-(step - first) / tau)
    if step <= shape.knee:
        glide = plateau
    else:
        u = (step - shape.knee) / (last - shape.knee)
        if shape.glide == "linear":
            left = 1.0 - u
        elif shape.glide == "exponential":
            left = (math.exp(-3.0 * u) - math.exp(-3.0)) / (1.0 - math.exp(-3.0))
        else:
            raise ValueError(f"unknown glide {shape.glide!r}")
        glide = run.end_loss + (plateau - run.end_loss) * left
    return glide + (run.start_loss - plateau) * fall_left, fall_left


def learning_rate(step: int, run: SeedRun) -> float:
    """Linear warm-up over 3% of the run, then cosine decay to zero."""
    warmup = max(1, round(0.03 * run.steps))
    if step < warmup:
        return run.peak_lr * step / warmup
    progress = (step - warmup) / max(1, run.steps - warmup)
    return run.peak_lr * 0.5 * (1 + math.cos(math.pi * progress))


def log_rows(run: SeedRun, shape: Shape) -> list[dict[str, float]]:
    """Train rows at every logging step, first and last loss as published."""
    rng = random.Random(f"{run.name}/{shape.case_id}")
    steps = logged_steps(run, shape)
    first, last = steps[0], steps[-1]
    rows = []
    tokens = 0
    entropy_start, entropy_end = run.entropy
    for step in steps:
        progress = (step - first) / (last - first)
        level, fall_left = loss_curve(run, shape, step, first, last)
        noise = rng.gauss(0.0, 1.0) * shape.noise * level
        loss = run.start_loss if step == first else run.end_loss if step == last else max(0.01, level + noise)
        loss = round(loss, 4)
        tokens += run.tokens_per_step * shape.logging_steps + rng.randrange(-2048, 2048)
        accuracy = min(0.99, 0.985 - 0.2 * loss + rng.gauss(0.0, 0.003))
        entropy = entropy_end + (entropy_start - entropy_end) * (0.6 * fall_left + 0.4 * (1.0 - progress))
        entropy += rng.gauss(0.0, 0.006)
        rows.append(
            {
                "entropy": entropy,
                "epoch": step / run.steps_per_epoch,
                "grad_norm": abs(0.25 + 0.9 * loss * rng.uniform(0.6, 1.4)),
                "learning_rate": learning_rate(step, run),
                "loss": loss,
                "mean_token_accuracy": accuracy,
                "num_tokens": float(tokens),
                "step": step,
            }
        )
    return rows


def trainer_state(run: SeedRun, shape: Shape, rows: list[dict[str, float]], global_step: int) -> dict[str, object]:
    """A trainer_state.json document as of `global_step` (with the summary row when finished)."""
    history: list[dict[str, float]] = [row for row in rows if row["step"] <= global_step]
    if global_step == run.steps:
        mean_loss = sum(row["loss"] for row in rows) / len(rows)
        runtime = run.steps * (4.1 if run.lora_r == 16 else 2.7)
        history.append(
            {
                "epoch": global_step / run.steps_per_epoch,
                "step": global_step,
                "total_flos": float(global_step * run.tokens_per_step) * 6.0e9,
                "train_loss": mean_loss,
                "train_runtime": round(runtime, 4),
                "train_samples_per_second": round(8 * run.steps / runtime, 3),
                "train_steps_per_second": round(run.steps / runtime, 3),
            }
        )
    return {
        "best_global_step": None,
        "best_metric": None,
        "best_model_checkpoint": None,
        "epoch": global_step / run.steps_per_epoch,
        "eval_steps": 500,
        "global_step": global_step,
        "is_hyper_param_search": False,
        "is_local_process_zero": True,
        "is_world_process_zero": True,
        "log_history": history,
        "logging_steps": shape.logging_steps,
        "max_steps": run.steps,
        "num_input_tokens_seen": 0,
        "num_train_epochs": math.ceil(run.steps / run.steps_per_epoch),
        "save_steps": 500,
        "total_flos": float(global_step * run.tokens_per_step) * 6.0e9,
        "train_batch_size": 4,
        "trial_name": None,
        "trial_params": None,
    }


def adapter_config(run: SeedRun) -> dict[str, object]:
    """The parts of a PEFT LoRA adapter_config.json that traindocs reads."""
    return {
        "base_model_name_or_path": run.base_model,
        "bias": "none",
        "inference_mode": True,
        "lora_alpha": 2 * run.lora_r,
        "lora_dropout": 0.05,
        "peft_type": "LORA",
        "r": run.lora_r,
        "target_modules": ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"],
        "task_type": "CAUSAL_LM",
    }


def write_json(path: Path, document: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # The same layout as transformers' TrainerState.save_to_json.
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def main() -> None:
    for name, run in SEED_RUNS.items():
        shape = EXAMPLE_SHAPES[name]
        rows = log_rows(run, shape)
        for saved in (*run.saved_steps, run.steps):
            folder = HERE / run.folder / f"checkpoint-{saved}"
            write_json(folder / "trainer_state.json", trainer_state(run, shape, rows, saved))
            write_json(folder / "adapter_config.json", adapter_config(run))
        print(f"wrote examples/{run.folder} ({shape.case_id})")


if __name__ == "__main__":
    main()

"""Write the example checkpoints shipped with traindocs.

EXAMPLE DATA: these runs are reconstructed from the published figures of a
hand-written training report (steps, first and last logged loss, where the loss
stabilised, token accuracy, entropy trend), with seeded noise in between. They
are not real training logs. Each file looks like what TRL's SFTTrainer writes:
train rows with loss, grad_norm, learning_rate, mean_token_accuracy, entropy,
num_tokens, epoch and step; a final summary row; an adapter_config.json.

Run `python examples/make_examples.py` to rewrite them; the output is the same
bytes every time.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Recipe:
    """The published figures of one run, and the curve shape that fits them."""

    folder: str
    base_model: str
    steps: int
    logging_steps: int
    start_loss: float
    end_loss: float
    floor: float
    """Loss the fast phase decays towards."""
    fast_scale: float
    """Steps over which the fast phase decays by a factor e."""
    drift: float
    """Extra loss that melts away linearly over the whole run (slow phase)."""
    entropy: tuple[float, float]
    steps_per_epoch: int
    tokens_per_step: int
    peak_lr: float
    lora_r: int
    seed: int
    saved_steps: tuple[int, ...] = ()
    """Earlier checkpoints to save as well (checkpoint-N folders)."""


RECIPES = (
    Recipe(
        folder="qwen-7b-phase1-sft",
        base_model="Qwen/Qwen2.5-7B-Instruct",
        steps=2668,
        logging_steps=10,
        start_loss=0.8985,
        end_loss=0.2598,
        floor=0.255,
        fast_scale=14.0,
        drift=0.14,
        entropy=(0.92, 0.38),
        steps_per_epoch=1334,
        tokens_per_step=15_872,
        peak_lr=2e-4,
        lora_r=16,
        seed=7,
        saved_steps=(500,),
    ),
    Recipe(
        folder="phi-3-mini-phase2-reasoning",
        base_model="microsoft/Phi-3-mini-4k-instruct",
        steps=199,
        logging_steps=5,
        start_loss=1.0539,
        end_loss=0.2876,
        floor=0.285,
        fast_scale=20.0,
        drift=0.0,
        entropy=(1.21, 0.47),
        steps_per_epoch=100,
        tokens_per_step=9_216,
        peak_lr=1e-4,
        lora_r=32,
        seed=11,
    ),
    Recipe(
        folder="gemma-2-2b-phase2-reasoning",
        base_model="google/gemma-2-2b-it",
        steps=314,
        logging_steps=5,
        start_loss=2.864,
        end_loss=0.3381,
        floor=0.335,
        fast_scale=16.5,
        drift=0.0,
        entropy=(1.64, 0.52),
        steps_per_epoch=157,
        tokens_per_step=8_704,
        peak_lr=1e-4,
        lora_r=16,
        seed=13,
    ),
)


def learning_rate(step: int, recipe: Recipe) -> float:
    """Linear warm-up over 3% of the run, then cosine decay to zero."""
    warmup = max(1, round(0.03 * recipe.steps))
    if step < warmup:
        return recipe.peak_lr * step / warmup
    progress = (step - warmup) / max(1, recipe.steps - warmup)
    return recipe.peak_lr * 0.5 * (1 + math.cos(math.pi * progress))


def log_rows(recipe: Recipe) -> list[dict[str, float]]:
    """Train rows at every logging step, first and last loss as published."""
    rng = random.Random(recipe.seed)
    logged = list(range(recipe.logging_steps, recipe.steps + 1, recipe.logging_steps))
    first, last = logged[0], logged[-1]
    rows = []
    tokens = 0
    entropy_start, entropy_end = recipe.entropy
    for step in logged:
        progress = (step - first) / (last - first)
        shape = recipe.floor + (recipe.start_loss - recipe.floor - recipe.drift) * math.exp(
            -(step - first) / recipe.fast_scale
        ) + recipe.drift * (1 - progress)
        noise = rng.gauss(0, 0.012 + 0.02 * shape)
        loss = recipe.start_loss if step == first else recipe.end_loss if step == last else shape + noise
        tokens += recipe.tokens_per_step * recipe.logging_steps + rng.randrange(-2048, 2048)
        accuracy = min(0.99, 0.985 - 0.2 * loss + rng.gauss(0, 0.004))
        entropy = entropy_end + (entropy_start - entropy_end) * (
            0.6 * math.exp(-(step - first) / (recipe.fast_scale * 2)) + 0.4 * (1 - progress)
        ) + rng.gauss(0, 0.012)
        rows.append(
            {
                "entropy": entropy,
                "epoch": step / recipe.steps_per_epoch,
                "grad_norm": abs(0.25 + 0.9 * loss * rng.uniform(0.6, 1.4)),
                "learning_rate": learning_rate(step, recipe),
                "loss": round(loss, 4),
                "mean_token_accuracy": accuracy,
                "num_tokens": float(tokens),
                "step": step,
            }
        )
    return rows


def trainer_state(recipe: Recipe, rows: list[dict[str, float]], global_step: int) -> dict[str, object]:
    """A trainer_state.json document as of `global_step`."""
    history: list[dict[str, float]] = [row for row in rows if row["step"] <= global_step]
    finished = global_step == recipe.steps
    if finished:
        mean_loss = sum(row["loss"] for row in rows) / len(rows)
        runtime = recipe.steps * (4.1 if recipe.lora_r == 16 else 2.7)
        history.append(
            {
                "epoch": global_step / recipe.steps_per_epoch,
                "step": global_step,
                "total_flos": float(global_step * recipe.tokens_per_step) * 6.0e9,
                "train_loss": mean_loss,
                "train_runtime": round(runtime, 4),
                "train_samples_per_second": round(8 * recipe.steps / runtime, 3),
                "train_steps_per_second": round(recipe.steps / runtime, 3),
            }
        )
    return {
        "best_global_step": None,
        "best_metric": None,
        "best_model_checkpoint": None,
        "epoch": global_step / recipe.steps_per_epoch,
        "eval_steps": 500,
        "global_step": global_step,
        "is_hyper_param_search": False,
        "is_local_process_zero": True,
        "is_world_process_zero": True,
        "log_history": history,
        "logging_steps": recipe.logging_steps,
        "max_steps": recipe.steps,
        "num_input_tokens_seen": 0,
        "num_train_epochs": math.ceil(recipe.steps / recipe.steps_per_epoch),
        "save_steps": 500,
        "total_flos": float(global_step * recipe.tokens_per_step) * 6.0e9,
        "train_batch_size": 4,
        "trial_name": None,
        "trial_params": None,
    }


def adapter_config(recipe: Recipe) -> dict[str, object]:
    """The parts of a PEFT LoRA adapter_config.json that traindocs reads."""
    return {
        "base_model_name_or_path": recipe.base_model,
        "bias": "none",
        "inference_mode": True,
        "lora_alpha": 2 * recipe.lora_r,
        "lora_dropout": 0.05,
        "peft_type": "LORA",
        "r": recipe.lora_r,
        "target_modules": ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"],
        "task_type": "CAUSAL_LM",
    }


def write_json(path: Path, document: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # The same layout as transformers' TrainerState.save_to_json.
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def main() -> None:
    for recipe in RECIPES:
        rows = log_rows(recipe)
        for saved in (*recipe.saved_steps, recipe.steps):
            folder = HERE / recipe.folder / f"checkpoint-{saved}"
            write_json(folder / "trainer_state.json", trainer_state(recipe, rows, saved))
            write_json(folder / "adapter_config.json", adapter_config(recipe))
        print(f"wrote examples/{recipe.folder}")


if __name__ == "__main__":
    main()

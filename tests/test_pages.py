"""Pages: escaping of user text, URLs, and golden files of the example site."""

from __future__ import annotations

import difflib
import json
import math
import random
from pathlib import Path
from typing import Any

import pytest

from conftest import GOLDEN
from generator.formatting import md_code, md_text
from generator.records import SiteLayout
from generator.site import generate


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Qwen 7B", "Qwen 7B"),
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        ("[click](javascript:alert(1))", "\\[click\\](javascript:alert(1))"),
        ("**bold** _it_ `code`", "\\*\\*bold\\*\\* \\_it\\_ \\`code\\`"),
        ("a | b", "a \\| b"),
        ("{: onclick=x }", "\\{: onclick=x \\}"),
        ("two\nlines", "two lines"),
        ("Q&A", "Q&amp;A"),
    ],
)
def test_md_text_escapes_markup(text: str, expected: str) -> None:
    assert md_text(text) == expected


def test_md_code() -> None:
    assert md_code("Qwen/Qwen2.5-7B-Instruct") == "`Qwen/Qwen2.5-7B-Instruct`"
    assert md_code("a`b") == "a\\`b"
    assert md_code("") == "n/a"


def test_page_urls() -> None:
    assert SiteLayout().page_url("models/qwen-7b.md") == "models/qwen-7b/"
    assert SiteLayout(use_directory_urls=False).page_url("models/qwen-7b.md") == "models/qwen-7b.html"
    assert SiteLayout().page_url("index.md") == ""
    assert SiteLayout().page_url("guide/index.md") == "guide/"
    assert SiteLayout().absolute("models/x/") == ""
    assert SiteLayout(site_url="https://a.org/r/").absolute("models/x/") == "https://a.org/r/models/x/"


GOLDEN_FILES = [
    "index.md",
    "methodology.md",
    "summary.json",
    "models/qwen-7b.md",
    "models/phi-3-mini.md",
    "models/gemma-2-2b.md",
    "models/gemma-2-2b/figures.json",
]


@pytest.mark.slow  # builds a site
def test_example_site_matches_golden_files(example_project: Path, update_golden: bool) -> None:
    """The generated Markdown of the example site; refresh with `pytest --update-golden`."""
    docs = example_project / "docs"
    generate(example_project / "checkpoints.yaml", docs)
    differing = _differences(docs, GOLDEN, GOLDEN_FILES, update_golden)
    assert not differing, "generated files differ from tests/golden (review, then --update-golden):\n" + "\n".join(
        differing)


# --- golden pages per kind of run -------------------------------------------------------------------
# Small synthetic trainer_state.json logs with the keys TRL and the Trainer write for a DPO run, a GRPO
# run and a classification run with compute_metrics: deterministic (seeded, rounded), so the pages are
# the same bytes on every machine. Refresh with `pytest tests/test_pages.py --update-golden`.

KIND_GOLDEN = GOLDEN / "kinds"


def _state(rows: list[dict[str, Any]], max_steps: int, epochs: float, eval_steps: int, logging_steps: int,
           best: tuple[float, str] | None = None) -> dict[str, Any]:
    """A trainer_state.json as transformers writes it, with the Trainer's closing summary row."""
    train_losses = [row["loss"] for row in rows if "loss" in row]
    rows = [*rows, {"epoch": float(epochs), "step": max_steps, "total_flos": 1.2345e15,
                    "train_loss": round(sum(train_losses) / len(train_losses), 6), "train_runtime": 1234.5,
                    "train_samples_per_second": 8.1, "train_steps_per_second": 0.25}]
    return {
        "best_global_step": int(best[1].rsplit("-", 1)[1]) if best else None,
        "best_metric": best[0] if best else None,
        "best_model_checkpoint": best[1] if best else None,
        "epoch": float(epochs), "eval_steps": eval_steps, "global_step": max_steps, "is_hyper_param_search": False,
        "is_local_process_zero": True, "is_world_process_zero": True, "log_history": rows,
        "logging_steps": logging_steps, "max_steps": max_steps, "num_input_tokens_seen": 0,
        "num_train_epochs": int(epochs), "save_steps": eval_steps, "total_flos": 1.2345e15, "train_batch_size": 8,
        "trial_name": None, "trial_params": None,
    }


def _dpo_state(rng: random.Random) -> dict[str, Any]:
    """TRL DPOTrainer: the sigmoid loss falls from ln 2 as the chosen/rejected margin grows."""
    rows: list[dict[str, Any]] = []
    steps, every, eval_every = 300, 10, 100
    for step in range(every, steps + 1, every):
        t = step / steps
        chosen = 0.4 * t + rng.gauss(0, 0.05)
        rejected = -1.8 * t + rng.gauss(0, 0.08)
        margin = chosen - rejected
        rows.append({
            "epoch": round(step / 150, 4), "grad_norm": round(12.0 * (1 - 0.6 * t) + rng.gauss(0, 1.0), 4),
            "learning_rate": round(5e-7 * min(1.0, step / 30) * (1 - t) + 1e-9, 12),
            "logits/chosen": round(-0.8 - 0.3 * t + rng.gauss(0, 0.02), 4),
            "logits/rejected": round(-0.7 - 0.5 * t + rng.gauss(0, 0.02), 4),
            "logps/chosen": round(-310.0 + 4.0 * chosen * 10 + rng.gauss(0, 3), 3),
            "logps/rejected": round(-330.0 + 4.0 * rejected * 10 + rng.gauss(0, 3), 3),
            "loss": round(math.log1p(math.exp(-margin)) + rng.gauss(0, 0.02), 4),
            "rewards/accuracies": round(min(1.0, 0.5 + 0.45 * t + rng.gauss(0, 0.03)), 4),
            "rewards/chosen": round(chosen, 4), "rewards/margins": round(margin, 4),
            "rewards/rejected": round(rejected, 4), "step": step,
        })
        if step % eval_every == 0:
            evaluated = {key: value + rng.gauss(0, 0.01) for key, value in rows[-1].items()
                         if key.startswith(("rewards/", "logps/", "logits/", "loss"))}
            rows.append({**{f"eval_{key}": round(value, 4) for key, value in evaluated.items()},
                         "eval_rewards/accuracies": round(min(1.0, 0.5 + 0.4 * t), 4),
                         "eval_runtime": 41.2, "eval_samples_per_second": 12.1, "eval_steps_per_second": 1.52,
                         "epoch": round(step / 150, 4), "step": step})
    return _state(rows, steps, 2, eval_every, every)


def _grpo_state(rng: random.Random) -> dict[str, Any]:
    """TRL GRPOTrainer with two reward functions: the reward rises, the KL to the reference grows."""
    rows: list[dict[str, Any]] = []
    steps, every = 200, 5
    for step in range(every, steps + 1, every):
        t = step / steps
        accuracy = min(1.0, 0.15 + 0.55 * t + rng.gauss(0, 0.05))
        fmt = min(1.0, 0.4 + 0.6 * min(1.0, 2 * t) + rng.gauss(0, 0.03))
        kl = max(0.0, 0.002 + 0.08 * t + rng.gauss(0, 0.004))
        length = 180 + 220 * t + rng.gauss(0, 12)
        rows.append({
            "clip_ratio/high_max": 0.0, "clip_ratio/high_mean": 0.0, "clip_ratio/low_mean": 0.0,
            "clip_ratio/low_min": 0.0, "clip_ratio/region_mean": 0.0,
            "completions/clipped_ratio": round(max(0.0, 0.02 + 0.1 * t + rng.gauss(0, 0.01)), 4),
            "completions/max_length": round(length * 2.1), "completions/mean_length": round(length, 2),
            "completions/min_length": round(length * 0.3),
            "epoch": round(step / steps, 4),
            "frac_reward_zero_std": round(max(0.0, 0.05 + 0.3 * t + rng.gauss(0, 0.03)), 4),
            "grad_norm": round(0.3 + rng.gauss(0, 0.05), 4), "kl": round(kl, 6),
            "learning_rate": round(1e-6 * (1 - t) + 1e-9, 12),
            "loss": round(0.04 * kl + rng.gauss(0, 0.0005), 6), "num_tokens": float(step * 51200),
            "reward": round(accuracy + fmt, 4), "reward_std": round(0.6 - 0.25 * t + rng.gauss(0, 0.03), 4),
            "rewards/accuracy_reward/mean": round(accuracy, 4), "rewards/accuracy_reward/std": round(0.45, 4),
            "rewards/format_reward/mean": round(fmt, 4), "rewards/format_reward/std": round(0.3 * (1 - t), 4),
            "step": step,
        })
    return _state(rows, steps, 1, 500, every)


def _classification_state(rng: random.Random) -> dict[str, Any]:
    """Trainer with compute_metrics (accuracy, F1), evaluated each epoch: eval_loss turns up after epoch 3
    while F1 peaks there; metric_for_best_model is f1."""
    rows: list[dict[str, Any]] = []
    per_epoch, epochs, every = 250, 5, 50
    best = (0.0, "")
    for step in range(every, per_epoch * epochs + 1, every):
        t = step / (per_epoch * epochs)
        rows.append({"epoch": round(step / per_epoch, 4), "grad_norm": round(4.0 * (1 - 0.5 * t) + rng.gauss(0, 0.4), 4),
                     "learning_rate": round(2e-5 * (1 - t) + 1e-10, 12),
                     "loss": round(0.69 * math.exp(-3.5 * t) + 0.02 + abs(rng.gauss(0, 0.01)), 4), "step": step})
        if step % per_epoch == 0:
            epoch = step // per_epoch
            f1 = [0.801, 0.846, 0.868, 0.861, 0.857][epoch - 1] + round(rng.gauss(0, 0.001), 4)
            rows.append({"epoch": float(epoch), "eval_accuracy": round(f1 + 0.012, 4), "eval_f1": round(f1, 4),
                         "eval_loss": round([0.43, 0.36, 0.34, 0.37, 0.41][epoch - 1] + rng.gauss(0, 0.002), 4),
                         "eval_runtime": 9.8, "eval_samples_per_second": 204.1, "eval_steps_per_second": 25.5,
                         "step": step})
            if round(f1, 4) > best[0]:
                best = (round(f1, 4), f"out/sst2-roberta/checkpoint-{step}")
    return _state(rows, per_epoch * epochs, epochs, per_epoch, every, best=best)


KIND_RUNS = {  # slug: (name, description, trainer_state.json, checkpoint step)
    "dpo-run": ("DPO run", "Synthetic TRL DPO log.", _dpo_state, 300),
    "grpo-run": ("GRPO run", "Synthetic TRL GRPO log with two reward functions.", _grpo_state, 200),
    "classification-run": ("Classification run", "Synthetic Trainer log with accuracy and F1.",
                           _classification_state, 1250),
}
KIND_GOLDEN_FILES = ["index.md", "summary.json", *(f"models/{slug}.md" for slug in KIND_RUNS)]


def _differences(docs: Path, golden_dir: Path, names: list[str], update: bool) -> list[str]:
    """Each produced file against its golden copy (a unified diff), or the golden copy rewritten."""
    differing = []
    for name in names:
        produced = (docs / name).read_text(encoding="utf-8")
        golden = golden_dir / name
        if update:
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(produced, encoding="utf-8")
        elif not golden.is_file() or golden.read_text(encoding="utf-8") != produced:
            expected = golden.read_text(encoding="utf-8") if golden.is_file() else ""
            label = golden_dir.relative_to(GOLDEN.parent).as_posix()
            diff = difflib.unified_diff(expected.splitlines(), produced.splitlines(), f"{label}/{name}",
                                        f"generated/{name}", lineterm="", n=1)
            differing.append("\n".join(list(diff)[:40]))
    return differing


@pytest.mark.slow  # builds a site
def test_pages_of_each_kind_match_golden_files(tmp_path: Path, update_golden: bool) -> None:
    """A DPO, a GRPO and a classification run in one site; refresh with `pytest --update-golden`."""
    lines = ["site:\n  title: Runs of each kind\ncheckpoints:\n"]
    for seed, (slug, (name, description, make_state, step)) in enumerate(KIND_RUNS.items()):
        folder = tmp_path / slug / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        state = make_state(random.Random(seed))
        (folder / "trainer_state.json").write_text(json.dumps(state, indent=2), encoding="utf-8")
        lines.append(f"  - {{name: {name}, slug: {slug}, path: {slug}, description: {description}}}\n")
    registry = tmp_path / "checkpoints.yaml"
    registry.write_text("".join(lines), encoding="utf-8")
    docs = tmp_path / "docs"
    result = generate(registry, docs, cache=False)
    assert [str(report.figures.kind) for report in result.reports] == ["preference", "rl", "evaluation"]
    differing = _differences(docs, KIND_GOLDEN, KIND_GOLDEN_FILES, update_golden)
    assert not differing, "generated files differ from tests/golden/kinds (review, then --update-golden):\n" + (
        "\n".join(differing))

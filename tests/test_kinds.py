"""Every kind of run, read right: kinds, eval sets, best checkpoints, spikes, RL and DPO sentences, resumed
runs, NaN, interrupted logs, and the index that keeps kinds apart."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from conftest import run_from, sft_rows, write_state
from generator.analysis import analyse
from generator.kinds import direction, eval_groups, other_metrics, run_kind
from generator.narrative import finding_sentence, model_analysis, reward_comparison, reward_conclusion
from generator.reader import read_run
from generator.records import AnalysisSettings, CheckpointEntry, TrainingRun
from generator.site import generate

SETTINGS = AnalysisSettings()


def sentences_of(run: TrainingRun) -> list[str]:
    """The page's findings, then its analysis bullets."""
    figures = analyse(run, SETTINGS)
    return [finding_sentence(x, SETTINGS) for x in figures.findings] + model_analysis(figures, SETTINGS)


def read(path: Path) -> TrainingRun:
    return read_run(CheckpointEntry(index=0, name="run", slug="run", path=str(path), resolved=path))


# --- kinds ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("train", "evals", "kind"),
    [
        (["loss", "reward", "kl"], [], "rl"),
        (["loss", "rewards/format_fn/mean"], [], "rl"),
        (["loss", "objective/rlhf_reward"], [], "rl"),
        (["loss", "rewards/margins", "rewards/chosen"], [], "preference"),
        (["loss", "odds_ratio_loss"], [], "preference"),
        (["loss"], ["eval_rewards/accuracies"], "preference"),
        (["loss"], ["eval_loss", "eval_accuracy", "eval_runtime"], "evaluation"),
        (["loss"], ["eval_rouge-1"], "evaluation"),
        (["loss", "mean_token_accuracy"], ["eval_loss", "eval_runtime"], "sft"),
        (["loss"], ["eval_loss", "eval_mean_token_accuracy", "eval_entropy", "eval_num_tokens"], "sft"),
        (["loss"], ["eval_g0_loss", "eval_g0_runtime"], "sft"),
        ([], [], "sft"),
    ],
)
def test_kind_is_recognised_from_the_logged_keys(train: list[str], evals: list[str], kind: str) -> None:
    assert run_kind(["step", *train], ["step", *evals])[0] == kind


def test_eval_sets_are_grouped_by_metric() -> None:
    columns = ["step", "eval_g0_loss", "eval_g0_accuracy", "eval_g0_runtime", "eval_g1_loss", "eval_g1_accuracy"]
    assert eval_groups(columns) == {
        "accuracy": {"g0": "eval_g0_accuracy", "g1": "eval_g1_accuracy"},
        "loss": {"g0": "eval_g0_loss", "g1": "eval_g1_loss"},
    }
    assert eval_groups(["eval_loss", "eval_rouge-1", "eval_bleu-4"], drawn_elsewhere=["eval_loss"]) == {
        "bleu-4": {"": "eval_bleu-4"}, "rouge-1": {"": "eval_rouge-1"}}


def test_which_way_is_better_comes_from_the_metric_name() -> None:
    assert direction("eval_accuracy") == "max"
    assert direction("eval_rouge-l") == "max"
    assert direction("eval_wer") == "min"
    assert direction("eval_g3_loss") == "min"
    assert direction("eval_gen_len") is None


def test_keys_no_section_draws_are_other_metrics() -> None:
    columns = ["step", "epoch", "loss", "lr", "learning_rate", "grad_norm", "train/acc_0", "num_tokens", "reward",
               "reward_std", "kl", "frac_reward_zero_std"]
    assert other_metrics("rl", columns) == ["frac_reward_zero_std", "lr", "train/acc_0"]
    assert "reward" in other_metrics("sft", columns)


# --- figures and sentences per kind ---------------------------------------------------------------


def test_rl_run_talks_about_reward_not_loss() -> None:
    steps = list(range(1, 101))
    run = run_from({
        "step": steps,
        "loss": [0.0 if i % 3 else -0.01 * (i % 7) for i in steps],
        "reward": [0.1 + 0.006 * i for i in steps],
        "kl": [0.0005 * i for i in steps],
        "completions/mean_length": [200.0 + i for i in steps],
        "completions/clipped_ratio": [0.25] * 100,
    })
    figures = analyse(run, SETTINGS)
    text = " ".join(sentences_of(run))

    assert figures.kind == "rl"
    assert figures.convergence == "n/a" and figures.spikes == ()
    assert "below the start" not in text and "converge" not in text.lower()
    # Means of the first and last ten logged values: 0.1 + 0.006 * 5.5 and 0.1 + 0.006 * 95.5.
    assert "Mean reward rose from 0.133 to 0.673" in text
    assert "KL divergence from the reference model rose" in text
    assert "Mean completion length rose from 205.5 to 295.5 tokens" in text
    assert "25.0% of completions were clipped" in text


def test_preference_run_reports_margin_and_accuracy() -> None:
    steps = list(range(10, 210, 10))
    run = run_from({
        "step": steps,
        "loss": [0.6931 - 0.02 * i for i in range(20)],
        "rewards/margins": [0.1 * i for i in range(20)],
        "rewards/accuracies": [0.5 + 0.02 * i for i in range(20)],
        "rewards/chosen": [0.01 * i for i in range(20)],
        "rewards/rejected": [-0.09 * i for i in range(20)],
    })
    text = " ".join(sentences_of(run))

    assert analyse(run, SETTINGS).kind == "preference"
    # 20 logged values: the means of the first three and the last three.
    assert "The reward margin (chosen minus rejected) rose from 0.1 to 1.8" in text
    assert "the chosen reward was 0.19 and the rejected -1.71" in text
    assert "Preference accuracy (chosen ranked above rejected) rose from 52.0% to 86.0%" in text
    assert "base model" not in text  # a DPO loss starts at log 2 whatever the base model


def test_reward_comparison_and_conclusion_across_rl_runs() -> None:
    rising = analyse(run_from({"step": list(range(1, 21)), "reward": [0.05 * i for i in range(20)]}), SETTINGS)
    flat = analyse(run_from({"step": list(range(1, 21)), "reward": [0.3] * 20}), SETTINGS)

    assert reward_comparison([("A", rising), ("B", flat)]) == [
        "Mean reward over the last tenth of each run's logged steps, highest first: A (0.9) and B (0.3)."]
    assert reward_conclusion([("A", rising), ("B", flat)]).startswith(
        "The reward rose for A; it did not rise for B")


def test_best_checkpoint_is_matched_by_step_whatever_the_path() -> None:
    evals = {"step": [100, 200, 300], "eval_loss": [0.5, 0.4, 0.45], "eval_accuracy": [0.8, 0.9, 0.85]}
    for path in ("./results\\checkpoint-200", "/scratch/user/run/checkpoint-200/", "checkpoint-200"):
        run = run_from({"step": [100, 200, 300], "loss": [1.0, 0.8, 0.7]}, evals,
                       state={"best_model_checkpoint": path, "best_metric": 0.4})
        best = analyse(run, SETTINGS).best_checkpoint
        assert best is not None and best.step == 200 and best.metric_column == "eval_loss", path
    text = " ".join(sentences_of(run))
    assert "Best checkpoint (as recorded by the Trainer): step 200, best_metric 0.4, the eval_loss at that step." in text
    assert "eval_accuracy best 0.9 at step 200 (last 0.85 at step 300)" in text
    no_path = run_from({"step": [1], "loss": [1.0]}, state={"best_metric": 0.48, "best_model_checkpoint": None})
    assert analyse(no_path, SETTINGS).best_checkpoint.step is None  # type: ignore[union-attr]
    assert "a best metric of 0.48 but no best checkpoint step" in " ".join(sentences_of(no_path))


def test_loss_spikes_are_flagged_with_their_steps() -> None:
    losses = [1.0 - 0.01 * i for i in range(40)]
    losses[25] = 3.0
    run = run_from({"step": [10 * (i + 1) for i in range(40)], "loss": losses})
    figures = analyse(run, SETTINGS)

    assert figures.spikes == (260,)
    assert ("Loss spike at step 260: the logged loss jumped above 2x the median of the 10 losses before it, clear of "
            "their batch-to-batch noise.") in sentences_of(run)


# --- shapes of logs -------------------------------------------------------------------------------


def test_nan_loss_is_reported_with_its_step(tmp_path: Path) -> None:
    rows = ",\n".join(
        f'{{"loss": {"NaN" if step >= 812 else 2.0 - step / 1000}, "grad_norm": {"Infinity" if step == 900 else 1.0}, '
        f'"step": {step}}}'
        for step in range(4, 1001, 4)
    )
    path = tmp_path / "run" / "trainer_state.json"
    path.parent.mkdir()
    path.write_text(f'{{"global_step": 1000, "log_history": [{rows}]}}', encoding="utf-8")
    run = read(path)
    figures = analyse(run, SETTINGS)

    assert [(item.column, item.step, item.value, item.count) for item in figures.non_finite] == [
        ("loss", 812, "NaN", 48), ("grad_norm", 900, "Infinity", 1)]
    assert figures.end_loss == 2.0 - 808 / 1000  # the last finite loss
    text = sentences_of(run)
    assert any(sentence.startswith("loss became NaN at step 812 (48 rows in all)") for sentence in text)
    assert any(sentence.startswith("grad_norm became Infinity at step 900:") for sentence in text)


def test_resumed_run_says_where(tmp_path: Path) -> None:
    first = sft_rows([2.0, 1.8, 1.6, 1.5, 1.4])  # steps 10..50
    second = [dict(row, loss=row["loss"] - 0.1) for row in sft_rows([1.8, 1.6, 1.5, 1.4, 1.3, 1.2])[2:]]
    run = read(write_state(tmp_path / "run", first + second, logging_steps=10))

    assert run.train["step"].tolist() == [10, 20, 30, 40, 50, 60]
    assert run.train["loss"].tolist()[2:] == pytest.approx([1.4, 1.3, 1.2, 1.1])
    assert ("The run was resumed: the log goes back from step 50 to step 30. The rows logged from step 30 on "
            "before the restart are replaced by the later ones.") in sentences_of(run)


def test_interrupted_log_and_missing_summary_are_stated(tmp_path: Path) -> None:
    run = read(write_state(tmp_path / "run", sft_rows([2.0, 1.5, 1.2]), global_step=80, logging_steps=10))
    text = sentences_of(run)
    assert ("The last logged step is 30, but the checkpoint is at step 80 (global_step): the last 50 steps are not "
            "in the log, at least the logging interval (10 steps): logging stopped before the checkpoint was saved, as when a "
            "run is interrupted.") in text
    # A checkpoint never holds the summary row (it is written after the last save): nothing to say.
    assert not any("summary row" in sentence for sentence in text)
    # Ending between two logging steps is how every log ends: nothing said.
    quiet = read(write_state(tmp_path / "quiet", sft_rows([2.0, 1.5, 1.2]), global_step=33, logging_steps=10))
    assert not any("last logged step" in sentence for sentence in sentences_of(quiet))
    # logging_steps below 1 is a share of max_steps: 0.1 x 100 = every 10 steps.
    share = read(write_state(tmp_path / "share", sft_rows([2.0, 1.5, 1.2]), global_step=33, max_steps=100,
                             logging_steps=0.1))
    assert not any("last logged step" in sentence for sentence in sentences_of(share))


def test_single_row_and_summary_only_runs(tmp_path: Path) -> None:
    single = read(write_state(tmp_path / "one", [{"loss": 1.25, "step": 10}]))
    assert "Only one training loss was logged (1.25 at step 10): no trend can be read." in sentences_of(single)
    summary_only = read(write_state(tmp_path / "summary", [{"train_runtime": 9.0, "train_loss": 9.0872, "step": 78}],
                                    global_step=78))
    assert ("Only the end-of-training summary was logged: a mean training loss of 9.0872 over 78 steps; no curve can "
            "be drawn.") in sentences_of(summary_only)


# --- the index keeps kinds apart ------------------------------------------------------------------


def _mixed_registry(tmp_path: Path) -> Path:
    steps = range(1, 61)
    write_state(tmp_path / "sft", sft_rows([2.0 * math.exp(-i / 10) + 0.3 for i in range(60)]))
    write_state(tmp_path / "dpo", [
        {"loss": 0.69 - 0.005 * i, "rewards/margins": 0.05 * i, "rewards/accuracies": min(1.0, 0.5 + 0.01 * i),
         "rewards/chosen": 0.01 * i, "rewards/rejected": -0.04 * i, "step": i} for i in steps])
    write_state(tmp_path / "grpo", [
        {"loss": -0.001 * (i % 5), "reward": 0.2 + 0.01 * i, "reward_std": 0.1, "kl": 0.001 * i,
         "completions/mean_length": 100.0 + i, "frac_reward_zero_std": 0.1, "num_tokens": 1000.0 * i, "step": i}
        for i in steps])
    classifier = [{"loss": 0.7 - 0.01 * i, "step": 10 * i, "epoch": float(i)} for i in range(1, 7)]
    classifier += [{"eval_loss": 0.6 - 0.02 * i, "eval_accuracy": 0.7 + 0.03 * i, "eval_runtime": 2.0, "step": 10 * i,
                    "epoch": float(i)} for i in range(1, 7)]
    classifier.sort(key=lambda row: row["step"])
    write_state(tmp_path / "cls", classifier, best_model_checkpoint="C:\\runs\\out\\checkpoint-60", best_metric=0.48)
    registry = tmp_path / "checkpoints.yaml"
    registry.write_text(
        "checkpoints:\n"
        "  - {name: SFT run, path: sft, phase: One}\n"
        "  - {name: DPO run, path: dpo, phase: Two}\n"
        "  - {name: GRPO run, path: grpo, phase: Three}\n"
        "  - {name: Classifier, path: cls, phase: One}\n",
        encoding="utf-8",
    )
    return registry


@pytest.mark.slow  # builds a site
def test_index_has_one_table_and_one_overview_per_kind(tmp_path: Path) -> None:
    result = generate(_mixed_registry(tmp_path), tmp_path / "docs")
    docs = tmp_path / "docs"
    index = (docs / "index.md").read_text(encoding="utf-8")

    assert [r.figures.kind for r in result.reports] == ["sft", "preference", "rl", "evaluation"]
    sections = [line for line in index.splitlines() if line.startswith("## ")]
    assert sections == ["## SFT / Trainer", "## Fine-tune with evaluation metrics",
                        "## Preference optimisation (DPO family)", "## Reinforcement learning (GRPO / PPO / RLOO)"]
    for kind in ("sft", "evaluation", "preference", "rl"):
        assert (docs / f"assets/traindocs/{kind}-curves.png").is_file()
    assert "| Model | Phase | Base model | Steps | Reward (first tenth) |" in index
    assert "| Model | Phase | Base model | Steps | Start Loss | End Loss | Last reward margin |" in index
    assert '<code class="traindocs-name">eval&#95;<wbr>accuracy</code> 0.88 (step 60) | step 60 |' in index
    # Each table compares only its own runs: no loss sentence names the GRPO run.
    assert not any("GRPO run" in line and "loss" in line for line in index.splitlines() if line.startswith("- "))

    assert (docs / "models/grpo-run/rl-1.png").is_file() and (docs / "models/dpo-run/preference-1.png").is_file()
    assert (docs / "models/classifier/eval-1.png").is_file()
    grpo = (docs / "models/grpo-run.md").read_text(encoding="utf-8")
    # frac_reward_zero_std is not dropped: logged as 0.1 at every step, it is stated rather than drawn flat.
    assert not (docs / "models/grpo-run/other-metrics-1.png").exists()
    assert "Not drawn, flat at every logged step: `frac_reward_zero_std` = 0.1" in grpo
    assert "## Reward and policy" in grpo and "Convergence speed" not in grpo
    assert b"reward" in (docs / "models/grpo-run/badge.svg").read_bytes()
    summary = json.loads((docs / "summary.json").read_text(encoding="utf-8"))
    classifier = next(m for m in summary["models"] if m["slug"] == "classifier")
    assert classifier["best_checkpoint"] == {"step": 60, "metric": 0.48, "path": "C:\\runs\\out\\checkpoint-60",
                                             "metric_column": "eval_loss"}
    logged = 0.7 + 0.03 * 6  # as the file holds it
    assert classifier["eval"]["eval_accuracy"] == {"last": logged, "last_step": 60, "best": logged, "best_step": 60,
                                                   "direction": "max"}
    assert "eval_runtime" not in classifier["eval"]


def test_progression_table_for_a_run_folder(tmp_path: Path) -> None:
    rows = sft_rows([2.0, 1.5, 1.2, 1.0, 0.9, 0.85])
    evals = [{"eval_loss": 1.3, "step": 20}, {"eval_loss": 1.1, "step": 40}, {"eval_loss": 1.15, "step": 60}]
    history = sorted(rows + evals, key=lambda row: (row["step"], "eval_loss" in row))
    for step in (20, 40, 60):
        write_state(tmp_path / "out" / f"checkpoint-{step}", [r for r in history if r["step"] <= step],
                    global_step=step, best_model_checkpoint="/abs/out/checkpoint-40", best_metric=1.1)
    (tmp_path / "checkpoints.yaml").write_text("checkpoints:\n  - {name: Run, path: out}\n", encoding="utf-8")
    generate(tmp_path / "checkpoints.yaml", tmp_path / "docs")
    page = (tmp_path / "docs/models/run.md").read_text(encoding="utf-8")

    assert "| checkpoint-20 | 1.5 (step 20) | 1.3 |  |" in page
    assert "| checkpoint-40 | 1 (step 40) | 1.1 | best |" in page
    assert "| checkpoint-60 | 0.85 (step 60) | 1.15 | read for this page |" in page


@pytest.mark.slow  # builds a site
def test_overview_of_one_run_is_one_panel(tmp_path: Path) -> None:
    # The GRPO run logs num_tokens, the DPO run does not; each is alone in its kind, so each overview is
    # one panel by step (four would repeat one curve), whatever other axes the run logged.
    generate(_mixed_registry(tmp_path), tmp_path / "docs")
    from test_plots import png_size

    rl = png_size((tmp_path / "docs/assets/traindocs/rl-curves.png").read_bytes())
    preference = png_size((tmp_path / "docs/assets/traindocs/preference-curves.png").read_bytes())
    assert rl == preference
    assert rl[0] == 550  # one 5-inch panel at 110 dpi (plots.OVERVIEW_PANEL_WIDTH), not the 10-inch grid
    assert not list((tmp_path / "docs/assets/traindocs").glob("rl-curves-*.png"))
    assert np.isfinite(rl).all()

"""Narrative rules: each sentence appears exactly when the figures make it true."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from generator.narrative import comparison, conclusion, model_analysis
from generator.records import AnalysisSettings, Figures, TrainingRun

SETTINGS = AnalysisSettings()


def run(state: dict[str, object] | None = None) -> TrainingRun:
    return TrainingRun(
        state_file=Path("trainer_state.json"), checkpoint_dir=Path("."), train=pd.DataFrame({"step": [1]}),
        eval=pd.DataFrame({"step": []}), summary={}, state=state or {}, state_sha256="0" * 64,
    )


BASE = Figures(
    steps=300, logged_rows=30, start_step=10, start_loss=1.5, end_step=300, end_loss=0.4, min_loss=0.38,
    min_loss_step=280, relative_drop=(1.5 - 0.4) / 1.5, stabilised_step=60, convergence_step=90,
    convergence_fraction=80 / 290, convergence="Fast",
)


def sentences(figures: Figures, state: dict[str, object] | None = None) -> list[str]:
    return model_analysis(figures, run(state), SETTINGS)


def test_start_loss_is_called_low_only_below_the_threshold() -> None:
    low = sentences(dataclasses.replace(BASE, start_loss=0.8985))
    assert any(s.startswith("Started with a relatively low loss (0.8985 < 1.0)") for s in low)
    for start in (1.0, 1.5):
        assert not any("relatively low" in s for s in sentences(dataclasses.replace(BASE, start_loss=start)))


def test_high_initial_loss_needs_the_high_threshold() -> None:
    high = sentences(dataclasses.replace(BASE, start_loss=2.864, high_initial_gap=True))
    assert any(s.startswith("High initial loss: started at 2.864 (>= 2.0)") for s in high)
    assert not any("High initial" in s for s in sentences(dataclasses.replace(BASE, start_loss=1.99)))


def test_level_crossing_is_stated_only_when_the_run_started_above_it() -> None:
    crossed = dataclasses.replace(BASE, start_loss=2.864, high_initial_gap=True, level_crossings=((0.7, 50),))
    assert "Despite the high start, the smoothed loss dropped below 0.7 within 50 steps." in sentences(crossed)
    started_below = dataclasses.replace(BASE, start_loss=0.6, level_crossings=((0.7, 10),))
    assert not any("below 0.7" in s for s in sentences(started_below))
    never = dataclasses.replace(BASE, level_crossings=((0.7, None),))
    assert not any("below 0.7" in s for s in sentences(never))


def test_stabilisation_and_speed() -> None:
    text = sentences(BASE)
    # 60 of 300 steps is within the very_fast share (20%): "quickly".
    assert any(s.startswith("Loss stabilised quickly around step 60 (20% of the 300 steps)") for s in text)
    later = sentences(dataclasses.replace(BASE, stabilised_step=150))
    assert any(s.startswith("Loss stabilised around step 150 (50% of the 300 steps)") for s in later)
    assert any(s.startswith("Rapid convergence: 90% of the loss drop was done by step 90") for s in text)
    unknown = sentences(dataclasses.replace(BASE, stabilised_step=None, convergence_step=None,
                                            convergence_fraction=None, convergence="n/a"))
    assert not any("stabilised" in s or "convergence" in s.lower() for s in unknown)
    flat = sentences(dataclasses.replace(BASE, convergence="No improvement", convergence_step=None,
                                         convergence_fraction=None, end_loss=1.6, smoothed_end=1.55))
    assert "No improvement: the smoothed loss ended at 1.55, no lower than the first logged loss (1.5)." in flat


@pytest.mark.parametrize(
    ("rho", "start", "end", "expected"),
    [
        (-0.97, 1.2, 0.5, "Entropy decreased consistently"),
        (-0.5, 1.2, 0.9, "Entropy fell overall but not consistently"),
        (0.9, 0.5, 1.2, "Entropy increased consistently"),
        (0.1, 1.0, 1.0, "Entropy showed no consistent trend"),
    ],
)
def test_entropy_trend_wording_follows_rho(rho: float, start: float, end: float, expected: str) -> None:
    text = sentences(dataclasses.replace(BASE, entropy_rho=rho, entropy_start=start, entropy_end=end))
    matching = [s for s in text if s.startswith("Entropy")]
    assert len(matching) == 1 and matching[0].startswith(expected)


def test_evaluation_sentences() -> None:
    assert "No evaluation loss was logged, so overfitting cannot be judged from this log." in sentences(BASE)
    rising = dataclasses.replace(BASE, eval_loss_last=0.9, eval_loss_last_step=300, eval_loss_min=0.6,
                                 eval_loss_min_step=100, eval_gap=0.5)
    text = " ".join(sentences(rising))
    assert "Eval loss ended at 0.9 (step 300), 0.5 above the smoothed training loss." in text
    assert "lowest at step 100 (0.6) and rose by 50%" in text and "overfitting" in text
    steady = dataclasses.replace(rising, eval_loss_last=0.62)
    assert "overfitting" not in " ".join(sentences(steady)).replace("overfitting cannot", "")


def test_unfinished_run_is_named() -> None:
    text = sentences(BASE, state={"global_step": 250, "max_steps": 339})
    assert any("step 250 of the planned 339" in s for s in text)
    assert not any("planned" in s for s in sentences(BASE, state={"global_step": 339, "max_steps": 339}))


def test_token_accuracy_quotes_the_last_value() -> None:
    text = sentences(dataclasses.replace(BASE, final_token_accuracy=0.9348, first_token_accuracy=0.8))
    assert "Mean token accuracy ended at 93.5%, from 80.0% at the first logged step." in text


def figures(start: float, end: float, fraction: float | None = 0.3, stabilised: int | None = 50,
            high: bool = False) -> Figures:
    return dataclasses.replace(
        BASE, start_loss=start, end_loss=end, relative_drop=(start - end) / start, convergence_fraction=fraction,
        stabilised_step=stabilised, high_initial_gap=high,
        convergence="n/a" if fraction is None else "Fast",
    )


def test_comparison_names_the_much_higher_start_and_the_end_ranking() -> None:
    models = [("Qwen 7B", figures(0.8985, 0.2598, 0.5)), ("Phi-3 Mini", figures(1.0539, 0.2876, 0.3)),
              ("Gemma 2 2B", figures(2.864, 0.3381, 0.16, high=True))]
    text = comparison(models, SETTINGS)
    assert "Gemma 2 2B started much higher than Qwen 7B and Phi-3 Mini (2.86 vs 0.90 and 1.05)." in text
    assert (
        "Qwen 7B ended with the lowest loss (0.2598); Phi-3 Mini (0.2876) ended comparably (within 15%); "
        "Gemma 2 2B (0.3381) ended higher." in text
    )
    assert any(s.startswith("Fastest convergence relative to run length: Gemma 2 2B") for s in text)
    # 2.0x the others' mean is the line: just below it, nothing is "much higher".
    close = [("A", figures(1.0, 0.3)), ("B", figures(1.99, 0.3))]
    assert not any("much higher" in s for s in comparison(close, SETTINGS))
    assert comparison([("A", figures(1.0, 0.3))], SETTINGS) == []


def test_conclusion_says_converged_only_for_runs_that_did() -> None:
    models = [("Qwen 7B", figures(0.8985, 0.2598)), ("Phi-3 Mini", figures(1.0539, 0.2876)),
              ("Gemma 2 2B", figures(2.864, 0.3381, high=True))]
    text = conclusion(models, SETTINGS)
    assert text.startswith("All three models converged")
    assert "Gemma 2 2B (2.86) went with the largest relative drop (88%)" in text
    mixed = [("A", figures(1.0, 0.5)), ("B", figures(1.0, 0.9, fraction=None, stabilised=None))]
    text = conclusion(mixed, SETTINGS)
    assert "converged" in text and text.startswith("A converged") and "B did not" in text
    assert conclusion([], SETTINGS) == ""

"""Narrative rules: each sentence appears exactly when the figures make it true."""

from __future__ import annotations

import dataclasses

import pytest

from generator.narrative import Compared, base_family, comparison, conclusion, model_analysis
from generator.records import AnalysisSettings, Figures, Finding, SeriesSummary, Severity, SpeedClass

SETTINGS = AnalysisSettings()


BASE = Figures(
    steps=300, logged_rows=30, start_step=10, start_loss=1.5, end_step=300, end_loss=0.4, min_loss=0.38,
    min_loss_step=280, relative_drop=(1.5 - 0.4) / 1.5, fall_end_step=60, fall_end_level=0.5,
    drop_share_at_fall_end=0.9, end_level=0.41, stabilised_step=None, fall_rate=0.38, convergence=SpeedClass.FAST,
    smoothed_start=1.5, smoothed_end=0.4,
)


def sentences(figures: Figures) -> list[str]:
    return model_analysis(figures, SETTINGS)


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


def test_fall_end_stabilisation_and_speed() -> None:
    text = sentences(BASE)
    # The loss kept falling after the knee (0.5 -> 0.41): it is not called stable.
    assert any(s.startswith("The fast fall of the loss ended around step 60 (20% of the 300 steps), at a level of "
                            "0.5 (90% of the whole fall); after it the loss kept falling, more slowly, by another 18% "
                            "to 0.41") for s in text)
    assert not any("stabilised" in s for s in text)
    flat = sentences(dataclasses.replace(BASE, stabilised_step=60, end_level=0.49))
    assert any("from there on the loss level varied by at most 10% of that level: it stabilised" in s for s in flat)
    assert any(s.startswith("Convergence speed Fast: the loss fell by 0.38 per 100 steps on average "
                            "(smoothed loss 1.5 to 0.4 over 290 steps).") for s in text)
    unknown = sentences(dataclasses.replace(BASE, fall_end_step=None, fall_end_level=None, fall_rate=None,
                                            convergence=SpeedClass.NOT_RATED))
    assert not any("fast fall" in s or "Convergence speed" in s for s in unknown)


@pytest.mark.parametrize(
    ("rho", "head", "tail", "trend", "expected"),
    [
        (-0.97, 1.2, 0.5, "fell", "Entropy decreased consistently from 1.2 to 0.5"),
        (-0.5, 1.2, 0.9, "fell", "Entropy fell from 1.2 to 0.9"),
        (0.9, 0.5, 1.2, "rose", "Entropy increased consistently from 0.5 to 1.2"),
        (0.1, 1.0, 1.05, "none", "Entropy showed no clear trend (1 to 1.05"),
    ],
)
def test_entropy_wording_follows_the_one_trend(rho: float, head: float, tail: float, trend: str,
                                               expected: str) -> None:
    entropy = SeriesSummary("entropy", 30, head, 10, tail, 300, 0.4, 200, 1.3, 20, head, tail, rho, trend)
    text = sentences(dataclasses.replace(BASE, series=(entropy,)))
    matching = [s for s in text if s.startswith("Entropy")]
    assert len(matching) == 1 and matching[0].startswith(expected), matching


def test_evaluation_sentences() -> None:
    assert "No evaluation loss was logged, so overfitting cannot be judged from this log." in sentences(BASE)
    rising = dataclasses.replace(BASE, eval_loss_last=0.9, eval_loss_last_step=300, eval_loss_min=0.6,
                                 eval_loss_min_step=100, eval_gap=0.5)
    text = " ".join(sentences(rising))
    assert "Eval loss ended at 0.9 (step 300), 0.5 above the smoothed training loss." in text


def test_token_accuracy_quotes_the_last_value() -> None:
    text = sentences(dataclasses.replace(BASE, final_token_accuracy=0.9348, first_token_accuracy=0.8))
    assert "Mean token accuracy ended at 93.5%, from 80.0% at the first logged step." in text


def figures(start: float, end: float, rate: float | None = 0.3, knee: int | None = 50,
            high: bool = False, findings: tuple[Finding, ...] = ()) -> Figures:
    return dataclasses.replace(
        BASE, start_loss=start, end_loss=end, relative_drop=(start - end) / start, fall_rate=rate,
        fall_end_step=knee, high_initial_gap=high, convergence=SpeedClass.NOT_RATED if rate is None else SpeedClass.FAST, findings=findings,
    )


def compared(*models: tuple[str, Figures], group: str = "g") -> list[Compared]:
    return [Compared(name, f, group) for name, f in models]


def test_comparison_names_the_much_higher_start_and_the_end_ranking() -> None:
    models = compared(("Qwen 7B", figures(0.8985, 0.2598, 0.024)), ("Phi-3 Mini", figures(1.0539, 0.2876, 0.39)),
                      ("Gemma 2 2B", figures(2.864, 0.3381, 0.81, high=True)))
    text = comparison(models, SETTINGS)
    assert ("Gemma 2 2B started much higher than Qwen 7B and Phi-3 Mini (2.86 vs 0.90 and 1.05, at least 2x "
            "their mean).") in text
    assert ("Compared within g: Qwen 7B ended with the lowest loss (0.2598); Phi-3 Mini (0.2876) ended comparably "
            "(within 15%); Gemma 2 2B (0.3381) ended higher.") in text
    assert "Fastest fall: Gemma 2 2B, 0.81 per 100 steps on average (Fast)." in text
    # 2.0x the others' mean is the line: just below it, nothing is "much higher".
    close = compared(("A", figures(1.0, 0.3)), ("B", figures(1.99, 0.3)))
    assert not any("much higher" in s for s in comparison(close, SETTINGS))
    assert comparison(compared(("A", figures(1.0, 0.3))), SETTINGS) == []


def test_runs_of_different_families_are_not_compared() -> None:
    models = [Compared("Summariser", figures(3.0, 1.0), "t5"), Compared("Classifier", figures(0.7, 0.1), "bert"),
              Compared("Speech", figures(1.2, 0.3), "whisper")]
    text = comparison(models, SETTINGS)
    assert not any("lowest loss" in s or "much higher" in s for s in text)
    assert text == ["Not compared: Summariser (t5), Classifier (bert) and Speech (whisper). Raw losses are compared "
                    "only between runs of one base model family (one tokenizer) or one `compare_group` of "
                    "checkpoints.yaml."]
    assert base_family("Qwen/Qwen2.5-7B-Instruct") == "qwen2.5"
    assert base_family("google/gemma-2-2b-it") == "gemma-2"
    assert base_family("") == ""


def test_conclusion_says_converged_only_for_runs_that_did() -> None:
    models = compared(("Qwen 7B", figures(0.8985, 0.2598)), ("Phi-3 Mini", figures(1.0539, 0.2876)),
                      ("Gemma 2 2B", figures(2.864, 0.3381, high=True)))
    text = conclusion(models, SETTINGS)
    assert text.startswith("All three runs converged")
    assert ("the higher a run started, the larger its relative drop (start loss to relative drop: Gemma 2 2B 2.86 "
            "to 88%, Phi-3 Mini 1.05 to 73% and Qwen 7B 0.90 to 71%)") in text
    # The audit's false conclusion: the highest start but not the largest drop across the table.
    mixed_order = compared(("A", figures(3.0, 1.5)), ("B", figures(2.0, 0.2)), ("C", figures(1.0, 0.5)))
    assert "the higher a run started" not in conclusion(mixed_order, SETTINGS)
    overfit = Finding("eval_loss_rising", Severity.WARNING, {"rise": 0.37})
    with_warning = compared(("A", figures(1.0, 0.5)), ("B", figures(1.0, 0.4, findings=(overfit,))))
    text = conclusion(with_warning, SETTINGS)
    assert text.startswith("A converged") and "B is not counted as converged: its eval loss rose after its minimum (overfitting)" in text
    no_knee = compared(("A", figures(1.0, 0.5, knee=None)))
    assert "is not counted as converged: no end of its fall was found within the logged steps" in conclusion(
        no_knee, SETTINGS)

"""Figures -> sentences.

Each rule reads figures and either states something that is true of them, with
the numbers that make it true, or says nothing. Sentences are plain text; the
pages escape them for Markdown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from generator.formatting import (
    count_words,
    fmt_level,
    fmt_number,
    fmt_percent,
    fmt_short,
    join_words,
)
from generator.records import AnalysisSettings, Figures, TrainingRun


def model_analysis(figures: Figures, run: TrainingRun, settings: AnalysisSettings) -> list[str]:
    """Analysis bullets for one model page, in reading order."""
    sentences: list[str] = []
    for rule in (_start, _stabilisation, _levels, _speed, _end, _token_accuracy, _entropy, _evaluation):
        sentence = rule(figures, settings)
        if sentence:
            sentences.append(sentence)
    unfinished = _unfinished(run)
    if unfinished:
        sentences.append(unfinished)
    return sentences


def _share_of_run(step: int, figures: Figures) -> str:
    if figures.steps <= 0:
        return ""
    return f" ({fmt_percent(step / figures.steps, 0)} of the {figures.steps} steps)"


def _start(f: Figures, s: AnalysisSettings) -> str:
    if f.start_loss is None:
        return ""
    if f.start_loss < s.low_start_loss:
        return (
            f"Started with a relatively low loss ({fmt_number(f.start_loss)} < {fmt_level(s.low_start_loss)}): "
            "the base model already predicted the training data well."
        )
    if f.start_loss >= s.high_start_loss:
        return (
            f"High initial loss: started at {fmt_number(f.start_loss)} (>= {fmt_level(s.high_start_loss)}), "
            "so the training data was far from what the base model predicted."
        )
    return ""


def _stabilisation(f: Figures, s: AnalysisSettings) -> str:
    if f.stabilised_step is None:
        return ""
    quickly = "quickly " if f.steps and f.stabilised_step / f.steps <= s.very_fast else ""
    return (
        f"Loss stabilised {quickly}around step {f.stabilised_step}{_share_of_run(f.stabilised_step, f)}: "
        f"after it the smoothed loss stayed within {fmt_percent(s.stable_band, 0)} of its overall range."
    )


def _levels(f: Figures, s: AnalysisSettings) -> str:
    parts = []
    for level, step in f.level_crossings:
        if f.start_loss is not None and f.start_loss > level and step is not None:
            parts.append(f"below {fmt_level(level)} within {step} step{'' if step == 1 else 's'}")
    if not parts:
        return ""
    lead = "Despite the high start, the smoothed loss dropped " if f.high_initial_gap else "The smoothed loss dropped "
    return lead + join_words(parts) + "."


def _speed(f: Figures, s: AnalysisSettings) -> str:
    if f.convergence == "No improvement":
        if f.smoothed_end is None or f.start_loss is None:
            return ""
        return (
            f"No improvement: the smoothed loss ended at {fmt_number(f.smoothed_end)}, "
            f"no lower than the first logged loss ({fmt_number(f.start_loss)})."
        )
    if f.convergence_step is None or f.convergence_fraction is None:
        return ""
    share = fmt_percent(s.convergence_share, 0)
    where = f"{share} of the loss drop was done by step {f.convergence_step}"
    where += f" ({fmt_percent(f.convergence_fraction, 0)} of the logged run)"
    if f.convergence in ("Very Fast", "Fast"):
        return f"Rapid convergence: {where}."
    if f.convergence == "Steady":
        return f"Steady convergence: {where}; the loss kept improving after that."
    return f"Slow convergence: {where}."


def _end(f: Figures, s: AnalysisSettings) -> str:
    if f.end_loss is None or f.start_loss is None or f.logged_rows < 2:
        return ""
    text = f"Final loss {fmt_number(f.end_loss)} at step {f.end_step}"
    if f.relative_drop is not None and f.relative_drop > 0:
        text += f", {fmt_percent(f.relative_drop, 0)} below the start"
    elif f.relative_drop is not None and f.relative_drop < 0:
        text += f", {fmt_percent(-f.relative_drop, 0)} above the start"
    if f.min_loss is not None and f.min_loss < f.end_loss:
        text += f"; the lowest logged loss was {fmt_number(f.min_loss)} at step {f.min_loss_step}"
    return text + "."


def _token_accuracy(f: Figures, s: AnalysisSettings) -> str:
    if f.final_token_accuracy is None:
        return ""
    text = f"Mean token accuracy ended at {fmt_percent(f.final_token_accuracy)}"
    if f.first_token_accuracy is not None and f.first_token_accuracy != f.final_token_accuracy:
        text += f", from {fmt_percent(f.first_token_accuracy)} at the first logged step"
    return text + "."


def _entropy(f: Figures, s: AnalysisSettings) -> str:
    if f.entropy_rho is None or f.entropy_start is None or f.entropy_end is None:
        return ""
    values = f"from {fmt_number(f.entropy_start)} to {fmt_number(f.entropy_end)}, Spearman rho {f.entropy_rho:+.2f}"
    if f.entropy_rho <= -s.entropy_consistency:
        return f"Entropy decreased consistently ({values}): the model grew more confident in its predictions."
    if f.entropy_rho >= s.entropy_consistency:
        return f"Entropy increased consistently ({values}): the model's predictions grew less certain."
    if f.entropy_end < f.entropy_start:
        return f"Entropy fell overall but not consistently ({values})."
    if f.entropy_end > f.entropy_start:
        return f"Entropy rose overall but not consistently ({values})."
    return f"Entropy showed no consistent trend ({values})."


def _evaluation(f: Figures, s: AnalysisSettings) -> str:
    if f.eval_loss_last is None:
        if f.logged_rows:
            return "No evaluation loss was logged, so overfitting cannot be judged from this log."
        return ""
    text = f"Eval loss ended at {fmt_number(f.eval_loss_last)} (step {f.eval_loss_last_step})"
    if f.eval_gap is not None and f.eval_gap != 0:
        relation = "above" if f.eval_gap > 0 else "below"
        text += f", {fmt_number(abs(f.eval_gap))} {relation} the smoothed training loss"
    elif f.eval_gap == 0:
        text += ", equal to the smoothed training loss"
    text += "."
    if (
        f.eval_loss_min is not None
        and f.eval_loss_min_step is not None
        and f.eval_loss_last_step is not None
        and f.eval_loss_min_step < f.eval_loss_last_step
        and f.eval_loss_min > 0  # a relative rise means nothing below zero
        and f.eval_loss_last > f.eval_loss_min * (1 + s.comparable_tolerance)
    ):
        text += (
            f" It was lowest at step {f.eval_loss_min_step} ({fmt_number(f.eval_loss_min)}) and rose by "
            f"{fmt_percent(f.eval_loss_last / f.eval_loss_min - 1, 0)} after that: a sign of overfitting."
        )
    return text


def _unfinished(run: TrainingRun) -> str:
    global_step = run.global_step
    max_steps = run.state.get("max_steps")
    if global_step is None or isinstance(max_steps, bool) or not isinstance(max_steps, (int, float)):
        return ""
    try:
        if not math.isfinite(max_steps) or max_steps <= 0:
            return ""
    except OverflowError:  # an integer beyond any float: not a real plan
        return ""
    if global_step < max_steps:
        return (
            f"This checkpoint is at step {global_step} of the planned {int(max_steps)} (max_steps): "
            "training had not finished when it was saved."
        )
    return ""


# --- Across models (index page) ---------------------------------------------


def _others_text(values: Sequence[float]) -> str:
    if len(values) <= 3:
        return join_words([fmt_short(v) for v in values])
    return f"a mean of {fmt_short(sum(values) / len(values))}"


def comparison(models: Sequence[tuple[str, Figures]], settings: AnalysisSettings) -> list[str]:
    """Statements comparing models with each other (needs two or more with a loss)."""
    rated = [(name, f) for name, f in models if f.start_loss is not None and f.end_loss is not None]
    if len(rated) < 2:
        return []
    sentences: list[str] = []
    for name, f in rated:
        assert f.start_loss is not None
        others = [(n, o.start_loss) for n, o in rated if n != name and o.start_loss is not None]
        mean_others = sum(v for _, v in others) / len(others)
        if mean_others > 0 and f.start_loss >= settings.much_higher_factor * mean_others:
            names = join_words([n for n, _ in others]) if len(others) <= 3 else "the other models"
            sentences.append(
                f"{name} started much higher than {names} "
                f"({fmt_short(f.start_loss)} vs {_others_text([v for _, v in others])})."
            )

    by_end = sorted(rated, key=lambda item: (item[1].end_loss, item[0]))
    best_name, best = by_end[0]
    assert best.end_loss is not None
    close = [(n, o) for n, o in by_end[1:] if o.end_loss is not None and best.end_loss > 0
             and o.end_loss <= best.end_loss * (1 + settings.comparable_tolerance)]
    far = [(n, o) for n, o in by_end[1:] if (n, o) not in close]
    text = f"{best_name} ended with the lowest loss ({fmt_number(best.end_loss)})"
    if close:
        text += (
            f"; {join_words([f'{n} ({fmt_number(o.end_loss)})' for n, o in close])} ended comparably "
            f"(within {fmt_percent(settings.comparable_tolerance, 0)})"
        )
    if far:
        text += f"; {join_words([f'{n} ({fmt_number(o.end_loss)})' for n, o in far])} ended higher"
    sentences.append(text + ".")

    speeds = [(n, o) for n, o in rated if o.convergence_fraction is not None]
    if len(speeds) >= 2:
        fastest_name, fastest = min(speeds, key=lambda item: (item[1].convergence_fraction, item[0]))
        assert fastest.convergence_fraction is not None
        sentences.append(
            f"Fastest convergence relative to run length: {fastest_name} "
            f"({fmt_percent(settings.convergence_share, 0)} of its loss drop within the first "
            f"{fmt_percent(fastest.convergence_fraction, 0)} of its logged steps)."
        )
    return sentences


def conclusion(models: Sequence[tuple[str, Figures]], settings: AnalysisSettings) -> str:
    """A closing paragraph over all models; empty when there is nothing to conclude."""
    rated = [(name, f) for name, f in models if f.start_loss is not None and f.end_loss is not None]
    if not rated:
        return ""
    converged = [n for n, f in rated if _converged(f)]
    not_converged = [n for n, f in rated if not _converged(f)]
    count = len(rated)
    if not not_converged:
        if count == 1:
            text = f"{converged[0]} converged: its loss fell and then stabilised."
        else:
            every = "Both" if count == 2 else f"All {count_words(count)}"
            text = f"{every} models converged: each ended below its start loss and its loss stabilised."
    elif not converged and count == 1:
        text = f"{not_converged[0]} does not show a loss that fell and then stabilised."
    elif not converged:
        text = f"None of the {count} models shows a loss that fell and then stabilised."
    else:
        text = (
            f"{join_words(converged)} converged (loss fell, then stabilised); "
            f"{join_words(not_converged)} did not show both within the logged steps."
        )
    drops = [(n, f) for n, f in rated if f.relative_drop is not None]
    if count >= 2 and drops:
        top_name, top = max(drops, key=lambda item: (item[1].relative_drop, item[0]))
        assert top.relative_drop is not None and top.start_loss is not None
        if top.high_initial_gap:
            rest = [n for n, f in rated if n != top_name and not f.high_initial_gap]
            text += (
                f" The higher initial loss of {top_name} ({fmt_short(top.start_loss)}) went with the largest "
                f"relative drop ({fmt_percent(top.relative_drop, 0)}): it had the most to learn from fine-tuning"
            )
            if rest:
                text += f", whereas {join_words(rest)} started closer to their training data"
            text += "."
        else:
            text += f" The largest relative drop was {top_name}'s ({fmt_percent(top.relative_drop, 0)})."
    return text


def _converged(f: Figures) -> bool:
    """Loss ended lower than it started and a stabilisation step was found."""
    return f.relative_drop is not None and f.relative_drop > 0 and f.stabilised_step is not None

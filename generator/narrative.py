"""Figures -> sentences.

Each rule reads figures and either states something that is true of them, with
the numbers that make it true, or says nothing. Sentences are plain text; the
pages escape them for Markdown.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from generator.formatting import (
    count_words,
    fmt_level,
    fmt_number,
    fmt_percent,
    fmt_short,
    join_words,
)
from generator.kinds import REWARD_FUNCTION
from generator.records import AnalysisSettings, Figures, SeriesSummary, TrainingRun


def model_analysis(figures: Figures, run: TrainingRun, settings: AnalysisSettings) -> list[str]:
    """Analysis bullets for one model page, in reading order."""
    rules: tuple[Callable[[Figures, AnalysisSettings], str], ...]
    if figures.kind == "rl":
        rules = (_rl_loss, _reward, _reward_functions, _kl, _completion_length, _evaluation)
    else:
        rules = (_start, _stabilisation, _levels, _speed, _end, _spikes, _token_accuracy, _entropy,
                 _margin, _preference_accuracy, _evaluation)
    sentences = [_kind(figures)] if figures.kind_keys else []
    sentences += [sentence for rule in rules if (sentence := rule(figures, settings))]
    sentences += [sentence for rule in (_eval_metrics, _best_checkpoint, _non_finite, _few_rows)
                  if (sentence := rule(figures, settings))]
    sentences += [sentence for sentence in (_resumed(run), _log_gap(figures, run), _no_summary(run), _unfinished(run)) if sentence]
    return sentences


def _kind(f: Figures) -> str:
    return f"Kind of run: {f.kind_label}, recognised from {join_words(list(f.kind_keys))}."


def _share_of_run(step: int, figures: Figures) -> str:
    if figures.steps <= 0:
        return ""
    return f" ({fmt_percent(step / figures.steps, 0)} of the {figures.steps} steps)"


def _start(f: Figures, s: AnalysisSettings) -> str:
    # What a start loss says about the base model holds for language-model losses only:
    # a DPO loss starts at log 2 by construction, a classifier's head starts untrained.
    if f.start_loss is None or f.kind != "sft":
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
        if f.logged_rows and not f.eval_metrics and f.kind != "rl":
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


def _spikes(f: Figures, s: AnalysisSettings) -> str:
    if not f.spikes:
        return ""
    shown = ", ".join(str(step) for step in f.spikes[:5])
    more = f" and {len(f.spikes) - 5} more" if len(f.spikes) > 5 else ""
    plural = "s" if len(f.spikes) > 1 else ""
    return (
        f"Loss spike{plural} at step{plural} {shown}{more}: the logged loss went above "
        f"{s.spike_factor:g}x the median of the {s.spike_window} losses before it."
    )


def _trend(summary: SeriesSummary, what: str, fmt: Callable[[float | None], str] = fmt_number, unit: str = "") -> str:
    """'<what> rose from A to B', comparing the means of the first and last tenth of the logged values."""
    if summary.rows < 2:
        return f"{what} was {fmt(summary.end)}{unit} at step {summary.end_step} (one logged value)"
    head, tail = summary.head_mean, summary.tail_mean
    span = "" if summary.rows < 10 else " (means of the first and last tenth of the logged steps)"
    if tail == head:
        return f"{what} stayed at {fmt(head)}{unit}{span}"
    verb = "rose" if tail > head else "fell"
    return f"{what} {verb} from {fmt(head)} to {fmt(tail)}{unit}{span}"


def _rl_loss(f: Figures, s: AnalysisSettings) -> str:
    if f.min_loss is None or f.end_loss is None:
        return ""
    if f.logged_rows < 2 or f.max_loss is None:
        return ""
    return (
        f"The loss of an RL run is not a measure of progress (here it ranges from {fmt_number(f.min_loss)} "
        f"to {fmt_number(f.max_loss)}; it may be zero or negative by design): read the reward instead."
    )


def _reward(f: Figures, s: AnalysisSettings) -> str:
    reward = f.series_for("reward")
    if reward is None:
        return ""
    text = _trend(reward, "Mean reward")
    if reward.rows >= 2:
        text += f"; it peaked at {fmt_number(reward.max)} at step {reward.max_step}"
    return text + "."


def _reward_functions(f: Figures, s: AnalysisSettings) -> str:
    functions = [item for item in f.series if REWARD_FUNCTION.match(item.column) and item.rows >= 2]
    if len(functions) < 2:  # one function is the reward itself
        return ""
    parts = [f"{item.column} {fmt_number(item.head_mean)} to {fmt_number(item.tail_mean)}" for item in functions]
    return "Per reward function (mean of the first and last tenth of the logged steps): " + "; ".join(parts) + "."


def _kl(f: Figures, s: AnalysisSettings) -> str:
    kl = f.series_for("kl")
    if kl is None or kl.rows < 2:
        return ""
    text = _trend(kl, "KL divergence from the reference model")
    return text + f"; its largest value was {fmt_number(kl.max)} at step {kl.max_step}."


def _completion_length(f: Figures, s: AnalysisSettings) -> str:
    length = f.series_for("completions/mean_length") or f.series_for("completion_length")
    if length is None or length.rows < 2:
        return ""
    text = _trend(length, "Mean completion length", fmt_number, unit=" tokens")
    clipped = f.series_for("completions/clipped_ratio")
    if clipped is not None:
        text += f"; {fmt_percent(clipped.end)} of completions were clipped at the length limit at the last step"
    return text + "."


def _margin(f: Figures, s: AnalysisSettings) -> str:
    margin = f.series_for("rewards/margins")
    if margin is None:
        return ""
    text = _trend(margin, "The reward margin (chosen minus rejected)")
    chosen, rejected = f.series_for("rewards/chosen"), f.series_for("rewards/rejected")
    if chosen is not None and rejected is not None and chosen.rows >= 2:
        text += (
            f"; at the last step the chosen reward was {fmt_number(chosen.end)} and the rejected "
            f"{fmt_number(rejected.end)}"
        )
    return text + "."


def _preference_accuracy(f: Figures, s: AnalysisSettings) -> str:
    accuracy = f.series_for("rewards/accuracies")
    if accuracy is None:
        return ""
    text = _trend(accuracy, "Preference accuracy (chosen ranked above rejected)", fmt_percent)
    if accuracy.rows >= 2:
        text += f"; the last logged value was {fmt_percent(accuracy.end)} at step {accuracy.end_step}"
    return text + "."


def _eval_metrics(f: Figures, s: AnalysisSettings) -> str:
    rated = [m for m in f.eval_metrics if m.direction is not None and m.column != "eval_loss"]
    if not rated:
        return ""
    parts = []
    for metric in rated[:4]:
        part = f"{metric.column} best {fmt_number(metric.best)} at step {metric.best_step}"
        if metric.best_step != metric.last_step:
            part += f" (last {fmt_number(metric.last)} at step {metric.last_step})"
        parts.append(part)
    more = f"; {len(rated) - 4} more in the table below" if len(rated) > 4 else ""
    return "Evaluation: " + "; ".join(parts) + more + "."


def _best_checkpoint(f: Figures, s: AnalysisSettings) -> str:
    best = f.best_checkpoint
    if best is None:
        return ""
    if best.step is None:
        if best.metric is None:
            return ""
        return f"The Trainer recorded a best metric of {fmt_number(best.metric)} but no best checkpoint step."
    text = f"Best checkpoint (as recorded by the Trainer): step {best.step}"
    if best.metric is not None:
        text += f", best_metric {fmt_number(best.metric)}"
        if best.metric_column:
            text += f", the {best.metric_column} at that step"
    return text + "."


def _non_finite(f: Figures, s: AnalysisSettings) -> str:
    if not f.non_finite:
        return ""
    parts = []
    for item in f.non_finite[:4]:
        part = f"{item.column} became {item.value} at step {item.step}"
        if item.count > 1:
            part += f" ({item.count} rows in all)"
        parts.append(part)
    more = f", and {len(f.non_finite) - 4} more columns" if len(f.non_finite) > 4 else ""
    return "Non-finite values: " + join_words(parts) + more + "; they are gaps in the plots and left out of the figures."


def _few_rows(f: Figures, s: AnalysisSettings) -> str:
    if f.logged_rows == 1 and f.start_loss is not None:
        return f"Only one training loss was logged ({fmt_number(f.start_loss)} at step {f.start_step}): no trend can be read."
    if f.logged_rows == 0 and f.eval_rows == 0 and f.mean_train_loss is not None:
        return (
            f"Only the end-of-training summary was logged: a mean training loss of {fmt_number(f.mean_train_loss)} "
            f"over {f.steps} steps; no curve can be drawn."
        )
    return ""


def _resumed(run: TrainingRun) -> str:
    if not run.resumes:
        return ""
    at, after = run.resumes[-1]
    if len(run.resumes) == 1:
        return (
            f"The run was resumed: the log goes back from step {after} to step {at}. "
            f"The rows logged from step {at} on before the restart are replaced by the later ones."
        )
    return (
        f"The log goes back in steps {len(run.resumes)} times (a run resumed several times, or several "
        f"writers in one log); the last time from step {after} to step {at}. Each time, the later rows replace "
        "the earlier ones from the step the log went back to."
    )


def _positive_state(run: TrainingRun, key: str) -> float | None:
    """A top-level number of trainer_state.json when it is finite and above 0."""
    value = run.state.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float
        return None
    return number if math.isfinite(number) and number > 0 else None


def _log_gap(f: Figures, run: TrainingRun) -> str:
    """Say when the log stops more than one logging interval before the checkpoint's step."""
    last = f.last_logged_step
    if run.global_step is None or last is None or last >= run.global_step:
        return ""
    gap = run.global_step - last
    interval = _positive_state(run, "logging_steps")
    if interval is not None and interval < 1:
        # transformers reads logging_steps below 1 as a share of max_steps.
        max_steps = _positive_state(run, "max_steps")
        interval = math.ceil(interval * max_steps) if max_steps is not None else None
    if interval is not None and gap < interval:
        return ""  # how every log ends: the next logging step was never reached
    text = (
        f"The last logged step is {last}, but the checkpoint is at step {run.global_step} (global_step): "
        f"the last {gap} step{'s are' if gap > 1 else ' is'} not in the log"
    )
    if interval is not None:
        text += (
            f", at least the logging interval ({fmt_number(float(interval))} steps): logging stopped before the "
            "checkpoint was saved, as when a run is interrupted"
        )
    return text + "."


def _no_summary(run: TrainingRun) -> str:
    if run.source_format != "trainer_state.json" or run.summary:
        return ""
    return (
        "There is no end-of-training summary row (train_runtime): this checkpoint was saved during "
        "training, or the run stopped before it finished."
    )


def _unfinished(run: TrainingRun) -> str:
    global_step = run.global_step
    max_steps = _positive_state(run, "max_steps")
    if global_step is None or max_steps is None or global_step >= max_steps:
        return ""
    return (
        f"This checkpoint is at step {global_step} of the planned {int(max_steps)} (max_steps): "
        "training had not finished when it was saved."
    )


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


# --- RL runs across models: the reward, not the loss ------------------------------------------


def reward_comparison(models: Sequence[tuple[str, Figures]]) -> list[str]:
    """Which RL run ended with the highest reward (needs two or more that logged one)."""
    rated = [(name, reward) for name, f in models if (reward := f.series_for("reward")) is not None]
    if len(rated) < 2:
        return []
    ranked = sorted(rated, key=lambda item: (-item[1].tail_mean, item[0]))
    listed = join_words([f"{name} ({fmt_number(reward.tail_mean)})" for name, reward in ranked])
    return [f"Mean reward over the last tenth of each run's logged steps, highest first: {listed}."]


def reward_conclusion(models: Sequence[tuple[str, Figures]]) -> str:
    """Whether each RL run's reward rose (first tenth against last tenth of its logged steps)."""
    rated = [(name, reward) for name, f in models if (reward := f.series_for("reward")) is not None
             and reward.rows >= 2]
    if not rated:
        return ""
    rose = [name for name, reward in rated if reward.tail_mean > reward.head_mean]
    other = [name for name, reward in rated if reward.tail_mean <= reward.head_mean]
    parts = []
    if rose:
        parts.append(f"the reward rose for {join_words(rose)}")
    if other:
        parts.append(f"it did not rise for {join_words(other)}" if rose else f"the reward did not rise for {join_words(other)}")
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + " (mean of the last tenth of the logged steps against the first)."

"""Figures -> sentences.

Each rule reads figures and either states something that is true of them, with
the numbers that make it true, or says nothing. Sentences are plain text; the
pages escape them for Markdown.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from generator.findings import EXPLOSION_FACTOR
from generator.formatting import (
    count_words,
    fmt_count,
    fmt_level,
    fmt_number,
    fmt_percent,
    fmt_short,
    join_words,
)
from generator.kinds import REWARD_FUNCTION
from generator.records import AnalysisSettings, CheckpointEntry, Figures, Finding, SeriesSummary
from generator.series import edge_rows


def model_analysis(figures: Figures, settings: AnalysisSettings) -> list[str]:
    """Analysis bullets for one model page, in reading order."""
    rules: tuple[Callable[[Figures, AnalysisSettings], str], ...]
    if not figures.kind.about.reads_loss:  # RL: the reward tells, not the loss
        rules = (_rl_loss, _reward, _reward_functions, _kl, _completion_length, _evaluation)
    else:
        rules = (_start, _fall, _levels, _speed, _end, _token_accuracy, _entropy,
                 _margin, _preference_accuracy, _evaluation)
    sentences = [_kind(figures)] if figures.kind_keys else []
    sentences += [sentence for rule in rules if (sentence := rule(figures, settings))]
    sentences += [sentence for rule in (_eval_metrics, _best_checkpoint, _few_rows)
                  if (sentence := rule(figures, settings))]
    sentences += [sentence for rule in (_resumed, _log_gap) if (sentence := rule(figures, settings))]
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
    if f.start_loss is None or not f.kind.about.reads_start:
        return ""
    if f.start_loss < s.low_start_loss:
        return (
            f"Started with a relatively low loss ({fmt_number(f.start_loss)} < {fmt_level(s.low_start_loss)}): "
            "the base model already predicted the training data well."
        )
    if f.start_loss >= s.high_start_loss and not any(x.code == "from_scratch" for x in f.findings):
        # From scratch, a high start says nothing about a base model: there is none (the finding says so).
        return (
            f"High initial loss: started at {fmt_number(f.start_loss)} (>= {fmt_level(s.high_start_loss)}), "
            "so the training data was far from what the base model predicted."
        )
    return ""


def _fall(f: Figures, s: AnalysisSettings) -> str:
    """Where the fast fall ended, what the loss did after it, and whether (where) it stabilised."""
    if f.fall_end_step is None or f.fall_end_level is None or f.end_level is None:
        if f.stabilised_step is None:
            return ""
        return (f"From step {f.stabilised_step}{_share_of_run(f.stabilised_step, f)} on, the loss level varied by "
                f"at most {fmt_percent(s.stable_band, 0)} of its value there: it stabilised.")
    text = (f"The fast fall of the loss ended around step {f.fall_end_step}{_share_of_run(f.fall_end_step, f)}, "
            f"at a level of {fmt_number(f.fall_end_level)}")
    if f.drop_share_at_fall_end is not None and 0 < f.drop_share_at_fall_end < 1:
        text += f" ({fmt_percent(f.drop_share_at_fall_end, 0)} of the whole fall)"
    after = None
    if f.fall_end_level > 0 and f.end_level >= 0:  # a relative change means nothing across zero
        after = (f.fall_end_level - f.end_level) / f.fall_end_level
        after = after if math.isfinite(after) else None
    if f.stabilised_step is not None and f.stabilised_step <= f.fall_end_step:
        text += (f"; from there on the loss level varied by at most {fmt_percent(s.stable_band, 0)} of that "
                 "level: it stabilised")
    elif after is not None and after > 0:
        text += (f"; after it the loss kept falling, more slowly, by another {fmt_percent(after, 0)} to "
                 f"{fmt_number(f.end_level)}")
        if f.stabilised_step is not None:
            text += (f", and from step {f.stabilised_step} on varied by at most {fmt_percent(s.stable_band, 0)} "
                     "of its level there")
    elif after is not None and after < 0:
        text += f"; after it the loss rose again, to {fmt_number(f.end_level)} at the end"
    return text + " (levels are rolling medians of the logged loss)."


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
    if (f.fall_rate is None or not f.convergence.rated or f.start_step is None
            or f.smoothed_start is None or f.smoothed_end is None):
        return ""
    span = (f.end_step or 0) - f.start_step
    # The rate is computed from the smoothed end points: quote those, so the reader can redo the division.
    return (f"Convergence speed {f.convergence.label}: the loss fell by {fmt_number(f.fall_rate)} per 100 steps on "
            f"average (smoothed loss {fmt_number(f.smoothed_start)} to {fmt_number(f.smoothed_end)} over {span} "
            "steps).")


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
    entropy = f.series_for("entropy")
    if entropy is None or entropy.rows < 2:
        return ""
    text = _trend(entropy, "Entropy")
    if entropy.trend == "fell" and entropy.rho is not None and entropy.rho <= -s.entropy_consistency:
        return text.replace("Entropy fell", "Entropy decreased consistently", 1) + (
            ": the model grew more confident in its predictions.")
    if entropy.trend == "rose" and entropy.rho is not None and entropy.rho >= s.entropy_consistency:
        return text.replace("Entropy rose", "Entropy increased consistently", 1) + (
            ": the model's predictions grew less certain.")
    return text + "."


def _evaluation(f: Figures, s: AnalysisSettings) -> str:
    if f.eval_loss_last is None:
        if f.logged_rows and not f.eval_metrics and f.kind.about.reads_loss:
            return "No evaluation loss was logged, so overfitting cannot be judged from this log."
        return ""
    text = f"Eval loss ended at {fmt_number(f.eval_loss_last)} (step {f.eval_loss_last_step})"
    if f.eval_gap is not None and f.eval_gap != 0:
        relation = "above" if f.eval_gap > 0 else "below"
        text += f", {fmt_number(abs(f.eval_gap))} {relation} the smoothed training loss"
    elif f.eval_gap == 0:
        text += ", equal to the smoothed training loss"
    return text + "."


def _trend(summary: SeriesSummary, what: str, fmt: Callable[[float | None], str] = fmt_number, unit: str = "") -> str:
    """'<what> rose from A to B (...)': the trend of `analysis.trend_of`, with the numbers behind it."""
    if summary.rows < 2:
        return f"{what} was {fmt(summary.end)}{unit} at step {summary.end_step} (one logged value)"
    head, tail = summary.head_mean, summary.tail_mean
    rho = f", Spearman rho {summary.rho:+.2f}" if summary.rho is not None else ""
    edge = edge_rows(summary.rows)
    means = "first and last logged values" if edge == 1 else f"means of the first and last {edge} logged values"
    if summary.trend == "none":
        return f"{what} showed no clear trend ({fmt(head)} to {fmt(tail)}{unit}, {means}{rho})"
    verb = "rose" if summary.trend == "rose" else "fell"
    return f"{what} {verb} from {fmt(head)} to {fmt(tail)}{unit} ({means}{rho})"


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
    return "Per reward function (means of the first and last tenth of the logged steps, at least 3 values each): " + "; ".join(parts) + "."


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


def _few_rows(f: Figures, s: AnalysisSettings) -> str:
    if f.logged_rows == 1 and f.start_loss is not None:
        return f"Only one training loss was logged ({fmt_number(f.start_loss)} at step {f.start_step}): no trend can be read."
    if f.logged_rows == 0 and f.eval_rows == 0 and f.mean_train_loss is not None:
        return (
            f"Only the end-of-training summary was logged: a mean training loss of {fmt_number(f.mean_train_loss)} "
            f"over {f.steps} steps; no curve can be drawn."
        )
    return ""


def _resumed(f: Figures, s: AnalysisSettings) -> str:
    if not f.resumes:
        return ""
    at, after = f.resumes[-1]
    if len(f.resumes) == 1:
        return (
            f"The run was resumed: the log goes back from step {after} to step {at}. "
            f"The rows logged from step {at} on before the restart are replaced by the later ones."
        )
    return (
        f"The log goes back in steps {len(f.resumes)} times (a run resumed several times, or several "
        f"writers in one log); the last time from step {after} to step {at}. Each time, the later rows replace "
        "the earlier ones from the step the log went back to."
    )


def _log_gap(f: Figures, s: AnalysisSettings) -> str:
    """Say when the log stops more than one logging interval before the checkpoint's step."""
    last, global_step, interval = f.last_logged_step, f.global_step, f.logging_interval
    if global_step is None or last is None or last >= global_step:
        return ""
    gap = global_step - last
    if interval is not None and gap < interval:
        return ""  # how every log ends: the next logging step was never reached
    text = (
        f"The last logged step is {last}, but the checkpoint is at step {global_step} (global_step): "
        f"the last {gap} step{'s are' if gap > 1 else ' is'} not in the log"
    )
    if interval is not None:
        text += (
            f", at least the logging interval ({fmt_number(float(interval))} steps): logging stopped before the "
            "checkpoint was saved, as when a run is interrupted"
        )
    return text + "."


def _step_list(steps: Sequence[int], total: int) -> str:
    shown = ", ".join(str(step) for step in steps[:5])
    more = f" and {total - min(len(steps), 5)} more" if total > min(len(steps), 5) else ""
    return shown + more


def _pp(value: float) -> str:
    return fmt_percent(value, 0) if abs(value) >= 0.1 else fmt_percent(value, 1)


NON_FINITE_NAMES = {0: "NaN", 1: "Infinity", -1: "-Infinity"}

FINDING_TEXT: dict[str, Callable[[Finding, AnalysisSettings], str]] = {
    "non_finite": lambda x, s: (
        f"{x.subject} became {NON_FINITE_NAMES[int(x.values.get('value', 0))]} at step {int(x.values['step'])}"
        + (f" ({int(x.values['count'])} rows in all)" if x.values["count"] > 1 else "")
        + ": those values are gaps in the plots and left out of the figures."),
    "skipped_steps": lambda x, s: (
        f"Skipped optimizer steps: grad_norm was NaN or infinite and the learning rate did not advance at "
        f"step{'s' if x.values['count'] > 1 else ''} {_step_list(x.steps, int(x.values['count']))}: "
        "mixed-precision loss scaling skipped those updates."),
    "grad_explosion": lambda x, s: (
        f"Gradient explosion: grad_norm reached {fmt_number(x.values['max'])} at step {int(x.values['max_step'])}, "
        f"{fmt_count(x.values['max'] / x.values['median'])} times the median of the grad norms just before it "
        f"({fmt_number(x.values['median'])})"
        + (f"; {int(x.values['count'])} logged steps jumped {EXPLOSION_FACTOR:g}x or more" if x.values["count"] > 1
           else "") + "."),
    "loss_spikes": lambda x, s: (
        f"Loss spike{'s' if x.values['count'] > 1 else ''} at step{'s' if x.values['count'] > 1 else ''} "
        f"{_step_list(x.steps, int(x.values['count']))}: the logged loss jumped above {s.spike_factor:g}x the "
        f"median of the {s.spike_window} losses before it, clear of their batch-to-batch noise."),
    "loss_noisy": lambda x, s: (
        f"The loss has heavy-tailed batch noise: {int(x.values['count'])} of its {int(x.values['rows'])} logged values "
        f"jumped above {s.spike_factor:g}x the median of the {s.spike_window} before them, too often to be isolated "
        "spikes."),
    "loss_not_falling": lambda x, s: (
        f"No improvement: the smoothed loss ended at {fmt_number(x.values['smoothed_end'])}, no lower than the "
        f"first logged loss ({fmt_number(x.values['start'])})."),
    "loss_rising_at_end": lambda x, s: (
        f"The loss rose at the end: between steps {int(x.values['from_step'])} and {int(x.values['to_step'])} "
        f"(the last fifth of the log) its median went from {fmt_number(x.values['first_half_median'])} to "
        f"{fmt_number(x.values['second_half_median'])} (+{_pp(x.values['change'])})."),
    "still_improving": lambda x, s: (
        f"Still improving at the end: between steps {int(x.values['from_step'])} and {int(x.values['to_step'])} "
        f"(the last fifth of the log) the median loss fell from {fmt_number(x.values['first_half_median'])} to "
        f"{fmt_number(x.values['second_half_median'])} ({_pp(x.values['change'])})"
        + ("; the training loss had not levelled off, but the eval loss says more steps would not help."
           if x.values.get("eval_disagrees") else "; more steps would likely lower it further.")),
    "eval_loss_rising": lambda x, s: (
        f"Overfitting: {_eval_loss_name(x)} was lowest at step {int(x.values['best_step'])} "
        f"({fmt_number(x.values['best'])}) and rose by {_pp(x.values['rise'])} to {fmt_number(x.values['last'])} at "
        f"step {int(x.values['last_step'])}, while the train loss kept falling (mean "
        f"{fmt_number(x.values['train_at_best'])} around that step, {fmt_number(x.values['train_end'])} over the last "
        "tenth of the log)."),
    "eval_loss_flat": lambda x, s: (
        f"Train and eval diverge: between steps {int(x.values['from_step'])} and {int(x.values['to_step'])} the "
        f"train loss fell by {_pp(-x.values['train_change'])} ({fmt_number(x.values['train_from'])} to "
        f"{fmt_number(x.values['train_to'])}) while {_eval_loss_name(x)} went from {fmt_number(x.values['eval_from'])} to "
        f"{fmt_number(x.values['eval_to'])} ({'+' if x.values['eval_change'] >= 0 else ''}"
        f"{_pp(x.values['eval_change'])}): the gains on the training data do not carry over to held-out data."),
    "epoch_step_down": lambda x, s: (
        f"The loss steps down at epoch boundaries: by a median of {_pp(x.values['median_drop'])} across "
        f"{int(x.values['boundaries'])} boundar{'ies' if x.values['boundaries'] > 1 else 'y'} (steps "
        f"{_step_list(x.steps, int(x.values['boundaries']))}), against at most {_pp(x.values['noise_p90'])} for 9 in "
        "10 windows inside epochs: the model recognises examples it has already seen, a sign of memorisation."),
    "preference_accuracy_gap": lambda x, s: (
        f"Preference accuracy is {fmt_percent(x.values['train'])} on the training pairs (mean of steps "
        f"{int(x.values['from_step'])} to {int(x.values['to_step'])}) but {fmt_percent(x.values['eval'])} on the eval "
        f"pairs at step {int(x.values['step'])}: the model fits its training pairs better than held-out ones."),
    "eval_stopped_early": lambda x, s: (
        f"The final model was not evaluated: the last evaluation is at step {int(x.values['last_eval_step'])}, "
        f"{int(x.values['gap'])} steps ({_pp(x.values['share'])} of the run) before the checkpoint's step "
        f"{int(x.values['steps'])}; the eval figures describe that earlier model."),
    "eval_metrics_disagree": lambda x, s: (
        f"Eval metrics disagree ({x.subject}): from step {int(x.values['from_step'])} to {int(x.values['to_step'])} "
        f"the first went from {fmt_number(x.values['first_from'])} to {fmt_number(x.values['first_to'])} and the "
        f"second from {fmt_number(x.values['second_from'])} to {fmt_number(x.values['second_to'])}, one better and "
        "one worse at each of two evaluations in a row."),
    "rl_no_signal": lambda x, s: _rl_no_signal(x),
    "chosen_reward_falling": lambda x, s: (
        f"The margin grows while the chosen reward falls: the chosen reward peaked at "
        f"{fmt_number(x.values['chosen_peak'])} (mean of the {_ordinal(int(x.values['peak_decile']))} tenth of the log) and ended at "
        f"{fmt_number(x.values['chosen_end'])} (last tenth)"
        + (f", {fmt_number(x.values['eval_chosen_end'])} on the eval pairs at step "
           f"{int(x.values['eval_chosen_end_step'])}" if "eval_chosen_end" in x.values else "")
        + f", while the margin went from {fmt_number(x.values['margin_at_peak'])} to "
        f"{fmt_number(x.values['margin_end'])}: the model pushes the rejected answers down and grows less likely "
        "to give the preferred ones too."),
    "start_above_uniform": lambda x, s: (
        f"The first loss ({fmt_number(x.values['start'])}) is {fmt_number(x.values['ratio'])} times ln(vocab_size) = "
        f"{fmt_number(x.values['uniform_loss'])}, worse than guessing uniformly: the loss is broken or on another "
        "scale."),
    "before_max_steps": lambda x, s: (
        f"This checkpoint is at step {int(x.values['step'])} of the planned {int(x.values['max_steps'])} (max_steps, "
        f"{_pp(x.values['share'])}): training had not reached its schedule's end when it was saved."),
    "hidden_resume": lambda x, s: (
        f"The run was resumed, though no step goes back in the log: the summary row's train_loss "
        f"({fmt_number(x.values['train_loss'])}) is far below the mean logged loss "
        f"({fmt_number(x.values['logged_mean'])}); the Trainer divides only its last session's losses by all "
        f"{int(x.values['global_step'])} steps, which fits a resume from step {int(x.values['resumed_at'])}. "
        "The summary row's figures cover that last session only."),
    "best_checkpoints_disagree": lambda x, s: (
        f"The best checkpoint by eval loss (step {int(x.values['loss_best_step'])}) is not the best by {x.subject}: "
        f"{fmt_number(x.values['metric_at_loss_best'])} there, against {fmt_number(x.values['metric_best'])} at step "
        f"{int(x.values['metric_best_step'])}."),
    "from_scratch": lambda x, s: (
        f"Trained from scratch: the first loss ({fmt_number(x.values['start'])}) is close to ln(vocab_size) = "
        f"{fmt_number(x.values['uniform_loss'])} for a vocabulary of {fmt_count(x.values['vocab_size'])}, the loss of "
        "guessing uniformly; there was no pretrained model to start from."),
}


def _eval_loss_name(x: Finding) -> str:
    return "the eval loss" if x.subject in ("", "eval_loss") else x.subject


def _ordinal(number: int) -> str:
    return f"{number}{'th' if 10 <= number % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(number % 10, 'th')}"


def _rl_no_signal(x: Finding) -> str:
    parts = [f"on {_pp(x.values['zero_spread_share'])} of the logged steps every completion of a group got the "
             f"same reward ({x.subject})"]
    if "zero_reward_share" in x.values:
        parts.append(f"the mean reward was 0 on {_pp(x.values['zero_reward_share'])} of them")
    text = "No learning signal: " + join_words(parts)
    if "max_kl" in x.values:
        text += f"; the KL from the reference model never exceeded {fmt_number(x.values['max_kl'])}"
    return text + ". With no spread in a group's rewards GRPO has no advantage to learn from: the policy barely moved."


def finding_sentence(finding: Finding, settings: AnalysisSettings) -> str:
    """The sentence of one finding."""
    return FINDING_TEXT[finding.code](finding, settings)


# --- Across models (index page) ---------------------------------------------


def _others_text(values: Sequence[float]) -> str:
    if len(values) <= 3:
        return join_words([fmt_short(v) for v in values])
    return f"a mean of {fmt_short(sum(values) / len(values))}"


@dataclass(frozen=True)
class Compared:
    """One run as the index compares it: its name, figures, and the group it is comparable within."""

    name: str
    figures: Figures
    group: str
    """Runs are compared only within one group: the registry's `compare_group`, else the base model
    family; '' when neither is known (the run is compared with no other)."""


MODEL_SIZE = re.compile(r"[-_.]?(?:\d+(?:\.\d+)?[bmk]\b|tiny|mini|small|base|medium|large|xl)", re.IGNORECASE)


def base_family(base_model: str) -> str:
    """The family of a base model id, which fixes its tokenizer: 'Qwen/Qwen2.5-7B-Instruct' -> 'qwen2.5'.

    The model name (after the last '/') up to its size or variant word; '' when unknown.
    """
    name = base_model.strip().rstrip("/").rsplit("/", 1)[-1].lower()
    if not name:
        return ""
    match = MODEL_SIZE.search(name)
    family = name[: match.start()] if match and match.start() > 0 else name
    return family.strip("-_.")


def comparison_group(entry: CheckpointEntry, base_model: str) -> str:
    """The group an entry is compared within: its `compare_group`, else its base model family."""
    return entry.compare_group or base_family(base_model)


def comparable_groups(models: Sequence[Compared]) -> tuple[list[list[Compared]], list[Compared]]:
    """(groups of two or more comparable runs that logged a loss, runs compared with none)."""
    rated = [m for m in models if m.figures.start_loss is not None and m.figures.end_loss is not None]
    by_group: dict[str, list[Compared]] = {}
    for model in rated:
        by_group.setdefault(model.group or f"\0{model.name}", []).append(model)
    groups = [members for members in by_group.values() if len(members) >= 2]
    alone = [members[0] for members in by_group.values() if len(members) == 1]
    return groups, alone


def comparison(models: Sequence[Compared], settings: AnalysisSettings) -> list[str]:
    """Statements comparing runs with each other, only within groups of comparable runs.

    Raw losses of different tokenizers or tasks are not on one scale: a run is
    compared only with runs of its group (see `Compared.group`), and the page
    says which runs were left out and why.
    """
    groups, alone = comparable_groups(models)
    sentences: list[str] = []
    for members in groups:
        sentences += _group_comparison(members, settings)
    if alone and (groups or len(alone) > 1):
        names = join_words([f"{m.name} ({m.group or 'base model unknown'})" for m in alone])
        sentences.append(
            f"Not compared: {names}. Raw losses are compared only between runs of one base model family "
            "(one tokenizer) or one `compare_group` of checkpoints.yaml."
        )
    return sentences


def _group_comparison(members: Sequence[Compared], settings: AnalysisSettings) -> list[str]:
    label = f"Compared within {members[0].group}: " if members[0].group else ""
    sentences: list[str] = []
    for model in members:
        start = model.figures.start_loss
        assert start is not None
        others = [(m.name, m.figures.start_loss) for m in members if m is not model and m.figures.start_loss is not None]
        mean_others = sum(v for _, v in others) / len(others)
        if mean_others > 0 and start >= settings.much_higher_factor * mean_others:
            names = join_words([n for n, _ in others]) if len(others) <= 3 else "the other models"
            sentences.append(
                f"{model.name} started much higher than {names} "
                f"({fmt_short(start)} vs {_others_text([v for _, v in others])}, "
                f"at least {settings.much_higher_factor:g}x their mean)."
            )
    by_end = sorted(members, key=lambda m: (m.figures.end_loss, m.name))
    best = by_end[0]
    best_end = best.figures.end_loss
    assert best_end is not None
    close = [m for m in by_end[1:] if m.figures.end_loss is not None and best_end > 0
             and m.figures.end_loss <= best_end * (1 + settings.comparable_tolerance)]
    far = [m for m in by_end[1:] if m not in close]
    text = f"{label}{best.name} ended with the lowest loss ({fmt_number(best_end)})"
    if close:
        text += (
            f"; {join_words([f'{m.name} ({fmt_number(m.figures.end_loss)})' for m in close])} ended comparably "
            f"(within {fmt_percent(settings.comparable_tolerance, 0)})"
        )
    if far:
        text += f"; {join_words([f'{m.name} ({fmt_number(m.figures.end_loss)})' for m in far])} ended higher"
    sentences.append(text + ".")
    rates = [m for m in members if m.figures.fall_rate is not None and m.figures.fall_rate > 0]
    if len(rates) >= 2:
        fastest = max(rates, key=lambda m: (m.figures.fall_rate, m.name))
        assert fastest.figures.fall_rate is not None
        sentences.append(
            f"Fastest fall: {fastest.name}, {fmt_number(fastest.figures.fall_rate)} per 100 steps on average "
            f"({fastest.figures.convergence.label})."
        )
    return sentences


WARNINGS_AGAINST_CONVERGENCE = frozenset({
    "loss_not_falling", "loss_rising_at_end", "eval_loss_rising", "eval_loss_flat", "non_finite",
})
"""A run with one of these findings is not called converged, whatever its loss did."""


def _converged(f: Figures) -> bool:
    """The loss fell, its fast fall ended (or it stabilised), and nothing says the run went wrong."""
    if f.fall_rate is None or f.fall_rate <= 0 or (f.fall_end_step is None and f.stabilised_step is None):
        return False
    return not any(finding.code in WARNINGS_AGAINST_CONVERGENCE for finding in f.findings)


def _why_not_converged(f: Figures) -> str:
    codes = [finding.code for finding in f.findings if finding.code in WARNINGS_AGAINST_CONVERGENCE]
    reasons = {
        "loss_not_falling": "its loss did not fall", "loss_rising_at_end": "its loss rose at the end",
        "eval_loss_rising": "its eval loss rose after its minimum (overfitting)",
        "eval_loss_flat": "its eval loss stayed flat while the train loss fell",
        "non_finite": "it logged non-finite values",
    }
    if codes:
        return join_words([reasons[code] for code in codes])
    if f.fall_rate is None:
        return "too few losses were logged to tell"
    return "no end of its fall was found within the logged steps"


def conclusion(models: Sequence[Compared], settings: AnalysisSettings) -> str:
    """A closing paragraph over the runs of one kind; empty when there is nothing to conclude."""
    rated = [m for m in models if m.figures.start_loss is not None and m.figures.end_loss is not None]
    if not rated:
        return ""
    converged = [m for m in rated if _converged(m.figures)]
    others = [m for m in rated if not _converged(m.figures)]
    count = len(rated)
    if not others:
        if count == 1:
            text = f"{converged[0].name} converged: its loss fell and its fast fall ended"
        else:
            every = "Both" if count == 2 else f"All {count_words(count)}"
            text = f"{every} runs converged: each loss fell and its fast fall ended"
        text += ", with no warning against it"
    else:
        parts = [f"{m.name} is not counted as converged: {_why_not_converged(m.figures)}" for m in others]
        text = (f"{join_words([m.name for m in converged])} converged (loss fell and its fast fall ended); " if converged
                else "") + "; ".join(parts)
    still = [m.name for m in converged if any(x.code == "still_improving" for x in m.figures.findings)]
    text += "." if not still else f"; {join_words(still)} {'was' if len(still) == 1 else 'were'} still improving at the end."
    groups, _ = comparable_groups(rated)
    for members in groups:
        text += _start_drop_relation(members)
    return text


def _start_drop_relation(members: Sequence[Compared]) -> str:
    """'The higher a run started, the larger its relative drop' when that holds for every pair of the group."""
    rated = [m for m in members if m.figures.relative_drop is not None and m.figures.start_loss is not None]
    if len(rated) < 2:
        return ""
    by_start = sorted(rated, key=lambda m: m.figures.start_loss)  # type: ignore[arg-type,return-value]
    starts = [m.figures.start_loss for m in by_start]
    drops = [m.figures.relative_drop for m in by_start]
    if len(set(starts)) < len(starts) or len(set(drops)) < len(drops):
        return ""
    if all(a < b for a, b in itertools.pairwise(drops)):  # type: ignore[operator]
        relation = "the larger its relative drop"
    elif all(a > b for a, b in itertools.pairwise(drops)):  # type: ignore[operator]
        relation = "the smaller its relative drop"
    else:
        return ""
    listed = join_words([f"{m.name} {fmt_short(m.figures.start_loss)} to "
                         f"{fmt_percent(m.figures.relative_drop, 0)}" for m in reversed(by_start)])
    return (f" Among {join_words([m.name for m in by_start])}, the higher a run started, {relation} "
            f"(start loss to relative drop: {listed}).")


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

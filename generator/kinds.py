"""What a run logged, sorted by meaning: its kind, its panels, its eval metrics.

One place decides which logged key belongs to which section of a page, so the
kind-specific plots, the eval plot and "Other metrics" never show a key twice
and never drop one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum


class RunKind(str, Enum):
    """The kinds of run, recognised from the keys they log (`run_kind`); `KINDS` describes each."""

    SFT = "sft"
    EVALUATION = "evaluation"
    PREFERENCE = "preference"
    RL = "rl"

    def __str__(self) -> str:  # file names and JSON take the value, on every Python version
        return self.value

    @property
    def about(self) -> KindDescription:
        """What the pipeline does differently for this kind."""
        return KINDS[self]

RL_KEYS = ("reward", "objective/rlhf_reward", "objective/scores")
RL_PATTERN = re.compile(r"^rewards/.+/mean$")
PREFERENCE_KEYS = ("rewards/margins", "rewards/chosen", "rewards/accuracies", "logps/chosen", "odds_ratio_loss")

EVAL_BOOKKEEPING = ("runtime", "samples_per_second", "steps_per_second", "model_preparation_time", "num_tokens")
"""Eval keys about speed or counts, not quality (also per eval set: `eval_g0_runtime`): kept in
the CSV, left out of tables and plots."""
TRAIN_BOOKKEEPING = frozenset({"step", "epoch", "total_flos", "num_tokens", "num_input_tokens_seen"})
"""Train keys that are axes or counters rather than metrics."""

LANGUAGE_MODEL_EVAL = re.compile(r"eval_(?:.+_)?(?:loss|mean_token_accuracy|entropy|num_tokens|perplexity|ppl)")
"""Eval keys any language-model fine-tune logs (TRL's SFTTrainer adds token accuracy and entropy):
they do not make a run 'evaluation-heavy'."""
LOWER_IS_BETTER = frozenset({"loss", "wer", "cer", "perplexity", "ppl", "error", "mse", "mae", "rmse"})
HIGHER_IS_BETTER = ("accura", "f1", "precision", "recall", "rouge", "bleu", "exact", "auc", "matthews", "mcc",
                    "pearson", "spearman", "meteor", "chrf", "bertscore", "ndcg", "margins")
"""Words of a metric's name that say which way is better. Matched against whole words of the name
(split at `_`, `-`, `/`, `.`): 'answers_correct' holds 'wer' but no word 'wer'. Higher-is-better
words match as word prefixes ('accuracy', 'rougeL', 'f1')."""


def run_kind(train_columns: Iterable[str], eval_columns: Iterable[str]) -> tuple[RunKind, tuple[str, ...]]:
    """The kind of run and the keys that show it."""
    train = sorted(set(train_columns))
    evals = sorted(set(eval_columns))
    rl = [key for key in train if key in RL_KEYS or RL_PATTERN.match(key)]
    if rl:
        return RunKind.RL, tuple(rl[:4])
    preference = [key for key in [*train, *evals] if key.removeprefix("eval_") in PREFERENCE_KEYS]
    if preference:
        return RunKind.PREFERENCE, tuple(dict.fromkeys(preference))[:4]
    metrics = [column for column in eval_quality_columns(evals) if not LANGUAGE_MODEL_EVAL.fullmatch(column)]
    if metrics:
        return RunKind.EVALUATION, tuple(metrics[:4])
    return RunKind.SFT, ()


def eval_quality_columns(columns: Iterable[str]) -> list[str]:
    """Eval columns that measure the model (not the evaluation's speed), sorted."""
    return sorted(
        c for c in columns if c.startswith("eval_") and not any(c.endswith("_" + key) for key in EVAL_BOOKKEEPING)
    )


class Direction(str, Enum):
    """Which way a metric is better; the values are what summary.json has always said."""

    LOWER = "min"
    HIGHER = "max"

    def __str__(self) -> str:
        return self.value

    @property
    def word(self) -> str:
        """'lower' or 'higher', as in 'lower is better'."""
        return "lower" if self is Direction.LOWER else "higher"


def direction(column: str) -> Direction | None:
    """Which way the metric `column` is better, or None when its name does not say."""
    words = [word for word in re.split(r"[^a-z0-9]+", column.removeprefix("eval_").lower()) if word]
    if any(word.startswith(HIGHER_IS_BETTER) for word in words):
        return Direction.HIGHER
    if any(word in LOWER_IS_BETTER for word in words):
        return Direction.LOWER
    return None


@dataclass(frozen=True)
class Panel:
    """One small plot of a page: a title and the logged columns drawn on it."""

    title: str
    columns: tuple[str, ...]
    percent: bool = False
    """Values are fractions in [0, 1], shown as percentages."""
    band: str = ""
    """A column drawn as a +/- band around the first column (e.g. reward_std)."""


PREFERENCE_PANELS = (
    Panel("Reward margin (chosen - rejected)", ("rewards/margins",)),
    Panel("Preference accuracy", ("rewards/accuracies",), percent=True),
    Panel("Rewards", ("rewards/chosen", "rewards/rejected")),
    Panel("Log-probabilities", ("logps/chosen", "logps/rejected")),
    Panel("Logits", ("logits/chosen", "logits/rejected")),
    Panel("ORPO / SimPO losses", ("odds_ratio_loss", "sft_loss", "nll_loss", "log_odds_ratio", "log_odds_chosen")),
    Panel("KL (KTO)", ("kl",)),
)
RL_PANELS = (
    Panel("Reward (mean +/- std)", ("reward",), band="reward_std"),
    Panel("KL divergence", ("kl", "objective/kl")),
    Panel("Completion length", ("completions/mean_length", "completion_length", "completions/min_length",
                                "completions/max_length")),
    Panel("Clipped completions", ("completions/clipped_ratio",), percent=True),
    Panel("Clip ratio", ("clip_ratio/region_mean", "clip_ratio/low_mean", "clip_ratio/high_mean")),
    Panel("PPO / RLOO objective", ("objective/rlhf_reward", "objective/scores", "objective/entropy")),
)
STANDARD_PANELS = (
    Panel("Learning rate", ("learning_rate",)),
    Panel("Gradient norm", ("grad_norm",)),
    Panel("Mean token accuracy", ("mean_token_accuracy",), percent=True),
    Panel("Entropy", ("entropy",)),
)
REWARD_FUNCTION = re.compile(r"^rewards/(?!chosen$|rejected$|margins$|accuracies$)(.+?)(/mean)?$")
"""GRPO's per-function rewards: `rewards/<func>/mean`, or `rewards/<func>` in older TRL."""


def kind_panels(kind: RunKind, columns: Iterable[str]) -> list[Panel]:
    """The kind-specific panels that have at least one logged column, columns narrowed to those logged."""
    present = set(columns)
    kind = RunKind(kind)  # callers may pass the value, as the cache and tests do
    panels = kind.about.panels
    if "completions/mean_length" in present:
        present.discard("completion_length")  # older TRL's name for the same number
    result = [_narrowed(panel, present) for panel in panels]
    if kind is RunKind.RL:
        functions = tuple(reward_functions(present))
        if functions:
            result.insert(1, Panel("Reward per function", functions))
    return [panel for panel in result if panel.columns]


def reward_functions(columns: Iterable[str]) -> list[str]:
    """GRPO's per-function reward means (not their standard deviations), sorted."""
    return sorted(c for c in columns if REWARD_FUNCTION.match(c) and not c.endswith("/std"))


def standard_panels(columns: Iterable[str]) -> list[Panel]:
    """Learning rate, grad norm, token accuracy, entropy: those logged."""
    present = set(columns)
    return [panel for panel in (_narrowed(p, present) for p in STANDARD_PANELS) if panel.columns]


def _narrowed(panel: Panel, present: set[str]) -> Panel:
    return Panel(
        panel.title,
        tuple(c for c in panel.columns if c in present),
        panel.percent,
        panel.band if panel.band in present else "",
    )


def other_metrics(kind: RunKind, columns: Iterable[str]) -> list[str]:
    """Numeric train columns that no section draws: they get an 'Other metrics' panel each."""
    present = list(columns)
    shown = {"loss", *TRAIN_BOOKKEEPING}
    for panel in [*standard_panels(present), *kind_panels(kind, present)]:
        shown.update(panel.columns)
        if panel.band:
            shown.add(panel.band)
    return sorted(c for c in present if c not in shown and not c.startswith("train_"))


def eval_groups(columns: Iterable[str], drawn_elsewhere: Iterable[str] = ()) -> dict[str, dict[str, str]]:
    """Eval columns by metric, then by eval set: {'accuracy': {'': 'eval_accuracy'}}.

    Several eval sets are logged as `eval_<set>_<metric>` (e.g. `eval_g0_loss`);
    a set is recognised from its `eval_<set>_loss` column. Columns drawn on other
    plots (eval_loss on the loss plot, eval_rewards/* on the preference panels)
    are left out.
    """
    skip = set(drawn_elsewhere)
    quality = [c for c in eval_quality_columns(columns) if c not in skip]
    sets = sorted(
        (m.group(1) for c in quality if (m := re.fullmatch(r"eval_(.+)_loss", c))), key=len, reverse=True
    )
    groups: dict[str, dict[str, str]] = {}
    for column in quality:
        name = column.removeprefix("eval_")
        owner = next((s for s in sets if name.startswith(s + "_")), "")
        metric = name[len(owner) + 1 :] if owner else name
        groups.setdefault(metric, {})[owner] = column
    return dict(sorted(groups.items()))


@dataclass(frozen=True)
class KindDescription:
    """Everything that varies with the kind of run, in one place."""

    label: str
    """As pages name it."""
    section: str
    """Title of the page section with its own panels ('' when it has none)."""
    panels: tuple[Panel, ...]
    """Its own panels, beside the standard ones."""
    headline: str
    """The logged key that shows progress: the overview curve, the badge, the card."""
    reads_loss: bool
    """Whether the loss is read as progress (speed class, fall, spikes, loss findings). An RL loss is not:
    it hovers around zero and may be negative by design."""
    reads_start: bool
    """Whether the first loss says something about the base model (a DPO loss starts at ln 2 by
    construction, a classifier's head starts untrained)."""


KINDS: dict[RunKind, KindDescription] = {
    RunKind.SFT: KindDescription("SFT / Trainer", "", (), "loss", reads_loss=True, reads_start=True),
    RunKind.EVALUATION: KindDescription("Fine-tune with evaluation metrics", "", (), "loss", reads_loss=True,
                                        reads_start=False),
    RunKind.PREFERENCE: KindDescription("Preference optimisation (DPO family)", "Preference metrics",
                                        PREFERENCE_PANELS, "loss", reads_loss=True, reads_start=False),
    RunKind.RL: KindDescription("Reinforcement learning (GRPO / PPO / RLOO)", "Reward and policy", RL_PANELS,
                                "reward", reads_loss=False, reads_start=False),
}
"""In the order the index shows the kinds."""

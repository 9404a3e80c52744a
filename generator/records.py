"""The records that flow through the pipeline.

registry -> `Registry` of `CheckpointEntry`; reader -> `TrainingRun`;
analysis -> `Figures`; narrative -> sentences; pages -> Markdown.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

from generator.kinds import Direction, RunKind


class SpeedClass(str, Enum):
    """How fast the smoothed loss came down over the whole run (`analysis.speed_class`).

    The value is a stable code (JSON, cache); `label` is what a page shows.
    """

    VERY_FAST = "very_fast"
    FAST = "fast"
    STEADY = "steady"
    SLOW = "slow"
    NO_IMPROVEMENT = "no_improvement"
    """The smoothed loss did not fall."""
    NOT_RATED = "n/a"
    """Too few logged losses, or a kind whose loss is not read as progress."""

    def __str__(self) -> str:  # f-strings and JSON take the value, on every Python version
        return self.value

    @property
    def label(self) -> str:
        return SPEED_LABELS[self]

    @property
    def rated(self) -> bool:
        """A fall was measured (not n/a, not 'No improvement')."""
        return self not in (SpeedClass.NOT_RATED, SpeedClass.NO_IMPROVEMENT)


SPEED_LABELS = {
    SpeedClass.VERY_FAST: "Very Fast",
    SpeedClass.FAST: "Fast",
    SpeedClass.STEADY: "Steady",
    SpeedClass.SLOW: "Slow",
    SpeedClass.NO_IMPROVEMENT: "No improvement",
    SpeedClass.NOT_RATED: "n/a",
}


@dataclass(frozen=True)
class AnalysisSettings:
    """Thresholds of the analysis; each is defined on the methodology page."""

    smoothing: float = 0.6
    """TensorBoard-style smoothing weight in [0, 1); 0 means no smoothing."""
    low_start_loss: float = 1.0
    """A start loss below this is called 'relatively low'."""
    high_start_loss: float = 2.0
    """A start loss at or above this adds '(High Initial Gap)' to the speed class."""
    very_fast: float = 0.55
    """Speed class: the smoothed loss fell by at least this much per 100 steps on average: 'Very Fast'."""
    fast: float = 0.1
    """... at least this much: 'Fast'."""
    steady: float = 0.01
    """... at least this much: 'Steady'; a smaller fall: 'Slow'."""
    stable_band: float = 0.10
    """The loss 'stabilised' from the first step after which its level stays within this
    fraction of its value there."""
    loss_levels: tuple[float, ...] = (0.7,)
    """Levels for 'dropped below L within N steps' (smoothed loss)."""
    entropy_consistency: float = 0.8
    """|Spearman rho| of entropy against step needed to call a trend consistent."""
    much_higher_factor: float = 2.0
    """A start loss this many times the others' mean is 'much higher'."""
    comparable_tolerance: float = 0.15
    """End losses within this relative difference are 'comparable'."""
    spike_factor: float = 2.0
    """A logged loss above this many times the median of the losses before it is a spike."""
    spike_window: int = 10
    """How many logged losses before a step the spike rule takes the median of."""


@dataclass(frozen=True)
class SiteSettings:
    """Site-level settings from the `site:` section of checkpoints.yaml."""

    title: str = ""
    """The site's title for a project without mkdocs.yml (empty: not set). With mkdocs.yml, its `site_name` is the
    title everywhere (see `pages.site_title`)."""
    intro: str = ""
    """Paragraph shown under the index title (Markdown is escaped)."""
    show_paths: bool = True
    """Whether model pages show where each checkpoint was read (relative to checkpoints.yaml, else from ~;
    never a home folder). False leaves paths and local base models off the published pages."""


@dataclass(frozen=True)
class SiteLayout:
    """How MkDocs publishes docs/ (from mkdocs.yml): what URLs look like."""

    use_directory_urls: bool = True
    """MkDocs' setting: `models/x.md` is served at `models/x/` (else `models/x.html`)."""
    site_url: str = ""
    """Where the site is published, ending in '/'; empty when unknown."""
    folder: str = ""
    """The folder of docs/ the report lives in (the plugin's `folder` option, e.g. 'reports'), without
    slashes at either end; empty: the report is the whole of docs/."""
    site_name: str = ""
    """mkdocs.yml's `site_name` (the top bar and the browser tab show it); empty without mkdocs.yml."""

    def docs_path(self, report_path: str) -> str:
        """Path under docs/ of a path relative to the report's folder."""
        return f"{self.folder}/{report_path}" if self.folder else report_path

    def file_url(self, report_path: str) -> str:
        """URL of a non-page file of the report (a badge, a download) relative to the site root."""
        return self.docs_path(report_path)

    def page_url(self, report_path: str) -> str:
        """URL of a Markdown page of the report relative to the site root ('' for the home page)."""
        stem = self.docs_path(report_path)[: -len(".md")]
        if stem == "index":
            return ""
        if stem.endswith("/index"):
            return stem[: -len("index")]
        return f"{stem}/" if self.use_directory_urls else f"{stem}.html"

    def absolute(self, site_path: str) -> str:
        """Absolute URL of a path relative to the site root; empty without site_url. A slug in another
        script ('models/日本語モデル/') is percent-encoded, as a URL pasted into a model card must be."""
        return self.site_url + quote(site_path, safe="/") if self.site_url else ""


@dataclass(frozen=True)
class CheckpointEntry:
    """One validated entry of `checkpoints:`."""

    index: int
    """Position in the `checkpoints` list (0-based), for error messages."""
    name: str
    """Display name."""
    slug: str
    """URL- and file-safe identifier; the page lives at `models/<slug>/`."""
    path: str
    """The path as written in the registry."""
    resolved: Path
    """`path` resolved against the registry's folder."""
    phase: str = ""
    """Training phase, e.g. 'Phase 1 SFT'."""
    base_model: str = ""
    """Base model id; empty means: look it up in the checkpoint's files."""
    compare_group: str = ""
    """Runs the index compares this one with; empty: those of the same base model family."""
    description: str = ""
    """Free text shown on the model page."""
    tags: tuple[str, ...] = ()
    """Free-form labels."""

    @property
    def label(self) -> str:
        """How error messages name this entry."""
        return f"checkpoints[{self.index}] ({self.name})"


@dataclass(frozen=True)
class EntryProblem:
    """A registry entry (or checkpoint) that could not be built, and why."""

    label: str
    """How the entry is named, e.g. 'checkpoints[2] (gemma-2b)'."""
    message: str
    """The one-line error, naming file, entry and field."""
    name: str = ""
    """Display name when known."""


@dataclass(frozen=True)
class Registry:
    """The whole of a validated checkpoints.yaml."""

    file: Path
    """The registry file; relative paths resolve against its folder."""
    site: SiteSettings
    analysis: AnalysisSettings
    entries: tuple[CheckpointEntry, ...]
    """Valid entries, in file order."""
    problems: tuple[EntryProblem, ...] = ()
    """Entries that failed validation (the others still build)."""


@dataclass(frozen=True)
class AdapterInfo:
    """What `adapter_config.json` (PEFT) says about the adapter."""

    peft_type: str = ""
    task_type: str = ""
    r: int | None = None
    lora_alpha: float | None = None
    lora_dropout: float | None = None
    target_modules: tuple[str, ...] = ()
    base_model: str = ""


@dataclass(frozen=True, eq=False)
class DeferredTable:
    """A reader table as the run cache keeps it (`step`, then the other columns as one float matrix), made a
    DataFrame when first used: in a generation where one of 1,000 cached runs changed, the other runs'
    tables are not used at all, and building their 2,000 DataFrames took 0.58 s of a profiled 7.5 s."""

    columns: tuple[str, ...]
    """Every column, `step` first (as the reader and `build` order them)."""
    steps: np.ndarray
    values: np.ndarray
    """One row per step, one column per column after `step`."""

    def build(self) -> pd.DataFrame:
        table = pd.DataFrame(self.values, columns=list(self.columns[1:]))
        table.insert(0, "step", self.steps)
        return table


class _Table:
    """A TrainingRun table field: given a DataFrame or a DeferredTable, it reads as a DataFrame (built on
    first use and kept). `TrainingRun.column_names` and `with_warnings` do not build it."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, run: object, owner: type | None = None) -> pd.DataFrame:
        if run is None:
            raise AttributeError(self.name)  # the dataclass field has no default
        table = run.__dict__[self.name]
        if isinstance(table, DeferredTable):
            table = run.__dict__[self.name] = table.build()
        return table

    def __set__(self, run: object, table: pd.DataFrame | DeferredTable) -> None:
        run.__dict__[self.name] = table


@dataclass(frozen=True)
class TrainingRun:
    """A checkpoint as read from disk: its logs and its metadata."""

    state_file: Path
    """The `trainer_state.json` that was read."""
    checkpoint_dir: Path
    """Folder of that file."""
    summary: dict[str, float]
    """The end-of-training row (`train_runtime`, `train_loss` = mean loss, ...)."""
    state: dict[str, object]
    """Top-level scalars of trainer_state.json (`global_step`, `max_steps`,
    `num_train_epochs`, `train_batch_size`, `logging_steps`, `best_metric`, ...)."""
    state_sha256: str
    """Hash of the file's bytes: identifies the data a page was made from."""
    # The tables are descriptors (_Table), not defaults: they come last of the fields without a default
    # because type checkers take them for defaults.
    train: pd.DataFrame = _Table()  # type: ignore[assignment]
    """One row per logged training step: `step` plus every numeric key logged
    (`loss`, `learning_rate`, `grad_norm`, `mean_token_accuracy`, ...)."""
    eval: pd.DataFrame = _Table()  # type: ignore[assignment]
    """One row per evaluation: `step` plus the `eval_*` keys."""
    base_model: str = ""
    """Base model found in the checkpoint's files (empty when none)."""
    base_model_source: str = ""
    """Which file `base_model` came from."""
    adapter: AdapterInfo | None = None
    model_type: str = ""
    """`model_type` from config.json, when present."""
    vocab_size: int | None = None
    """`vocab_size` from config.json, when present (a first loss near ln(vocab_size) means no pretraining)."""
    language_model: bool = False
    """config.json's `architectures` name a token-predicting head (`*ForCausalLM`, `*ForConditionalGeneration`,
    `*LMHeadModel`, `*ForMaskedLM`, `EncoderDecoderModel`): its loss is on the ln(vocab_size) scale."""
    warnings: tuple[str, ...] = ()
    """Things the reader skipped or doubted, one line each."""
    predict: dict[str, float] = field(default_factory=dict)
    """`predict_*` results (logged without a step)."""
    resumes: tuple[tuple[int, int], ...] = ()
    """Where the log went back: (step it restarted at, highest step before), in file order."""
    source_format: str = "trainer_state.json"
    """Which format was read: trainer_state.json or LLaMA-Factory's trainer_log.jsonl."""
    saved_checkpoints: tuple[int, ...] = ()
    """Steps of the checkpoint-N folders of the registered run folder (empty for one checkpoint)."""
    non_finite: tuple[NonFinite, ...] = ()
    """First NaN / infinite value written per column."""

    def column_names(self) -> list[str]:
        """The train then the eval table's column names, without building a deferred table."""
        return [str(c) for name in ("train", "eval") for c in self.__dict__[name].columns]

    def with_warnings(self, warnings: tuple[str, ...]) -> TrainingRun:
        """This run with other warnings. Unlike `dataclasses.replace`, which reads every field, it leaves a
        deferred table deferred."""
        run = copy.copy(self)  # copies the fields as stored
        run.__dict__["warnings"] = warnings
        return run

    @property
    def global_step(self) -> int | None:
        """`global_step` from the state, when it is a number."""
        value = self.state.get("global_step")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        try:
            return int(value) if math.isfinite(value) else None
        except OverflowError:  # an integer beyond any float
            return None


@dataclass(frozen=True)
class SeriesSummary:
    """Headline numbers of one logged metric (finite values only, by step)."""

    column: str
    rows: int
    start: float
    start_step: int
    end: float
    end_step: int
    min: float
    min_step: int
    max: float
    max_step: int
    head_mean: float
    """Mean of the first `series.edge_rows` logged values (a tenth, at least 3 of 9 or more): steadier than
    one noisy or warm-up row."""
    tail_mean: float
    """Mean of the last `series.edge_rows` logged values."""
    rho: float | None = None
    """Spearman rank correlation of the values with their steps (None when undefined)."""
    trend: str = "none"
    """'rose', 'fell' or 'none': the one trend definition used everywhere (see `analysis.trend_of`)."""


@dataclass(frozen=True)
class EvalMetric:
    """One evaluation metric over the run."""

    column: str
    """As logged, e.g. `eval_accuracy`, `eval_g0_loss`, `eval_rouge-1`."""
    rows: int
    last: float
    last_step: int
    direction: Direction | None
    """Which way is better, or None when the name does not tell."""
    best: float | None = None
    best_step: int | None = None


@dataclass(frozen=True)
class NonFinite:
    """The first NaN or infinite value of one column."""

    column: str
    step: int
    value: str
    """'NaN', 'Infinity' or '-Infinity', as JSON writes them."""
    count: int
    """How many rows of the column hold a non-finite value."""


@dataclass(frozen=True)
class BestCheckpoint:
    """What trainer_state.json says about the best checkpoint (load_best_model_at_end)."""

    step: int | None
    """`best_global_step`, else N of `checkpoint-N` at the end of `best_model_checkpoint`."""
    metric: float | None
    """`best_metric` as written."""
    path: str | None
    """`best_model_checkpoint` as written (often an absolute path on the training machine)."""
    metric_column: str = ""
    """The eval column whose value at `step` equals `metric`, when exactly one does."""


class Severity(str, Enum):
    """How much a finding matters to the person reading the page."""

    WARNING = "warning"
    """Something went wrong or the run cannot be trusted as it stands: look at it."""
    NOTE = "note"
    """True and useful to know, not a fault."""

    def __str__(self) -> str:  # f-strings take the value, on every Python version
        return self.value


@dataclass(frozen=True)
class Finding:
    """One thing the analysis found, with the numbers and steps that make it true.

    Findings are data: the narrative turns each into a sentence, the page leads
    with them, and summary.json lists them so a CI job can act on them.
    """

    code: str
    """Stable identifier, e.g. 'eval_loss_rising'; the methodology page defines each."""
    severity: Severity
    values: dict[str, float] = field(default_factory=dict)
    """The figures behind the finding, by name (steps as numbers too)."""
    steps: tuple[int, ...] = ()
    """Steps the finding points at (spikes, epoch boundaries, ...)."""
    subject: str = ""
    """The logged key the finding is about, when there is one (e.g. 'grad_norm')."""

    def __post_init__(self) -> None:
        # numpy scalars become floats.
        object.__setattr__(self, "values", {key: float(value) for key, value in self.values.items()})


@dataclass(frozen=True)
class EvalRow:
    """One evaluation as the page's per-step table shows it."""

    step: int
    values: tuple[float | None, ...]
    """The values of `Figures.eval_table_columns`, in that order; None where not logged (or not finite)."""


@dataclass(frozen=True)
class SavedCheckpoint:
    """One checkpoint-N folder of a run folder, with what the latest log says at its step."""

    step: int
    loss: float | None
    """The last training loss logged at or before `step`."""
    loss_step: int | None
    eval_loss: float | None
    """The eval loss logged at `step`, when there was one."""


@dataclass(frozen=True)
class Figures:
    """Numbers computed from one run's logs (pure analysis output)."""

    steps: int
    """Total optimizer steps: `global_step`, else the last logged step."""
    logged_rows: int
    """Number of training rows that logged a loss."""
    start_step: int | None = None
    start_loss: float | None = None
    """First logged training loss."""
    end_step: int | None = None
    end_loss: float | None = None
    """Last logged training loss (not the summary's mean `train_loss`)."""
    smoothed_start: float | None = None
    """First value of the smoothed loss."""
    smoothed_end: float | None = None
    """Last value of the smoothed loss."""
    min_loss: float | None = None
    min_loss_step: int | None = None
    max_loss: float | None = None
    relative_drop: float | None = None
    """(start - end) / start."""
    fall_end_step: int | None = None
    """Where the fast first fall of the loss ends: the knee of the loss level (see `analysis.knee_index`)."""
    fall_end_level: float | None = None
    """The loss level (rolling median) at `fall_end_step`."""
    drop_share_at_fall_end: float | None = None
    """Share of the whole fall of the loss level (first to last) done by `fall_end_step`."""
    end_level: float | None = None
    """The loss level (rolling median) at the last logged step."""
    stabilised_step: int | None = None
    """First step from which the loss level stays within `stable_band` of its value there (None: never)."""
    fall_rate: float | None = None
    """Average fall of the loss per 100 optimizer steps, first to last logged loss: the speed class."""
    convergence: SpeedClass = SpeedClass.NOT_RATED
    """Speed class from `fall_rate`."""
    high_initial_gap: bool = False
    level_crossings: tuple[tuple[float, int | None], ...] = ()
    """(level, first step where the smoothed loss is below it, or None)."""
    final_token_accuracy: float | None = None
    first_token_accuracy: float | None = None
    entropy_start: float | None = None
    entropy_end: float | None = None
    entropy_rho: float | None = None
    """Spearman rank correlation of entropy with step."""
    eval_rows: int = 0
    eval_loss_last: float | None = None
    eval_loss_last_step: int | None = None
    eval_loss_min: float | None = None
    eval_loss_min_step: int | None = None
    eval_gap: float | None = None
    """Last eval loss minus the smoothed train loss at that step."""
    mean_train_loss: float | None = None
    """`train_loss` of the summary row: the mean over training."""
    train_runtime: float | None = None
    tokens_seen: float | None = None
    peak_learning_rate: float | None = None
    max_grad_norm: float | None = None
    max_grad_norm_step: int | None = None
    metrics: tuple[str, ...] = field(default_factory=tuple)
    """Numeric training metrics present in the log, sorted."""
    kind: RunKind = RunKind.SFT
    kind_keys: tuple[str, ...] = ()
    """The logged keys the kind was recognised from."""
    last_logged_step: int | None = None
    """Highest step of any train or eval row."""
    eval_metrics: tuple[EvalMetric, ...] = ()
    best_checkpoint: BestCheckpoint | None = None
    non_finite: tuple[NonFinite, ...] = ()
    spikes: tuple[int, ...] = ()
    """Steps whose raw loss is a spike (see `AnalysisSettings.spike_factor`)."""
    noisy_jumps: int = 0
    """Rows that met the spike rule when they were too many to be spikes (heavy-tailed batch noise)."""
    series: tuple[SeriesSummary, ...] = ()
    """Kind-specific metrics (reward, KL, margins, ...) that were logged."""
    other_metrics: tuple[str, ...] = ()
    """Numeric training keys no section explains: plotted under 'Other metrics'."""
    other_metrics_left_out: tuple[str, ...] = ()
    """Keys past the page's cap on 'Other metrics' panels: only in the CSV download."""
    flat_metrics: tuple[tuple[str, float], ...] = ()
    """(column, value) of training metrics logged at two or more steps with one value at every one
    (a KL of 0, a constant learning rate): the page states the value instead of drawing a flat line."""
    same_metrics: tuple[tuple[str, str], ...] = ()
    """(column, earlier column) where the column has the earlier one's values at every logged step
    (older TRL's `completion_length` is `completions/mean_length` or `max_length`): drawn once."""
    findings: tuple[Finding, ...] = ()
    """What the analysis found, warnings first (see `generator.findings`)."""
    resumes: tuple[tuple[int, int], ...] = ()
    """Where the log went back: (step it restarted at, highest step before), in file order."""
    global_step: int | None = None
    """`global_step` of the checkpoint, when the state gives one."""
    logging_interval: float | None = None
    """`logging_steps` in steps (a value below 1 is a share of max_steps), when known and positive."""
    eval_table_columns: tuple[str, ...] = ()
    """Eval columns of the per-step table (the first few rated ones)."""
    eval_table: tuple[EvalRow, ...] = ()
    """Every evaluation, when few enough to list on the page; empty otherwise (they are in the CSV)."""
    saved_checkpoints: tuple[SavedCheckpoint, ...] = ()
    """The checkpoints of a registered run folder (two or more), oldest first."""

    @property
    def drawn_metrics(self) -> tuple[str, ...]:
        """`metrics` without the flat ones and the repeats: what the panels draw."""
        undrawn = {column for column, _ in self.flat_metrics} | {column for column, _ in self.same_metrics}
        return tuple(column for column in self.metrics if column not in undrawn)

    def series_for(self, column: str) -> SeriesSummary | None:
        """The summary of `column`, when it was logged."""
        return next((s for s in self.series if s.column == column), None)

    def headline(self) -> tuple[str, SeriesSummary | None, float | None]:
        """(name, summary when it is a logged series, last value) of the metric that shows this run's
        progress: the reward of an RL run that logged one, else the training loss. Badges and cards show it."""
        key = self.kind.about.headline
        if key != "loss" and (series := self.series_for(key)) is not None:
            return key, series, series.end
        return "train loss", None, self.end_loss

    @property
    def kind_label(self) -> str:
        return self.kind.about.label

    @property
    def convergence_label(self) -> str:
        """The speed class as shown in tables, e.g. 'Very Fast (High Initial Gap)'."""
        if self.high_initial_gap and self.convergence.rated:
            return f"{self.convergence.label} (High Initial Gap)"
        return self.convergence.label


@dataclass(frozen=True)
class ModelReport:
    """Everything a model page needs: entry, data, figures, sentences."""

    entry: CheckpointEntry
    run: TrainingRun
    figures: Figures
    analysis: tuple[str, ...]
    """Narrative bullets, in order."""
    base_model: str
    """Base model to show (registry value, else the checkpoint's files)."""
    color: str
    """The model's colour on every plot."""
    curve: Curve
    """Its curve on its kind's overview, in its name and colour."""
    reading_key: str = ""
    """The cache's key of what the reading was made of (`cache.inputs_key`: the code, the paths, the files
    beside the state file, the settings), with the state file's hash in `run`: equal keys, equal reading.
    Empty when the run was read without a cache (`--no-cache`): its page is then keyed by its text."""


@dataclass(frozen=True, eq=False)
class Curve:
    """One run's curve on its kind's overview (loss, or reward for RL runs), smoothed and placed on every x
    axis the run logged (`overview.make_curve`), so that drawing hundreds of them is array slicing only."""

    name: str
    color: str
    steps: int
    """Total steps of the run, for the progress axis."""
    at: np.ndarray
    """The steps (as floats) of the finite values logged."""
    smoothed: np.ndarray
    """The values smoothed with the registry's weight, one per step of `at`."""
    epochs: np.ndarray | None = None
    """The epoch at each step of `at`: the last one logged at or before it, NaN before the first; None when the
    run logged no epoch."""
    tokens: np.ndarray | None = None
    """Tokens seen at each step of `at`, the same way; None when the run did not log them."""
    tokens_seen: float | None = None
    """The last tokens-seen value logged (a run may log it after its last loss)."""
    few: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
    """The points it is drawn from on an overview of many runs (`overview.few_points`), picked once."""
    thin: bool = False
    """Cut to what one panel of an overview of many runs draws (`overview.thinned`): its arrays hold their first
    point only, and `few` that panel's points."""

"""Property tests (hypothesis): what must hold for *any* input, not just the examples.

Each stage is fed generated input and checked against a guarantee that could
be false:

- reader: any file becomes a `TrainingRun` or a `CheckpointError`, never a crash,
  and the tables it returns have clean integer steps;
- registry: any YAML becomes a `Registry` or a `ConfigError`, and every listed
  checkpoint ends up either as an entry or as a problem, never both, never lost;
- analysis + narrative: any run gives figures that agree with its log and
  sentences that agree with the figures.

Every test is derandomized, so CI sees the same examples on every run.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from conftest import run_from
from generator import registry as registry_module
from generator.analysis import analyse
from generator.errors import CheckpointError, ConfigError
from generator.formatting import fmt_number
from generator.narrative import Compared, comparison, conclusion, finding_sentence, model_analysis
from generator.reader import read_run
from generator.records import AnalysisSettings, CheckpointEntry, Figures, Registry, TrainingRun

# Every test: deterministic examples, no per-example deadline (the CI box has two slow cores).
FEW, SOME, MANY = 60, 120, 300

# --- strategies: JSON-like data ----------------------------------------------------------------

NAN, INF = float("nan"), float("inf")

# JSON puts no bound on integers; the second branch reaches past float's range (about 1.8e308).
json_ints = st.integers() | st.integers(min_value=-(10**330), max_value=10**330)
json_floats = st.floats(allow_nan=True, allow_infinity=True)
json_scalars = st.none() | st.booleans() | json_ints | json_floats | st.text(max_size=12)
# Strategies used many times are wrapped in st.deferred: it keeps their repr (which
# hypothesis builds for every test) short.
json_values = st.deferred(
    lambda: st.recursive(
        json_scalars,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
        max_leaves=12,
    )
)

LOG_KEYS = (
    "loss", "step", "epoch", "learning_rate", "lr", "grad_norm", "eval_loss", "eval_accuracy",
    "train_runtime", "train_loss", "mean_token_accuracy", "entropy", "num_tokens",
)  # fmt: skip
log_keys = st.sampled_from(LOG_KEYS) | st.text(max_size=10)
# Mostly numbers (what a log holds), sometimes anything at all.
log_values = st.deferred(lambda: st.integers(min_value=0, max_value=10_000) | json_floats | json_ints | json_values)
# Steps: ordinary ones, ones past float precision and int64 (JSON allows them), and anything else.
steps = st.deferred(
    lambda: st.integers(min_value=0, max_value=10_000)
    | st.integers(min_value=2**53, max_value=10**30)
    | json_floats
    | json_values
)

rows_with_a_step = st.fixed_dictionaries(
    {"step": steps}, optional={key: log_values for key in LOG_KEYS if key != "step"}
)
log_rows = st.one_of(
    rows_with_a_step,
    rows_with_a_step,  # twice: most rows of a real log have a step
    st.dictionaries(log_keys, log_values, max_size=6),
    json_values,  # a row that is not even an object
)
trainer_states = st.fixed_dictionaries(
    {"log_history": st.lists(log_rows, min_size=1, max_size=8) | json_values},
    optional={"global_step": json_scalars, "max_steps": json_scalars, "epoch": json_scalars, "extra": json_values},
)


# --- reader ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def state_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One trainer_state.json, rewritten by each example (module scope: hypothesis reruns the body)."""
    return tmp_path_factory.mktemp("properties") / "trainer_state.json"


def read_bytes_as_run(path: Path, data: bytes) -> TrainingRun | None:
    """Write `data` as the checkpoint and read it; None when the reader refuses it properly."""
    path.write_bytes(data)
    entry = CheckpointEntry(index=0, name="run", slug="run", path=str(path), resolved=path)
    try:
        return read_run(entry)
    except CheckpointError:
        return None


def assert_clean_tables(run: TrainingRun) -> None:
    """`train` and `eval` have an int64 step column, sorted, unique, non-negative; floats otherwise."""
    for table in (run.train, run.eval):
        assert table.columns[0] == "step"
        assert table["step"].dtype == np.dtype("int64")
        step_values = table["step"].to_numpy()
        assert (step_values >= 0).all(), f"negative step in {step_values}"
        assert (np.diff(step_values) > 0).all(), f"steps not strictly increasing: {step_values}"
        for column in table.columns[1:]:
            assert table[column].dtype == np.dtype("float64"), column
    assert not (run.train.empty and run.eval.empty and not run.summary)
    assert all(isinstance(value, float) for value in run.summary.values())


@settings(derandomize=True, deadline=None, max_examples=MANY)
@given(document=json_values | trainer_states)
def test_reader_turns_any_json_into_a_run_or_a_checkpoint_error(state_file: Path, document: Any) -> None:
    """Any JSON document (NaN/Infinity tokens included) is read or refused with CheckpointError."""
    data = json.dumps(document, allow_nan=True).encode("utf-8")
    run = read_bytes_as_run(state_file, data)
    if run is not None:
        assert_clean_tables(run)


@settings(derandomize=True, deadline=None, max_examples=SOME)
@given(data=st.binary(max_size=200) | trainer_states.map(lambda d: json.dumps(d, allow_nan=True).encode()[:-3]))
def test_reader_turns_any_bytes_into_a_run_or_a_checkpoint_error(state_file: Path, data: bytes) -> None:
    """Arbitrary bytes, and JSON cut off as by an interrupted copy, never crash the reader."""
    run = read_bytes_as_run(state_file, data)
    if run is not None:
        assert_clean_tables(run)


READER_EDGE_FILES = [
    pytest.param(b"[" * 100_000, id="deeply-nested-json"),
    pytest.param(b'{"log_history": [{"step": 1, "loss": ' + b"1" * 5000 + b"}]}", id="5000-digit-number"),
    pytest.param(b'{"log_history": [{"step": 1e19, "loss": 1.0}]}', id="step-beyond-int64"),
    pytest.param(b'{"log_history": [{"step": 1, "loss": 1' + b"0" * 400 + b"}]}", id="integer-beyond-float"),
]


@pytest.mark.parametrize("data", READER_EDGE_FILES)
def test_reader_edge_files_are_read_or_refused(state_file: Path, data: bytes) -> None:
    """Hand-picked files at the limits of JSON parsers: still a run or a CheckpointError."""
    run = read_bytes_as_run(state_file, data)
    if run is not None:
        assert_clean_tables(run)


# --- registry ----------------------------------------------------------------------------------

names = st.sampled_from(["Model A", "model-a", "model_a", "B", "!!!", "", "  ", "Qwen 7B", "qwen-7b"]) | st.text(max_size=10)
slugs = st.sampled_from(["model-a", "b", "Bad Slug", "-x", "", "a" * 81]) | st.text(max_size=10)
# Paths with the characters a file system treats specially (separators, '~', '..', NUL).
paths = st.builds(
    lambda prefix, rest: prefix + rest,
    st.sampled_from(["", "~", "~/", "./", "../", "/", "runs/"]),
    st.text(st.sampled_from("ab/.~- \x00\u00e9") | st.characters(), max_size=10),
)
entry_values = st.deferred(lambda: st.text(max_size=12) | json_values)
entries = st.one_of(
    # Plausible entries, mostly valid: the registry's own checks decide.
    st.fixed_dictionaries(
        {"name": names, "path": paths},
        optional={"slug": slugs, "phase": st.text(max_size=8), "base_model": st.text(max_size=8),
                  "description": st.text(max_size=8), "tags": st.lists(st.text(max_size=5), max_size=3)},
    ),
    # Entries with values of any type.
    st.fixed_dictionaries(
        {"name": names | json_scalars, "path": paths | json_scalars},
        optional={"slug": slugs | entry_values, "phase": entry_values, "base_model": entry_values,
                  "description": entry_values, "tags": st.lists(st.text(max_size=5) | json_scalars, max_size=3) | json_values},
    ),
    st.dictionaries(st.sampled_from(registry_module.ENTRY_KEYS) | st.text(max_size=8), entry_values, max_size=4),
    json_values,
)
analysis_numbers = st.deferred(lambda: json_floats | json_ints | st.floats(min_value=0, max_value=1) | json_values)
registry_documents = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"checkpoints": st.lists(entries, max_size=5)},
        optional={
            "site": st.dictionaries(st.sampled_from(registry_module.SITE_KEYS) | st.text(max_size=5), entry_values, max_size=2),
            "analysis": st.dictionaries(st.sampled_from(registry_module.ANALYSIS_KEYS), analysis_numbers, max_size=3),
        },
    ),
)
# Text that looks like YAML more often than st.text() alone: indicators, quotes, newlines, tags.
yaml_texts = st.text(max_size=80) | st.text(alphabet="ab0129.-:[]{},&*!|>'\"#%@ \n", max_size=60)


def assert_registry_accounts_for_every_entry(registry: Registry, listed: list[Any]) -> None:
    """Names and slugs unique, slugs valid, and each listed entry is an entry or a problem (not both)."""
    names_seen = [entry.name for entry in registry.entries]
    slugs_seen = [entry.slug for entry in registry.entries]
    assert len(set(names_seen)) == len(names_seen), names_seen
    assert len(set(slugs_seen)) == len(slugs_seen), slugs_seen
    for entry in registry.entries:
        # An explicit slug follows SLUG_PATTERN; one made from the name keeps letters of any script.
        assert registry_module.SLUG_PATTERN.match(entry.slug) or entry.slug == registry_module.slugify(entry.name), \
            entry.slug
        assert entry.slug and not entry.slug.startswith("-") and not entry.slug.endswith("-") and "--" not in entry.slug
        assert all(c == "-" or unicodedata.category(c)[0] in "LMN" for c in entry.slug), entry.slug
        assert len(entry.slug.encode("utf-8")) <= 80
        assert entry.name and entry.name == entry.name.strip()
        assert entry.path and entry.resolved.is_absolute()
    built = [entry.index for entry in registry.entries]
    assert built == sorted(built), "entries must keep their order in the file"
    refused = set()
    for problem in registry.problems:
        match = re.match(r"checkpoints\[(\d+)\]", problem.label)
        assert match, problem.label
        refused.add(int(match.group(1)))
    # Problems are one per message, so there may be several per entry; entries are one each.
    assert not refused & set(built), "an entry is both built and refused"
    assert refused | set(built) == set(range(len(listed))), "a listed entry was silently dropped"


@settings(derandomize=True, deadline=None, max_examples=MANY)
@given(document=registry_documents)
def test_registry_validates_any_document_or_raises_config_error(tmp_path_factory: pytest.TempPathFactory, document: Any) -> None:
    """Any parsed document becomes a Registry (every entry accounted for) or a ConfigError."""
    base = tmp_path_factory.getbasetemp()
    try:
        registry = registry_module.validate_registry(document, base, base / "checkpoints.yaml", "checkpoints.yaml")
    except ConfigError:
        return
    assert isinstance(document, dict)
    assert_registry_accounts_for_every_entry(registry, document["checkpoints"])


@settings(derandomize=True, deadline=None, max_examples=SOME)
@given(listed=st.lists(entries, max_size=6))
def test_registry_accounts_for_every_listed_entry(tmp_path_factory: pytest.TempPathFactory, listed: list[Any]) -> None:
    """With valid settings, entry problems never stop the build: every entry is built or reported."""
    base = tmp_path_factory.getbasetemp()
    registry = registry_module.validate_registry({"checkpoints": listed}, base, base / "checkpoints.yaml", "checkpoints.yaml")
    assert_registry_accounts_for_every_entry(registry, listed)


@pytest.fixture(scope="module")
def registry_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("registry") / "checkpoints.yaml"


def load_text(path: Path, text: str) -> Registry | None:
    """Write and load a registry; None when it is refused with ConfigError."""
    path.write_text(text, encoding="utf-8")
    try:
        registry = registry_module.load_registry(path, display="checkpoints.yaml")
    except ConfigError:
        return None
    assert_registry_accounts_for_every_entry(registry, yaml.safe_load(text)["checkpoints"])
    return registry


@settings(derandomize=True, deadline=None, max_examples=SOME)
@given(document=registry_documents)
def test_registry_loads_any_dumped_yaml_or_raises_config_error(registry_file: Path, document: Any) -> None:
    """`yaml.safe_dump` of any document loads as a Registry or raises ConfigError."""
    load_text(registry_file, yaml.safe_dump(document))


@settings(derandomize=True, deadline=None, max_examples=SOME)
@given(text=yaml_texts)
def test_registry_loads_any_text_or_raises_config_error(registry_file: Path, text: str) -> None:
    """Any text at all, valid YAML or not, loads as a Registry or raises ConfigError."""
    load_text(registry_file, text)


REGISTRY_EDGE_TEXTS = [
    pytest.param("checkpoints:\n  - {name: run 2024-13-01, path: runs/a}\n", id="date-like-but-text"),
    pytest.param("checkpoints:\n  - {name: 2024-13-01, path: runs/a}\n", id="impossible-date"),
    pytest.param("checkpoints: []\nanalysis: {smoothing: 1" + "0" * 400 + "}\n", id="integer-beyond-float"),
    pytest.param("checkpoints: []\nanalysis: {loss_levels: [1" + "0" * 400 + "]}\n", id="level-beyond-float"),
    pytest.param('checkpoints:\n  - {name: a, path: "runs/\\0x"}\n', id="nul-in-path"),
    pytest.param("checkpoints:\n  - {name: a, path: ~no-such-user-here/run}\n", id="unknown-user-in-path"),
    pytest.param("[" * 10_000, id="deeply-nested"),
]


@pytest.mark.parametrize("text", REGISTRY_EDGE_TEXTS)
def test_registry_edge_texts_load_or_raise_config_error(registry_file: Path, text: str) -> None:
    """Hand-picked YAML that PyYAML or pathlib handle badly: still a Registry or a ConfigError."""
    load_text(registry_file, text)


# --- analysis and narrative --------------------------------------------------------------------

# Shrinking a failing run re-runs pandas thousands of times: these tests shrink only
# the first bug they find (report_multiple_bugs=False), so a failure costs seconds, not minutes.
DEFAULTS = AnalysisSettings()
# Loss values a log may hold: ordinary ones, negative ones, zero, and NaN/inf as Trainer writes them.
ordinary = st.floats(min_value=-50, max_value=50, allow_nan=False)
odd = st.sampled_from([NAN, INF, -INF, 0.0])
loss_values = st.one_of(ordinary, ordinary, ordinary, odd)  # odd values one time in four
# Finite floats of any size, the largest and the smallest ones often.
BIGGEST = 1.7976931348623157e308
any_finite = st.sampled_from([BIGGEST, -BIGGEST, 5e-324, -5e-324, 1e300]) | st.floats(allow_nan=False, allow_infinity=False)
# What trainer_state.json may hold for global_step/max_steps (the reader passes them on as they are).
state_scalars = st.sampled_from([NAN, INF, -INF, -1, 0, True, "100", 1e300]) | json_scalars


def step_column(draw: st.DrawFn, count: int) -> list[int]:
    """`count` logged steps: sorted, unique, non-negative, as the reader guarantees."""
    # A first step and positive gaps: cheap to draw and to shrink (unlike a set of unique ints).
    first = draw(st.integers(min_value=0, max_value=1000))
    gaps = draw(st.lists(st.integers(min_value=1, max_value=500), min_size=count, max_size=count))
    return [first + sum(gaps[:i]) for i in range(count)]


def column(draw: st.DrawFn, count: int, values: st.SearchStrategy[float]) -> list[float]:
    """A column of `count` values: random, constant, falling (a typical loss) or noisy."""
    shape = draw(st.sampled_from(["random", "constant", "falling", "noisy"]))
    if shape == "constant":
        return [draw(values)] * count
    if shape == "random":
        return draw(st.lists(values, min_size=count, max_size=count))
    start = draw(st.floats(min_value=0.01, max_value=10))
    if shape == "falling":
        return [start * 0.9**i for i in range(count)]
    # Noisy: anything from a plateau (decay 1) to a fast fall, each value off by up to 2x.
    decay = draw(st.floats(min_value=0.8, max_value=1.0))
    noise = draw(st.lists(st.floats(min_value=0.5, max_value=2), min_size=count, max_size=count))
    return [start * decay**i * factor for i, factor in enumerate(noise)]


@st.composite
def runs(draw: st.DrawFn, values: st.SearchStrategy[float] = loss_values,
         state_values: st.SearchStrategy[Any] | None = None, with_eval: bool = True) -> TrainingRun:
    """A run with a random loss series and random optional columns, eval rows and state."""
    count = draw(st.integers(min_value=0, max_value=30))
    train: dict[str, Any] = {"step": pd.Series(step_column(draw, count), dtype="int64")}
    if count:
        train["loss"] = column(draw, count, values)
    for name, metric in (("entropy", values), ("mean_token_accuracy", st.floats(0, 1)), ("learning_rate", values),
                         ("grad_norm", values), ("num_tokens", values)):
        if draw(st.booleans()):
            train[name] = column(draw, count, metric)
    evals = None
    eval_count = draw(st.integers(min_value=0, max_value=8)) if with_eval else 0
    if eval_count:
        evals = {"step": pd.Series(step_column(draw, eval_count), dtype="int64"), "eval_loss": column(draw, eval_count, values)}
    if state_values is None:  # what the Trainer writes: counts of steps
        state_values = st.none() | st.integers(min_value=0, max_value=200_000)
    state = {key: value for key in ("global_step", "max_steps") if (value := draw(state_values)) is not None}
    summary = draw(st.dictionaries(st.sampled_from(["train_loss", "train_runtime"]), values, max_size=2))
    return run_from(train, evals, state, summary)


analysis_settings = st.builds(
    AnalysisSettings,
    smoothing=st.sampled_from([0.0, 0.6, 0.9]),
    low_start_loss=st.sampled_from([0.5, 1.0]),
    high_start_loss=st.sampled_from([1.0, 2.0, 5.0]),
)

NON_FINITE_WORD = re.compile(r"\b(nan|inf|infinity)\b|n/a", re.IGNORECASE)


def finite_loss(run: TrainingRun) -> pd.Series:
    """The logged losses that are numbers, by step."""
    if "loss" not in run.train.columns:
        return pd.Series([], dtype="float64")
    loss = pd.Series(run.train["loss"].to_numpy(dtype="float64"), index=run.train["step"].to_numpy())
    return loss[np.isfinite(loss.to_numpy())]


def assert_figures_match_the_log(run: TrainingRun, f: Figures) -> None:
    """Loss figures are finite, taken from the log, and name steps that were logged."""
    loss = finite_loss(run)
    logged = set(loss.index.tolist())
    assert f.logged_rows == len(loss)
    if loss.empty:
        assert f.start_loss is None and f.end_loss is None and f.min_loss is None
        return
    assert f.start_loss is not None and f.end_loss is not None and f.min_loss is not None
    assert math.isfinite(f.start_loss) and math.isfinite(f.end_loss) and math.isfinite(f.min_loss)
    assert (f.start_loss, f.end_loss) == (loss.iloc[0], loss.iloc[-1])
    assert f.min_loss <= loss.min() and f.min_loss in loss.to_numpy()
    assert f.min_loss_step in logged and loss[f.min_loss_step] == f.min_loss
    assert f.stabilised_step is None or f.stabilised_step in logged
    assert f.fall_end_step is None or f.fall_end_step in logged
    for finding in f.findings:  # every step a finding points at was logged (train or eval)
        assert set(finding.steps) <= set(run.train["step"]) | set(run.eval["step"]), finding
    if f.relative_drop is not None:
        assert math.isfinite(f.relative_drop), f"relative_drop {f.relative_drop} from {f.start_loss} -> {f.end_loss}"


def number_in(pattern: str, sentence: str) -> str:
    """The text captured by `pattern` in `sentence` (the test fails when absent)."""
    match = re.search(pattern, sentence)
    assert match, f"{pattern!r} not in {sentence!r}"
    return match.group(1)


def assert_sentences_match_the_figures(f: Figures, sentences: list[str], run: TrainingRun, s: AnalysisSettings) -> None:
    """Every model-page sentence is true of the figures and quotes them exactly."""
    for sentence in sentences:
        assert not NON_FINITE_WORD.search(sentence), sentence
        if "relatively low loss" in sentence:
            assert f.start_loss is not None and f.start_loss < s.low_start_loss, sentence
            assert number_in(r"\((\S+) < ", sentence) == fmt_number(f.start_loss)
        if sentence.startswith("High initial loss"):
            assert f.start_loss is not None and f.start_loss >= s.high_start_loss, sentence
            assert number_in(r"started at (\S+) ", sentence) == fmt_number(f.start_loss)
        if "decreased consistently" in sentence:
            assert f.entropy_rho is not None and f.entropy_rho <= -s.entropy_consistency, sentence
        if "increased consistently" in sentence:
            assert f.entropy_rho is not None and f.entropy_rho >= s.entropy_consistency, sentence
        if sentence.startswith("Final loss"):
            assert number_in(r"^Final loss (\S+) at", sentence) == fmt_number(f.end_loss)
            assert number_in(r" at step (\d+)", sentence) == str(f.end_step)
        if "% below the start" in sentence:
            assert f.end_loss is not None and f.start_loss is not None and f.end_loss < f.start_loss, sentence
        if "% above the start" in sentence:
            assert f.end_loss is not None and f.start_loss is not None and f.end_loss > f.start_loss, sentence
        if "lowest logged loss was" in sentence:
            assert number_in(r"lowest logged loss was (\S+) at", sentence) == fmt_number(f.min_loss)
        if sentence.startswith("Convergence speed "):
            assert number_in(r"^Convergence speed (.+?): ", sentence) == f.convergence.label, sentence
            assert f.fall_rate is not None and f.fall_rate > 0, sentence
        if sentence.startswith("The fast fall of the loss ended"):
            assert number_in(r"around step (\d+)", sentence) == str(f.fall_end_step)
        if "rom step" in sentence and "varied by at most" in sentence:
            assert number_in(r"[Ff]rom step (\d+)", sentence) == str(f.stabilised_step)
        if "it stabilised" in sentence:
            assert f.stabilised_step is not None, sentence
            if sentence.startswith("The fast fall"):
                assert f.fall_end_step is not None and f.stabilised_step <= f.fall_end_step, sentence
        for level, step in re.findall(r"below (\S+) within (\d+) steps?", sentence):
            assert f.start_loss is not None and f.start_loss > float(level) and int(step) in finite_loss(run).index
        if "rose by" in sentence:
            assert f.eval_loss_last is not None and f.eval_loss_min is not None
            assert f.eval_loss_last > f.eval_loss_min, sentence
            assert "rose by -" not in sentence, sentence
        if "above the smoothed training loss" in sentence:
            assert f.eval_gap is not None and f.eval_gap > 0, sentence


def assert_no_improvement_quotes_no_fall(figures: Figures, s: AnalysisSettings) -> None:
    """'No improvement: the smoothed loss ended at b, no lower than the first logged loss a' never quotes b < a."""
    for finding in figures.findings:
        sentence = finding_sentence(finding, s)
        if sentence.startswith("No improvement"):
            after = number_in(r"smoothed loss ended at (\S+),", sentence)
            before = number_in(r"first logged loss \((\S+)\)", sentence)
            assert float(after.replace(",", "")) >= float(before.replace(",", "")), sentence


@settings(derandomize=True, deadline=None, max_examples=SOME, report_multiple_bugs=False)
@given(run=runs(), s=analysis_settings)
def test_figures_agree_with_the_log(run: TrainingRun, s: AnalysisSettings) -> None:
    """analyse() never raises; its loss figures are finite, from the log, at logged steps."""
    assert_figures_match_the_log(run, analyse(run, s))


@settings(derandomize=True, deadline=None, max_examples=SOME, report_multiple_bugs=False)
@given(run=runs(), s=analysis_settings)
def test_model_sentences_agree_with_the_figures(run: TrainingRun, s: AnalysisSettings) -> None:
    """model_analysis() never raises and says nothing the figures contradict."""
    figures = analyse(run, s)
    sentences = model_analysis(figures, s)
    assert_sentences_match_the_figures(figures, sentences, run, s)


@st.composite
def plateau_runs(draw: st.DrawFn) -> TrainingRun:
    """A loss that hovers around one level, logged every 10 steps: raw and smoothed ends often disagree."""
    losses = draw(st.lists(st.floats(min_value=0.5, max_value=2.0), min_size=5, max_size=20))
    return run_from({"step": [10 * (i + 1) for i in range(len(losses))], "loss": losses})


@settings(derandomize=True, deadline=None, max_examples=SOME, report_multiple_bugs=False)
@given(run=plateau_runs() | runs(with_eval=False), s=analysis_settings)
@example(run=run_from({"step": [10, 20, 30, 40, 50], "loss": [1.0, 1.0, 1.0, 2.0, 0.5]}), s=DEFAULTS)  # a late spike
def test_no_improvement_is_not_said_of_a_loss_that_fell(run: TrainingRun, s: AnalysisSettings) -> None:
    """'No improvement' / 'did not converge' are not said of a loss that fell (and stabilised).

    No eval rows here: the loss story alone, so an eval problem cannot hide this one.
    """
    assert_no_improvement_quotes_no_fall(analyse(run, s), s)


@settings(derandomize=True, deadline=None, max_examples=SOME, report_multiple_bugs=False)
@given(run=plateau_runs() | runs(with_eval=False), s=analysis_settings)
# Rose early, settled above the start, last value below it: fell 10% and stabilised at step 40.
@example(run=run_from({"step": [10 * i for i in range(1, 18)], "loss": [1.0] + [1.2] * 15 + [0.9]}),
         s=AnalysisSettings(smoothing=0.9))
def test_conclusion_about_one_run_agrees_with_its_figures(run: TrainingRun, s: AnalysisSettings) -> None:
    """The conclusion calls a run converged exactly when the figures say so."""
    figures = analyse(run, s)
    assert_conclusion_is_true([("alpha", figures)], conclusion([Compared("alpha", figures, "g")], s))


@settings(derandomize=True, deadline=None, max_examples=FEW, report_multiple_bugs=False)
@given(run=runs(state_values=state_scalars, with_eval=False))
@example(run=run_from({"step": [10, 20], "loss": [2.0, 1.0]}, state={"global_step": NAN}))
def test_any_state_values_are_survived(run: TrainingRun) -> None:
    """global_step/max_steps as the reader passes them on (any JSON scalar: NaN, inf, text, ...) never crash."""
    figures = analyse(run, DEFAULTS)
    assert_sentences_match_the_figures(figures, model_analysis(figures, DEFAULTS), run, DEFAULTS)


@settings(derandomize=True, deadline=None, max_examples=FEW, report_multiple_bugs=False)
@given(run=runs(values=any_finite, with_eval=False))
def test_extreme_finite_losses_are_survived(run: TrainingRun) -> None:
    """Finite losses of any magnitude (up to 1.8e308) give figures and sentences without a crash or 'inf'."""
    figures = analyse(run, DEFAULTS)
    assert_figures_match_the_log(run, figures)
    assert_sentences_match_the_figures(figures, model_analysis(figures, DEFAULTS), run, DEFAULTS)


# --- across models: comparison and conclusion --------------------------------------------------

MODEL_NAMES = ("alpha", "bravo", "charlie", "delta")


AGAINST_CONVERGENCE = {"loss_not_falling", "loss_rising_at_end", "eval_loss_rising", "eval_loss_flat", "non_finite"}


def converged_by_the_figures(f: Figures) -> bool:
    """What 'converged' means on the pages (methodology): the smoothed loss fell, a fast fall ended or the loss
    stabilised, and none of the warnings against convergence."""
    return (f.fall_rate is not None and f.fall_rate > 0
            and (f.fall_end_step is not None or f.stabilised_step is not None)
            and not {x.code for x in f.findings} & AGAINST_CONVERGENCE)


def assert_comparison_is_true(models: list[tuple[str, Figures]], sentences: list[str], s: AnalysisSettings) -> None:
    """Who 'ended with the lowest loss', 'started much higher' or fell fastest is true of the figures."""
    rated = {name: f for name, f in models if f.start_loss is not None and f.end_loss is not None}
    for sentence in sentences:
        assert not NON_FINITE_WORD.search(sentence), sentence
        if "ended with the lowest loss" in sentence:
            best = sentence.removeprefix("Compared within g: ").split(" ", 1)[0]
            assert rated[best].end_loss == min(f.end_loss for f in rated.values() if f.end_loss is not None)
            assert number_in(r"lowest loss \((\S+)\)", sentence) == fmt_number(rated[best].end_loss)
        if "started much higher than" in sentence:
            name = sentence.split(" ", 1)[0]
            start = rated[name].start_loss
            others = [f.start_loss for n, f in rated.items() if n != name and f.start_loss is not None]
            assert start is not None and start >= s.much_higher_factor * (sum(others) / len(others)) > 0, sentence
        if sentence.startswith("Fastest fall"):
            name = number_in(r"^Fastest fall: (\S+),", sentence)
            rates = [f.fall_rate for f in rated.values() if f.fall_rate is not None and f.fall_rate > 0]
            assert rated[name].fall_rate == max(rates)


def assert_conclusion_is_true(models: list[tuple[str, Figures]], text: str) -> None:
    """The first sentence sorts the runs by `converged_by_the_figures`; a start/drop relation holds pairwise."""
    rated = {name: f for name, f in models if f.start_loss is not None and f.end_loss is not None}
    if not rated:
        assert text == ""
        return
    assert not NON_FINITE_WORD.search(text), text
    first = text.split(". ")[0]
    denied = set(re.findall(r"(\w+) is not counted as converged", first))
    if re.match(r"(All \w+|Both) runs converged", first):
        said = set(rated)
    else:
        claimed = first.split(" converged")[0] if not first.startswith(tuple(f"{n} is not" for n in rated)) else ""
        said = {name for name in rated if re.search(rf"\b{name}\b", claimed)}
    assert said | denied == set(rated) and not said & denied, first
    for name in said:
        assert converged_by_the_figures(rated[name]), f"{name} said to converge: {first!r} but {rated[name]}"
    for name in denied:
        assert not converged_by_the_figures(rated[name]), f"{name} said not to converge: {first!r}"
    relation = re.search(r"the higher a run started, the (larger|smaller) its relative drop", text)
    if relation:
        ordered = sorted((f.start_loss, f.relative_drop) for f in rated.values() if f.relative_drop is not None)
        drops = [drop for _, drop in ordered]
        larger = relation.group(1) == "larger"
        assert all((a < b) if larger else (a > b) for a, b in itertools.pairwise(drops)), text


@st.composite
def model_lists(draw: st.DrawFn) -> list[tuple[str, TrainingRun]]:
    """One to four runs under distinct names (the registry makes names unique)."""
    chosen = draw(st.lists(st.sampled_from(MODEL_NAMES), min_size=1, max_size=4, unique=True))
    return [(name, draw(runs())) for name in chosen]


@settings(derandomize=True, deadline=None, max_examples=FEW, report_multiple_bugs=False)
@given(models=model_lists(), s=analysis_settings)
def test_comparison_and_conclusion_agree_with_the_figures(models: list[tuple[str, TrainingRun]], s: AnalysisSettings) -> None:
    """comparison() and conclusion() never raise, and 'converged' is said exactly of runs that did."""
    figures = [(name, analyse(run, s)) for name, run in models]
    compared = [Compared(name, f, "g") for name, f in figures]
    assert_comparison_is_true(figures, comparison(compared, s), s)
    text = conclusion(compared, s)
    assert_conclusion_is_true(figures, text)
    assert not re.search(r"\b1 models\b", text), text  # one model is not 'the 1 models'

"""The corpus site states what the corpus files say.

Every folder of `../shared/corpus/` is registered in one site. Each model's
figures in `summary.json` and on its page are compared with a reading of the raw
JSON written here from the spec alone: nothing from `generator.reader`,
`analysis`, `narrative` or `pages` is used, so a shared mistake cannot hide.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conftest import CORPUS
from generator.site import generate

pytestmark = [pytest.mark.corpus, pytest.mark.slow]  # the whole corpus generated (with plots)

Row = dict[str, Any]

STATE_FILE = "trainer_state.json"
JSONL_FILE = "trainer_log.jsonl"
# 097's genuine trainer state was committed as `__init__.py`, a name the reader
# rightly refuses; a copy named trainer_state.json is registered instead.
RENAMED_STATE = {"097_quality": "__init__.py"}
# Refused on purpose, with the independent reason each must have.
EXPECTED_REFUSALS = {
    "030_Math-Riddle-Factory": "empty log_history",
    "045_FinanceAdvice": "empty log_history",
    "084_LLM_Uipath": "empty log_history",
    "046_LogShort": "no log_history",
    "083_Jarvis": "no log_history",
    "096_nlp": "Git LFS pointer",
    "jsonl_02_SunXiaochuan-V1": "no metric",
}
EVAL_TIMING = ("runtime", "samples_per_second", "steps_per_second", "model_preparation_time", "num_tokens")
"""Speed keys and counters, not metrics, also per eval set (`eval_g0_runtime`)."""


def is_timing(column: str) -> bool:
    return any(column.endswith("_" + key) for key in EVAL_TIMING)
PREFERENCE_KEYS = {"rewards/margins", "rewards/chosen", "rewards/accuracies", "logps/chosen", "odds_ratio_loss"}
RL_KEYS = {"reward", "objective/rlhf_reward", "objective/scores"}
SUMMARY_FIGURES = ("Steps", "Start loss", "End loss", "Minimum loss")

FOLDERS = sorted(p.name for p in CORPUS.iterdir() if p.is_dir()) if CORPUS.is_dir() else ["no-corpus"]
"""Collected before any fixture runs; without the corpus one placeholder lets `corpus_dir` skip with its reason."""
READABLE = [name for name in FOLDERS if name not in EXPECTED_REFUSALS]


# --- the independent reading -------------------------------------------------------------


def is_number(value: object) -> bool:
    """JSON numbers only: bool is an int in Python but never a metric."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def whole_step(value: object) -> int | None:
    """A step is a finite whole number >= 0; anything else makes the row unusable."""
    if not isinstance(value, (int, float)) or not is_finite(value) or value < 0 or value != int(value):
        return None
    return int(value)


def non_finite_name(value: float) -> str:
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


@dataclass
class Reading:
    """What the raw file says, in the shape of a summary.json model."""

    state: dict[str, Any]
    train: list[Row] = field(default_factory=list)
    """Train rows after the resume rule, one per step, by step."""
    evals: list[Row] = field(default_factory=list)
    resumed: list[dict[str, int]] = field(default_factory=list)

    @property
    def last_logged_step(self) -> int | None:
        return max((row["step"] for row in self.train + self.evals), default=None)

    @property
    def steps(self) -> int | None:
        global_step = self.state.get("global_step")
        if isinstance(global_step, (int, float)) and is_finite(global_step):
            return int(global_step)
        return self.last_logged_step

    def losses(self) -> list[tuple[int, float]]:
        return [(row["step"], row["loss"]) for row in self.train if is_finite(row.get("loss"))]

    def loss_figures(self) -> dict[str, Any]:
        losses = self.losses()
        if not losses:
            return dict.fromkeys(("start_step", "start_loss", "end_step", "end_loss", "min_loss", "min_loss_step"))
        lowest = min(loss for _, loss in losses)
        return {
            "start_step": losses[0][0], "start_loss": losses[0][1],
            "end_step": losses[-1][0], "end_loss": losses[-1][1],
            "min_loss": lowest, "min_loss_step": next(step for step, loss in losses if loss == lowest),
        }

    def eval_series(self) -> dict[str, list[tuple[int, float]]]:
        """Each eval metric column with at least one finite value: (step, value) by step."""
        columns = sorted({key for row in self.evals for key in row if key.startswith("eval_") and not is_timing(key)})
        series = {c: [(row["step"], row[c]) for row in self.evals if is_finite(row.get(c))] for c in columns}
        return {column: values for column, values in series.items() if values}

    def best_checkpoint(self) -> dict[str, Any] | None:
        path, metric = self.state.get("best_model_checkpoint"), self.state.get("best_metric")
        path = path if isinstance(path, str) else None
        metric = metric if is_number(metric) else None
        if path is None and metric is None:
            return None
        step = self.state.get("best_global_step")
        if not (isinstance(step, int) and not isinstance(step, bool)):
            match = re.fullmatch(r"checkpoint-(\d+)", re.split(r"[/\\]", path)[-1]) if path else None
            step = int(match.group(1)) if match else None
        return {"step": step, "metric": metric, "path": path}

    def non_finite(self) -> list[dict[str, Any]]:
        """The first NaN or infinite value of each column, by step."""
        first: dict[str, tuple[int, str]] = {}
        for row in sorted(self.train + self.evals, key=lambda r: r["step"]):
            for column, value in row.items():
                if column != "step" and is_number(value) and not math.isfinite(value) and column not in first:
                    first[column] = (row["step"], non_finite_name(value))
        found = [{"column": c, "step": step, "value": value} for c, (step, value) in first.items()]
        return sorted(found, key=lambda item: (item["step"], item["column"]))

    def kind(self) -> str:
        train_keys = {key for row in self.train for key in row}
        all_keys = train_keys | {key for row in self.evals for key in row}
        if train_keys & RL_KEYS or any(re.fullmatch(r"rewards/.+/mean", key) for key in train_keys):
            return "rl"
        if all_keys & (PREFERENCE_KEYS | {f"eval_{key}" for key in PREFERENCE_KEYS}):
            return "preference"
        columns = {key for row in self.evals for key in row if key.startswith("eval_") and not is_timing(key)}
        # What every language-model fine-tune logs (TRL adds token accuracy and entropy) is not "evaluation".
        language_model = r"eval_(.+_)?(loss|mean_token_accuracy|entropy|num_tokens|perplexity|ppl)"
        if any(not re.fullmatch(language_model, column) for column in columns):
            return "evaluation"
        return "sft"


def apply_resumes(rows: list[tuple[str, Row]]) -> tuple[list[Row], list[Row], list[dict[str, int]]]:
    """A step lower than the highest so far restarts the run there: later rows replace the dropped ones.

    Except for interleaved writers: when steps back by no more than the usual step forward (the upper
    median of the positive differences between consecutive rows) happen on at least 3 rows and 5% of
    them, those rows are another writer's, merged by step, and only larger steps back are restarts.
    """
    steps = [row["step"] for _, row in rows]
    forward = sorted(b - a for a, b in itertools.pairwise(steps) if b > a)
    usual = forward[len(forward) // 2] if forward else 0
    small, running = 0, None
    for step in steps:
        if running is not None and running - usual <= step < running:
            small += 1
        running = step if running is None else max(running, step)
    limit = usual if small >= max(3, 0.05 * len(steps)) else 0
    kept: list[tuple[str, Row]] = []
    resumed: list[dict[str, int]] = []
    highest: int | None = None
    for table, row in rows:
        step = row["step"]
        if highest is not None and highest - limit <= step < highest:
            kept.append((table, row))
            continue
        if highest is not None and step < highest:
            resumed.append({"at_step": step, "after_step": highest})
            kept = [(t, r) for t, r in kept if r["step"] < step]
            highest = step
        kept.append((table, row))
        highest = step if highest is None else max(highest, step)

    def last_per_step(table: str) -> list[Row]:
        """Rows of one step merged (several eval sets log a row each), a later value winning."""
        by_step: dict[int, Row] = {}
        for t, row in kept:
            if t == table:
                by_step[row["step"]] = {**by_step.get(row["step"], {}), **row}
        return [by_step[step] for step in sorted(by_step)]

    return last_per_step("train"), last_per_step("eval"), resumed


def classify_state_rows(history: list[Any]) -> list[tuple[str, Row]]:
    """log_history rows as ("train" | "eval", row) in file order; summary, predict and bad rows left out."""
    rows: list[tuple[str, Row]] = []
    for raw in history:
        if not isinstance(raw, dict):
            continue
        row = dict(raw)
        if "lr" in row and "learning_rate" not in row:
            row["learning_rate"] = row.pop("lr")
        if is_number(row.get("train_runtime")) or ("train_loss" in row and "loss" not in row):
            continue
        if "step" not in row:
            continue
        step = whole_step(row["step"])
        if step is None:
            continue
        row["step"] = step
        if any(key.startswith("eval_") for key in row):
            rows.append(("eval", row))
        elif any(is_number(value) for key, value in row.items() if key not in ("step", "epoch")):
            rows.append(("train", row))  # a row with only an epoch logs no metric
    return rows


def classify_jsonl_rows(text: str) -> list[tuple[str, Row]]:
    """LLaMA-Factory lines as ("train" | "eval", row): current_steps is the step, lr the learning rate."""
    rows: list[tuple[str, Row]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        raw = json.loads(line)
        if not isinstance(raw, dict) or "current_steps" not in raw:
            continue
        step = whole_step(raw["current_steps"])
        if step is None:
            continue
        progress = ("current_steps", "total_steps", "percentage", "elapsed_time", "remaining_time")
        row = {key: value for key, value in raw.items() if key not in progress}
        if "lr" in row and "learning_rate" not in row:
            row["learning_rate"] = row.pop("lr")
        row["step"] = step
        if is_number(row.get("eval_loss")):
            rows.append(("eval", {key: value for key, value in row.items() if key != "loss"}))
        elif any(is_number(value) for key, value in row.items() if key not in ("step", "epoch")):
            rows.append(("train", row))
    return rows


def source_file(folder: Path) -> Path:
    """The file of a corpus folder that holds its log."""
    if folder.name in RENAMED_STATE:
        return folder / RENAMED_STATE[folder.name]
    state = folder / STATE_FILE
    return state if state.is_file() else folder / JSONL_FILE


def read_folder(folder: Path) -> Reading:
    """The independent reading of one corpus folder."""
    path = source_file(folder)
    text = path.read_text(encoding="utf-8-sig")
    if path.name == JSONL_FILE:
        rows, state = classify_jsonl_rows(text), {}
    else:
        state = json.loads(text)
        rows = classify_state_rows(state["log_history"])
    train, evals, resumed = apply_resumes(rows)
    return Reading(state=state, train=train, evals=evals, resumed=resumed)


def expected_model(reading: Reading) -> dict[str, Any]:
    """The summary.json fields this reading fixes exactly (eval direction aside)."""
    return {
        "steps": reading.steps,
        "last_logged_step": reading.last_logged_step,
        **reading.loss_figures(),
        "best_checkpoint": reading.best_checkpoint(),
        "resumed": reading.resumed,
        "non_finite": reading.non_finite(),
        "kind": reading.kind(),
    }


def refusal_reason(folder: Path) -> str:
    """Why a folder cannot be a report, by the same independent reading."""
    text = source_file(folder).read_text(encoding="utf-8-sig")
    if text.startswith("version https://git-lfs.github.com/spec/"):
        return "Git LFS pointer"
    if source_file(folder).name == JSONL_FILE:
        return "no metric" if not classify_jsonl_rows(text) else "readable"
    state = json.loads(text)
    if "log_history" not in state:
        return "no log_history"
    return "empty log_history" if state["log_history"] == [] else "readable"


# --- the site -------------------------------------------------------------------------------


def slug_for(folder: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", folder.lower()).strip("-")


@dataclass
class CorpusSite:
    """One generation of the whole corpus, shared by every test of this module."""

    root: Path
    summary: dict[str, Any]
    models: dict[str, dict[str, Any]]
    """summary.json models by name (the folder name)."""
    problems: dict[str, str]
    """Refusal messages by folder name."""

    def page(self, folder: str) -> str:
        return (self.root / "docs" / "models" / f"{slug_for(folder)}.md").read_text(encoding="utf-8")


CORPUS_SITE = pytest.StashKey[CorpusSite]()
"""The whole generated corpus site, kept for the session: test_findings_truth reads it when it was built."""


@pytest.fixture(scope="module")
def corpus_site(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> CorpusSite:
    """Register every corpus folder in one checkpoints.yaml and generate once (about a hundred entries)."""
    if CORPUS_SITE in request.config.stash:
        return request.config.stash[CORPUS_SITE]
    root = tmp_path_factory.mktemp("corpus_truth")
    lines = ["site:\n  title: Corpus truth\ncheckpoints:\n"]
    for name in FOLDERS:
        folder = CORPUS / name
        if name in RENAMED_STATE:
            folder = root / "renamed" / name
            folder.mkdir(parents=True)
            shutil.copyfile(CORPUS / name / RENAMED_STATE[name], folder / STATE_FILE)
        lines.append(f"  - name: {json.dumps(name)}\n    slug: {slug_for(name)}\n    path: {json.dumps(str(folder))}\n")
    registry = root / "checkpoints.yaml"
    registry.write_text("".join(lines), encoding="utf-8")
    generate(registry, root / "docs", jobs=os.cpu_count() or 1)
    summary = json.loads((root / "docs" / "summary.json").read_text(encoding="utf-8"))
    problems: dict[str, str] = {}
    for problem in summary["problems"]:
        match = re.fullmatch(r"checkpoints\[\d+\] \((.*)\)", problem["entry"])
        problems[match.group(1) if match else problem["entry"]] = problem["message"]
    built = CorpusSite(root, summary, {model["name"]: model for model in summary["models"]}, problems)
    request.config.stash[CORPUS_SITE] = built
    return built


@pytest.fixture
def site(corpus_dir: Path, request: pytest.FixtureRequest) -> CorpusSite:
    """The shared site, reached only after `corpus_dir` has skipped when the corpus is absent."""
    site: CorpusSite = request.getfixturevalue("corpus_site")
    return site


# --- the checks ------------------------------------------------------------------------------


@pytest.mark.parametrize("folder", FOLDERS)
def test_each_folder_is_a_model_or_refused_for_its_known_reason(site: CorpusSite, folder: str) -> None:
    """Only the files that hold no training log may be refused, and each refusal says why."""
    if folder in EXPECTED_REFUSALS:
        assert refusal_reason(CORPUS / folder) == EXPECTED_REFUSALS[folder], "the independent reading disagrees"
        assert folder not in site.models, f"{folder} holds no training log but became a model"
        assert site.problems.get(folder, "").strip(), f"{folder} is not listed under problems with a message"
    else:
        assert folder not in site.problems, f"{folder} was refused: {site.problems[folder]}"
        assert folder in site.models, f"{folder} is neither a model nor a problem in summary.json"


@pytest.mark.parametrize("folder", READABLE)
def test_summary_json_states_what_the_file_says(site: CorpusSite, folder: str) -> None:
    """Headline figures, resumes, non-finite values, best checkpoint and kind, exactly as read."""
    if folder not in site.models:
        pytest.fail(f"{folder} is not a model in summary.json (see the refusal test)")
    model = site.models[folder]
    reading = read_folder(CORPUS / folder)
    assert model["slug"] == slug_for(folder)
    wrong = []  # every field at once: one run tells the whole story of a file
    for key, value in expected_model(reading).items():
        stated = model.get(key, "<missing>")
        if key == "best_checkpoint" and isinstance(stated, dict):
            stated = {part: stated.get(part) for part in ("step", "metric", "path")}  # extra keys may be added
        if stated != value:
            wrong.append(f"{key}: summary.json says {model.get(key, '<missing>')!r}, the file says {value!r}")
    assert not wrong, "\n".join(wrong)
    assert isinstance(model["steps"], int) or model["steps"] is None


@pytest.mark.parametrize("folder", READABLE)
def test_eval_figures_state_what_the_file_says(site: CorpusSite, folder: str) -> None:
    """Last value of every eval metric, and a best value that agrees with the stated direction."""
    if folder not in site.models:
        pytest.fail(f"{folder} is not a model in summary.json (see the refusal test)")
    stated = site.models[folder]["eval"]
    series = read_folder(CORPUS / folder).eval_series()
    assert sorted(stated) == sorted(series), "eval columns differ"
    for column, values in series.items():
        figure = stated[column]
        assert (figure["last_step"], figure["last"]) == values[-1], f"{column}: last"
        direction = figure["direction"]
        assert direction in ("min", "max", None), f"{column}: direction {direction!r}"
        if direction is None:
            assert (figure["best"], figure["best_step"]) == (None, None), f"{column}: best without a direction"
            continue
        best = (min if direction == "min" else max)(value for _, value in values)
        first = next(step for step, value in values if value == best)
        assert (figure["best_step"], figure["best"]) == (first, best), f"{column}: best ({direction})"


def shown_number(text: str) -> tuple[float, float]:
    """A number as fmt_number shows it, and half a unit of its last digit."""
    text = text.replace(",", "")
    mantissa, _, exponent = text.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return float(text), 0.5 * 10.0 ** (int(exponent or 0) - decimals)


def summary_cells(page: str) -> dict[str, str]:
    """The Value cells of the page's `| Figure | Value |` table."""
    section = page.split("## Summary", 1)[1].split("\n## ", 1)[0]
    return {m.group(1): m.group(2) for m in re.finditer(r"^\| (.+?) \| (.*) \|$", section, re.MULTILINE)}


def loss_cell_problem(cell: str, value: float | None, step: int | None, label: str) -> str | None:
    """What is wrong with a 'number (step N)' cell, or None when it shows the value and step."""
    if value is None:
        return None if cell == "n/a" else f"{label}: the page shows {cell!r}, the file has no finite loss"
    match = re.fullmatch(r"(\S+) \(step ([\d,]+)\)", cell)
    if not match:
        return f"{label}: {cell!r} is not 'number (step N)'"
    shown, tolerance = shown_number(match.group(1))
    if abs(shown - value) > tolerance * (1 + 1e-9):
        return f"{label}: the page shows {shown}, the file says {value}"
    if int(match.group(2).replace(",", "")) != step:
        return f"{label}: the page shows step {match.group(2)}, the file says {step}"
    return None


def names_non_finite(text: str, item: dict[str, Any]) -> bool:
    """Some line names the column, the kind of value and the step (as a whole number, not inside another)."""
    spelling = {"NaN": "nan", "Infinity": "inf", "-Infinity": "-inf"}[item["value"]]
    steps = {str(item["step"]), f"{item['step']:,}"}
    return any(
        item["column"] in line and spelling in line.lower()
        and any(re.search(rf"(?<![\d,.]){re.escape(step)}(?![\d,])", line) for step in steps)
        for line in text.splitlines()
    )


@pytest.mark.parametrize("folder", READABLE)
def test_model_page_states_what_the_file_says(site: CorpusSite, folder: str) -> None:
    """The Summary table, the resume and every non-finite column, as a reader of the page sees them."""
    if folder not in site.models:
        pytest.fail(f"{folder} is not a model in summary.json (see the refusal test)")
    page = site.page(folder)
    reading = read_folder(CORPUS / folder)
    cells = summary_cells(page)
    missing = [label for label in SUMMARY_FIGURES if label not in cells]
    assert not missing, f"the Summary table has no row {missing}"
    wrong: list[str | None] = []
    steps = str(reading.steps) if reading.steps is not None else "n/a"
    if cells["Steps"].replace(",", "") != steps:
        wrong.append(f"Steps: the page shows {cells['Steps']!r}, the file says {steps}")
    figures = reading.loss_figures()
    wrong.append(loss_cell_problem(cells["Start loss"], figures["start_loss"], figures["start_step"], "Start loss"))
    wrong.append(loss_cell_problem(cells["End loss"], figures["end_loss"], figures["end_step"], "End loss"))
    wrong.append(loss_cell_problem(cells["Minimum loss"], figures["min_loss"], figures["min_loss_step"], "Minimum loss"))
    text = page.replace("\\", "")  # Markdown escapes such as grad\_norm
    if reading.resumed and "resumed" not in text.lower() and "goes back" not in text.lower():
        wrong.append(f"the page does not say the run was resumed ({len(reading.resumed)} times)")
    wrong += [
        f"no line names {item['column']} = {item['value']} at step {item['step']}"
        for item in reading.non_finite() if not names_non_finite(text, item)
    ]
    problems = [problem for problem in wrong if problem]
    assert not problems, "\n".join(problems)


def test_every_corpus_page_builds_strict(site: CorpusSite, tmp_path: Path) -> None:
    """`mkdocs build --strict` over every generated model page: no warning at all.

    The files refused on purpose are left out of this build's registry: under
    --strict an unreadable entry is an error by design (the refusal test covers them).
    """
    project = tmp_path / "strict"
    shutil.copytree(site.root / "docs", project / "docs")  # with its manifest: nothing is re-rendered
    registry = (site.root / "checkpoints.yaml").read_text(encoding="utf-8")
    entries = registry.split("\n  - ")
    kept = [entries[0]] + [e for e in entries[1:] if json.loads(e.split("\n")[0].removeprefix("name: "))
                           not in EXPECTED_REFUSALS]
    (project / "checkpoints.yaml").write_text("\n  - ".join(kept), encoding="utf-8")
    (project / "mkdocs.yml").write_text(
        "site_name: Corpus truth\ntheme: {name: material, font: false}\nplugins: [search, traindocs]\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(project / "mkdocs.yml"),
         "-d", str(project / "site")],
        capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, check=False,
    )
    warnings = [line for line in done.stderr.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert done.returncode == 0, "\n".join(warnings) or done.stderr
    assert "Traceback" not in done.stderr
    built = {path.parent.name for path in (project / "site" / "models").glob("*/index.html")}
    assert built == {slug_for(folder) for folder in READABLE}

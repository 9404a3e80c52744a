"""The corpus site's findings are the ones their written definitions give.

Every folder of `../shared/corpus/` is registered in one site, generated once for
this module. For each readable file, `independent_findings` re-derives the findings
from the raw JSON by the definitions on the methodology page (it reads the file
with `test_corpus_truth`'s independent reader; nothing of `generator.findings`,
`analysis`, `series`, `narrative` or `pages` is imported), then:

- each re-derived code is in summary.json exactly when the definition says so,
  with the same severity, subject, numbers (1e-9 relative) and steps;
- every number of every finding's sentence on the model page is one of that
  finding's numbers, or one derived from them, after the page's rounding;
- `fall_rate` and `convergence` follow the smoothing weight and thresholds the
  methodology page prints;
- `fall_end_step` (Kneedle knee of the loss level) and `stabilised_step` in
  summary.json, and the level figures of figures.json, follow the methodology's
  *Loss level*, *Fast fall ended* and *Loss stabilised from* rows;
- every number of every bullet of the page's "## Analysis" section is one of the
  model's computed figures (its figures.json download and summary.json entry), a
  definition constant the methodology page prints, or a simple derivation of them
  (`independent_findings.Tracer` says which), after the page's rounding.

`-s` prints the findings of every corpus file; the same table is written to
tests/artifacts/findings_by_file.md.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path
from typing import Any

import independent_findings as ind
import pytest
import test_corpus_truth as truth

from conftest import CORPUS

pytestmark = [pytest.mark.corpus, pytest.mark.slow]  # the whole corpus generated

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

class KnownDisagreement(AssertionError):
    """traindocs against its own written definition, in a case listed in KNOWN_DISAGREEMENTS."""


KNOWN_DISAGREEMENTS: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}
"""(test, folder) -> (what traindocs does against its own written definition, the problems that show it).

Such a case is a strict xfail that only a KnownDisagreement satisfies: any other problem of that
folder fails as usual, and the case passing (traindocs fixed) fails until its entry is removed."""


def cases(test: str) -> list[Any]:
    """The readable corpus folders, a known disagreement marked as a strict xfail with its evidence."""
    return [pytest.param(folder, marks=pytest.mark.xfail(strict=True, raises=KnownDisagreement,
                                                         reason=KNOWN_DISAGREEMENTS[(test, folder)][0]))
            if (test, folder) in KNOWN_DISAGREEMENTS else folder for folder in truth.READABLE]


def report(test: str, folder: str, problems: list[str]) -> None:
    """Fail on the problems; those listed as known for this case raise KnownDisagreement (its xfail)."""
    known = KNOWN_DISAGREEMENTS.get((test, folder), ("", ()))[1]
    unknown = [problem for problem in problems if not problem.startswith(known)] if known else problems
    assert not unknown, "\n".join(unknown)
    if problems:
        raise KnownDisagreement("\n".join(problems))


# --- the site, built once ---------------------------------------------------------------------------


def build_pages(registry_file: Path, docs: Path) -> None:
    """Generate the site's pages and summary.json, without its plots and CSV downloads.

    The plots are 90% of a corpus build (2.5 min against 13 s) and no finding is read from
    them; every other file is rendered by traindocs' own plan, as `generate` would. When
    that plan's shape has changed, the whole `generate` runs instead.
    """
    from generator import site
    from generator.records import SiteLayout
    from generator.registry import load_registry

    try:
        registry = load_registry(registry_file, display=registry_file.name)
        pool = site.WorkerPool(os.cpu_count() or 1)
        try:
            reports, problems = site.build_reports(registry, registry_file.parent, pool, None, None, None)
            artefacts = site.plan_artefacts(registry, reports, problems, SiteLayout())
        finally:
            pool.close()
        cheap = [artefact for artefact in artefacts if not artefact.expensive]
    except (AttributeError, TypeError):
        site.generate(registry_file, docs, jobs=os.cpu_count() or 1)
        return
    for artefact in cheap:
        target = docs / artefact.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(artefact.render())


@pytest.fixture(scope="module")
def corpus_site(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> truth.CorpusSite:
    """The corpus site test_corpus_truth built in this session, else its pages built here (no plots)."""
    if truth.CORPUS_SITE in request.config.stash:
        return request.config.stash[truth.CORPUS_SITE]
    root = tmp_path_factory.mktemp("findings_truth")
    lines = ["site:\n  title: Findings truth\ncheckpoints:\n"]
    for name in truth.FOLDERS:
        folder = CORPUS / name
        if name in truth.RENAMED_STATE:
            folder = root / "renamed" / name
            folder.mkdir(parents=True)
            shutil.copyfile(CORPUS / name / truth.RENAMED_STATE[name], folder / truth.STATE_FILE)
        lines.append(f"  - name: {json.dumps(name)}\n    slug: {truth.slug_for(name)}\n"
                     f"    path: {json.dumps(str(folder))}\n")
    registry = root / "checkpoints.yaml"
    registry.write_text("".join(lines), encoding="utf-8")
    build_pages(registry, root / "docs")
    summary = json.loads((root / "docs" / "summary.json").read_text(encoding="utf-8"))
    return truth.CorpusSite(root, summary, {model["name"]: model for model in summary["models"]}, {})


@pytest.fixture
def site(corpus_dir: Path, request: pytest.FixtureRequest) -> truth.CorpusSite:
    """The shared site, reached only after `corpus_dir` has skipped when the corpus is absent."""
    built: truth.CorpusSite = request.getfixturevalue("corpus_site")
    return built


def model_of(site: truth.CorpusSite, folder: str) -> dict[str, Any]:
    if folder not in site.models:
        pytest.fail(f"{folder} is not a model in summary.json (test_corpus_truth says why)")
    return site.models[folder]


# --- comparing findings -------------------------------------------------------------------------------


def same_number(stated: object, expected: float) -> bool:
    if not isinstance(stated, (int, float)) or isinstance(stated, bool):
        return False
    return math.isclose(float(stated), float(expected), rel_tol=1e-9, abs_tol=1e-12)


def finding_problems(expected: ind.Expected, stated: dict[str, Any]) -> list[str]:
    where = f"{expected.code}({expected.subject})" if expected.subject else expected.code
    problems = []
    if stated["severity"] != expected.severity:
        problems.append(f"{where}: severity {stated['severity']!r}, the definition gives {expected.severity!r}")
    values = stated.get("values", {})
    missing = sorted(set(expected.values) - set(values))  # keys beyond the definition's may be added
    if missing:
        problems.append(f"{where}: values lack {missing} (it has {sorted(values)})")
    for key, value in expected.values.items():
        if key in values and not same_number(values[key], value):
            problems.append(f"{where}: {key} = {values[key]!r}, the definition gives {value!r}")
    if list(stated.get("steps", [])) != expected.steps:
        problems.append(f"{where}: steps {stated.get('steps')}, the definition gives {expected.steps}")
    return problems


@pytest.mark.parametrize("folder", cases("findings"))
def test_findings_follow_their_definitions(site: truth.CorpusSite, folder: str) -> None:
    """Each re-derived code is listed exactly when its definition holds, with the same numbers and steps."""
    model = model_of(site, folder)
    expected = ind.expected_findings(ind.read_run(CORPUS / folder))
    stated = [f for f in model["findings"] if f["code"] in ind.CHECKED_CODES]
    key = lambda code, subject: f"{code}({subject})" if subject else code  # noqa: E731
    want = {key(e.code, e.subject): e for e in expected}
    got = {key(f["code"], f.get("subject", "")): f for f in stated}
    problems = [f"{name}: in summary.json, but the definition does not hold" for name in sorted(set(got) - set(want))]
    problems += [f"{name}: the definition holds ({want[name].values}), summary.json does not list it"
                 for name in sorted(set(want) - set(got))]
    for name in sorted(set(want) & set(got)):
        problems += finding_problems(want[name], got[name])
    report("findings", folder, problems)


# --- the sentences ------------------------------------------------------------------------------------

SENTENCE_CONSTANTS = (2.0, 10.0, 50.0, 9.0)
"""Numbers a sentence states from the definition itself: spike factor and window, the explosion
factor, '9 in 10 windows'."""


def finding_bullets(page: str) -> list[tuple[str, str]]:
    """(label, sentence) of the page's '## Findings' bullets, in order."""
    if "## Findings" not in page:
        return []
    section = page.split("## Findings", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^- \*\*(Warning|Note):\*\* (.*)$", section, re.MULTILINE)


def untraceable_numbers(finding: dict[str, Any], sentence: str) -> list[str]:
    numbers = [float(v) for v in finding.get("values", {}).values() if isinstance(v, (int, float))]
    numbers += [float(step) for step in finding.get("steps", [])]
    candidates = ind.derived(numbers)
    if finding["code"] in ("skipped_steps", "loss_spikes", "epoch_step_down"):
        # '... steps 1, 2, 6 and 14 more': the count beyond the five steps shown
        candidates += [n - k for n in numbers for k in range(1, 6)]
    return [shown for shown in ind.shown_numbers(sentence, finding.get("subject", ""))
            if not ind.traceable(shown, candidates, SENTENCE_CONSTANTS)]


@pytest.mark.parametrize("folder", cases("sentences"))
def test_finding_sentences_quote_the_findings_numbers(site: truth.CorpusSite, folder: str) -> None:
    """One bullet per finding, in summary.json's order, its label the severity, each number traceable."""
    model = model_of(site, folder)
    bullets = finding_bullets(site.page(folder))
    findings = model["findings"]
    assert len(bullets) == len(findings), (
        f"{len(bullets)} finding bullets on the page, {len(findings)} findings in summary.json")
    problems = []
    for (label, sentence), finding in zip(bullets, findings, strict=True):
        if label.lower() != finding["severity"]:
            problems.append(f"{finding['code']}: labelled {label}, severity {finding['severity']}")
        wrong = untraceable_numbers(finding, sentence)
        if wrong:
            problems.append(f"{finding['code']}: {wrong} not among its values {finding['values']} / steps "
                            f"{finding['steps']}: {sentence}")
    report("sentences", folder, problems)


# --- fall rate and convergence ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def thresholds(corpus_site: truth.CorpusSite) -> ind.SpeedThresholds:
    text = (corpus_site.root / "docs" / "methodology.md").read_text(encoding="utf-8")
    return ind.thresholds_from_methodology(text)


@pytest.mark.parametrize("folder", cases("convergence"))
def test_fall_rate_and_convergence_follow_the_methodology(site: truth.CorpusSite, folder: str,
                                                          thresholds: ind.SpeedThresholds) -> None:
    model = model_of(site, folder)
    run = ind.read_run(CORPUS / folder)
    rate = ind.fall_rate(run, thresholds.weight)
    losses = run.series("loss")
    start = losses[0][1] if losses else None
    problems = []
    if rate is None:
        if model["fall_rate"] is not None:
            problems.append(f"fall_rate: summary.json says {model['fall_rate']!r}, the definition gives none")
    elif not same_number(model["fall_rate"], rate):
        problems.append(f"fall_rate: summary.json says {model['fall_rate']!r}, the definition gives {rate!r}")
    want = ind.convergence(rate, start, thresholds)
    if model["convergence"] != want:
        problems.append(f"convergence: summary.json says {model['convergence']!r}, the definition gives {want!r} "
                        f"(rate {rate!r}, start loss {start!r})")
    report("convergence", folder, problems)


# --- the loss level: fast fall ended, stabilised ------------------------------------------------------


@pytest.fixture(scope="module")
def methodology(corpus_site: truth.CorpusSite) -> str:
    return (corpus_site.root / "docs" / "methodology.md").read_text(encoding="utf-8")


def figures_of(site: truth.CorpusSite, folder: str) -> dict[str, Any]:
    """The "figures" of the model's figures.json download."""
    path = site.root / "docs" / "models" / truth.slug_for(folder) / "figures.json"
    figures: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))["figures"]
    return figures


def same_or_none(stated: object, expected: float | None) -> bool:
    return stated is None if expected is None else same_number(stated, expected)


@pytest.mark.parametrize("folder", cases("shape"))
def test_fall_end_and_stabilised_follow_the_methodology(site: truth.CorpusSite, folder: str,
                                                        methodology: str) -> None:
    """summary.json's fall_end_step and stabilised_step, figures.json's levels there, by the written rules."""
    model, figures = model_of(site, folder), figures_of(site, folder)
    thresholds = ind.shape_from_methodology(methodology)
    run = ind.read_run(CORPUS / folder)
    knee, settled = ind.fall_end(run, thresholds), ind.stabilised(run, thresholds)
    problems = []
    for key, want in (("fall_end_step", knee), ("stabilised_step", settled)):
        if model[key] != want:
            problems.append(f"{key}: summary.json says {model[key]!r}, the definition gives {want!r}")
        if figures.get(key) != model[key]:
            problems.append(f"{key}: figures.json says {figures.get(key)!r}, summary.json {model[key]!r}")
    loss = run.series("loss")
    if run.kind != "rl" and len(loss) >= thresholds.stable_min_rows:
        level = ind.loss_level([value for _, value in loss], ind.level_window(len(loss), thresholds))
        at_knee = level[[step for step, _ in loss].index(knee)] if knee is not None else None
        share = (level[0] - at_knee) / (level[0] - level[-1]) if at_knee is not None else None
        for key, value in (("end_level", level[-1]), ("fall_end_level", at_knee),
                           ("drop_share_at_fall_end", share)):
            if not same_or_none(figures.get(key), value):
                problems.append(f"{key}: figures.json says {figures.get(key)!r}, the definition gives {value!r}")
    report("shape", folder, problems)


# --- the Analysis section's numbers ---------------------------------------------------------------------


@pytest.mark.parametrize("folder", cases("analysis"))
def test_analysis_numbers_trace_to_the_figures(site: truth.CorpusSite, folder: str, methodology: str) -> None:
    """Each number of each Analysis bullet is a computed figure, a definition constant or a simple derivation."""
    model = model_of(site, folder)
    constants, trend_share, trend_min = ind.analysis_constants(methodology)
    tracer = ind.tracer(figures_of(site, folder), model, constants, trend_share, trend_min)
    bullets = ind.analysis_bullets(site.page(folder))
    assert bullets, "the page has no Analysis bullets"
    problems = []
    for sentence in bullets:
        wrong = [shown for shown in ind.sentence_numbers(sentence) if not tracer.traced(shown)]
        if wrong:
            problems.append(f"{wrong} trace to no figure: {sentence}")
    report("analysis", folder, problems)


def test_the_tracer_refuses_a_number_no_figure_gives() -> None:
    """The tracer is not vacuous: a span, a share of the steps and a relative change pass, near misses do not."""
    figures = {"steps": 314, "start_step": 10, "end_step": 310, "fall_end_step": 45, "start_loss": 2.864,
               "end_loss": 0.3381, "fall_end_level": 0.4055, "end_level": 0.3381, "relative_drop": 0.882}
    tracer = ind.tracer(figures, {}, (2.0,), 0.1, 3)
    sentence = "eval_g0_loss, rouge-1 and bleu-4 at step 45 (14% of the 314 steps), another 17%, -3.87e-06."
    assert ind.sentence_numbers(sentence) == ["45", "14%", "314", "17%", "-3.87e-06"]
    assert all(tracer.traced(shown) for shown in ("45", "14%", "300", "17%", "88%", "2.864", "2.0", "0.34"))
    assert not any(tracer.traced(shown) for shown in ("15%", "301", "0.3391", "-2.864", "2.1", "25%"))


# --- the table for the report ---------------------------------------------------------------------------


def test_findings_by_file_table(site: truth.CorpusSite) -> None:
    """Every corpus file with its kind, convergence and finding codes; printed and written as Markdown."""
    lines = ["| File | Kind | Convergence | Findings (summary.json) |", "| :--- | :--- | :--- | :--- |"]
    for folder in truth.FOLDERS:
        model = site.models.get(folder)
        if model is None:
            lines.append(f"| {folder} | refused | | {truth.EXPECTED_REFUSALS.get(folder, '?')} |")
            continue
        codes = ", ".join(f"{f['code']}({f['subject']})" if f.get("subject") else f["code"]
                          for f in model["findings"]) or "none"
        lines.append(f"| {folder} | {model['kind']} | {model['convergence']} | {codes} |")
    table = "\n".join(lines) + "\n"
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "findings_by_file.md").write_text("# Findings by corpus file\n\n" + table, encoding="utf-8")
    print("\n" + table)
    assert len(lines) == len(truth.FOLDERS) + 2

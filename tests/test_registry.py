"""Tests for `generator.registry`: reading and validating checkpoints.yaml."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from generator.errors import ConfigError
from generator.records import AnalysisSettings, Registry, SiteSettings
from generator.registry import REMOTE_PLACEHOLDER, load_registry, slugify

SHOWN = "checkpoints.yaml"

# A valid entry placed before every bad one, to show the bad one does not take it down.
GOOD_ENTRY = """\
  - name: Good Model
    path: runs/good
"""


def write_registry(folder: Path, text: str) -> Path:
    """Write `text` (dedented) as folder/checkpoints.yaml; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "checkpoints.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str) -> Registry:
    """Load `text` as a registry, naming the file 'checkpoints.yaml' in messages."""
    return load_registry(write_registry(tmp_path, text), display=SHOWN)


# --- a valid file ----------------------------------------------------------------------


def test_valid_registry_is_read_with_slugs_tags_and_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    registry_file = write_registry(
        project,
        """\
        site:
          title: My runs
          intro: Two adapters.
        analysis:
          smoothing: 0.3
          loss_levels: [0.5, 1.0, 0.5]
        checkpoints:
          - name: Qwen 7B (Phase 1)
            path: runs/qwen
            phase: Phase 1 SFT
            base_model: Qwen/Qwen2.5-7B
            description: LoRA SFT.
            tags: [lora, sft]
          - name: Phi
            slug: phi-three
            path: ../elsewhere/phi/checkpoint-10
        """,
    )
    # Relative paths must resolve against the registry's folder, never the cwd.
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    registry = load_registry(registry_file)

    assert registry.problems == ()
    assert registry.file == registry_file
    assert registry.site == SiteSettings(title="My runs", intro="Two adapters.")
    assert registry.analysis.smoothing == 0.3
    # Levels are de-duplicated and sorted from high to low.
    assert registry.analysis.loss_levels == (1.0, 0.5)
    # Settings not given keep their defaults.
    assert registry.analysis.fast == AnalysisSettings().fast

    qwen, phi = registry.entries
    assert (qwen.index, qwen.name, qwen.slug) == (0, "Qwen 7B (Phase 1)", "qwen-7b-phase-1")
    assert qwen.slug == slugify(qwen.name)
    assert qwen.path == "runs/qwen"
    assert qwen.resolved == (project / "runs" / "qwen").resolve()
    assert (qwen.phase, qwen.base_model, qwen.description) == ("Phase 1 SFT", "Qwen/Qwen2.5-7B", "LoRA SFT.")
    assert qwen.tags == ("lora", "sft")
    assert qwen.label == "checkpoints[0] (Qwen 7B (Phase 1))"

    # An explicit slug wins over the name; '..' is resolved away.
    assert phi.slug == "phi-three"
    assert phi.resolved == (tmp_path / "elsewhere" / "phi" / "checkpoint-10").resolve()
    assert (phi.phase, phi.base_model, phi.description, phi.tags) == ("", "", "", ())


def test_relative_registry_path_resolves_against_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The registry itself given relative to the cwd (as the CLI does with --config).
    write_registry(tmp_path / "project", "checkpoints:\n  - {name: a, path: runs/a}\n")
    monkeypatch.chdir(tmp_path)

    registry = load_registry(Path("project/checkpoints.yaml"))

    assert registry.entries[0].resolved == (tmp_path / "project" / "runs" / "a").resolve()


def test_absolute_entry_path_is_kept(tmp_path: Path) -> None:
    target = (tmp_path / "somewhere" / "run").resolve()
    registry = load_text(tmp_path / "project", f"checkpoints:\n  - name: a\n    path: '{target}'\n")

    assert registry.entries[0].resolved == target


def test_remote_paths_are_kept_as_urls_and_not_resolved_locally(tmp_path: Path) -> None:
    registry = load_text(
        tmp_path,
        """\
        checkpoints:
          - {name: S3 run, path: 's3://bucket/runs/qwen'}
          - {name: Hub run, path: 'hf://someone/repo@v1/checkpoint-500'}
          - {name: Signed, path: 'https://host/b/trainer_state.json?X-Amz-Signature=abc'}
          - {name: Memory, path: 'memory://runs/a'}
        """,
    )

    assert registry.problems == ()
    assert [e.path for e in registry.entries] == [
        "s3://bucket/runs/qwen",
        "hf://someone/repo@v1/checkpoint-500",
        "https://host/b/trainer_state.json?X-Amz-Signature=abc",
        "memory://runs/a",
    ]
    # A path that does not exist: generator.remote.localise replaces it before reading.
    assert [e.resolved for e in registry.entries] == [
        tmp_path / REMOTE_PLACEHOLDER / slug for slug in ("s3-run", "hub-run", "signed", "memory")
    ]
    assert not any(e.resolved.exists() for e in registry.entries)


def test_file_urls_are_local_paths(tmp_path: Path) -> None:
    target = (tmp_path / "somewhere" / "run").resolve()
    registry = load_text(
        tmp_path / "project",
        f"checkpoints:\n  - {{name: a, path: 'file://{target}'}}\n  - {{name: b, path: 'file://localhost{target}'}}\n",
    )

    assert [e.resolved for e in registry.entries] == [target, target]


def test_defaults_when_site_and_analysis_are_absent(tmp_path: Path) -> None:
    registry = load_text(tmp_path, "checkpoints: []\n")

    assert registry.site == SiteSettings()
    assert registry.analysis == AnalysisSettings()
    assert registry.entries == ()
    assert registry.problems == ()


def test_numbers_are_accepted_as_text(tmp_path: Path) -> None:
    # YAML reads `name: 2024` and `tags: [1]` as numbers; users mean text.
    registry = load_text(tmp_path, "checkpoints:\n  - {name: 2024, path: runs/a, tags: [1, v2]}\n")

    entry = registry.entries[0]
    assert (entry.name, entry.slug, entry.tags) == ("2024", "2024", ("1", "v2"))


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Qwen 7B", "qwen-7b"),
        ("  Gemma-2  2B!! ", "gemma-2-2b"),
        ("Phi_3.mini", "phi-3-mini"),
        ("Ünïcode Model", "unicode-model"),
    ],
)
def test_slugify(name: str, slug: str) -> None:
    assert slugify(name) == slug


def test_slugify_caps_length_without_trailing_hyphen() -> None:
    slug = slugify("a" * 79 + " b")

    assert len(slug) <= 80
    assert not slug.endswith("-")


# --- errors that stop the build --------------------------------------------------------

CONFIG_ERRORS = [
    pytest.param(
        "checkpoints:\n  - name: a\n   path: b\n",
        "checkpoints.yaml:3:4: YAML syntax error: expected <block end>, but found '<block mapping start>'",
        id="yaml-syntax-line-column",
    ),
    pytest.param(
        "checkpoints:\n  - name: a\n    path: [runs/a\n",
        "checkpoints.yaml:4:1: YAML syntax error: expected ',' or ']'",
        id="yaml-unclosed-list",
    ),
    pytest.param("", "checkpoints.yaml: the file is empty; expected a mapping with a 'checkpoints' list", id="empty"),
    pytest.param("# only a comment\n", "checkpoints.yaml: the file is empty", id="only-comments"),
    pytest.param(
        "- name: a\n  path: b\n",
        "checkpoints.yaml: expected a mapping with a 'checkpoints' list at the top, got a list",
        id="top-level-list",
    ),
    pytest.param(
        "just text\n",
        "checkpoints.yaml: expected a mapping with a 'checkpoints' list at the top, got a string",
        id="top-level-string",
    ),
    pytest.param(
        "checkpoint:\n  - {name: a, path: b}\n",
        "checkpoints.yaml: unknown key 'checkpoint' (did you mean 'checkpoints'?)",
        id="unknown-top-level-key",
    ),
    pytest.param(
        "site: {}\n",
        "checkpoints.yaml: checkpoints: missing; expected a list of entries with 'name' and 'path'",
        id="checkpoints-missing",
    ),
    pytest.param(
        "checkpoints: {name: a, path: b}\n",
        "checkpoints.yaml: checkpoints: expected a list, got a mapping",
        id="checkpoints-not-a-list",
    ),
    pytest.param(
        "site: {titel: x}\ncheckpoints: []\n",
        "checkpoints.yaml: site: unknown key 'titel' (did you mean 'title'?)",
        id="site-unknown-key",
    ),
    pytest.param(
        "site: {title: [a]}\ncheckpoints: []\n",
        "checkpoints.yaml: site.title: expected a string, got a list",
        id="site-title-not-text",
    ),
    pytest.param(
        "analysis: {smoothing: 1.5}\ncheckpoints: []\n",
        "checkpoints.yaml: analysis.smoothing: 1.5 is out of range [0, 1)",
        id="analysis-out-of-range",
    ),
    pytest.param(
        "analysis: {smoothing: 1}\ncheckpoints: []\n",
        "checkpoints.yaml: analysis.smoothing: 1 is out of range [0, 1)",
        id="analysis-open-upper-bound",
    ),
    pytest.param(
        "analysis: {much_higher_factor: 0.5}\ncheckpoints: []\n",
        "checkpoints.yaml: analysis.much_higher_factor: 0.5 is out of range (1, inf)",
        id="analysis-factor-below-one",
    ),
    pytest.param(
        "analysis: {smothing: 0.5}\ncheckpoints: []\n",
        "checkpoints.yaml: analysis: unknown key 'smothing' (did you mean 'smoothing'?)",
        id="analysis-unknown-key",
    ),
    pytest.param(
        "analysis: {smoothing: high}\ncheckpoints: []\n",
        "checkpoints.yaml: analysis.smoothing: expected a number, got a string",
        id="analysis-not-a-number",
    ),
    pytest.param(
        "analysis: {smoothing: true}\ncheckpoints: []\n",
        "checkpoints.yaml: analysis.smoothing: expected a number, got a boolean",
        id="analysis-boolean",
    ),
    pytest.param(
        "analysis: {very_fast: 0.05}\ncheckpoints: []\n",
        "checkpoints.yaml: analysis: expected very_fast >= fast >= steady (loss falls per 100 steps), got 0.05, 0.1, 0.01",
        id="very-fast-above-fast",
    ),
    pytest.param(
        "analysis: {low_start_loss: 3.0}\ncheckpoints: []\n",
        "checkpoints.yaml: analysis: low_start_loss must not exceed high_start_loss",
        id="low-above-high-start-loss",
    ),
    pytest.param(
        "analysis: {loss_levels: [0.7, low]}\ncheckpoints: []\n",
        "checkpoints.yaml: analysis.loss_levels: expected a list of numbers, e.g. [1.0, 0.7]",
        id="loss-levels-not-numbers",
    ),
    pytest.param(
        "analysis: {loss_levels: []}\ncheckpoints: []\n",
        "checkpoints.yaml: analysis.loss_levels: expected a list of numbers",
        id="loss-levels-empty",
    ),
    pytest.param(
        "analysis: []\ncheckpoints: []\n",
        "checkpoints.yaml: analysis: expected a mapping, got a list",
        id="analysis-not-a-mapping",
    ),
]


@pytest.mark.parametrize(("text", "message"), CONFIG_ERRORS)
def test_config_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_text(tmp_path, text)


def test_config_errors_are_all_listed(tmp_path: Path) -> None:
    # Three separate mistakes: the user should see all three at once, one per line.
    text = "checkpoint: []\nsite: {titel: x}\nanalysis: {smoothing: 2}\n"

    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, text)

    lines = str(caught.value).splitlines()
    assert "checkpoints.yaml: unknown key 'checkpoint' (did you mean 'checkpoints'?)" in lines
    assert "checkpoints.yaml: site: unknown key 'titel' (did you mean 'title'?)" in lines
    assert "checkpoints.yaml: analysis.smoothing: 2 is out of range [0, 1)" in lines


def test_unknown_key_without_close_match_lists_allowed_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("unknown key 'zzz' (allowed: site, analysis, checkpoints)")):
        load_text(tmp_path, "zzz: 1\ncheckpoints: []\n")


def test_missing_registry_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("checkpoints.yaml: file not found")):
        load_registry(tmp_path / "checkpoints.yaml", display=SHOWN)


def test_registry_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints.yaml"
    path.write_bytes(b"checkpoints:\n  - name: caf\xe9\n    path: a\n")

    with pytest.raises(ConfigError, match=re.escape("checkpoints.yaml: cannot read:")):
        load_registry(path, display=SHOWN)


# --- bad entries: reported, the good ones kept ------------------------------------------

ENTRY_PROBLEMS = [
    pytest.param(
        "  - {name: b, path: runs/b, pahse: Phase 1}\n",
        "checkpoints[1] (b)",
        "unknown key 'pahse' (did you mean 'phase'?)",
        id="unknown-entry-key",
    ),
    pytest.param(
        "  - {path: runs/b}\n",
        "checkpoints[1]",
        "name: missing; every entry needs 'name' and 'path'",
        id="missing-name",
    ),
    pytest.param(
        "  - {name: '', path: runs/b}\n",
        "checkpoints[1]",
        "name: missing; every entry needs 'name' and 'path'",
        id="empty-name",
    ),
    pytest.param(
        # A name of blanks is as missing as an empty one: it would give an empty slug.
        "  - {name: '   ', path: runs/b}\n",
        "checkpoints[1]",
        "name: missing; every entry needs 'name' and 'path'",
        id="blank-name",
    ),
    pytest.param(
        "  - {name: b}\n",
        "checkpoints[1] (b)",
        "path: missing; every entry needs 'name' and 'path'",
        id="missing-path",
    ),
    pytest.param(
        # A path of blanks would resolve to the registry's own folder.
        "  - {name: b, path: '   '}\n",
        "checkpoints[1] (b)",
        "path: missing; every entry needs 'name' and 'path'",
        id="blank-path",
    ),
    pytest.param(
        "  - {name: [a], path: runs/b}\n",
        "checkpoints[1]",
        "name: expected a string, got a list",
        id="name-wrong-type",
    ),
    pytest.param(
        "  - {name: b, path: {x: 1}}\n",
        "checkpoints[1] (b)",
        "path: expected a string, got a mapping",
        id="path-wrong-type",
    ),
    pytest.param(
        "  - {name: b, path: runs/b, tags: lora}\n",
        "checkpoints[1] (b)",
        "tags: expected a list of strings, e.g. [lora, sft]",
        id="tags-not-a-list",
    ),
    pytest.param(
        "  - {name: b, path: runs/b, tags: [lora, [x]]}\n",
        "checkpoints[1] (b)",
        "tags: expected a list of strings, e.g. [lora, sft]",
        id="tags-nested-list",
    ),
    pytest.param(
        "  - {name: b, path: runs/b, slug: Bad Slug}\n",
        "checkpoints[1] (b)",
        "slug: 'Bad Slug' is not a valid slug; use lowercase letters, digits and hyphens (e.g. 'bad-slug')",
        id="invalid-slug",
    ),
    pytest.param(
        "  - {name: b, path: runs/b, slug: -b}\n",
        "checkpoints[1] (b)",
        "slug: '-b' is not a valid slug; use lowercase letters, digits and hyphens (e.g. 'b')",
        id="slug-leading-hyphen",
    ),
    pytest.param(
        "  - {name: '!!!', path: runs/b}\n",
        "checkpoints[1] (!!!)",
        "slug: the name has no letters or digits to make a slug from; add a 'slug'",
        id="name-without-slug-material",
    ),
    pytest.param(
        "  - {name: Good Model, path: runs/other}\n",
        "checkpoints[1] (Good Model)",
        "name: 'Good Model' is already used by checkpoints[0]",
        id="duplicate-name",
    ),
    pytest.param(
        "  - {name: good-model, path: runs/other}\n",
        "checkpoints[1] (good-model)",
        "slug: 'good-model' is already used by checkpoints[0]; give one of them a distinct 'slug'",
        id="duplicate-slug-after-normalisation",
    ),
    pytest.param(
        "  - {name: b, slug: good-model, path: runs/other}\n",
        "checkpoints[1] (b)",
        "slug: 'good-model' is already used by checkpoints[0]; give one of them a distinct 'slug'",
        id="explicit-slug-clashes",
    ),
    pytest.param(
        "  - just a string\n",
        "checkpoints[1]",
        "expected a mapping with 'name' and 'path', got a string",
        id="entry-not-a-mapping",
    ),
    pytest.param(
        # Credentials in the registry would end up in pages and logs: refused, and not echoed.
        "  - {name: b, path: 'https://alice:hunter22@host/run/trainer_state.json'}\n",
        "checkpoints[1] (b)",
        "path: 'https://<redacted>@host/run/trainer_state.json' holds credentials (user:password@); remove them and "
        "give them the backend's usual way (environment variables, its config file, or 'huggingface-cli login')",
        id="url-with-password",
    ),
    pytest.param(
        "  - {name: b, path: 's3://AKIAEXAMPLE:wJalrXUtnFEMI@bucket/run'}\n",
        "checkpoints[1] (b)",
        "path: 's3://<redacted>@bucket/run' holds credentials (user:password@); remove them and "
        "give them the backend's usual way (environment variables, its config file, or 'huggingface-cli login')",
        id="s3-url-with-keys",
    ),
    pytest.param(
        "  - {name: b, path: 's4://bucket/run'}\n",
        "checkpoints[1] (b)",
        "path: 's4://' is not a protocol fsspec knows (did you mean 's3'?)",
        id="unknown-protocol",
    ),
    pytest.param(
        "  - {name: b, path: 's3://'}\n",
        "checkpoints[1] (b)",
        "path: 's3://' names nothing after 's3://'",
        id="url-without-location",
    ),
    pytest.param(
        "  - {name: b, path: 'file://server/share/run'}\n",
        "checkpoints[1] (b)",
        "path: 'file://server/share/run' names the host 'server'; file:// URLs must be local",
        id="file-url-with-host",
    ),
]


@pytest.mark.parametrize(("bad_entry", "label", "message"), ENTRY_PROBLEMS)
def test_bad_entry_is_reported_and_good_one_kept(tmp_path: Path, bad_entry: str, label: str, message: str) -> None:
    registry = load_text(tmp_path, "checkpoints:\n" + GOOD_ENTRY + bad_entry)

    assert [e.name for e in registry.entries] == ["Good Model"]
    assert [p.label for p in registry.problems] == [label]
    # The message names the file, the entry and the field, in that order.
    assert registry.problems[0].message == f"{SHOWN}: {label}: {message}"


def test_qwen_names_that_slug_alike_clash(tmp_path: Path) -> None:
    registry = load_text(tmp_path, "checkpoints:\n  - {name: Qwen 7B, path: a}\n  - {name: qwen-7b, path: b}\n")

    assert [(e.name, e.slug) for e in registry.entries] == [("Qwen 7B", "qwen-7b")]
    assert len(registry.problems) == 1
    problem = registry.problems[0]
    assert problem.name == "qwen-7b"
    assert problem.message == (
        "checkpoints.yaml: checkpoints[1] (qwen-7b): slug: 'qwen-7b' is already used by checkpoints[0]; "
        "give one of them a distinct 'slug'"
    )


def test_every_bad_entry_is_reported(tmp_path: Path) -> None:
    text = (
        "checkpoints:\n"
        "  - {name: first-bad, pahse: x, path: a}\n"
        + GOOD_ENTRY
        + "  - {name: second-bad}\n"
        "  - {name: also-good, path: c}\n"
    )
    registry = load_text(tmp_path, text)

    assert [e.name for e in registry.entries] == ["Good Model", "also-good"]
    # Entries keep their position in the file, so messages point at the right line.
    assert [e.index for e in registry.entries] == [1, 3]
    assert [p.label for p in registry.problems] == ["checkpoints[0] (first-bad)", "checkpoints[2] (second-bad)"]
    assert [p.name for p in registry.problems] == ["first-bad", "second-bad"]
    assert "pahse" in registry.problems[0].message
    assert "path: missing" in registry.problems[1].message


def test_every_problem_of_one_entry_is_reported(tmp_path: Path) -> None:
    registry = load_text(tmp_path, "checkpoints:\n  - {name: b, pahse: x, tags: lora}\n")

    messages = [p.message for p in registry.problems]
    assert messages == [
        "checkpoints.yaml: checkpoints[0] (b): unknown key 'pahse' (did you mean 'phase'?)",
        "checkpoints.yaml: checkpoints[0] (b): path: missing; every entry needs 'name' and 'path'",
        "checkpoints.yaml: checkpoints[0] (b): tags: expected a list of strings, e.g. [lora, sft]",
    ]
    assert registry.entries == ()

"""Read and validate `checkpoints.yaml`.

The file has three sections: `site` (title, intro), `analysis` (thresholds) and
`checkpoints` (the list of runs). Problems in `site`/`analysis` or the file's
shape stop the build (`ConfigError`, every problem listed); a bad checkpoint
entry only removes that entry, as an `EntryProblem`, so the others still build.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import unicodedata
from pathlib import Path
from typing import Any

import yaml

from generator.errors import ConfigError, located
from generator.reader import clean_text
from generator.records import (
    AnalysisSettings,
    CheckpointEntry,
    EntryProblem,
    Registry,
    SiteSettings,
)
from generator.remote import credentials_problem, file_url_path, is_remote, protocol_problem

TOP_LEVEL_KEYS = ("site", "analysis", "checkpoints")
SITE_KEYS = tuple(f.name for f in dataclasses.fields(SiteSettings))
ANALYSIS_KEYS = tuple(f.name for f in dataclasses.fields(AnalysisSettings))
ENTRY_KEYS = ("name", "path", "slug", "phase", "base_model", "compare_group", "description", "tags")
REQUIRED_ENTRY_KEYS = ("name", "path")

REMOTE_PLACEHOLDER = ".traindocs-remote"
"""`resolved` of a remote entry is `<registry folder>/.traindocs-remote/<slug>`, a path that
does not exist: `generator.remote.localise` replaces it with the local mirror before
reading, and code that forgets to finds nothing there rather than some other checkpoint."""

SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,78}[a-z0-9])?$")

# (lowest, highest, lowest allowed, highest allowed) for each numeric threshold.
_RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "smoothing": (0.0, 1.0, True, False),
    "very_fast": (0.0, float("inf"), False, False),
    "fast": (0.0, float("inf"), False, False),
    "steady": (0.0, float("inf"), False, False),
    "stable_band": (0.0, 1.0, False, False),
    "entropy_consistency": (0.0, 1.0, False, True),
    "much_higher_factor": (1.0, float("inf"), False, False),
    "comparable_tolerance": (0.0, 1.0, False, False),
    "low_start_loss": (float("-inf"), float("inf"), False, False),
    "high_start_loss": (float("-inf"), float("inf"), False, False),
    "spike_factor": (1.0, float("inf"), False, False),
    "spike_window": (2.0, 1000.0, True, True),
}
_WHOLE_NUMBERS = frozenset({"spike_window"})


SLUG_BYTES = 80
"""Longest derived slug in UTF-8 bytes: 80 ASCII characters, 26 CJK ones (a file name stays far below 255 bytes)."""


def slugify(text: str) -> str:
    """Lower-case letters and digits of any script joined by single hyphens: 'Qwen 7B — 日本語' -> 'qwen-7b-日本語'.

    NFKC first (full-width letters are ASCII ones); Latin letters lose their accents ('modèle' -> 'modele');
    letters of other scripts stay with their combining marks (Devanagari vowel signs are part of the word).
    Page URLs carry them percent-encoded, which MkDocs and browsers handle.
    """
    characters: list[str] = []
    for character in unicodedata.normalize("NFKC", text).lower():
        folded = unicodedata.normalize("NFKD", character)
        if folded[0].isascii() and all(unicodedata.combining(mark) for mark in folded[1:]):
            character = folded[0]
        category = unicodedata.category(character)
        if category == "Cf" or (unicodedata.combining(character) and characters and characters[-1].isascii()):
            continue  # direction marks and joiners; an accent left on a Latin letter ('İ' lower-cased)
        characters.append(character if category[0] in "LMN" else "-")
    slug = re.sub(r"-+", "-", "".join(characters)).strip("-")
    while len(slug.encode("utf-8")) > SLUG_BYTES:
        slug = slug[:-1]
    return slug.strip("-")


def _ascii_example(slug: str) -> str:
    """A valid explicit slug close to `slug`, for the error message."""
    example = slugify(slug)
    return example if SLUG_PATTERN.match(example) else "my-model"


def did_you_mean(key: str, allowed: tuple[str, ...]) -> str:
    """A hint naming the closest allowed key, or an empty string."""
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f" (allowed: {', '.join(allowed)})"


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _as_text(value: object) -> str | None:
    """A YAML scalar as text: strings as they are, numbers written out."""
    if isinstance(value, str):
        return clean_text(value)  # "\ud800" in YAML is a lone surrogate: no page could be written with it
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def load_registry(path: Path, display: str | None = None) -> Registry:
    """Read, validate and resolve a registry file.

    Raises `ConfigError` when the file cannot be used at all; entry-level
    problems are returned in `Registry.problems`.
    """
    shown = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{shown}: file not found (create one with 'traindocs init' or pass --config)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{shown}: cannot read: {exc}") from None
    document = parse_yaml(text, shown)
    return validate_registry(document, path.resolve().parent, path, shown)


FAST_LOADER = getattr(yaml, "CSafeLoader", None)
"""PyYAML's safe loader on libyaml, when the installed PyYAML has it."""


def parse_yaml(text: str, shown: str) -> Any:
    """Safe-load YAML; syntax errors become one line with line and column."""
    if FAST_LOADER is not None:
        # libyaml parses a registry of hundreds of entries ten times faster; on any
        # error the Python parser runs again for its clearer message.
        try:
            return yaml.load(text, Loader=FAST_LOADER)
        except (yaml.YAMLError, ValueError, RecursionError):
            pass
    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise ConfigError(f"{shown}: the YAML is nested too deeply") from None
    except ValueError as exc:  # e.g. a date that does not exist: 2023-02-30
        raise ConfigError(f"{shown}: YAML value error: {exc}; quote the value to keep it as text") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{shown}{where}: YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{shown}: YAML error: {exc}") from None


def validate_registry(document: Any, base_dir: Path, file: Path, shown: str) -> Registry:
    """Turn a parsed YAML document into a `Registry` (see `load_registry`)."""
    if document is None:
        raise ConfigError(f"{shown}: the file is empty; expected a mapping with a 'checkpoints' list")
    if not isinstance(document, dict):
        raise ConfigError(
            f"{shown}: expected a mapping with a 'checkpoints' list at the top, got {_type_name(document)}"
        )
    errors: list[str] = []
    for key in document:
        if key not in TOP_LEVEL_KEYS:
            errors.append(located(shown, "", f"unknown key '{key}'{did_you_mean(str(key), TOP_LEVEL_KEYS)}"))
    site = _site_settings(document.get("site"), shown, errors)
    analysis = _analysis_settings(document.get("analysis"), shown, errors)
    raw_entries = document.get("checkpoints")
    if raw_entries is None:
        errors.append(f"{shown}: checkpoints: missing; expected a list of entries with 'name' and 'path'")
        raw_entries = []
    elif not isinstance(raw_entries, list):
        errors.append(f"{shown}: checkpoints: expected a list, got {_type_name(raw_entries)}")
        raw_entries = []
    if errors:
        raise ConfigError("\n".join(errors))

    entries: list[CheckpointEntry] = []
    problems: list[EntryProblem] = []
    seen_names: dict[str, int] = {}
    seen_slugs: dict[str, int] = {}
    for index, raw in enumerate(raw_entries):
        entry, entry_errors = _entry(raw, index, base_dir, shown)
        if entry is not None:
            if entry.name in seen_names:
                entry_errors.append(
                    located(shown, entry.label, f"name: '{entry.name}' is already used by checkpoints[{seen_names[entry.name]}]")
                )
            elif entry.slug in seen_slugs:
                entry_errors.append(
                    located(
                        shown,
                        entry.label,
                        f"slug: '{entry.slug}' is already used by checkpoints[{seen_slugs[entry.slug]}]; "
                        "give one of them a distinct 'slug'",
                    )
                )
        if entry_errors:
            name = (_as_text(raw.get("name")) or "").strip() if isinstance(raw, dict) else None
            label = f"checkpoints[{index}]" + (f" ({name})" if name else "")
            problems.extend(EntryProblem(label=label, message=m, name=name or "") for m in entry_errors)
            continue
        assert entry is not None
        seen_names[entry.name] = index
        seen_slugs[entry.slug] = index
        entries.append(entry)
    return Registry(file=file, site=site, analysis=analysis, entries=tuple(entries), problems=tuple(problems))


def _site_settings(raw: Any, shown: str, errors: list[str]) -> SiteSettings:
    if raw is None:
        return SiteSettings()
    if not isinstance(raw, dict):
        errors.append(f"{shown}: site: expected a mapping, got {_type_name(raw)}")
        return SiteSettings()
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in SITE_KEYS:
            errors.append(f"{shown}: site: unknown key '{key}'{did_you_mean(str(key), SITE_KEYS)}")
            continue
        if key == "show_paths":
            if not isinstance(value, bool):
                errors.append(f"{shown}: site.show_paths: expected true or false, got {_type_name(value)}")
                continue
            values[key] = value
            continue
        text = _as_text(value)
        if text is None:
            errors.append(f"{shown}: site.{key}: expected a string, got {_type_name(value)}")
            continue
        values[key] = text
    return SiteSettings(**values)


def _analysis_settings(raw: Any, shown: str, errors: list[str]) -> AnalysisSettings:
    if raw is None:
        return AnalysisSettings()
    if not isinstance(raw, dict):
        errors.append(f"{shown}: analysis: expected a mapping, got {_type_name(raw)}")
        return AnalysisSettings()
    values: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"analysis.{key}"
        if key not in ANALYSIS_KEYS:
            errors.append(f"{shown}: analysis: unknown key '{key}'{did_you_mean(str(key), ANALYSIS_KEYS)}")
            continue
        if key == "loss_levels":
            items = value if isinstance(value, list) else [value]
            if not items or not all(_is_number(item) for item in items):
                errors.append(f"{shown}: {where}: expected a list of numbers, e.g. [1.0, 0.7]")
                continue
            values[key] = tuple(sorted({float(item) for item in items}, reverse=True))
            continue
        if not _is_number(value):
            errors.append(f"{shown}: {where}: expected a number, got {_type_name(value)}")
            continue
        low, high, low_ok, high_ok = _RANGES[key]
        number = float(value)
        if number < low or number > high or (number == low and not low_ok) or (number == high and not high_ok):
            errors.append(f"{shown}: {where}: {number:g} is out of range {_range_text(low, high, low_ok, high_ok)}")
            continue
        if key in _WHOLE_NUMBERS:
            if number != int(number):
                errors.append(f"{shown}: {where}: expected a whole number, got {number:g}")
                continue
            values[key] = int(number)
            continue
        values[key] = number
    settings = AnalysisSettings(**values)
    if not settings.very_fast >= settings.fast >= settings.steady:
        errors.append(
            f"{shown}: analysis: expected very_fast >= fast >= steady (loss falls per 100 steps), got "
            f"{settings.very_fast:g}, {settings.fast:g}, {settings.steady:g}"
        )
    if settings.low_start_loss > settings.high_start_loss:
        errors.append(f"{shown}: analysis: low_start_loss must not exceed high_start_loss")
    return settings


def _range_text(low: float, high: float, low_ok: bool, high_ok: bool) -> str:
    left = "[" if low_ok else "("
    right = "]" if high_ok else ")"
    return f"{left}{low:g}, {high:g}{right}"


def _is_number(value: object) -> bool:
    """A finite YAML number (an integer too large for a float is not one)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _expand_user(path: Path) -> Path:
    """`~` and `~user` expanded; an unknown user leaves the path as written."""
    try:
        return path.expanduser()
    except (RuntimeError, ValueError):  # unknown user; a NUL byte (reported by the reader)
        return path


def _resolved_path(path: str, base_dir: Path, slug: str, shown: str, label: str, errors: list[str]) -> Path | None:
    """Where an entry's `path` is on this machine (see `REMOTE_PLACEHOLDER` for URLs); None after an error."""
    if is_remote(path):
        problem = credentials_problem(path) or protocol_problem(path)
        if problem:
            errors.append(located(shown, label, f"path: {problem}"))
            return None
        return base_dir / REMOTE_PLACEHOLDER / (slug or "entry")
    try:
        local = file_url_path(path)
    except ValueError as exc:
        errors.append(located(shown, label, f"path: {exc}"))
        return None
    # normpath, not resolve(): no file system access here (a symlink
    # loop is reported by the reader, for this entry only).
    return Path(os.path.normpath(base_dir / _expand_user(Path(local if local is not None else path))))


def _entry(raw: Any, index: int, base_dir: Path, shown: str) -> tuple[CheckpointEntry | None, list[str]]:
    """Validate one entry; returns (entry or None, its error lines)."""
    if not isinstance(raw, dict):
        return None, [f"{shown}: checkpoints[{index}]: expected a mapping with 'name' and 'path', got {_type_name(raw)}"]
    name = (_as_text(raw.get("name")) or "").strip()
    label = f"checkpoints[{index}]" + (f" ({name})" if name else "")
    errors: list[str] = []
    for key in raw:
        if key not in ENTRY_KEYS:
            errors.append(located(shown, label, f"unknown key '{key}'{did_you_mean(str(key), ENTRY_KEYS)}"))
    for key in REQUIRED_ENTRY_KEYS:
        if key not in raw or raw[key] is None or (isinstance(raw[key], str) and not raw[key].strip()):
            errors.append(located(shown, label, f"{key}: missing; every entry needs 'name' and 'path'"))
    text: dict[str, str] = {}
    for key in ("name", "path", "slug", "phase", "base_model", "compare_group", "description"):
        if key in raw and raw[key] is not None:
            value = _as_text(raw[key])
            if value is None:
                errors.append(located(shown, label, f"{key}: expected a string, got {_type_name(raw[key])}"))
            else:
                text[key] = value.strip()
    tags: tuple[str, ...] = ()
    if raw.get("tags") is not None:
        raw_tags = raw["tags"]
        if not isinstance(raw_tags, list) or any(_as_text(t) is None for t in raw_tags):
            errors.append(located(shown, label, "tags: expected a list of strings, e.g. [lora, sft]"))
        else:
            tags = tuple(str(_as_text(t)) for t in raw_tags)
    slug = text.get("slug", "")
    if slug and not SLUG_PATTERN.match(slug):
        errors.append(
            located(
                shown,
                label,
                f"slug: '{slug}' is not a valid slug; use lowercase letters, digits and hyphens "
                f"(e.g. '{_ascii_example(slug)}')",
            )
        )
    if not slug and text.get("name"):
        slug = slugify(text["name"])
        if not slug:
            errors.append(
                located(shown, label, "slug: the name has no letters or digits to make a slug from; add a 'slug'")
            )
    resolved = _resolved_path(text["path"], base_dir, slug, shown, label, errors) if "path" in text else None
    if errors or "name" not in text or resolved is None:
        return None, errors
    return (
        CheckpointEntry(
            index=index,
            name=text["name"],
            slug=slug,
            path=text["path"],
            resolved=resolved,
            phase=text.get("phase", ""),
            compare_group=text.get("compare_group", ""),
            base_model=text.get("base_model", ""),
            description=text.get("description", ""),
            tags=tags,
        ),
        [],
    )

"""`TraindocsCallback`: the training report written from the training script itself.

A `transformers.TrainerCallback` for `Trainer` and TRL's trainers. On each save and at
the end of training, on the main process only, it registers the run in the report
folder's `checkpoints.yaml` (creating the folder with `traindocs init` when missing),
regenerates the pages, optionally builds the site, and, when the trainer pushes to the
Hub and the site's address is known, puts the "Training report" section of
`traindocs link-cards` into the model card that is pushed. A failure in any of this is
logged as one warning line: it never stops the training.

transformers is imported only when the class is first asked for (`generator.TraindocsCallback`
or `from generator.callback import TraindocsCallback`), so `import generator` and the CLI stay
free of it. The registry helpers below need no transformers.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from generator.errors import ConfigError, GenerationBusyError, TraindocsError
from generator.files import held_lock, write_atomic

if TYPE_CHECKING:
    from generator.pipeline import GenerationResult
    from generator.records import ModelReport, SiteLayout

log = logging.getLogger(__name__)

REGISTRY_FILE = "checkpoints.yaml"
MKDOCS_FILE = "mkdocs.yml"
STATE_FILE = "trainer_state.json"
INSTALL_HINT = "pip install 'traindocs[train]'"
BUSY_WAIT_SECONDS = 60.0
"""At the end of training, how long to wait for another generation (a `traindocs serve`, another
run's callback) to finish writing the same docs/ before giving up; on a save, none."""


# ---------------------------------------------------------------------------
# The registry: add or update one entry, leaving every other byte as it is.


def _yaml_scalar(value: str) -> str:
    """`value` as a YAML scalar: plain when it reads back as itself, else double-quoted."""
    if value and value == value.strip() and value.isprintable() and "#" not in value and ": " not in value:
        try:
            if yaml.safe_load(f"key: {value}\n") == {"key": value}:
                return value
        except yaml.YAMLError:
            pass
    escaped = []
    for char in value:
        code = ord(char)
        if char in '"\\':
            escaped.append("\\" + char)
        elif char.isprintable() and code not in (0x85, 0x2028, 0x2029, 0xFEFF):
            escaped.append(char)
        elif code <= 0xFF:
            escaped.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            escaped.append(f"\\u{code:04x}")
        else:
            escaped.append(f"\\U{code:08x}")
    return '"' + "".join(escaped) + '"'


def _mapping_value(node: yaml.Node, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    """(key node, value node) of `key` in a mapping node, or None."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                return key_node, value_node
    return None


def _content_end(node: yaml.Node) -> int:
    """Index just after the last character of `node` on the page (a block collection ends at the
    next token, which may lie past comments and blank lines; its last leaf does not)."""
    while isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and not node.flow_style and node.value:
        last = node.value[-1]
        if isinstance(last, tuple):
            key, value = last
            if isinstance(value, yaml.ScalarNode) and value.start_mark.index == value.end_mark.index:
                return int(key.end_mark.index)  # `key:` with no value: its empty value is placed at the next token
            node = value
        else:
            node = last
    return int(node.end_mark.index)


def _line_end(text: str, index: int) -> int:
    """Index of the line break ending the line that holds `index` (len(text) on the last line)."""
    end = text.find("\n", index)
    if end < 0:
        return len(text)
    return end - 1 if end > 0 and text[end - 1] == "\r" else end


def _entry_lines(name: str, path: str, slug: str | None, first_prefix: str, indent: str) -> list[str]:
    lines = [f"{first_prefix}name: {_yaml_scalar(name)}", f"{indent}path: {_yaml_scalar(path)}"]
    if slug:
        lines.append(f"{indent}slug: {slug}")
    return lines


def _free_slug(wanted: str, taken: set[str]) -> str | None:
    """None when `wanted` is free (the name's own slug is used), else the first free `wanted-N`."""
    if wanted not in taken:
        return None
    number = 2
    while f"{wanted}-{number}"[:80].strip("-") in taken:
        number += 1
    return f"{wanted}-{number}"[:80].strip("-")


def registry_with_run(text: str, name: str, path: str, base_dir: Path, run_dir: Path, shown: str) -> str:
    """`text` of a registry with the run `name` registered at `path` (relative to `base_dir` or absolute).

    The entry named `name`, or else the entry whose path lies in `run_dir` (the run's output folder),
    gets its `path` value replaced; without one, an entry is appended to `checkpoints`. Every other
    byte stays (comments, other entries, quoting). Raises ConfigError, naming `shown`, when the file
    cannot be edited safely.
    """
    from generator.registry import parse_yaml, slugify

    parse_yaml(text, shown)  # a syntax error as the CLI words it
    newline = "\r\n" if "\r\n" in text else "\n"  # the new lines end like the file's
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None and not isinstance(root, yaml.MappingNode):
        raise ConfigError(f"{shown}: expected a mapping with a 'checkpoints' list at the top")
    found = _mapping_value(root, "checkpoints") if root is not None else None
    run_root = os.path.normpath(run_dir)
    if found is not None and isinstance(found[1], yaml.SequenceNode):
        taken: set[str] = set()
        for item in found[1].value:
            item_name = _mapping_value(item, "name")
            item_path = _mapping_value(item, "path")
            item_slug = _mapping_value(item, "slug")
            same_name = item_name is not None and str(item_name[1].value).strip() == name
            same_run = False
            if item_path is not None and isinstance(item_path[1], yaml.ScalarNode) and item_path[1].value:
                where = os.path.normpath(base_dir / Path(str(item_path[1].value)).expanduser())
                same_run = where == run_root or where.startswith(run_root.rstrip(os.sep) + os.sep)
            if same_name or same_run:
                return _with_path(text, item, item_path, path, shown)
            if item_slug is not None and isinstance(item_slug[1], yaml.ScalarNode):
                taken.add(str(item_slug[1].value).strip())
            elif item_name is not None and isinstance(item_name[1], yaml.ScalarNode):
                taken.add(slugify(str(item_name[1].value)))
        slug = _free_slug(slugify(name), taken)
        return _appended(text, found[0], found[1], name, path, slug, shown, newline)
    if found is not None and not (isinstance(found[1], yaml.ScalarNode) and found[1].tag.endswith(":null")):
        raise ConfigError(f"{shown}: checkpoints: expected a list; the run was not registered")
    lines = _entry_lines(name, path, None, "  - ", "    ")
    if found is None:  # no `checkpoints:` at all: add it at the end
        separator = "" if not text or text.endswith("\n") else newline
        return text + separator + "checkpoints:" + newline + newline.join(lines) + newline
    key, value = found
    if value.end_mark.index > value.start_mark.index:  # `checkpoints: ~` or `null`: the list replaces it
        return _replaced_by_block(text, key, value, lines, newline)
    # `checkpoints:` with nothing after it: the list goes under the key's line (after its comment, if any).
    at = _line_end(text, key.end_mark.index)
    return text[:at] + newline + newline.join(lines) + text[at:]


def _with_path(text: str, item: yaml.Node, item_path: tuple[yaml.Node, yaml.Node] | None, path: str,
               shown: str) -> str:
    """`text` with the `path` value of the entry `item` replaced by `path`."""
    if item_path is None or not isinstance(item_path[1], yaml.ScalarNode):
        raise ConfigError(
            f"{shown}: line {item.start_mark.line + 1}: the entry of this run has no 'path' the callback can "
            "update; give it one or remove the entry"
        )
    value = item_path[1]
    if str(value.value) == path:
        return text
    return text[: value.start_mark.index] + _yaml_scalar(path) + text[value.end_mark.index:]


def _replaced_by_block(text: str, key: yaml.Node, value: yaml.Node, lines: list[str], newline: str) -> str:
    """`text` with the value of `key` (from the colon on) replaced by the block list `lines`."""
    colon = text.index(":", key.end_mark.index) + 1
    return text[:colon] + newline + newline.join(lines) + text[value.end_mark.index:]


def _appended(text: str, key: yaml.Node, sequence: yaml.SequenceNode, name: str, path: str,
              slug: str | None, shown: str, newline: str) -> str:
    """`text` with a new entry at the end of the `checkpoints` list."""
    if sequence.flow_style:
        flow = "{" + ", ".join(
            f"{field}: {_yaml_scalar(value)}"
            for field, value in (("name", name), ("path", path), ("slug", slug)) if value
        ) + "}"
        if not sequence.value:  # `checkpoints: []`, as `traindocs init` writes it: a block list replaces it
            return _replaced_by_block(text, key, sequence, _entry_lines(name, path, slug, "  - ", "    "), newline)
        close = text.rfind("]", sequence.start_mark.index, sequence.end_mark.index)
        if close < 0:
            raise ConfigError(f"{shown}: checkpoints: cannot find the end of the list; the run was not registered")
        return text[:close] + ", " + flow + text[close:]
    last = sequence.value[-1]
    line_start = text.rfind("\n", 0, last.start_mark.index) + 1
    prefix = text[line_start: last.start_mark.index]
    if prefix.strip() != "-":
        # The item does not start on its dash's line (`-` alone, then the mapping below): indent like `init`.
        prefix = " " * key.start_mark.column + "  - "
    indent = " " * len(prefix)
    at = _line_end(text, _content_end(last))
    return text[:at] + newline + newline.join(_entry_lines(name, path, slug, prefix, indent)) + text[at:]


def register_run(registry_file: Path, name: str, run_path: Path, run_dir: Path) -> bool:
    """Register `run_path` (a checkpoint folder or a trainer_state.json of the run in `run_dir`) as the
    entry `name` of `registry_file`, under a lock and atomically; returns whether the file changed."""
    from generator.registry import validate_registry

    base_dir = registry_file.resolve().parent
    try:
        shown_path = Path(os.path.relpath(run_path.resolve(), base_dir)).as_posix()
    except ValueError:  # another drive (Windows)
        shown_path = run_path.resolve().as_posix()
    shown = registry_file.as_posix()
    with held_lock(base_dir):
        text = registry_file.read_bytes().decode("utf-8")
        updated = registry_with_run(text, name, shown_path, base_dir, run_dir.resolve(), shown)
        if updated == text:
            return False
        # The edit must leave a registry that loads, with this run in it and the other entries as they were.
        from generator.registry import parse_yaml

        before, after = parse_yaml(text, shown), parse_yaml(updated, shown)
        registry = validate_registry(after, base_dir, registry_file, shown)
        if not _only_run_changed(before, after, shown_path) or not any(e.path == shown_path for e in registry.entries):
            raise ConfigError(f"{shown}: the run could not be registered without changing other entries; "
                              f"add it by hand: name: {name}, path: {shown_path}")
        return write_atomic(registry_file, updated.encode("utf-8"), inside=base_dir)


def _only_run_changed(before: Any, after: Any, path: str) -> bool:
    """Whether the parsed registry `after` is `before` with one entry appended, or one entry's path set to `path`."""
    if not isinstance(after, dict):
        return False
    old = dict(before) if isinstance(before, dict) else {}
    new = dict(after)
    old_entries, new_entries = old.pop("checkpoints", None) or [], new.pop("checkpoints", None) or []
    if old != new or not isinstance(old_entries, list) or not isinstance(new_entries, list):
        return False
    if len(new_entries) == len(old_entries) + 1:
        return bool(new_entries[:-1] == old_entries and isinstance(new_entries[-1], dict)
                    and new_entries[-1].get("path") == path)
    changed = [i for i, (a, b) in enumerate(zip(old_entries, new_entries, strict=False)) if a != b]
    if len(new_entries) != len(old_entries) or len(changed) > 1:
        return False
    return not changed or {**old_entries[changed[0]], "path": path} == new_entries[changed[0]]


# ---------------------------------------------------------------------------
# The callback.


@dataclass
class Timing:
    """How long the callback took in one event (for `TraindocsCallback.timings`)."""

    event: str
    step: int
    seconds: float
    """Wall-clock time."""
    cpu_seconds: float
    """CPU time of this process (the work is done in it: generation runs with one job)."""


class ReportWriter:
    """Everything `TraindocsCallback` does, without transformers (see the module docstring).

    Args:
        report_dir: the report project (checkpoints.yaml, mkdocs.yml, docs/); created with
            `traindocs init` when missing.
        name: the run's name in the registry and on the site; default: `run_name` of the
            training arguments when set, else the output folder's name.
        build: also build the static site (`traindocs build`) each time, not only the pages.
        site_url: where the site is published, for the model card's links; default:
            `site_url` of the report's mkdocs.yml. Without either, the card is left alone.
        report_on_save: regenerate on every checkpoint save, not only at the end.
    """

    def __init__(self, report_dir: str | os.PathLike[str] = "training-report", *, name: str | None = None,
                 build: bool = False, site_url: str | None = None, report_on_save: bool = True) -> None:
        self.report_dir = Path(report_dir)
        self.name = name
        self.build = build
        self.site_url = site_url
        self.report_on_save = report_on_save
        self.timings: list[Timing] = []
        """Seconds spent in each event that did work, in order (a benchmark reads them)."""
        self.last_result: GenerationResult | None = None
        self._reported: tuple[int, str] | None = None
        self._layout: SiteLayout | None = None

    # -- events (the names and signatures of transformers.TrainerCallback) --

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.report_on_save and state.is_world_process_zero:
            self._timed("save", state, lambda: self._report_checkpoint(args, state))

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self._timed("train_end", state, lambda: self._report_end(args, state))

    def on_push_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self._timed("push", state, lambda: self._before_push(args, state))

    # -- the work --

    def _timed(self, event: str, state: Any, work: Any) -> None:
        started, cpu_started = time.perf_counter(), time.process_time()
        try:
            work()
        except Exception as exc:  # the report must never stop a training run
            log.warning("traindocs: the training report was not updated at step %s (%s)", state.global_step,
                        _one_line(exc))
        self.timings.append(Timing(event, int(state.global_step), time.perf_counter() - started,
                                   time.process_time() - cpu_started))

    def run_name(self, args: Any) -> str:
        """The run's name in the registry (see the class docstring)."""
        if self.name:
            return self.name
        output = os.path.normpath(str(args.output_dir))
        run_name = getattr(args, "run_name", None)
        # transformers 4 defaulted run_name to output_dir: that is no name.
        if run_name and os.path.normpath(str(run_name)) != output:
            return str(run_name)
        return Path(output).resolve().name

    def _report_checkpoint(self, args: Any, state: Any) -> None:
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if (self._reported == (state.global_step, "checkpoint")) or not (folder / STATE_FILE).is_file():
            return
        self._update(args, folder, wait=0.0)
        self._reported = (state.global_step, "checkpoint")

    def _report_end(self, args: Any, state: Any) -> None:
        # The final state, not the last checkpoint's: it holds the steps after the last save and the
        # trainer's closing row (train_runtime, train_loss). It goes where `trainer.save_state()` puts it.
        output = Path(args.output_dir)
        output.mkdir(parents=True, exist_ok=True)
        state_file = output / STATE_FILE
        handle, temporary = tempfile.mkstemp(dir=output, prefix=f".{STATE_FILE}.traindocs-", suffix=".tmp")
        os.close(handle)
        try:
            state.save_to_json(temporary)
            os.replace(temporary, state_file)
        finally:
            Path(temporary).unlink(missing_ok=True)
        self._update(args, state_file, wait=BUSY_WAIT_SECONDS)
        self._reported = (state.global_step, "end")
        if getattr(args, "push_to_hub", False):
            self.update_model_card(args)

    def _before_push(self, args: Any, state: Any) -> None:
        # A push during training (hub_strategy every_save) comes before on_save of its checkpoint.
        if self._reported is None or self._reported[0] != state.global_step:
            self._report_checkpoint(args, state)
        self.update_model_card(args)
        self._hook_model_card(args)

    def _hook_model_card(self, args: Any) -> None:
        """`Trainer.push_to_hub` rewrites README.md (create_model_card) after telling the callbacks and
        before uploading: the section is put back into the card right after it is written."""
        trainer = _calling_trainer()
        if trainer is None:
            return
        original = trainer.create_model_card
        if getattr(original, "traindocs_hook", False):
            return

        @functools.wraps(original)
        def create_model_card(*positional: Any, **keywords: Any) -> Any:
            written = original(*positional, **keywords)
            try:
                self.update_model_card(args)
            except Exception as exc:
                log.warning("traindocs: the model card was not updated (%s)", _one_line(exc))
            return written

        create_model_card.traindocs_hook = True  # type: ignore[attr-defined]
        trainer.create_model_card = create_model_card

    def _project(self) -> Path:
        """The report folder's registry, after `traindocs init` when the folder has none."""
        registry = self.report_dir / REGISTRY_FILE
        if not registry.is_file():
            from generator.scaffold import init_project

            init_project(self.report_dir)
            log.info("traindocs: created a report project in %s", self.report_dir)
        return registry

    def _mkdocs_config(self, registry: Path) -> Any | None:
        """mkdocs.yml of the report as `traindocs build` loads it, or None without one."""
        mkdocs_yml = self.report_dir / MKDOCS_FILE
        if not mkdocs_yml.is_file():
            return None
        from generator import cli

        options = argparse.Namespace(debug=False, strict=False, site_dir=None, config=registry)
        return cli._load_mkdocs_config(mkdocs_yml, options)

    def _update(self, args: Any, run_path: Path, wait: float) -> None:
        from generator.mkdocs_plugin import site_layout
        from generator.records import SiteLayout
        from generator.remote import options_from_env
        from generator.site import generate

        registry = self._project()
        name = self.run_name(args)
        register_run(registry, name, run_path, Path(args.output_dir))
        config = self._mkdocs_config(registry)
        layout = site_layout(config) if config is not None else SiteLayout()
        if self.site_url:
            url = self.site_url if self.site_url.endswith("/") else self.site_url + "/"
            layout = SiteLayout(use_directory_urls=layout.use_directory_urls, site_url=url)
        self._layout = layout
        docs_dir = Path(config.docs_dir) if config is not None else self.report_dir / "docs"
        deadline = time.monotonic() + wait
        while True:
            try:
                result = generate(registry, docs_dir, layout, jobs=1, remote=options_from_env())
                break
            except GenerationBusyError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.5)
        self.last_result = result
        for problem in result.problems:
            if problem.name == name:
                log.warning("traindocs: %s", problem.message)
        for refusal in result.refusals():
            log.warning("traindocs: %s", refusal)
        if self.build and config is not None:
            self._build_site(config, result)

    def _build_site(self, config: Any, result: GenerationResult) -> None:
        from mkdocs.commands.build import build
        from mkdocs.exceptions import MkDocsException

        plugin = config.plugins.get("traindocs")
        if plugin is not None:
            plugin.already_generated = result  # the pages were just written: MkDocs need not regenerate them
        try:
            build(config)
        except MkDocsException as exc:
            raise TraindocsError(f"mkdocs build: {exc}") from None

    def run_report(self, args: Any) -> ModelReport | None:
        """This run's report from the last generation, when it could be read."""
        if self.last_result is None:
            return None
        name = self.run_name(args)
        return next((r for r in self.last_result.reports if r.entry.name == name), None)

    def update_model_card(self, args: Any) -> bool:
        """Put the "Training report" section into output_dir/README.md; whether the card changed.
        Without a known site address (site_url) there is nothing to link to: the card is left alone."""
        from generator.cards import apply_card_update, report_section

        report = self.run_report(args)
        if report is None or self._layout is None or not self._layout.site_url:
            return False
        readme = Path(args.output_dir) / "README.md"
        return apply_card_update(readme, report_section(report, self._layout), dry_run=False).changed


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, (TraindocsError, OSError)) else f"{type(exc).__name__}: {text}"


def _calling_trainer() -> Any | None:
    """The `transformers.Trainer` whose method is running further up this call (callbacks are not
    given their trainer; `on_push_begin` is called from `Trainer.push_to_hub` itself)."""
    from transformers import Trainer

    frame = sys._getframe(1)
    for _ in range(12):
        if frame is None:
            break
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, Trainer):
            return candidate
        frame = frame.f_back  # type: ignore[assignment]
    return None


@functools.cache
def callback_class() -> type:
    """`TraindocsCallback`, made on first use: a `ReportWriter` that is a `transformers.TrainerCallback`."""
    try:
        from transformers import TrainerCallback
    except ImportError as exc:
        raise ImportError(f"TraindocsCallback needs transformers ({exc}); install it with {INSTALL_HINT}") from exc

    class TraindocsCallback(ReportWriter, TrainerCallback):  # type: ignore[misc, valid-type]
        __doc__ = ReportWriter.__doc__

    TraindocsCallback.__module__ = __name__
    TraindocsCallback.__qualname__ = "TraindocsCallback"
    return TraindocsCallback


def __getattr__(name: str) -> Any:
    if name == "TraindocsCallback":
        return callback_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

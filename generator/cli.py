"""The `traindocs` command line.

Importing this module stays cheap (no MkDocs, pandas or matplotlib): each command
imports what it needs, and only the commands that read mkdocs.yml, build or serve
import MkDocs.

Exit status: 0 success; 1 a problem was found (a bad registry, a file
traindocs would not overwrite, a failed MkDocs build; with --strict also any
checkpoint that could not be read or any warning); 2 wrong usage.
"""

from __future__ import annotations

import argparse
import errno
import gc
import logging
import os
import re
import socket
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from generator import __version__
from generator.errors import TraindocsError
from generator.remote import (
    CACHE_ENV,
    DEFAULT_TIMEOUT,
    OFFLINE_ENV,
    TIMEOUT_ENV,
    RemoteOptions,
    is_remote,
    options_from_env,
    parse_timeout,
)

if TYPE_CHECKING:
    from generator.pipeline import GenerationResult
    from generator.records import SiteLayout

DESCRIPTION = """\
Turn Hugging Face Trainer / TRL checkpoints into a training-report website.

Every checkpoint registered in checkpoints.yaml becomes a page with loss plots
and a written analysis computed from its trainer_state.json; the index page
compares all models. MkDocs with the Material theme publishes it.
"""

EPILOG = """\
commands:
  init [DIR]   create mkdocs.yml, checkpoints.yaml and docs/ in DIR (default: .);
               with --github-pages also a GitHub Pages workflow
  generate     write the Markdown pages, plots and summary.json into docs/
  build        generate, then build the static site into site/ with MkDocs
               (or Zensical: --engine zensical)
  serve        generate, then serve the site with live reload
  link-cards   add or update a "Training report" section (link and badge) in
               each checkpoint's model card (README.md); needs site_url

examples:
  traindocs init my-report && cd my-report
  traindocs build --strict
  traindocs serve --dev-addr 127.0.0.1:8000
  traindocs build --engine zensical
  traindocs link-cards --dry-run
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="traindocs",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"traindocs {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", "-c", type=Path, default=Path("checkpoints.yaml"),
                        help="the registry (default: ./checkpoints.yaml)")
    common.add_argument("--strict", action="store_true",
                        help="exit with status 1 on any warning or unreadable checkpoint")
    common.add_argument("--debug", action="store_true", help="show Python tracebacks")
    common.add_argument("--jobs", "-j", type=_positive_int, default=None, metavar="N",
                        help="worker processes for reading and plotting (default: the number of CPUs)")
    common.add_argument("--offline", action="store_true",
                        help=f"read remote checkpoints (s3://, hf://, ...) from the local cache only, with no network "
                        f"(also ${OFFLINE_ENV}=1)")
    common.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                        help=f"traindocs' cache: remote checkpoints' small files, and what unchanged checkpoints "
                        f"read as (default: ${CACHE_ENV}, else $XDG_CACHE_HOME/traindocs or ~/.cache/traindocs)")
    common.add_argument("--timeout", type=_seconds, default=None, metavar="SECONDS",
                        help=f"give up on a remote server that does not connect or answer within SECONDS "
                        f"(default: ${TIMEOUT_ENV}, else {DEFAULT_TIMEOUT:g})")
    common.add_argument("--fail-on", choices=("warning", "note"), default=None,
                        help="exit with status 1 when a model has a finding of this severity or above (warning: "
                        "overfitting, explosions, ...; note: also still improving, resumed, ...); each is printed")
    common.add_argument("--no-cache", action="store_true",
                        help="parse and analyse every checkpoint again, even unchanged ones (plots that did not "
                        "change are still not redrawn)")

    init = commands.add_parser("init", help="create a new report project", description="Create mkdocs.yml, "
                               "checkpoints.yaml (with a commented example) and docs/ in DIR.")
    init.add_argument("dir", nargs="?", type=Path, default=Path("."), metavar="DIR")
    init.add_argument("--github-pages", action="store_true",
                      help="also write .github/workflows/pages.yml: build with --strict and deploy to GitHub Pages")
    init.add_argument("--debug", action="store_true", help="show Python tracebacks")

    generate = commands.add_parser("generate", parents=[common], help="write the pages into docs/",
                                   description="Write pages, plots and summary.json into the docs folder.")
    generate.add_argument("--docs-dir", type=Path, default=None,
                          help="output folder (default: docs/ beside the registry)")

    for name, help_text in (("build", "generate and build the site"), ("serve", "generate and serve with live reload")):
        command = commands.add_parser(name, parents=[common], help=help_text, description=help_text.capitalize() + ".")
        command.add_argument("--mkdocs-config", "-f", type=Path, default=None,
                             help="mkdocs.yml (default: mkdocs.yml beside the registry)")
        # Any text: an unknown name is reported in one line (argparse's choices print the usage too).
        command.add_argument("--engine", default="mkdocs", metavar="ENGINE",
                             help="mkdocs (default) or zensical: the static site generator that builds the "
                             "site from the generated pages (zensical: pip install 'traindocs[zensical]')")
        if name == "build":
            command.add_argument("--site-dir", "-d", type=Path, default=None,
                                 help="output folder (default: site_dir of mkdocs.yml, usually site/)")
        else:
            command.add_argument("--dev-addr", "-a", default=None, metavar="HOST:PORT",
                                 help="address to serve on (default: 127.0.0.1:8000)")
    cards = commands.add_parser(
        "link-cards", parents=[common], help="link the report from each model card",
        description="Insert or update, between markers, a 'Training report' section with a link and a badge "
        "in the README.md model card of each registered checkpoint. Everything else in the card is kept "
        "byte for byte; running it twice changes nothing the second time.",
    )
    cards.add_argument("models", nargs="*", metavar="MODEL", help="slugs or names (default: every model)")
    cards.add_argument("--card", type=Path, default=None,
                       help="the README.md (or its folder) to update instead; with exactly one MODEL")
    cards.add_argument("--dry-run", action="store_true", help="print the diff, write nothing")
    cards.add_argument("--mkdocs-config", "-f", type=Path, default=None,
                       help="mkdocs.yml with site_url (default: mkdocs.yml beside the registry)")
    return parser


def run() -> int:
    """The `traindocs` command (and `python -m generator`): `main`, then the process ends.

    Before it ends, every object is frozen out of the garbage collector's reach: the interpreter's
    last collections walked all of them for nothing (0.35-0.57 s after a 1,000-run generation, 0.07 s frozen,
    measured).
    In a process that goes on (tests, a caller of `main`), objects are left to the collector."""
    status = main()
    gc.freeze()
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        if args.command == "init":
            return _init(args)
        if args.command == "generate":
            return _generate(args)
        if args.command == "link-cards":
            return _link_cards(args)
        return _build_or_serve(args)
    except TraindocsError as exc:
        if args.debug:
            traceback.print_exc()
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        # The machine, not traindocs: a full disk, a read-only or too-small file system.
        if args.debug:
            traceback.print_exc()
        print(f"error: {os_error_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:
        # Not a user's mistake: a bug. One line by default, the traceback on request.
        if args.debug:
            raise
        print(f"error: internal error ({type(exc).__name__}: {exc}); this is a traindocs bug, "
              "run again with --debug for the traceback and report it", file=sys.stderr)
        return 1


_OS_ADVICE = {
    errno.ENOSPC: "the disk is full; free some space and run again",
    errno.EDQUOT: "the disk quota is used up; free some space and run again",
    errno.EFBIG: "the file is too large for this file system (or the file size limit, ulimit -f)",
    errno.EROFS: "the file system is read-only; choose a writable folder",
    errno.EACCES: "permission denied; check the folder's owner and permissions",
    errno.EPERM: "operation not permitted; check the folder's owner and permissions",
}


def os_error_line(exc: OSError) -> str:
    """An operating system failure as one line: the file, what happened, what to do."""
    where = exc.filename if exc.filename is not None else ""
    what = _OS_ADVICE.get(exc.errno or 0) or (exc.strerror or str(exc) or type(exc).__name__)
    return f"{where}: cannot write or read: {what}" if where else f"cannot write or read: {what}"


def _init(args: argparse.Namespace) -> int:
    from generator.scaffold import WORKFLOW_PATH, init_project, install_requirement

    for path in init_project(args.dir, github_pages=args.github_pages):
        print(f"created {path}", file=sys.stderr)
    if args.github_pages and install_requirement().placeholder:
        print(f"note: {args.dir / WORKFLOW_PATH}: set TRAINDOCS_PACKAGE to where CI installs traindocs from "
              "(this copy was not installed from a git URL or a package index)", file=sys.stderr)
    print(f"next: register checkpoints in {args.dir / 'checkpoints.yaml'}, then run "
          f"'traindocs serve' in {args.dir}", file=sys.stderr)
    return 0


def _seconds(text: str) -> float:
    value = parse_timeout(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text}")
    return value


class _ProgressLine:
    """One self-overwriting status line on a terminal; silent otherwise (logs, CI)."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.width = 0

    def __call__(self, stage: str, done: int, total: int, label: str) -> None:
        if not self.enabled:
            return
        verb = "reading" if stage == "read" else "rendering"
        line = f"{verb} {done}/{total}: {label}"[:100]
        sys.stderr.write("\r" + line.ljust(self.width))
        sys.stderr.flush()
        self.width = len(line)

    def clear(self) -> None:
        if self.enabled and self.width:
            sys.stderr.write("\r" + " " * self.width + "\r")
            sys.stderr.flush()


def _run_generation(registry: Path, docs_dir: Path, layout: SiteLayout, args: argparse.Namespace,
                    printed: list[str] | None = None) -> tuple[GenerationResult, int]:
    """Generate and report; returns (result, exit status so far). The problem, warning and refusal
    lines printed are appended to `printed` too (for the generation's stamp)."""
    from generator.cache import RUNS_DIR, RunCache
    from generator.pipeline import generate
    from generator.workers import default_jobs

    strict = args.strict
    started = time.perf_counter()
    progress = _ProgressLine()
    try:
        remote = _remote_options(args)
        cache = False if args.no_cache else RunCache(remote.cache_dir / RUNS_DIR)
        result = generate(registry, docs_dir, layout, jobs=args.jobs or default_jobs(), progress=progress,
                          remote=remote, cache=cache)
    finally:
        progress.clear()
    lines = ([f"error: {problem.message}" for problem in result.problems]
             + [f"warning: {warning}" for warning in result.warnings()]
             + [f"error: {refusal}" for refusal in result.refusals()])
    for line in lines:
        print(line, file=sys.stderr)
    if printed is not None:
        printed += lines
    elapsed = time.perf_counter() - started
    print(
        f"traindocs: {len(result.reports)} models, {len(result.problems)} problems; "
        f"{len(result.written)} files written, {len(result.unchanged)} unchanged, "
        f"{len(result.removed)} removed ({elapsed:.2f} s)",
        file=sys.stderr,
    )
    failed = bool(result.refused) or (strict and bool(result.problems or result.warnings()))
    if getattr(args, "fail_on", None):
        failed = _report_findings(result, args.fail_on) or failed
    return result, 1 if failed else 0


def _report_findings(result: GenerationResult, threshold: str) -> bool:
    """Print each finding at or above `threshold` ('warning' or 'note'); whether there was one."""
    from generator.narrative import finding_sentence

    counted = {"warning": ("warning",), "note": ("warning", "note")}[threshold]
    found = False
    for report in result.reports:
        for finding in report.figures.findings:
            if finding.severity.value in counted:
                found = True
                sentence = finding_sentence(finding, result.registry.analysis)
                print(f"{finding.severity.value}: {report.entry.label}: {finding.code}: {sentence}", file=sys.stderr)
    return found


def _remote_options(args: argparse.Namespace) -> RemoteOptions:
    """--offline and --cache-dir over $TRAINDOCS_OFFLINE and $TRAINDOCS_CACHE_DIR."""
    options = options_from_env()
    cache_dir = args.cache_dir.expanduser().resolve() if args.cache_dir else options.cache_dir
    timeout = args.timeout if getattr(args, "timeout", None) else options.timeout
    return RemoteOptions(cache_dir=cache_dir, offline=options.offline or args.offline, timeout=timeout)


def _mkdocs_yml(args: argparse.Namespace) -> Path:
    return getattr(args, "mkdocs_config", None) or args.config.resolve().parent / "mkdocs.yml"


def _load_mkdocs_config(mkdocs_yml: Path, args: argparse.Namespace) -> Any:
    """mkdocs.yml as MkDocs reads it, with the command line's overrides."""
    from mkdocs.config import load_config
    from mkdocs.exceptions import MkDocsException

    _configure_mkdocs_logging(args.debug)
    if not re.search(r"^docs_dir\s*:", mkdocs_yml.read_text(encoding="utf-8"), re.MULTILINE):
        # MkDocs refuses a missing docs/ before any plugin runs; a fresh clone has
        # none when every page in it is generated.
        (mkdocs_yml.parent / "docs").mkdir(exist_ok=True)
    overrides = {"site_dir": str(args.site_dir.resolve())} if getattr(args, "site_dir", None) else {}
    config_errors = _ConfigErrors()
    config_logger = logging.getLogger("mkdocs.config")
    config_logger.addHandler(config_errors)
    if getattr(args, "dev_addr", None):
        overrides["dev_addr"] = args.dev_addr  # checked by MkDocs: a bad HOST:PORT is one line
    try:
        config = load_config(config_file=str(mkdocs_yml), strict=args.strict, **overrides)
    except MkDocsException as exc:
        # MkDocs logs what is wrong and raises "Aborted with a configuration error!": say the former, once.
        raise TraindocsError(f"{mkdocs_yml}: {'; '.join(config_errors.messages) or exc}") from None
    finally:
        config_logger.removeHandler(config_errors)
    plugin = config.plugins.get("traindocs")
    if plugin is not None:
        # The registry named on the command line wins over mkdocs.yml's.
        plugin.config.registry = str(args.config.resolve())
    return config


class _ConfigErrors(logging.Handler):
    """Collects the errors MkDocs logs while it validates mkdocs.yml (e.g. a bad plugin option)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _mkdocs_settings_without_mkdocs(mkdocs_yml: Path) -> tuple[Path, SiteLayout] | None:
    """docs_dir and the URL settings of mkdocs.yml, read with PyYAML alone; None when it needs MkDocs.

    `generate` needs only these three values. MkDocs' load_config imports the theme,
    every plugin and Markdown extension (a third of a second here, as much as the
    drawing of one plot). Tags other than !ENV (`!!python/name:` in extension
    options, `!relative`) are read as nothing: they are not among the three values.
    An INHERIT, a file PyYAML cannot read or a value of an unexpected type goes to
    MkDocs, which reads it, or reports it as it always did.
    """
    import yaml
    from yaml_env_tag import construct_env_tag

    from generator.records import SiteLayout

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!ENV", construct_env_tag)
    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    try:
        config = yaml.load(mkdocs_yml.read_text(encoding="utf-8"), Loader=Loader)  # a SafeLoader with two tags
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(config, dict) or "INHERIT" in config:
        return None
    docs_dir = config.get("docs_dir", "docs")
    site_url = config.get("site_url") or ""
    use_directory_urls = config.get("use_directory_urls", True)
    site_name = config.get("site_name")
    if not isinstance(docs_dir, str) or not isinstance(site_url, str) or not isinstance(use_directory_urls, bool) \
            or not isinstance(site_name, str) or _traindocs_options(config.get("plugins")):
        return None  # the plugin's options (a report folder) are MkDocs' to validate
    if site_url and not site_url.endswith("/"):
        site_url += "/"
    # As MkDocs does: relative to mkdocs.yml's folder, made absolute without resolving links.
    folder = Path(os.path.abspath(mkdocs_yml.parent / docs_dir))
    return folder, SiteLayout(use_directory_urls=use_directory_urls, site_url=site_url, site_name=site_name)


def _traindocs_options(plugins: object) -> bool:
    """Whether mkdocs.yml gives the traindocs plugin options beyond `registry` (or plugins in a form not read here)."""
    if plugins is None:
        return False
    if not isinstance(plugins, list):
        return True
    for plugin in plugins:
        if isinstance(plugin, dict) and "traindocs" in plugin:
            options = plugin["traindocs"] or {}
            return not isinstance(options, dict) or bool(set(options) - {"registry"})
    return False


def _generate(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    mkdocs_yml = _mkdocs_yml(args)
    stamp = None
    if not args.no_cache and not args.fail_on:
        # Nothing changed since the last generation: say so without importing pandas or MkDocs.
        from generator import stamp as stamps
        from generator.remote import default_cache_dir

        cache_dir = args.cache_dir.expanduser().resolve() if args.cache_dir else default_cache_dir()
        stamp = stamps.stamp_file(cache_dir, args.config, mkdocs_yml, args.docs_dir)
        replayed = stamps.replay(stamp, mkdocs_yml, args.strict, started)
        if replayed is not None:
            return replayed
        stamps.forget(stamp)

    from generator.records import SiteLayout

    light = _mkdocs_settings_without_mkdocs(mkdocs_yml) if mkdocs_yml.is_file() else None
    if light is not None:
        docs_dir, layout = light
    elif mkdocs_yml.is_file():
        from generator.mkdocs_plugin import site_layout

        config = _load_mkdocs_config(mkdocs_yml, args)
        docs_dir, layout = Path(config.docs_dir), site_layout(config)
    else:
        docs_dir, layout = args.config.resolve().parent / "docs", SiteLayout()
    printed: list[str] = []
    result, status = _run_generation(args.config, args.docs_dir or docs_dir, layout, args, printed)
    if stamp is not None:
        stamps.record(stamp, result, mkdocs_yml, printed, args.strict)
    return status


def _link_cards(args: argparse.Namespace) -> int:
    from generator.cards import apply_card_update, card_path, report_section
    from generator.mkdocs_plugin import site_layout
    from generator.pipeline import build_reports
    from generator.registry import load_registry

    mkdocs_yml = _mkdocs_yml(args)
    if not mkdocs_yml.is_file():
        raise TraindocsError(f"{mkdocs_yml}: not found; link-cards reads site_url from it (pass --mkdocs-config)")
    layout = site_layout(_load_mkdocs_config(mkdocs_yml, args))
    registry = load_registry(args.config, display=args.config.name)
    reports, problems = build_reports(registry, args.config.resolve().parent, remote=_remote_options(args))
    wanted = set(args.models)
    chosen = [r for r in reports if not wanted or r.entry.slug in wanted or r.entry.name in wanted]
    unknown = wanted - {r.entry.slug for r in chosen} - {r.entry.name for r in chosen}
    if unknown:
        raise TraindocsError(f"no readable model named {', '.join(sorted(unknown))} in {args.config}")
    if args.card is not None and len(chosen) != 1:
        raise TraindocsError("--card names one model card: give exactly one MODEL with it")
    for problem in problems:
        print(f"error: {problem.message}", file=sys.stderr)
    if args.card is None:
        # A remote checkpoint's card is not ours to write (its entry points at the local cache).
        for report in [r for r in chosen if is_remote(r.entry.path)]:
            print(f"skipped: {report.entry.name}: its path is a URL; update its model card with --card, "
                  "or paste the snippet from its page", file=sys.stderr)
        chosen = [r for r in chosen if not is_remote(r.entry.path)]
    changed = 0
    for report in chosen:
        card = args.card or card_path(report.entry)
        if card.is_dir():
            card = card / "README.md"
        change = apply_card_update(card, report_section(report, layout), dry_run=args.dry_run)
        if change.diff and args.dry_run:
            sys.stdout.write(change.diff)
        changed += change.changed
        state = "unchanged" if not change.changed else ("would create" if args.dry_run and change.created
                else "would update" if args.dry_run else "created" if change.created else "updated")
        print(f"{state}: {card}", file=sys.stderr)
    print(f"traindocs: {changed} of {len(chosen)} model cards {'to change' if args.dry_run else 'changed'}",
          file=sys.stderr)
    return 1 if args.strict and problems else 0


def _build_or_serve(args: argparse.Namespace) -> int:
    from mkdocs.exceptions import MkDocsException

    from generator import engines, mkdocs_plugin
    from generator.mkdocs_plugin import site_layout

    try:
        engines.check_engine(args.engine)
    except engines.UnknownEngine as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    mkdocs_yml = _mkdocs_yml(args)
    if not mkdocs_yml.is_file():
        raise TraindocsError(f"{mkdocs_yml}: not found; create one with 'traindocs init' or pass --mkdocs-config")
    config = _load_mkdocs_config(mkdocs_yml, args)
    if args.engine == engines.ZENSICAL:
        engines.check_zensical_project(mkdocs_yml, config, getattr(args, "site_dir", None))
    serving = args.command == "serve"
    if serving:
        _check_port_free(config.dev_addr.host, config.dev_addr.port)  # before the generation: fail fast
    plugin = config.plugins.get("traindocs")
    result = None
    if plugin is not None and not plugin.config.generate:
        # A committed docs/ built where the checkpoints are not (CI): the plugin still makes the nav.
        print(f"traindocs: generate is off in {mkdocs_yml.name}; building {config.docs_dir} as it is", file=sys.stderr)
    else:
        result, status = _run_generation(args.config, Path(config.docs_dir), site_layout(config), args)
        if status:
            return status
    if args.engine == engines.ZENSICAL:
        assert result is not None  # check_zensical_project refuses generate: false
        site_dir = getattr(args, "site_dir", None)
        if serving:
            return engines.serve_with_zensical(
                mkdocs_yml, config, result, args.dev_addr, args.config.resolve(),
                regenerate=lambda: _run_generation(args.config, Path(config.docs_dir), site_layout(config), args)[0])
        engines.build_with_zensical(mkdocs_yml, config, result, site_dir.resolve() if site_dir else None, args.strict)
        return 0
    if serving:
        # The server loads mkdocs.yml again on every change: the plugin reads the registry and the
        # remote options of this command line from its module.
        mkdocs_plugin.command_line = mkdocs_plugin.CommandLine(args.config.resolve(), _remote_options(args))
        mkdocs_plugin.serving = mkdocs_plugin.ServeSession()
        print(f"traindocs: serving on {_serve_url(config)} (live reload; Ctrl+C to stop)", file=sys.stderr,
              flush=True)
        try:
            _serve(mkdocs_yml, config, result, args)
        except MkDocsException as exc:
            raise TraindocsError(f"mkdocs serve: {exc}") from None
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:  # taken between the check and MkDocs' own bind
                raise TraindocsError(_port_in_use(config.dev_addr.host, config.dev_addr.port)) from None
            raise
        finally:
            mkdocs_plugin.command_line = None
            mkdocs_plugin.serving = None
        return 0

    from mkdocs.commands.build import build

    if plugin is not None and result is not None:
        plugin.already_generated = result
    started = time.perf_counter()
    try:
        build(config)
    except MkDocsException as exc:
        raise TraindocsError(f"mkdocs build: {exc}") from None
    print(f"traindocs: site built in {config.site_dir} ({time.perf_counter() - started:.2f} s)", file=sys.stderr)
    return 0


FOLLOW_UP_DELAY = 1.0
"""Seconds between a serve build that left overviews out of date and the build that draws them: time for the
browsers to reload the pages just built (a reload takes a few tenths of a second; a slower one waits for the
follow-up build, which is correct, only later)."""


def _serve(mkdocs_yml: Path, first_config: Any, generated: GenerationResult | None,
           args: argparse.Namespace) -> None:
    """MkDocs' development server, rebuilding only what a change touched.

    After the first build, a change is built "dirty" (MkDocs renders only the pages whose source is
    newer than their HTML; traindocs rewrites only files whose bytes changed); the plugin's
    ServeSession makes up for what such a build leaves out and asks for a full build when the pages,
    the navigation, the assets or mkdocs.yml changed. File events caused by the generation's own
    writes under docs/ start no second build.
    """
    import shutil
    import tempfile

    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    from mkdocs.livereload import LiveReloadServer

    from generator import mkdocs_plugin

    session = mkdocs_plugin.serving
    assert session is not None
    site_dir = tempfile.mkdtemp(prefix="traindocs-serve-")
    serve_url = _serve_url(first_config)
    overrides = {"dev_addr": args.dev_addr} if getattr(args, "dev_addr", None) else {}

    def load() -> Any:
        loaded = load_config(config_file=str(mkdocs_yml), site_dir=site_dir, strict=args.strict, **overrides)
        loaded.site_url = serve_url
        return loaded

    def build_with(config: Any, dirty: bool, result: GenerationResult | None) -> None:
        plugin = config.plugins.get("traindocs")
        if plugin is not None and result is not None:
            plugin.already_generated = result
        session.dirty = dirty
        try:
            build(config, serve_url=serve_url, dirty=dirty)
        finally:
            if plugin is not None:
                plugin.already_generated = None

    def builder(config: Any = None, result: GenerationResult | None = None) -> None:
        started = time.perf_counter()
        dirty = session.can_build_dirty()
        session.generated = session.files = session.built_structure = None
        try:
            try:
                build_with(config if config is not None else load(), dirty, result)
            except mkdocs_plugin.FullBuildNeeded:
                # The pages or the navigation changed: every page shows them. The generation is done.
                dirty = False
                build_with(load(), False, session.generated)
            session.build_finished(site_dir)
        except BaseException:
            session.forget()
            raise
        mkdocs_plugin.log.info(f"{'changed pages' if dirty else 'site'} built in {time.perf_counter() - started:.2f} s")
        if session.overdue:
            # The pages are out; the overviews follow in one more build. Not at once: MkDocs holds every
            # request while a build is under way, and the browsers reloading now would wait for that one too.
            timer = threading.Timer(FOLLOW_UP_DELAY, build_again)
            timer.daemon = True
            timer.start()

    def build_again() -> None:
        """Ask the server for one more build, as a changed file does (MkDocs 1.6 has no public call for it)."""
        with server._rebuild_cond:
            server._want_rebuild = True
            server._rebuild_cond.notify_all()

    dirty_notice = _DropDirtyNotice()
    build_logger = logging.getLogger("mkdocs.commands.build")
    build_logger.addFilter(dirty_notice)
    config = load()
    config.plugins.on_startup(command="serve", dirty=False)
    host, port = config.dev_addr
    server = LiveReloadServer(builder=builder, host=host, port=port, root=site_dir,
                              mount_path=urlsplit(serve_url).path)
    server.observer = _FilteredObserver(server.observer, session)  # type: ignore[assignment]

    def error_page(code: int) -> bytes | None:
        page = Path(site_dir, f"{code}.html")
        return page.read_bytes() if code in (404, 500) and page.is_file() else None

    server.error_handler = error_page
    session.generation_finished(Path(config.docs_dir), generated)  # the command line's generation
    try:
        builder(config, generated)
        # The first change would otherwise wait ~1 s for matplotlib to load: this process has drawn nothing yet
        # (the command line's generation drew in workers, or had nothing to draw).
        threading.Thread(target=_load_plotting, name="traindocs-load-matplotlib", daemon=True).start()
        server.watch(config.docs_dir)
        if config.config_file_path:
            server.watch(config.config_file_path)
        server = config.plugins.on_serve(server, config=config, builder=builder)
        for item in config.watch:
            server.watch(item)
        try:
            server.serve()
        except KeyboardInterrupt:
            pass
        finally:
            server.shutdown()
    finally:
        config.plugins.on_shutdown()
        build_logger.removeFilter(dirty_notice)
        shutil.rmtree(site_dir, ignore_errors=True)


def _load_plotting() -> None:
    import generator.plots  # noqa: F401  (matplotlib and its fonts, loaded once for the whole session)


class _DropDirtyNotice(logging.Filter):
    """MkDocs warns on every dirty build that navigation may be inaccurate; traindocs serve checks it
    (see ServeSession), and the warning would fail `--strict`."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("A 'dirty' build is being performed")


class _FilteredObserver:
    """The server's file watcher, with the generation's own writes under docs/ left out (they would
    start a second build, and a browser's reload waits for it)."""

    def __init__(self, observer: Any, session: Any) -> None:
        self._observer = observer
        self._session = session

    def schedule(self, handler: Any, path: str, recursive: bool = False, **kwargs: Any) -> Any:
        forward = handler.on_any_event
        handler.on_any_event = lambda event: self._session.filter_event(event, forward)
        return self._observer.schedule(handler, path, recursive=recursive, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._observer, name)


def _port_in_use(host: str, port: int) -> str:
    return (f"cannot serve on {host}:{port}: port {port} is in use (another server?); stop it, "
            f"or pick another port with --dev-addr {host}:PORT")


def _check_port_free(host: str, port: int) -> None:
    """Refuse a busy address in one line, before anything is generated (MkDocs would raise from its thread)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As the server will bind: a port left in TIME_WAIT by the last run is free, a listening one is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise TraindocsError(_port_in_use(host, port)) from None
            raise TraindocsError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None


def _serve_url(config: Any) -> str:
    """Where `mkdocs serve` serves: its address, under the path of the configured site_url."""
    host, port = config.dev_addr.host, config.dev_addr.port
    shown_host = f"[{host}]" if ":" in host else host
    return f"http://{shown_host}:{port}{urlsplit(config.site_url or '/').path}"


def _configure_mkdocs_logging(debug: bool) -> None:
    """Show MkDocs' warnings and errors as one line each, like ours."""
    # Material prints a multi-line banner about MkDocs 2 on every build; the
    # site also builds with Zensical, so it is noise for traindocs users.
    os.environ.setdefault("NO_MKDOCS_2_WARNING", "1")
    logger = logging.getLogger("mkdocs")
    if any(getattr(h, "_traindocs", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s" if not debug else "%(name)s %(levelname)s: %(message)s"))
    # Errors in mkdocs.yml are printed once, as traindocs' error line naming the file (see _ConfigErrors).
    handler.addFilter(lambda record: not (record.name == "mkdocs.config" and record.levelno >= logging.ERROR))
    handler._traindocs = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    logger.propagate = False

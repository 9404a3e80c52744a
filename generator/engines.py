"""Build engines: MkDocs (the default) or Zensical, for `traindocs build/serve --engine`.

MkDocs runs the traindocs plugin, which sets the navigation, the extra scripts and the
page-title filter. Zensical runs no MkDocs plugin: it reads mkdocs.yml, skips plugins it
does not know, and renders with its own templates. So for Zensical, traindocs generates
docs/ first and hands Zensical what the plugin would have set, in a config file of its
own beside mkdocs.yml (`ZENSICAL_CONFIG`) that inherits the user's one (`INHERIT:`, which
Zensical reads like MkDocs) and adds the navigation and the scripts. The user's
mkdocs.yml is never written; the file is removed after the build.

Importing this module is cheap (no MkDocs, no Zensical): the CLI checks the engine name
and whether Zensical is installed before it generates anything.
"""

from __future__ import annotations

import html
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from generator.errors import TraindocsError

if TYPE_CHECKING:
    from generator.pipeline import GenerationResult
    from generator.records import SiteLayout

MKDOCS = "mkdocs"
ZENSICAL = "zensical"
ENGINES = (MKDOCS, ZENSICAL)
DEFAULT_ENGINE = MKDOCS

ZENSICAL_CONFIG = ".traindocs-zensical.yml"
"""The config file handed to Zensical, beside mkdocs.yml: Zensical resolves docs_dir and
site_dir against the folder of the file it is given, so it must sit where mkdocs.yml does."""
_CONFIG_HEADER = "# Written by `traindocs build --engine zensical` for this build only; removed after it.\n"

INSTALL_HINT = "pip install 'traindocs[zensical]'"

CLASSIC_VARIANT = "classic"

TITLE_OVERRIDE = """\
{#- traindocs: page titles are user text (a model's name). The theme writes
    `page.title | striptags` into <title>, and striptags turns the escaped heading
    back into markup; escaping its result again keeps a name like
    `</title><script>` as text (the MkDocs plugin does the same with its filter). -#}
{% extends "base.html" %}
{% block htmltitle %}
{%- if page.title and not page.is_homepage and not (page.meta and page.meta.title) -%}
<title>{{ page.title | striptags | e }} - {{ config.site_name }}</title>
{%- else -%}
{{ super() }}
{%- endif -%}
{% endblock %}
"""
"""`main.html` of the theme overrides traindocs gives Zensical (its `theme.custom_dir`)."""


def check_engine(name: str) -> None:
    """Raise a one-line error for an engine traindocs does not know or cannot find."""
    if name not in ENGINES:
        raise UnknownEngine(f"--engine {name}: unknown build engine; choose one of {', '.join(ENGINES)}")
    if name == ZENSICAL and importlib.util.find_spec("zensical") is None:
        raise TraindocsError(f"--engine zensical: Zensical is not installed; install it with: {INSTALL_HINT}")


class UnknownEngine(TraindocsError):
    """A wrong --engine value: a usage error (exit status 2)."""


@dataclass(frozen=True)
class SiteAssets:
    """The static files the generated pages need on every page, as paths under docs/."""

    scripts: tuple[str, ...]
    stylesheets: tuple[str, ...]


def site_assets(report_files: Iterable[str], layout: SiteLayout | None = None) -> SiteAssets:
    """The scripts and stylesheets among the report's files (paths under docs/) in its assets
    folder, in a stable order.

    Read from what the generation wrote (or the manifest lists), so a new static file reaches
    both engines without being named here.
    """
    from generator.pages import ASSETS_DIR

    folder = f"{layout.folder}/{ASSETS_DIR}/" if layout is not None and layout.folder else f"{ASSETS_DIR}/"
    # Vendored libraries (minified: uPlot) load before the scripts of ours that use them.
    assets = sorted((path for path in set(report_files) if path.startswith(folder)),
                    key=lambda path: (".min." not in path, path))
    return SiteAssets(tuple(p for p in assets if p.endswith(".js")), tuple(p for p in assets if p.endswith(".css")))


def generated_files(result: GenerationResult) -> set[str]:
    """Every file of the report a generation made or kept, as paths under docs/."""
    return {*result.written, *result.unchanged, *result.refused}


def zensical_settings(mkdocs_config: Any, nav: list[Any] | None, assets: SiteAssets,
                      site_dir: Path | None, overrides_dir: Path) -> dict[str, Any]:
    """The settings traindocs adds on top of the user's mkdocs.yml for a Zensical build.

    `mkdocs_config` is mkdocs.yml as MkDocs loaded it: what the user set there stays (a
    hand-written nav wins; a script already listed is not listed twice, since Zensical's
    INHERIT appends lists). `overrides_dir` holds TITLE_OVERRIDE.
    """
    theme = {"name": mkdocs_config.theme.name, "custom_dir": str(overrides_dir)}
    if mkdocs_config.theme.get("variant") is None:
        # Zensical's own look ("modern") differs from Material's; "classic" is Material's, so switching
        # engines keeps the site's look. `theme: variant: modern` in mkdocs.yml chooses Zensical's.
        theme["variant"] = CLASSIC_VARIANT
    settings: dict[str, Any] = {"theme": theme}
    # The site's title is text: the theme prints site_name unescaped (the MkDocs plugin escapes it too).
    settings["site_name"] = html.escape(str(mkdocs_config.site_name or ""), quote=False)
    if site_dir is not None:
        settings["site_dir"] = str(site_dir)
    if mkdocs_config.nav is None and nav is not None:
        settings["nav"] = nav
    listed_scripts = {str(script) for script in mkdocs_config.extra_javascript}
    scripts = [script for script in assets.scripts if script not in listed_scripts]
    if scripts:
        settings["extra_javascript"] = scripts
    listed_styles = {str(style) for style in mkdocs_config.extra_css}
    styles = [style for style in assets.stylesheets if style not in listed_styles]
    if styles:
        settings["extra_css"] = styles
    return settings


def zensical_config_text(mkdocs_yml: Path, settings: dict[str, Any]) -> str:
    """The YAML of ZENSICAL_CONFIG: inherit mkdocs.yml, then traindocs' settings.

    Each value is written as JSON, which is YAML: titles and paths are data, never YAML
    syntax (a phase named `*x` or `!ENV` stays a string).
    """
    lines = [_CONFIG_HEADER, f"INHERIT: {json.dumps(mkdocs_yml.name)}\n"]
    lines += [f"{key}: {json.dumps(value, ensure_ascii=False)}\n" for key, value in settings.items()]
    return "".join(lines)


@contextmanager
def zensical_config(mkdocs_yml: Path, settings: dict[str, Any]) -> Iterator[Path]:
    """Write ZENSICAL_CONFIG beside mkdocs.yml for the duration of the block; remove it after."""
    path = mkdocs_yml.parent / ZENSICAL_CONFIG
    if path.exists() and not path.read_text(encoding="utf-8", errors="replace").startswith(_CONFIG_HEADER):
        raise TraindocsError(f"{path}: exists and was not written by traindocs; move it away to build with Zensical")
    write_zensical_config(path, mkdocs_yml, settings)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def write_zensical_config(path: Path, mkdocs_yml: Path, settings: dict[str, Any]) -> bool:
    """Write the config file if its text changed (Zensical's server rebuilds when it does); whether it did."""
    text = zensical_config_text(mkdocs_yml, settings)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
    return True


GLIGHTBOX_DIR = "assets/traindocs-zensical"
"""Where the overrides put GLightbox's files (copied, with its licence, from mkdocs-glightbox)."""
GLIGHTBOX_FILES = ("glightbox.min.js", "glightbox.min.css", "LICENSE.md")


@dataclass(frozen=True)
class ThemeOverrides:
    """A theme folder for Zensical (`theme.custom_dir`)."""

    folder: Path
    assets: SiteAssets
    """Files in `folder` that every page loads, before the generator's own."""


@contextmanager
def theme_overrides(mkdocs_config: Any) -> Iterator[ThemeOverrides]:
    """A temporary theme folder for Zensical: TITLE_OVERRIDE as main.html and, with the glightbox
    plugin, GLightbox itself.

    Zensical's theme fetches GLightbox from unpkg.com when the page has not loaded it: the site
    would ask a third party for it, and zooming a plot would fail offline (the MkDocs build
    serves it from the site). Zensical copies a theme folder's other files into the site.
    """
    with tempfile.TemporaryDirectory(prefix="traindocs-zensical-") as folder:
        root = Path(folder)
        (root / "main.html").write_text(TITLE_OVERRIDE, encoding="utf-8")
        scripts: list[str] = []
        stylesheets: list[str] = []
        source = _glightbox_source() if "glightbox" in mkdocs_config.plugins else None
        if source is not None:
            (root / GLIGHTBOX_DIR).mkdir(parents=True)
            for name in GLIGHTBOX_FILES:
                shutil.copyfile(source / name, root / GLIGHTBOX_DIR / name)
            scripts.append(f"{GLIGHTBOX_DIR}/glightbox.min.js")
            stylesheets.append(f"{GLIGHTBOX_DIR}/glightbox.min.css")
        yield ThemeOverrides(root, SiteAssets(tuple(scripts), tuple(stylesheets)))


def _glightbox_source() -> Path | None:
    """The folder of GLightbox's files in the installed mkdocs-glightbox, if complete."""
    spec = importlib.util.find_spec("mkdocs_glightbox")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "glightbox"
    return folder if all((folder / name).is_file() for name in GLIGHTBOX_FILES) else None


def check_zensical_project(mkdocs_yml: Path, mkdocs_config: Any, site_dir: Path | None) -> None:
    """What Zensical cannot do for this project, said before generating."""
    plugin = mkdocs_config.plugins.get("traindocs") if mkdocs_config.plugins else None
    if plugin is not None and (plugin.config.folder or not plugin.config.generate):
        option = "folder" if plugin.config.folder else "generate: false"
        raise TraindocsError(f"{mkdocs_yml}: plugins.traindocs.{option}: not supported with --engine zensical yet "
                             "(the report would lose its nav section); use --engine mkdocs")
    if getattr(mkdocs_config.theme, "custom_dir", None):
        raise TraindocsError(f"{mkdocs_yml}: theme.custom_dir: traindocs builds with Zensical only without custom "
                             "theme overrides (it sets its own, to escape page titles); use --engine mkdocs")
    if site_dir is None:
        return
    root = mkdocs_yml.resolve().parent
    if not site_dir.resolve().is_relative_to(root):
        raise TraindocsError(f"--site-dir {site_dir}: Zensical builds only into a folder inside the project "
                             f"({root}); choose one there, or build with --engine mkdocs")


def _zensical_command(command: str, config_file: Path, options: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "zensical", command, "--config-file", str(config_file), *options]


def zensical_build(config_file: Path, strict: bool) -> list[str]:
    """Run `zensical build`; returns what it reported (one line each), raises when it failed."""
    done = subprocess.run(_zensical_command("build", config_file, ["--strict"] if strict else []),
                          cwd=config_file.parent, capture_output=True, text=True, check=False)
    lines = [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    if done.returncode != 0:
        reason = next((line for line in reversed(lines) if line.lower().startswith(("error", "aborted"))),
                      lines[-1] if lines else f"exit status {done.returncode}")
        raise TraindocsError(f"zensical build: {reason}")
    return lines


def zensical_serve(config_file: Path, dev_addr: str | None, poll: Callable[[], None],
                   interval: float = 1.0) -> int:
    """Run `zensical serve` until it stops or the user interrupts; call `poll` every `interval` seconds.

    Zensical rebuilds when a file under docs/ or the config file changes; `poll` is how
    traindocs regenerates docs/ when the registry or a checkpoint changes.
    """
    options = ["--dev-addr", dev_addr] if dev_addr else []
    server = subprocess.Popen(_zensical_command("serve", config_file, options), cwd=config_file.parent)
    # Stopped by a service manager or `timeout`: still stop the server and remove the config file.
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        while server.poll() is None:
            time.sleep(interval)
            poll()
    except KeyboardInterrupt:
        pass
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        signal.signal(signal.SIGTERM, previous)
    return server.returncode or 0


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _settings(mkdocs_config: Any, result: GenerationResult, site_dir: Path | None,
              overrides: ThemeOverrides) -> dict[str, Any]:
    from generator.navigation import build_nav

    generated = site_assets(generated_files(result))
    assets = SiteAssets(overrides.assets.scripts + generated.scripts,
                        overrides.assets.stylesheets + generated.stylesheets)
    return zensical_settings(mkdocs_config, build_nav(result, Path(mkdocs_config.docs_dir)), assets,
                             site_dir, overrides.folder)


def build_with_zensical(mkdocs_yml: Path, mkdocs_config: Any, result: GenerationResult, site_dir: Path | None,
                        strict: bool) -> None:
    """`zensical build` of the docs/ that `result` generated, with traindocs' navigation and scripts."""
    started = time.perf_counter()
    with theme_overrides(mkdocs_config) as overrides, \
            zensical_config(mkdocs_yml.resolve(), _settings(mkdocs_config, result, site_dir, overrides)) as config_file:
        for line in zensical_build(config_file, strict):
            if not line.startswith(("Build started", "Build finished", "No issues found")):
                print(f"zensical: {line}", file=sys.stderr)
    print(f"traindocs: site built with Zensical in {site_dir or mkdocs_config.site_dir} "
          f"({time.perf_counter() - started:.2f} s)", file=sys.stderr)


def serve_with_zensical(mkdocs_yml: Path, mkdocs_config: Any, result: GenerationResult, dev_addr: str | None,
                        registry_file: Path, regenerate: Callable[[], GenerationResult]) -> int:
    """`zensical serve`; when the registry or a registered checkpoint changes, generate docs/ again.

    Zensical then rebuilds the pages that changed; a new model or phase rewrites the
    navigation in the config file, which Zensical also watches.
    """
    from generator.pipeline import watched_files

    def stamps() -> dict[Path, float]:
        found: dict[Path, float] = {}
        for path in watched_files(registry_file):
            try:
                found[path] = path.stat().st_mtime
            except OSError:
                found[path] = -1.0
        return found

    mkdocs_yml = mkdocs_yml.resolve()
    seen = stamps()

    with theme_overrides(mkdocs_config) as overrides, \
            zensical_config(mkdocs_yml, _settings(mkdocs_config, result, None, overrides)) as config_file:
        def poll() -> None:
            nonlocal seen
            now = stamps()
            if now == seen:
                return
            seen = now
            try:
                regenerated = regenerate()
            except TraindocsError as exc:  # a registry being edited: keep serving the last good pages
                print(f"error: {exc}", file=sys.stderr)
                return
            write_zensical_config(config_file, mkdocs_yml, _settings(mkdocs_config, regenerated, None, overrides))

        return zensical_serve(config_file, dev_addr, poll)

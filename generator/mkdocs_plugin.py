"""MkDocs glue: `mkdocs build` and `mkdocs serve` regenerate the pages.

Enabled in mkdocs.yml as `plugins: [search, traindocs]`. All logic lives in
`generator.site`; this only connects it to MkDocs' events.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from markupsafe import Markup, escape
from mkdocs.config import config_options
from mkdocs.config.base import Config
from mkdocs.exceptions import PluginError
from mkdocs.plugins import BasePlugin

from generator import navigation
from generator.engines import site_assets
from generator.errors import TraindocsError
from generator.ownership import report_folder
from generator.records import SiteLayout
from generator.registry import load_registry
from generator.remote import RemoteOptions, options_from_env
from generator.site import GenerationResult, default_jobs, generate, watched_files

log = logging.getLogger("mkdocs.plugins.traindocs")


@dataclass(frozen=True)
class CommandLine:
    """What `traindocs serve` was told: its registry and remote options win over mkdocs.yml and the environment."""

    registry: Path
    remote: RemoteOptions


command_line: CommandLine | None = None
"""Set by `traindocs serve` while it serves: MkDocs loads mkdocs.yml, and so a new plugin, on every
change, and each one reads the command line's options from here (no environment variables)."""


def site_layout(config: Any) -> SiteLayout:
    """URL settings and title of a loaded MkDocs config, and the report's folder from the traindocs
    plugin's options.

    The CLI and the plugin both take the layout from here: mkdocs.yml is the one place the folder is set.
    """
    site_url = configured_site_url(config)
    if site_url and not site_url.endswith("/"):
        site_url += "/"
    plugin = config.plugins.get("traindocs") if config.plugins else None
    folder = plugin.config.folder if isinstance(plugin, TraindocsPlugin) else ""
    name = config.site_name
    site_name = name.unescape() if isinstance(name, Markup) else str(name or "")
    return SiteLayout(use_directory_urls=bool(config.use_directory_urls), site_url=site_url, folder=folder,
                      site_name=site_name)


def configured_site_url(config: Any) -> str:
    """`site_url` as mkdocs.yml sets it.

    `mkdocs serve` replaces `config.site_url` with its own address (http://127.0.0.1:8000/) before any
    plugin runs: generated pages must not carry that into docs/ (the permalinks, the model-card snippet),
    so while serving the value is read from mkdocs.yml again."""
    site_url = str(config.site_url or "")
    dev_addr = getattr(config, "dev_addr", None)
    serving = dev_addr is not None and urlsplit(site_url).netloc in (f"{dev_addr.host}:{dev_addr.port}",
                                                                    f"[{dev_addr.host}]:{dev_addr.port}")
    if not serving or not getattr(config, "config_file_path", None):
        return site_url
    from mkdocs.utils.yaml import yaml_load  # the loader of mkdocs.yml: !ENV, INHERIT

    with open(config.config_file_path, encoding="utf-8") as file:
        written = yaml_load(file)
    value = written.get("site_url") if isinstance(written, dict) else None
    return value if isinstance(value, str) else ""


def inert_striptags(value: Any) -> Markup:
    """Jinja's `striptags`, with the text it returns escaped again.

    Jinja's own filter removes tags and then *unescapes* entities: Material writes
    `{{ page.title | striptags }}` into `<title>`, so a page heading holding the
    (escaped) text `</title><script>` came out as markup. This one returns the
    same text as escaped HTML (a `Markup`, so a following `| e` leaves it alone).
    """
    if hasattr(value, "__html__"):
        value = value.__html__()
    return escape(Markup(str(value)).striptags())


class FolderOption(config_options.Type[str]):
    """A folder under docs/, checked when mkdocs.yml is loaded: a bad one is one line naming the option."""

    def __init__(self) -> None:
        super().__init__(str, default="")

    def run_validation(self, value: object) -> str:
        try:
            return report_folder(super().run_validation(value))
        except ValueError as exc:
            raise config_options.ValidationError(str(exc)) from None


class TraindocsConfig(Config):
    registry = config_options.Type(str, default="checkpoints.yaml")
    """The registry, relative to mkdocs.yml."""
    folder = FolderOption()
    """Where under docs/ the report goes ('' = docs/ itself): e.g. 'reports' in an existing site, whose
    own pages and nav traindocs then leaves alone."""
    nav_section = config_options.Type(str, default=navigation.DEFAULT_SECTION)
    """With `folder`: the title of the nav section that holds the report."""
    generate = config_options.Type(bool, default=True)
    """False: build docs/ as it is (a committed report, checkpoints not reachable); the nav is still made.
    In mkdocs.yml as `generate: !ENV [TRAINDOCS_GENERATE, true]`, a CI job can turn it off."""


class TraindocsPlugin(BasePlugin[TraindocsConfig]):
    """Generate docs/ from the registry before MkDocs collects the files."""

    def __init__(self) -> None:
        super().__init__()
        self.already_generated: GenerationResult | None = None
        """Set by the traindocs CLI when it has just generated (no second pass)."""
        self.report: navigation.ReportPages | None = None
        """This build's report (generated now, or as docs/ holds it), for the nav."""

    def registry_file(self, config: Any) -> Path:
        """The registry: `traindocs serve --config FILE`'s, else `registry` relative to mkdocs.yml."""
        if command_line is not None:
            return command_line.registry
        return Path(config.config_file_path).resolve().parent / self.config.registry

    def on_config(self, config: Any) -> Any:
        layout = site_layout(config)
        if self.config.generate:
            result = self.already_generated or self._generate(config, layout)
            report = navigation.ReportPages.generated(result)
        else:
            try:
                registry = load_registry(self.registry_file(config), display=self.config.registry)
            except TraindocsError as exc:
                raise PluginError(str(exc)) from None
            report = navigation.ReportPages.on_disk(registry, Path(config.docs_dir), layout)
        self.report = report
        if not layout.folder:
            if config.nav is None:
                config.nav = navigation.build_nav(report, Path(config.docs_dir), layout)
        elif config.nav is not None:
            config.nav = navigation.with_report_section(config.nav, report, layout, self.config.nav_section)
        # else: on_files adds the section to MkDocs' default nav, which needs the list of files.
        assets = site_assets(report.owned, layout)
        listed_scripts = [str(script) for script in config.extra_javascript]
        config.extra_javascript.extend(script for script in assets.scripts if script not in listed_scripts)
        config.extra_css.extend(style for style in assets.stylesheets if style not in config.extra_css)
        # The site's title is text, as in the index heading: the theme prints site_name unescaped.
        config.site_name = escape(config.site_name or "")
        return config

    def _generate(self, config: Any, layout: SiteLayout) -> GenerationResult:
        try:
            result = generate(self.registry_file(config), Path(config.docs_dir), layout, jobs=default_jobs(),
                              remote=command_line.remote if command_line is not None else options_from_env())
        except TraindocsError as exc:
            raise PluginError(str(exc)) from None
        for problem in result.problems:
            log.warning(problem.message)
        for warning in result.warnings():
            log.info(warning)
        for refusal in result.refusals():
            log.error(refusal)
        return result

    def on_files(self, files: Any, config: Any) -> Any:
        layout = site_layout(config)
        if layout.folder and config.nav is None and self.report is not None:
            from mkdocs.structure.files import file_sort_key

            user_pages = [file.src_uri for file in sorted(files.documentation_pages(), key=file_sort_key)
                          if file.inclusion.is_in_nav()]
            config.nav = navigation.default_nav_with_report(user_pages, self.report, layout,
                                                            self.config.nav_section)
        return files

    def on_env(self, env: Any, config: Any, files: Any) -> Any:
        # Page titles are user text (a model's name): see inert_striptags.
        env.filters["striptags"] = inert_striptags
        return env

    def on_serve(self, server: Any, config: Any, builder: Any) -> Any:
        # Reload when the registry or a registered trainer_state.json changes;
        # unchanged outputs are not rewritten, so this cannot loop.
        for path in watched_files(self.registry_file(config)):
            server.watch(str(path))
        return server

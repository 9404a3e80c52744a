"""MkDocs glue: `mkdocs build` and `mkdocs serve` regenerate the pages.

Enabled in mkdocs.yml as `plugins: [search, traindocs]`. The generation lives in
`generator.site`; this connects it to MkDocs' events. Under `traindocs serve`,
ServeSession lets a change rebuild only the pages it touched.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
import jinja2.bccache
from markupsafe import Markup, escape
from mkdocs.config import config_options
from mkdocs.config.base import Config
from mkdocs.exceptions import PluginError
from mkdocs.plugins import BasePlugin
from mkdocs.structure.files import InclusionLevel

from generator import navigation
from generator.engines import site_assets
from generator.errors import TraindocsError
from generator.ownership import LOCK_FILE, MANIFEST, report_folder
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


class FullBuildNeeded(Exception):
    """Raised by the plugin in a dirty rebuild whose site structure changed: the server builds it all again."""


@dataclass(frozen=True)
class PageState:
    """What a page's own source gives it, kept for pages that a dirty rebuild does not read again."""

    title: str | None
    meta: dict[str, Any]
    anchors: frozenset[str] | None


_TEMPORARY = ".*.traindocs-*.tmp"
"""How generator.files.write_atomic names its temporaries."""


@dataclass
class ServeSession:
    """What `traindocs serve` keeps from one build to the next, so that a change rebuilds only what it changed.

    MkDocs' dirty build renders only the pages whose source is newer than their HTML (traindocs rewrites a
    file only when its bytes change). What such a build would get wrong is handled here: the pages it does
    not read get their title, metadata and anchors from the last build (the navigation of the rebuilt
    pages shows them); when the navigation, the set of files, the assets or mkdocs.yml differ from the
    last build, the plugin raises FullBuildNeeded and the server builds everything; the search index,
    which a dirty build writes for the rebuilt pages only, is completed with the other pages' entries.
    """

    dirty: bool = False
    """Whether the build under way is a dirty one (set by the server's builder)."""
    pages: dict[str, PageState] = field(default_factory=dict)
    """Every documentation page of the last complete build, by its path under docs/."""
    structure: str | None = None
    """The last complete build's navigation, files, assets and mkdocs.yml, as one digest."""
    search: list[tuple[str, list[Any]]] | None = None
    """The last complete build's search entries, grouped by page URL in page order."""
    nav: Any = None
    """The navigation of the build under way (from on_nav)."""
    files: Any = None
    """The files of the build under way (from on_env)."""
    built_structure: str | None = None
    """The structure of the build under way."""
    rebuilt: list[str] = field(default_factory=list)
    """URLs of the pages rendered by the build under way."""
    generated: GenerationResult | None = None
    """The generation of the build under way (a FullBuildNeeded build reuses it)."""
    own_files: dict[str, tuple[int, int] | None] = field(default_factory=dict)
    """Absolute path -> (mtime_ns, size) of the files the last generation left under docs/ (None: removed)."""
    docs_dir: str = ""
    generating: bool = False
    deferred: list[tuple[Any, Callable[[Any], None]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    bytecode: Any = None
    """A Jinja bytecode cache shared by the builds: the theme's templates are compiled once."""
    overdue: bool = False
    """The last generation left overviews out of date to publish the pages sooner (`generate`'s `defer`):
    the server builds once more a moment later (cli.FOLLOW_UP_DELAY), and that build's generation draws them."""

    def can_build_dirty(self) -> bool:
        return self.structure is not None and self.search is not None

    def forget(self) -> None:
        """After a failed build: the next one builds everything."""
        self.structure = None
        self.files = None
        self.search = None
        self.pages = {}

    # ------------------------------------------------------------- file events

    def generation_started(self) -> None:
        with self.lock:
            self.generating = True

    def generation_finished(self, docs_dir: Path, result: GenerationResult | None) -> None:
        """Remember what the generation left under docs/: its own writes start no rebuild."""
        own: dict[str, tuple[int, int] | None] = {}
        if result is not None:
            for relative in (*result.written, *result.unchanged, *result.deferred):
                path = os.path.abspath(docs_dir / relative)
                own[path] = _stat(path)
            for relative in result.removed:
                own[os.path.abspath(docs_dir / relative)] = None
        with self.lock:
            self.docs_dir = os.path.abspath(docs_dir)
            if result is not None:
                self.own_files = own
            self.generating = False
            deferred, self.deferred = self.deferred, []
        for event, forward in deferred:
            if not self._is_own(event):
                forward(event)

    def filter_event(self, event: Any, forward: Callable[[Any], None]) -> None:
        """Pass a file event on to the server unless it is one of the generation's own writes."""
        if self._is_own(event):
            return
        with self.lock:
            if self.generating and all(self._may_be_own(path) for path in _event_paths(event)):
                self.deferred.append((event, forward))  # decided when the generation has finished
                return
        forward(event)

    def _is_own(self, event: Any) -> bool:
        return all(self._own_path(path) for path in _event_paths(event))

    def _own_path(self, path: str) -> bool:
        if self._fixed_own(path):
            return True
        own = self.own_files
        return path in own and own[path] == _stat(path)

    def _may_be_own(self, path: str) -> bool:
        return self._fixed_own(path) or path in self.own_files

    def _fixed_own(self, path: str) -> bool:
        """The manifest, the lock and write_atomic's temporaries: only a generation writes them."""
        if not self.docs_dir or not path.startswith(self.docs_dir + os.sep):
            return False
        name = os.path.basename(path)
        return (fnmatch.fnmatchcase(name, _TEMPORARY)
                or (os.path.dirname(path) == self.docs_dir and name in (MANIFEST, LOCK_FILE)))

    # ---------------------------------------------------------------- builds

    def structure_of(self, config: Any, files: Any, nav: Any) -> str:
        """A digest of what every page's HTML shares: the navigation (titles, URLs, metadata), the list
        of files, the extra assets, the site name and mkdocs.yml itself."""
        digest = hashlib.sha256()
        path = getattr(config, "config_file_path", None)
        if path and os.path.isfile(path):
            with open(path, "rb") as stream:
                digest.update(stream.read())
        parts = [
            sorted((file.src_uri, str(file.inclusion)) for file in files),
            _nav_shape(nav.items if nav is not None else ()),
            [str(item) for item in config.extra_css],
            [str(item) for item in config.extra_javascript],
            str(config.site_name),
        ]
        digest.update(repr(parts).encode("utf-8", "surrogatepass"))
        return digest.hexdigest()

    def outdate_written(self, files: Any) -> None:
        """A dirty build redoes a file when its source is newer than its output: make sure of that for
        every file this generation wrote (on a file system that keeps mtimes in whole seconds, a page
        written in the second its last output was would be left out)."""
        result = self.generated
        if result is None:
            return
        for relative in result.written:
            file = files.get_file_from_path(relative)
            if file is not None and file.abs_dest_path and os.path.isfile(file.abs_dest_path):
                os.remove(file.abs_dest_path)

    def build_finished(self, site_dir: str) -> None:
        """After a build that succeeded: what the next dirty build starts from."""
        if self.files is None or self.built_structure is None:
            self.forget()  # the traindocs plugin did not run: no dirty builds
            return
        self.remember_pages(self.files)
        self.complete_search_index(site_dir, self.dirty)
        self.structure = self.built_structure

    def restore_unread_pages(self, files: Any) -> None:
        """Give the pages a dirty build did not read what they had in the last build."""
        for file in files.documentation_pages(inclusion=InclusionLevel.is_in_serve):
            page = file.page
            if page is None or page.markdown is not None:
                continue
            state = self.pages.get(file.src_uri)
            if state is None:
                continue
            page.title = state.title
            page.meta = dict(state.meta)
            page.present_anchor_ids = set(state.anchors) if state.anchors is not None else None

    def remember_pages(self, files: Any) -> None:
        pages = {}
        for file in files.documentation_pages(inclusion=InclusionLevel.is_in_serve):
            page = file.page
            if page is None:
                continue
            anchors = page.present_anchor_ids
            pages[file.src_uri] = PageState(title=page.title, meta=dict(page.meta or {}),
                                            anchors=frozenset(anchors) if anchors is not None else None)
        self.pages = pages

    def complete_search_index(self, site_dir: str, dirty: bool) -> None:
        """After a build: keep the search entries by page; after a dirty one, put back the entries of
        the pages it did not render (it wrote the rendered pages' entries only)."""
        path = os.path.join(site_dir, "search", "search_index.json")
        try:
            with open(path, encoding="utf-8") as stream:
                index = json.load(stream)
        except (OSError, ValueError):
            self.search = []  # no search plugin (or no index): nothing to complete
            return
        if not isinstance(index, dict) or not isinstance(index.get("docs"), list):
            self.search = []
            return
        groups: dict[str, list[Any]] = {}
        for entry in index["docs"]:
            location = entry.get("location", "") if isinstance(entry, dict) else ""
            groups.setdefault(str(location).split("#", 1)[0], []).append(entry)
        if not dirty or self.search is None:
            self.search = list(groups.items())
            return
        rebuilt = set(self.rebuilt)
        merged = [(url, groups.pop(url, []) if url in rebuilt else entries) for url, entries in self.search]
        merged += list(groups.items())
        self.search = merged
        index["docs"] = [entry for _, entries in merged for entry in entries]
        with open(path, "w", encoding="utf-8") as stream:
            json.dump(index, stream, separators=(",", ":"), default=str)


class _MemoryBytecodeCache(jinja2.BytecodeCache):
    """Jinja's compiled templates kept in memory between the server's builds (a template whose source
    changed is compiled again: Jinja checks each one's checksum)."""

    def __init__(self) -> None:
        self.stored: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        code = self.stored.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self.stored[bucket.key] = bucket.bytecode_to_string()


def _stat(path: str) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size


def _event_paths(event: Any) -> list[str]:
    paths = [os.path.abspath(os.fsdecode(event.src_path))]
    dest = getattr(event, "dest_path", "")
    if dest:
        paths.append(os.path.abspath(os.fsdecode(dest)))
    return paths


def _nav_shape(items: Any) -> list[Any]:
    """The navigation as the theme shows it on every page: sections, pages (title, URL, metadata) and links."""
    from mkdocs.structure.pages import Page

    shape: list[Any] = []
    for item in items or ():
        if isinstance(item, Page):
            shape.append(("page", item.title, item.url, sorted((str(k), repr(v)) for k, v in (item.meta or {}).items())))
        elif getattr(item, "children", None) is not None:
            shape.append(("section", item.title, _nav_shape(item.children)))
        else:
            shape.append(("link", getattr(item, "title", None), getattr(item, "url", None)))
    return shape


serving: ServeSession | None = None
"""Set by `traindocs serve` while it serves (see ServeSession)."""


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
            if serving is not None:
                serving.generated = result
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
        session = serving
        if session is not None:
            session.generation_started()
        result = None
        try:
            # While serving, a change is published before the overviews of many runs are redrawn (seconds
            # with hundreds of runs); the build that follows draws them (ServeSession.overdue).
            defer = session is not None and not session.overdue
            result = generate(self.registry_file(config), Path(config.docs_dir), layout, jobs=default_jobs(),
                              remote=command_line.remote if command_line is not None else options_from_env(),
                              defer=defer)
            if session is not None:
                session.overdue = bool(result.deferred)
                if result.deferred:
                    log.info(f"{len(result.deferred)} overview files left for the next build")
        except TraindocsError as exc:
            raise PluginError(str(exc)) from None
        finally:
            if session is not None:
                session.generation_finished(Path(config.docs_dir), result)
        for problem in result.problems:
            log.warning(problem.message)
        for warning in result.warnings():
            log.info(warning)
        for refusal in result.refusals():
            log.error(refusal)
        return result

    def on_files(self, files: Any, config: Any) -> Any:
        if serving is not None and serving.dirty:
            serving.outdate_written(files)
        layout = site_layout(config)
        if layout.folder and config.nav is None and self.report is not None:
            from mkdocs.structure.files import file_sort_key

            user_pages = [file.src_uri for file in sorted(files.documentation_pages(), key=file_sort_key)
                          if file.inclusion.is_in_nav()]
            config.nav = navigation.default_nav_with_report(user_pages, self.report, layout,
                                                            self.config.nav_section)
        return files

    def on_nav(self, nav: Any, config: Any, files: Any) -> Any:
        if serving is not None:
            serving.nav = nav
            serving.rebuilt = []
        return nav

    def on_env(self, env: Any, config: Any, files: Any) -> Any:
        # Page titles are user text (a model's name): see inert_striptags.
        env.filters["striptags"] = inert_striptags
        session = serving
        if session is not None:
            if session.bytecode is None:
                session.bytecode = _MemoryBytecodeCache()
            env.bytecode_cache = session.bytecode
            if session.dirty:
                session.restore_unread_pages(files)
            structure = session.structure_of(config, files, session.nav)
            if session.dirty and structure != session.structure:
                raise FullBuildNeeded()
            session.files = files
            session.built_structure = structure
        return env

    def on_page_context(self, context: Any, page: Any, config: Any, nav: Any) -> Any:
        if serving is not None:
            serving.rebuilt.append(page.url)
        return context

    def on_serve(self, server: Any, config: Any, builder: Any) -> Any:
        # Reload when the registry or a registered trainer_state.json changes;
        # unchanged outputs are not rewritten, so this cannot loop.
        for path in watched_files(self.registry_file(config)):
            server.watch(str(path))
        return server

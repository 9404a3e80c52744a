"""`mkdocs serve` and `traindocs serve`: edits of the registry or of a trainer_state.json show on reload,
without a rebuild loop; `traindocs serve` rebuilds only the pages a change touched, and the whole site when
the pages or the navigation changed."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a live server rebuilding the example site


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode("utf-8")


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


class Server:
    """`mkdocs serve` (or `traindocs serve`, with traindocs=True) of a project on a free port."""

    def __init__(self, project: Path, traindocs: bool = False, env: dict[str, str] | None = None,
                 extra: list[str] | None = None) -> None:
        self.url = f"http://127.0.0.1:{free_port()}/"
        self.lines: list[str] = []
        address = self.url[len("http://"):-1]
        command = ([sys.executable, "-m", "generator", "serve", "-a", address,
                    "--config", str(project / "checkpoints.yaml")] if traindocs else
                   [sys.executable, "-m", "mkdocs", "serve", "--livereload", "-a", address,
                    "-f", str(project / "mkdocs.yml")]) + (extra or [])
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "NO_MKDOCS_2_WARNING": "1", **(env or {})},
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip())

    def builds(self) -> int:
        return sum("Building documentation" in line for line in self.lines)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.reader.join(timeout=10)
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture
def server(example_project: Path) -> Iterator[Server]:
    running = Server(example_project)
    try:
        wait_until(lambda: "Remote Training Loss Analysis" in fetch(running.url), 60, "the first build")
        yield running
    finally:
        running.stop()


def settle(server: Server, seconds: float = 60) -> int:
    """Wait until no build has started for 3 s; returns the number of builds."""
    deadline = time.monotonic() + seconds
    count = -1
    while count != server.builds():
        if time.monotonic() > deadline:
            raise AssertionError(f"a rebuild loop: builds kept starting for {seconds} s")
        count = server.builds()
        time.sleep(3)
    return count


def test_registry_edit_shows_on_reload_without_looping(server: Server, example_project: Path) -> None:
    before = settle(server)
    registry = example_project / "checkpoints.yaml"
    registry.write_text(registry.read_text().replace("  intro: >-\n", "  intro: >-\n    Renamed report.\n"))
    wait_until(lambda: "Renamed report" in fetch(server.url), 60, "the new intro")
    after = settle(server)
    # One rebuild for the edit; MkDocs may coalesce or add one for the pages it
    # sees rewritten, but it must not keep going.
    assert 1 <= after - before <= 2, server.lines[-20:]
    time.sleep(4)
    assert server.builds() == after, "a rebuild loop: builds kept starting with no edit"


def test_trainer_state_edit_shows_on_reload(server: Server, example_project: Path) -> None:
    settle(server)
    state = example_project / "examples/phi-3-mini-phase2-reasoning/checkpoint-199/trainer_state.json"
    document = json.loads(state.read_text())
    train_rows = [row for row in document["log_history"] if "loss" in row]
    train_rows[-1]["loss"] = 0.1234
    state.write_text(json.dumps(document, indent=2))
    wait_until(lambda: "0.1234" in fetch(server.url), 60, "the new end loss on the index")


def _generated_text(docs: Path) -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in sorted(docs.rglob("*.md")))


@pytest.mark.parametrize("traindocs", [True, False], ids=["traindocs serve", "mkdocs serve"])
@pytest.mark.parametrize("site_url", ["https://example.org/report/", ""], ids=["site_url", "no site_url"])
def test_serve_keeps_its_own_address_out_of_docs(example_project: Path, traindocs: bool, site_url: str) -> None:
    """MkDocs' serve sets site_url to its own address: the permalinks and the model-card snippet written into
    docs/ must still carry the configured site_url (or a placeholder), never http://127.0.0.1:PORT/."""
    running = Server(example_project, traindocs=traindocs, env={"TRAINDOCS_SITE_URL": site_url})
    try:
        served = running.url + ("report/" if site_url else "")  # MkDocs serves under site_url's path
        wait_until(lambda: "Remote Training Loss Analysis" in fetch(served), 60, "the site")
        settle(running)
        if traindocs:
            assert f"traindocs: serving on {served} " in "\n".join(running.lines)
    finally:
        running.stop()
    text = _generated_text(example_project / "docs")
    assert "127.0.0.1" not in text and "localhost" not in text
    if site_url:
        assert f"Permalink: <{site_url}models/qwen-7b/>" in text
        assert f"({site_url}models/qwen-7b/badge.svg)]({site_url}models/qwen-7b/)" in text
    else:
        assert "Permalink:" not in text and "(<site_url>models/qwen-7b/)" in text


def test_traindocs_serve_prints_where_it_serves(example_project: Path) -> None:
    running = Server(example_project, traindocs=True)
    try:
        wait_until(lambda: any(line.startswith("traindocs: serving on ") for line in running.lines), 60,
                   "the address line")
        wait_until(lambda: "Remote Training Loss Analysis" in fetch(running.url), 60, "the first build")
        line = next(line for line in running.lines if line.startswith("traindocs: serving on "))
        assert line.split()[3] == running.url
    finally:
        running.stop()


def test_busy_port_is_one_line_naming_it(example_project: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "generator", "serve", "-a", f"127.0.0.1:{port}",
             "--config", str(example_project / "checkpoints.yaml")],
            capture_output=True, text=True, timeout=120, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and f"port {port} is in use" in lines[0]
    assert "Traceback" not in done.stderr and "bug" not in done.stderr
    assert not (example_project / "docs" / "index.md").exists()  # refused before generating anything


# ------------------------------------------------ `traindocs serve` rebuilds only what a change touched


class Browser:
    """A model page of a running `traindocs serve` open in Chromium; MkDocs' live reload refreshes it."""

    def __init__(self, url: str) -> None:
        from browser_support import CHROMIUM, CHROMIUM_ARGS
        from playwright.sync_api import sync_playwright

        self.playwright = sync_playwright().start()
        self.browser = self.playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        self.page = self.browser.new_page()
        self.page.goto(url, timeout=60_000)

    def wait_for_text(self, selector: str, text: str, seconds: float = 120) -> None:
        """Until `selector`'s text holds `text` (its whole text: a collapsed nav section counts)."""
        self.page.wait_for_function(
            "([selector, text]) => { const node = document.querySelector(selector); "
            "return node !== null && node.textContent.includes(text); }",
            arg=[selector, text], timeout=seconds * 1000, polling=100)

    def close(self) -> None:
        self.browser.close()
        self.playwright.stop()


def traindocs_builds(server: Server) -> list[str]:
    """The server's build lines (with --debug): 'site built in' (full) or 'changed pages built in' (dirty)."""
    return [line for line in server.lines if "traindocs" in line and " built in " in line
            and ("site built" in line or "changed pages built" in line)]


def search_locations(server: Server) -> set[str]:
    index = json.loads(fetch(server.url + "search/search_index.json"))
    return {entry["location"].split("#", 1)[0] for entry in index["docs"]}


@pytest.fixture
def live(example_project: Path) -> Iterator[tuple[Server, Browser]]:
    from browser_support import require_browser

    require_browser()
    running = Server(example_project, traindocs=True, extra=["--debug"])
    browser = None
    try:
        wait_until(lambda: "Remote Training Loss Analysis" in fetch(running.url), 120, "the first build")
        wait_until(lambda: len(traindocs_builds(running)) >= 1, 30, "the first build's line")
        browser = Browser(running.url + "models/phi-3-mini/")
        yield running, browser
    finally:
        if browser is not None:
            browser.close()
        running.stop()


@pytest.mark.browser
def test_traindocs_serve_shows_an_edited_trainer_state_in_the_browser(
        live: tuple[Server, Browser], example_project: Path) -> None:
    server, browser = live
    locations = search_locations(server)
    assert {"", "models/phi-3-mini/", "models/qwen-7b/", "models/gemma-2-2b/"} <= locations
    nav_before = browser.page.text_content("nav.md-nav--primary")
    state = example_project / "examples/phi-3-mini-phase2-reasoning/checkpoint-199/trainer_state.json"
    document = json.loads(state.read_text())
    [row for row in document["log_history"] if "loss" in row][-1]["loss"] = 0.1234
    state.write_text(json.dumps(document, indent=2))
    browser.wait_for_text("article", "0.1234")
    assert "0.1234" in fetch(server.url)  # the index's table too
    builds = traindocs_builds(server)
    assert "changed pages built" in builds[-1], builds  # a dirty rebuild, not the whole site
    # What the dirty build did not render is as before: the navigation on the reloaded page (titles of
    # pages it did not read) and the search entries of every page.
    assert browser.page.text_content("nav.md-nav--primary") == nav_before
    assert search_locations(server) == locations
    index = json.loads(fetch(server.url + "search/search_index.json"))
    assert any("0.1234" in entry["text"] for entry in index["docs"] if entry["location"].startswith("models/phi-3-mini/"))
    time.sleep(3)
    assert traindocs_builds(server) == builds, "the generation's own writes started another build"


@pytest.mark.browser
def test_traindocs_serve_shows_a_model_added_to_the_registry(
        live: tuple[Server, Browser], example_project: Path) -> None:
    server, browser = live
    before = len(traindocs_builds(server))
    registry = example_project / "checkpoints.yaml"
    registry.write_text(registry.read_text() + (
        "  - name: Added Model\n"
        "    slug: added-model\n"
        "    path: examples/qwen-7b-phase1-sft\n"
        "    phase: Phase 1 SFT\n"))
    browser.wait_for_text("nav.md-nav--primary", "Added Model")  # on a page that existed before
    assert "Added Model" in fetch(server.url)  # the index
    assert "Added Model" in fetch(server.url + "models/added-model/")
    assert "models/added-model/" in search_locations(server)
    # A new page: every page's navigation changed, so the whole site was built (its new files may add
    # a dirty build after it).
    assert any("site built" in line for line in traindocs_builds(server)[before:]), server.lines[-30:]


@pytest.mark.browser
def test_traindocs_serve_shows_a_renamed_model_in_every_page_navigation(
        live: tuple[Server, Browser], example_project: Path) -> None:
    """A model's nav title is its page heading: a rename rewrites only that page, but every page shows it."""
    server, browser = live
    registry = example_project / "checkpoints.yaml"
    registry.write_text(registry.read_text().replace("name: Gemma 2 2B", "name: Gemma Renamed"))
    browser.wait_for_text("nav.md-nav--primary", "Gemma Renamed")  # the open page is Phi-3 Mini's
    assert "Gemma 2 2B" not in browser.page.text_content("nav.md-nav--primary")
    assert "Gemma Renamed" in fetch(server.url + "models/qwen-7b/")


# ------------------------------------------------ many runs: the pages first, the overviews right after


def many_runs_project(root: Path, runs: int) -> Path:
    """The example project's mkdocs.yml with `runs` copies of one example checkpoint: one overview of them all."""
    from conftest import REPO

    project = root / "many"
    project.mkdir()
    shutil.copy2(REPO / "mkdocs.yml", project / "mkdocs.yml")
    entries = []
    for n in range(runs):
        shutil.copytree(REPO / "examples/phi-3-mini-phase2-reasoning", project / "runs" / f"run-{n}")
        entries.append(f"  - name: Run {n}\n    slug: run-{n}\n    path: runs/run-{n}\n")
    (project / "checkpoints.yaml").write_text("checkpoints:\n" + "".join(entries), encoding="utf-8")
    return project


def test_traindocs_serve_publishes_a_change_before_redrawing_the_overviews_of_many_runs(tmp_path: Path) -> None:
    """With more runs than OVERVIEW_IN_WORKERS the overviews take seconds: the edited model's page comes first,
    the overviews follow in the next build, and docs/ ends as a cold generation makes it."""
    from generator.plan import OVERVIEW_IN_WORKERS

    project = many_runs_project(tmp_path, OVERVIEW_IN_WORKERS + 1)
    running = Server(project, traindocs=True, extra=["--debug"])
    try:
        wait_until(lambda: "Run 3" in fetch(running.url), 120, "the first build")
        settle(running)
        overviews = sorted(p.relative_to(project / "docs").as_posix()
                           for p in (project / "docs/assets/traindocs").glob("*-curves*.png"))
        assert overviews
        state = project / "runs/run-3/checkpoint-199/trainer_state.json"
        document = json.loads(state.read_text())
        [row for row in document["log_history"] if "loss" in row][-1]["loss"] = 0.1234
        state.write_text(json.dumps(document, indent=2))
        wait_until(lambda: "0.1234" in fetch(running.url + "models/run-3/"), 120, "the new end loss")
        wait_until(lambda: any("overview files left for the next build" in line for line in running.lines), 30,
                   "the deferral's log line")
        cold = tmp_path / "cold"
        done = subprocess.run([sys.executable, "-m", "generator", "generate", "--config",
                               str(project / "checkpoints.yaml"), "--docs-dir", str(cold)],
                              capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr

        def served(path: str) -> bytes:
            with urllib.request.urlopen(running.url + path, timeout=5) as response:
                return bytes(response.read())

        wait_until(lambda: all(served(path) == (cold / path).read_bytes() for path in overviews), 120,
                   "the redrawn overviews")
        settle(running)
    finally:
        running.stop()
    docs = {p.relative_to(project / "docs").as_posix(): p.read_bytes()
            for p in (project / "docs").rglob("*") if p.is_file() and not p.name.startswith(".")}
    assert docs == {p.relative_to(cold).as_posix(): p.read_bytes()
                    for p in cold.rglob("*") if p.is_file() and not p.name.startswith(".")}

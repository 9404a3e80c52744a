"""Text from the registry and from checkpoints shows as text: no script runs, no element is injected."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from browser_support import build_site, chromium, new_page, require_browser, serve
from bs4 import BeautifulSoup

from conftest import REPO

# Each payload sets window.__pwned (or adds an element) if it ever runs as code or markup.
REGISTRY = """\
site:
  title: "<img src=x onerror=\\"window.__pwned=1\\"> Report {{ config.site_name }}"
  intro: "[click](javascript:window.__pwned=2) <script>window.__pwned=3</script> {% raw %}"
checkpoints:
  - name: "<script>window.__pwned=4</script>Evil & Co"
    slug: evil
    path: run
    phase: "<img src=y onerror=\\"window.__pwned=5\\">Phase"
    description: "{: onclick=\\"window.__pwned=6\\" } ![i](javascript:window.__pwned=7) **b** <b id=injected>x</b>"
    tags: ["<i id=injected>t</i>", "[l](javascript:window.__pwned=8)"]
"""


def hostile_project(root: Path) -> Path:
    project = root / "hostile"
    project.mkdir()
    shutil.copy2(REPO / "mkdocs.yml", project / "mkdocs.yml")
    (project / "checkpoints.yaml").write_text(REGISTRY, encoding="utf-8")
    shutil.copytree(REPO / "examples/phi-3-mini-phase2-reasoning/checkpoint-199", project / "run")
    # The checkpoint's own files are user text too: the base model comes from here.
    adapter = json.loads((project / "run/adapter_config.json").read_text())
    adapter["base_model_name_or_path"] = "<svg onload=window.__pwned=9>` <b id=injected>b</b>"
    (project / "run/adapter_config.json").write_text(json.dumps(adapter))
    return project


def test_hostile_text_is_inert_in_the_html(tmp_path: Path) -> None:
    site = build_site(hostile_project(tmp_path))
    for html_file in (site / "index.html", site / "models/evil/index.html"):
        page = BeautifulSoup(html_file.read_text(encoding="utf-8"), "html.parser")
        assert page.select("#injected") == [], html_file
        assert not [tag for tag in page.find_all(True) if any(a.startswith("on") for a in tag.attrs)], html_file
        assert not [a for a in page.select("a[href]") if a["href"].strip().lower().startswith("javascript:")]
        assert not [s for s in page.find_all("script") if "__pwned" in (s.string or "")]
        assert "Evil &amp; Co" in html_file.read_text(encoding="utf-8") or html_file.name == "index.html"


def test_hostile_text_runs_nothing_in_a_browser(tmp_path: Path) -> None:
    require_browser()
    site = build_site(hostile_project(tmp_path))
    with serve(site) as url, chromium() as browser, new_page(browser) as page:
        for path in ("", "models/evil/"):
            page.goto(url + path, wait_until="networkidle")
            for link in page.locator("article a").all():  # following a link must not run code either
                href = link.get_attribute("href") or ""
                assert not href.lower().startswith("javascript:"), href
            assert page.evaluate("window.__pwned") is None, path
            assert page.locator("#injected").count() == 0
            heading = page.locator("article h1").first.inner_text()
            if path:
                assert heading.startswith("<script>window.__pwned=4</script>Evil & Co")
        nav = page.locator("nav.md-nav--primary").inner_text()
        assert '<img src=y onerror="window.__pwned=5">Phase' in nav  # shown as text
        assert page.console_errors == []

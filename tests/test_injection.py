"""Text from the registry and from checkpoints shows as text: no script runs, no element is injected."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from browser_support import build_site, chromium, new_page, require_browser, serve
from bs4 import BeautifulSoup

from conftest import REPO

pytestmark = pytest.mark.slow  # each check reads a site built with `traindocs build --strict`

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


def titled_mkdocs_yml(project: Path, title: str) -> None:
    """The example mkdocs.yml with `title` as site_name: the site's one title (top bar, tab, index heading)."""
    _, rest = (REPO / "mkdocs.yml").read_text(encoding="utf-8").split("\n", 1)
    (project / "mkdocs.yml").write_text(f"site_name: {json.dumps(title)}\n{rest}", encoding="utf-8")


def hostile_project(root: Path) -> Path:
    project = root / "hostile"
    project.mkdir()
    titled_mkdocs_yml(project, '<img src=x onerror="window.__pwned=1"> Report {{ config.site_name }}')
    (project / "checkpoints.yaml").write_text(REGISTRY, encoding="utf-8")
    shutil.copytree(REPO / "examples/phi-3-mini-phase2-reasoning/checkpoint-199", project / "run")
    # The checkpoint's own files are user text too: the base model comes from here.
    adapter = json.loads((project / "run/adapter_config.json").read_text())
    adapter["base_model_name_or_path"] = "<svg onload=window.__pwned=9>` <b id=injected>b</b>"
    (project / "run/adapter_config.json").write_text(json.dumps(adapter))
    return project


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hostile project built once (`traindocs build --strict`), for the HTML and the browser checks."""
    return build_site(hostile_project(tmp_path_factory.mktemp("hostile")))


def test_hostile_text_is_inert_in_the_html(hostile_site: Path) -> None:
    site = hostile_site
    for html_file in (site / "index.html", site / "models/evil/index.html"):
        page = BeautifulSoup(html_file.read_text(encoding="utf-8"), "html.parser")
        assert page.select("#injected") == [], html_file
        assert not [tag for tag in page.find_all(True) if any(a.startswith("on") for a in tag.attrs)], html_file
        assert not [a for a in page.select("a[href]") if a["href"].strip().lower().startswith("javascript:")]
        assert not [s for s in page.find_all("script") if "__pwned" in (s.string or "")]
        assert "Evil &amp; Co" in html_file.read_text(encoding="utf-8") or html_file.name == "index.html"


@pytest.mark.browser
def test_hostile_text_runs_nothing_in_a_browser(hostile_site: Path) -> None:
    require_browser()
    site = hostile_site
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


# --- a corpus of payloads, each in every place a registry or checkpoint string lands ---------------
# Each one, if it ever ran or parsed as markup, would set window.__pwned, add an element with
# id "injected" or a data-pwned attribute, add a <base> or <meta http-equiv>, or navigate away.
PAYLOADS = (
    "</title><script>window.__pwned=1</script>",
    '</title><base href="http://127.0.0.2/evil/">',
    '</title><meta http-equiv="refresh" content="0;url=about:blank">',
    '"><img src=x onerror="window.__pwned=2" data-pwned=1>',
    "'><svg onload=window.__pwned=3 id=injected>",
    "[click](javascript:window.__pwned=4) <javascript:window.__pwned=4>",
    "{{ config.site_name }} {% raw %} {{ 7*7 }} {# c #}",
    "</script><script>window.__pwned=5</script>",
    '" onmouseover="window.__pwned=6" data-pwned="1',
    "<!-- --> <![CDATA[ ]]> </textarea></style></noscript><b id=injected>x</b>",
    "\u202eevil\u202c \u200b zero\u200dwidth \uff1cscript\uff1e window.__pwned=7 \uff1c/script\uff1e",
    '<iframe srcdoc="<script>parent.__pwned=8</script>" id=injected></iframe>',
    "&lt;script&gt;window.__pwned=9&lt;/script&gt; &amp;lt;b id=injected&amp;gt;",
    '<a href="javascript:window.__pwned=10" id=injected>x</a>',
    '{: onclick="window.__pwned=11" data-pwned=1 }',
    "<style>body{display:none}</style><link rel=stylesheet href=data:text/css,body{display:none}>",
    '<noscript><p title="</noscript><img src=x onerror=window.__pwned=12 id=injected>">',
    "<math><mtext><table><mglyph><style><img src=x onerror=window.__pwned=13 id=injected>",
    "`code` ``` <b id=injected>`</b>",
    "$\\invalidcmd$ \\(x\\) ${x}",
)


def corpus_project(root: Path) -> Path:
    """A project whose every user string (site, name, phase, description, tags, base model,
    metric keys) is one of PAYLOADS, one entry per payload."""
    import yaml

    from conftest import sft_rows, write_state

    project = root / "corpus"
    project.mkdir()
    titled_mkdocs_yml(project, PAYLOADS[0] + " " + PAYLOADS[1])
    entries = []
    for number, payload in enumerate(PAYLOADS):
        folder = project / f"run{number}"
        rows: list[dict[str, object]] = sft_rows([2.0 - 0.05 * i for i in range(20)])
        for row in rows:
            row[f"{payload[:60]}"] = 0.5  # an 'other metric' under a hostile key
        rows.append({"step": 200, f"eval_{payload[:60]}": 0.25, "eval_loss": 1.0})
        write_state(folder, rows)
        (folder / "adapter_config.json").write_text(
            json.dumps({"base_model_name_or_path": payload, "peft_type": payload, "target_modules": [payload]}),
            encoding="utf-8",
        )
        entries.append({
            "name": f"{payload} #{number}", "slug": f"m{number}", "path": f"run{number}",
            "phase": f"{payload} phase", "description": payload, "tags": [payload],
        })
    registry = {"site": {"title": PAYLOADS[0] + " " + PAYLOADS[1], "intro": PAYLOADS[2] + PAYLOADS[6]},
                "checkpoints": entries}
    (project / "checkpoints.yaml").write_text(yaml.safe_dump(registry, allow_unicode=True), encoding="utf-8")
    return project


def _built_pages(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


@pytest.fixture(scope="module")
def payload_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The payload project built once, for the static and the browser checks."""
    return build_site(corpus_project(tmp_path_factory.mktemp("payloads")))


def test_payload_corpus_is_inert_in_every_built_page(payload_site: Path) -> None:
    """Static check of every HTML file: one <title>, no <base>, no <meta http-equiv>, nothing injected."""
    site = payload_site
    pages = _built_pages(site)
    assert len(pages) >= len(PAYLOADS)
    for html_file in pages:
        page = BeautifulSoup(html_file.read_text(encoding="utf-8"), "html.parser")
        where = html_file.relative_to(site).as_posix()
        assert len(page.find_all("title")) == 1, where
        assert page.find_all("base") == [], where
        assert page.select("meta[http-equiv]") == [], where
        assert page.select("#injected, [data-pwned], iframe, svg[onload], math, noscript") == [], where
        assert not [tag.name for tag in page.find_all(True) if any(a.startswith("on") for a in tag.attrs)], where
        assert not [s for s in page.find_all("script") if "__pwned" in (s.string or "")], where
        assert not [a for a in page.select("[href]") if a["href"].strip().lower().startswith("javascript:")], where
        assert not [s for s in page.find_all("style") if "display:none" in (s.string or "")], where
    model = BeautifulSoup((site / "models/m0/index.html").read_text(encoding="utf-8"), "html.parser")
    assert model.title is not None and model.title.get_text().startswith(PAYLOADS[0]), model.title


@pytest.mark.browser
def test_payload_corpus_runs_nothing_in_a_browser(payload_site: Path) -> None:
    """Every built page in Chromium: no script, no injected element or attribute, no navigation,
    no <base>; the title and headings show the payload as text."""
    require_browser()
    site = payload_site
    paths = [page.relative_to(site).as_posix() for page in _built_pages(site)]
    check = """() => ({
        pwned: window.__pwned === undefined ? null : window.__pwned,
        injected: document.querySelectorAll('#injected, [data-pwned], iframe, math, noscript').length,
        handlers: [...document.querySelectorAll('*')].filter(e => [...e.attributes].some(a => a.name.startsWith('on'))).length,
        base: document.querySelectorAll('base').length,
        baseURI: document.baseURI,
        refresh: document.querySelectorAll('meta[http-equiv]').length,
        titles: document.querySelectorAll('title').length,
        title: document.title,
        hidden: getComputedStyle(document.body).display === 'none',
    })"""
    with serve(site) as url, chromium() as browser, new_page(browser) as page:
        navigations: list[str] = []
        page.on("framenavigated", lambda frame: navigations.append(frame.url))
        for path in paths:
            target = url + path
            navigations.clear()
            page.goto(target, wait_until="load")
            page.wait_for_timeout(150)  # a meta refresh of 0 s would have fired by now
            state = page.evaluate(check)
            assert page.url == target, (path, page.url)
            assert navigations == [target], (path, navigations)
            assert state["pwned"] is None, (path, state)
            assert state["injected"] == 0 and state["handlers"] == 0, (path, state)
            assert state["base"] == 0 and state["baseURI"] == target and state["refresh"] == 0, (path, state)
            assert state["titles"] == 1 and not state["hidden"], (path, state)
            for number, payload in enumerate(PAYLOADS):
                if path == f"models/m{number}/index.html":
                    assert state["title"].startswith(" ".join(payload.split())[:20]), (path, state["title"])
        # The chart legend shows every run's name as text (charts.js builds it with textContent).
        page.goto(url, wait_until="networkidle")
        page.wait_for_function("[...document.querySelectorAll('.td-chart')].every(c => c.dataset.tdState === 'drawn')")
        legend = page.evaluate("[...document.querySelectorAll('.td-chart .td-chart__name')].map(e => e.textContent)")
        names = ["step"]
        for chart in sorted((site / "assets/traindocs").glob("*-curves.chart.json")):  # in page order: one kind
            names += [series["name"] for series in json.loads(chart.read_text(encoding="utf-8"))["series"]]
        assert len(names) == len(PAYLOADS) + 1 and names[5].startswith(PAYLOADS[4])
        assert legend == names
        assert page.evaluate("window.__pwned === undefined"), "the chart legend ran a payload"
        assert page.evaluate("document.querySelectorAll('#injected, [data-pwned]').length") == 0
        # Search results and the plot zoom render user text too.
        page.goto(url + "models/m0/index.html", wait_until="load")
        page.locator("article img:visible").first.click()
        page.wait_for_timeout(300)
        page.keyboard.press("Escape")
        from playwright.sync_api import expect

        page.locator("label.md-search__icon, .md-search__input").first.click()
        # Typing before the search worker has loaded its index would be dropped.
        expect(page.locator(".md-search-result__meta")).to_have_text("Type to start searching", timeout=10_000)
        page.locator("input.md-search__input").press_sequentially("summary", delay=20)  # every model page
        expect(page.locator(".md-search-result__item").first).to_be_visible(timeout=10_000)
        assert page.evaluate("window.__pwned === undefined"), "search or lightbox ran a payload"
        assert page.evaluate("document.querySelectorAll('#injected, [data-pwned]').length") == 0

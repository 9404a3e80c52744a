"""Layout on any screen, in Chromium: no sideways page scroll, tables in their own box, one title, the index's
filter and sort, the first plot in view. On every page of a site holding the example runs and a DPO, a GRPO and
a classification run (tests/test_pages.py KIND_RUNS), at 1400x900 and 390x844, light and dark.

`scripts/screenshots.py` builds the same site for the committed screenshots.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from browser_support import build_site, chromium, require_browser, serve
from test_pages import KIND_RUNS

from conftest import REPO, copy_example_project

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREENS = {"desktop": (1400, 900), "phone": (390, 844)}
SCHEMES = ("light", "dark")
LONG_BASE_MODEL = "/mnt/shared/models/checkpoints/sentiment/roberta-large-finetuned-sst2-experiment-0042/final"
"""A local base model path as people register it: it must not blow up its index cell."""


def layout_project(root: Path) -> Path:
    """The example project plus the DPO, GRPO and classification runs of the golden kind pages."""
    project = copy_example_project(root)
    registry = project / "checkpoints.yaml"
    lines = [registry.read_text(encoding="utf-8").rstrip("\n") + "\n"]
    for seed, (slug, (name, description, make_state, step)) in enumerate(KIND_RUNS.items()):
        folder = project / "runs" / slug / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        state = make_state(random.Random(seed))
        (folder / "trainer_state.json").write_text(json.dumps(state, indent=2), encoding="utf-8")
        base = f", base_model: {LONG_BASE_MODEL}" if slug == "classification-run" else ""
        lines.append(f"  - {{name: {name}, slug: {slug}, path: runs/{slug}, phase: Phase 3 {name.split()[0]},"
                     f" description: {description}{base}}}\n")
    registry.write_text("".join(lines), encoding="utf-8")
    return project


@contextmanager
def open_page(browser: Any, url: str, scheme: str, screen: str) -> Iterator[Any]:
    """A tab at `url` in one colour scheme and screen size, loaded, recording console errors."""
    width, height = SCREENS[screen]
    context = browser.new_context(viewport={"width": width, "height": height}, color_scheme=scheme,
                                  device_scale_factor=1, is_mobile=screen == "phone", has_touch=screen == "phone")
    tab = context.new_page()
    tab.console_errors = []
    tab.on("console", lambda message: message.type == "error" and tab.console_errors.append(message.text))
    tab.on("pageerror", lambda error: tab.console_errors.append(str(error)))
    try:
        tab.goto(url, wait_until="networkidle")
        tab.wait_for_function("Array.from(document.images).every(i => i.complete)")
        yield tab
    finally:
        context.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[str]]]:
    """(base URL, every page's path) of the built layout site."""
    require_browser()
    built = build_site(layout_project(tmp_path_factory.mktemp("layout")))
    pages = sorted(str(page.parent.relative_to(built).as_posix()) + "/" for page in built.rglob("index.html")
                   if page.parent.name not in ("search", "assets"))
    with serve(built) as url:
        yield url, [("" if path == "./" else path) for path in pages]


@pytest.fixture(scope="module")
def browser(site: tuple[str, list[str]]) -> Iterator[Any]:
    with chromium() as running:
        yield running


def test_the_site_has_every_page(site: tuple[str, list[str]]) -> None:
    _, pages = site
    assert "" in pages and "methodology/" in pages
    assert {f"models/{slug}/" for slug in ("qwen-7b", "phi-3-mini", "gemma-2-2b", *KIND_RUNS)} <= set(pages)


OVERFLOW = """() => {
  const page = document.scrollingElement;
  const wide = [...document.querySelectorAll("article *")].filter(e => e.getBoundingClientRect().right > innerWidth + 1
      && !e.closest(".md-typeset__scrollwrap, table, pre, .highlight"));
  return {scrollWidth: page.scrollWidth, innerWidth: innerWidth,
          wide: wide.slice(0, 5).map(e => e.tagName + "." + e.className + ": " + e.textContent.slice(0, 60))};
}"""

TITLES = """() => ({
  tab: document.title,
  bar: document.querySelector(".md-header__topic .md-ellipsis").textContent.trim(),
  h1: document.querySelector("article h1").textContent.replace(/¶$/, "").trim(),
})"""


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("screen", list(SCREENS))
def test_no_page_scrolls_sideways_and_titles_agree(browser: Any, site: tuple[str, list[str]], screen: str,
                                                   scheme: str) -> None:
    url, pages = site
    problems = []
    for path in pages:
        with open_page(browser, url + path, scheme, screen) as page:
            layout = page.evaluate(OVERFLOW)
            if layout["scrollWidth"] > layout["innerWidth"]:
                problems.append(f"/{path}: page is {layout['scrollWidth']} px wide in {layout['innerWidth']}: "
                                f"{layout['wide']}")
            titles = page.evaluate(TITLES)
            site_name = titles["bar"]
            expected_tab = site_name if path == "" else f"{titles['h1']} - {site_name}"
            if titles["tab"] != expected_tab or (path == "" and titles["h1"] != site_name):
                problems.append(f"/{path}: titles disagree: {titles}")
            if page.console_errors:
                problems.append(f"/{path}: console errors {page.console_errors}")
    assert not problems, "\n".join(problems)


def test_wide_tables_scroll_in_their_own_box_on_a_phone(browser: Any, site: tuple[str, list[str]]) -> None:
    url, _ = site
    with open_page(browser, url + "models/dpo-run/", "light", "phone") as page:  # 9 eval columns
        boxes = page.evaluate("""() => [...document.querySelectorAll("article table")].map(table => {
            const box = table.closest(".md-typeset__scrollwrap") || table;
            return {right: box.getBoundingClientRect().right, scrollWidth: box.scrollWidth,
                    clientWidth: box.clientWidth};
        })""")
    assert boxes and all(box["right"] <= 390 for box in boxes), boxes
    assert any(box["scrollWidth"] > box["clientWidth"] for box in boxes), "no table is wider than a phone?"


def test_headers_break_only_after_underscore_or_slash(browser: Any, site: tuple[str, list[str]]) -> None:
    """Each line of a metric name in a table (headers and the eval table's names) starts after a "_" or "/"
    (or at its start): never inside a word ("eval_entr / opy")."""
    url, _ = site
    with open_page(browser, url + "models/dpo-run/", "light", "phone") as page:
        lines = page.evaluate("""() => [...document.querySelectorAll("article th code, article code.traindocs-name")]
          .map(code => {
            const range = document.createRange(), text = code.firstChild ? code.textContent : "";
            const starts = [];
            let top = null;
            const walker = document.createTreeWalker(code, NodeFilter.SHOW_TEXT);
            let offset = 0, node;
            while ((node = walker.nextNode())) {
              for (let i = 0; i < node.length; i++) {
                range.setStart(node, i); range.setEnd(node, i + 1);
                const y = Math.round(range.getBoundingClientRect().top);
                if (top === null || y > top + 2) { starts.push(offset + i); top = y; }
              }
              offset += node.length;
            }
            return {text: text, starts: starts};
        })""")
    assert lines, "the DPO page has code headers (its eval table)"
    wrapped = [line for line in lines if len(line["starts"]) > 1]
    for line in lines:
        for start in line["starts"][1:]:
            assert line["text"][start - 1] in "_/", f"{line['text']!r} breaks inside a word at {start}"
    assert wrapped, "some header wraps on a phone (else this test shows nothing)"


def test_long_base_model_stays_on_one_line_with_its_full_text(browser: Any, site: tuple[str, list[str]]) -> None:
    url, _ = site
    with open_page(browser, url, "light", "desktop") as page:
        cell = page.locator("article td code.traindocs-clip", has_text=LONG_BASE_MODEL[:20]).first
        assert cell.get_attribute("title") == LONG_BASE_MODEL
        box = cell.bounding_box()
        line_height = page.evaluate("(e) => parseFloat(getComputedStyle(e).lineHeight)", cell.element_handle())
        assert box["height"] < 2 * line_height


def test_first_plot_is_in_the_first_screen_of_each_model_page(browser: Any, site: tuple[str, list[str]]) -> None:
    url, pages = site
    late = []
    for path in [p for p in pages if p.startswith("models/")]:
        with open_page(browser, url + path, "light", "desktop") as page:
            top = page.evaluate("() => document.querySelector('article img').getBoundingClientRect().top")
            if top >= SCREENS["desktop"][1]:
                late.append(f"/{path}: first plot starts at {top:.0f} px")
    assert not late, "\n".join(late)


def _column(page: Any, table: Any, header: str) -> list[str]:
    names = [text.strip() for text in table.locator("thead th").all_inner_texts()]
    index = names.index(header)
    return [row.locator("td").nth(index).inner_text().strip() for row in table.locator("tbody tr").all()
            if row.is_visible()]


def test_index_filter_box_filters_rows(browser: Any, site: tuple[str, list[str]]) -> None:
    url, _ = site
    with open_page(browser, url, "light", "phone") as page:
        table = page.locator("article table").first
        assert table.locator("tbody tr").count() == 3
        box = page.locator(".traindocs-filter input").first
        box.fill("Reasoning")  # every word typed, anywhere in the row, any case
        assert _column(page, table, "Model") == ["Phi-3 Mini", "Gemma 2 2B"]
        assert "2 of 3 runs" in page.locator(".traindocs-filter").first.inner_text()
        box.fill("qwen2.5")
        assert _column(page, table, "Model") == ["Qwen 7B"]
        box.fill("<img src=x onerror=alert(1)>")
        assert _column(page, table, "Model") == []
        box.fill("")
        assert len(_column(page, table, "Model")) == 3
        assert page.locator("article table img").count() == 0 and page.console_errors == []


def test_index_sort_orders_numbers_and_puts_dashes_last(browser: Any, site: tuple[str, list[str]]) -> None:
    url, _ = site
    with open_page(browser, url, "light", "desktop") as page:
        table = page.locator("article table").first
        header = table.locator("thead th", has_text="End Loss")
        header.click()
        ends = [float(value) for value in _column(page, table, "End Loss")]
        assert ends == sorted(ends)
        header.click()
        assert [float(value) for value in _column(page, table, "End Loss")] == sorted(ends, reverse=True)
        runtime = table.locator("thead th", has_text="Runtime")
        runtime.click()
        assert _column(page, table, "Runtime") == ["9 min", "21 min", "3 h 2 min"]  # not as text: "21" < "3"
        assert page.console_errors == []


def test_sort_puts_missing_values_last_both_ways(browser: Any) -> None:
    """tablesort.js on a table with numbers in several notations and cells without a value."""
    require_browser()
    context = browser.new_context()
    try:
        page = context.new_page()
        rows = "".join(f"<tr><td>{name}</td><td>{value}</td></tr>" for name, value in
                       [("a", "2e-05"), ("b", "\u2013"), ("c", "0.0002"), ("d", "n/a"), ("e", "1,250"), ("f", "9.99e-05")])
        page.set_content(f"<article><table><thead><tr><th>Run</th><th>Value</th></tr></thead>"
                         f"<tbody>{rows}</tbody></table></article>")
        page.add_script_tag(path=str(Path(__file__).resolve().parent.parent / "generator/static/tablesort.js"))
        order = "() => [...document.querySelectorAll('tbody tr td:first-child')].map(c => c.textContent).join('')"
        page.locator("th", has_text="Value").click()
        assert page.evaluate(order)[:4] == "afce" and set(page.evaluate(order)[4:]) == {"b", "d"}
        page.locator("th", has_text="Value").click()
        assert page.evaluate(order)[:4] == "ecfa" and set(page.evaluate(order)[4:]) == {"b", "d"}
    finally:
        context.close()


def test_index_header_stays_in_view_in_its_box(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    """With 200 runs the table is a box of its own that scrolls under its header."""
    from conftest import sft_rows, write_state

    project = tmp_path_factory.mktemp("many") / "project"
    project.mkdir()
    entries = []
    for number in range(200):
        write_state(project / f"run{number}", sft_rows([2.0 - 0.01 * i - 0.001 * number for i in range(20)]))
        entries.append(f"  - {{name: Run {number:03d}, path: run{number}, compare_group: all}}\n")
    (project / "checkpoints.yaml").write_text("checkpoints:\n" + "".join(entries), encoding="utf-8")
    (project / "mkdocs.yml").write_text((REPO / "mkdocs.yml").read_text(encoding="utf-8"), encoding="utf-8")
    with serve(build_site(project)) as url, open_page(browser, url, "dark", "phone") as page:
        box = page.locator("article .md-typeset__scrollwrap").first
        header = box.locator("thead th").first
        before = header.bounding_box()
        box.evaluate("(element) => { element.scrollTop = 2000; }")
        assert box.evaluate("(element) => element.scrollTop") > 0, "the table is not a box that scrolls"
        after = header.bounding_box()
        assert abs(after["y"] - before["y"]) < 2, (before, after)
        first_visible = page.evaluate("""() => { const box = document.querySelector("article .md-typeset__scrollwrap");
            const top = box.getBoundingClientRect().top;
            return [...box.querySelectorAll("tbody tr")].find(r => r.getBoundingClientRect().top > top).textContent; }""")
        assert "Run 000" not in first_visible
        box_height = box.bounding_box()["height"]
        assert box_height <= SCREENS["phone"][1]
        page.locator(".traindocs-filter input").fill("run 150")  # rows holding both words, in any column
        shown = _column(page, page.locator("article table").first, "Model")
        assert "Run 150" in shown and len(shown) < 200

"""cards: the managed "Training report" block in a model card."""

from __future__ import annotations

from pathlib import Path

import markdown
import pytest
from bs4 import BeautifulSoup

from generator.cards import MARKER_END, MARKER_START, CardChange, apply_card_update, card_section, update_card
from generator.errors import TraindocsError

PAGE = "https://example.org/report/models/gemma-2b/"
BADGE = "https://example.org/report/models/gemma-2b/badge.svg"
FIGURES = [("Steps", "1200"), ("End loss", "0.8985 (step 1200)")]
FRONT_MATTER = "---\nlicense: apache-2.0\nbase_model: google/gemma-2b\ntags:\n- trl\n---\n"


def section(name: str = "gemma-2b", figures: list[tuple[str, str]] | None = None) -> str:
    return card_section(name, PAGE, BADGE, FIGURES if figures is None else figures)


def render(text: str) -> BeautifulSoup:
    return BeautifulSoup(markdown.markdown(text, extensions=["tables"]), "html.parser")


# card_section


def test_section_has_heading_badge_link_and_table() -> None:
    text = section()
    assert text.startswith(MARKER_START + "\n") and text.endswith("\n" + MARKER_END)
    assert "\n## Training report\n" in text
    assert f"[![Training report: gemma-2b]({BADGE})]({PAGE})" in text
    assert f"Loss curves and analysis: <{PAGE}>" in text
    assert "| End loss | 0.8985 (step 1200) |" in text
    html = render(text)
    link = html.find("a", href=PAGE)
    assert link is not None and link.img is not None and link.img["src"] == BADGE
    assert [td.get_text() for td in html.find_all("td")] == ["Steps", "1200", "End loss", "0.8985 (step 1200)"]


def test_section_without_figures_has_no_table() -> None:
    assert "|" not in section(figures=[])


def test_relative_page_url_gets_an_ordinary_link() -> None:
    text = card_section("m", "models/m_1/", "models/m_1/badge.svg", [])
    assert r"Loss curves and analysis: [models/m\_1/](models/m_1/)" in text
    assert render(text).find_all("a", href="models/m_1/")


@pytest.mark.parametrize(
    "name",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "evil](javascript:alert(1)) [x",
        "a | b | c",
        "*bold* _it_ `code` {#id} ![x](y) \\ &amp;",
        "line\nbreak\n\n## heading",
    ],
)
def test_user_text_cannot_break_out(name: str) -> None:
    text = section(name=name, figures=[(name, name)])
    # Still one line each: no new blocks from a line break in the name.
    assert text.count("\n") == section(figures=[("x", "y")]).count("\n")
    html = render(text)
    assert html.find("script") is None and html.find("img", onerror=True) is None
    assert html.find("strong") is None and html.find("em") is None and html.find("code") is None
    assert html.find("h2", string="heading") is None
    assert [a["href"] for a in html.find_all("a")] == [PAGE, PAGE]
    shown = " ".join(name.split())
    images = html.find_all("img")
    assert len(images) == 1 and images[0]["alt"] == f"Training report: {shown}"
    assert [td.get_text() for td in html.find_all("td")] == [shown, shown]


def test_strikethrough_and_math_are_escaped() -> None:
    # CommonMark (the Hub's dialect) unescapes any ASCII punctuation; Python-Markdown,
    # used above, does not know these two escapes, so this is checked on the text.
    text = section(name="~~gone~~ $x$", figures=[("$a$", "~b~")])
    assert r"Training report: \~\~gone\~\~ \$x\$" in text
    assert r"| \$a\$ | \~b\~ |" in text


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert`1`",
        "JavaScript:void%200",
        "javascript://example.org/%0Aalert`1`",
        "ftp://example.org/card",
        "data:text/html,hi",
        "vbscript:x",
        "file:///etc/passwd",
        "https://",
        "http:relative",
        "",
    ],
)
def test_other_schemes_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"page_url: expected an http\(s\) or relative URL"):
        card_section("m", url, BADGE, [])
    with pytest.raises(ValueError, match=r"badge_url: expected an http\(s\) or relative URL"):
        card_section("m", PAGE, url, [])


@pytest.mark.parametrize(
    "url", [" javascript:x", "javascript:alert(1)", "https://x.org/a b", "https://x.org/)x", "a>b", "x\ny", "a\x00"]
)
def test_urls_that_would_break_the_link_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"page_url: .* contains .*; percent-encode it"):
        card_section("m", url, BADGE, [])


# update_card


def test_insert_after_front_matter_and_body() -> None:
    card = FRONT_MATTER + "# gemma-2b SFT\n\nTrained with TRL.  \n"
    updated = update_card(card, section())
    assert updated.startswith(card)
    assert updated == card + "\n" + section() + "\n"


def test_insert_without_trailing_newline() -> None:
    card = FRONT_MATTER + "# gemma-2b\nno newline at the end"
    assert update_card(card, section()) == card + "\n\n" + section() + "\n"


def test_insert_after_an_existing_blank_line_adds_no_second_one() -> None:
    card = "# gemma-2b\n\n"
    assert update_card(card, section()) == card + section() + "\n"


def test_insert_into_an_empty_card() -> None:
    assert update_card("", section()) == section() + "\n"
    assert update_card("\ufeff", section()) == "\ufeff" + section() + "\n"


def test_replace_keeps_everything_around_the_block() -> None:
    before = FRONT_MATTER + "# gemma-2b  \n\nIntro.\n\n"
    after = "\n\n## Citation\n\nsee paper\n"
    card = before + section(figures=[("Steps", "10")]) + after
    updated = update_card(card, section())
    assert updated == before + section() + after
    assert "| Steps | 10 |" not in updated


def test_replace_a_block_edited_by_hand() -> None:
    card = f"# m\n{MARKER_START}\nsomebody's notes\n{MARKER_END} trailing text\n"
    assert update_card(card, section()) == f"# m\n{section()} trailing text\n"


CARDS = [
    "",
    "\ufeff",
    "no newline",
    "# m\n",
    "# m\n\n\n",
    FRONT_MATTER,
    FRONT_MATTER.rstrip("\n"),
    FRONT_MATTER + "# m\r\nmixed\nendings\r\n",
    "\ufeff# m\r\n\r\nwindows  \r\n",
    "\ufeff---\r\nlicense: mit\r\n---\r\n# m",
    f"# m\n\n{section(figures=[])}\n\nend\n",
    f"{MARKER_START}{MARKER_END}",
    "\t \n",
]


@pytest.mark.parametrize("card", CARDS)
@pytest.mark.parametrize("figures", [[], FIGURES, [("a|b", "<c>")]])
def test_update_is_idempotent_and_keeps_the_prefix(card: str, figures: list[tuple[str, str]]) -> None:
    block = section(figures=figures)
    once = update_card(card, block)
    assert update_card(once, block) == once
    assert once.count(MARKER_START) == once.count(MARKER_END) == 1
    # Text before the block is never changed.
    prefix = card.split(MARKER_START)[0]
    assert once.startswith(prefix)
    # Another section replaces the block: the text around it is the same.
    other = update_card(once, section(name="other", figures=figures))
    assert other != once
    assert update_card(other, block) == once


def test_crlf_card_gets_a_crlf_section() -> None:
    card = "---\r\nlicense: mit\r\n---\r\n# m\r\n"
    once = update_card(card, section())
    assert once.startswith(card)
    assert "\n" not in once.replace("\r\n", "")
    assert once == card + "\r\n" + section().replace("\n", "\r\n") + "\r\n"
    assert update_card(once, section()) == once


def test_crlf_block_is_replaced_with_crlf() -> None:
    card = f"# m\r\n\r\n{MARKER_START}\r\nold\r\n{MARKER_END}\r\n"
    assert update_card(card, section()) == "# m\r\n\r\n" + section().replace("\n", "\r\n") + "\r\n"


@pytest.mark.parametrize(
    ("card", "message"),
    [
        (f"# m\n{MARKER_START}\n", r"found 1 '<!-- traindocs:training-report:start -->' and 0 '.*' markers"),
        (f"# m\n{MARKER_END}\n", r"found 0 .* and 1 .* markers; expected one of each"),
        (f"{MARKER_END}\n{MARKER_START}\n", r"'<!-- traindocs:training-report:end -->' comes before '.*start -->'"),
        (f"{MARKER_START}{MARKER_END}\n{MARKER_START}{MARKER_END}\n", r"found 2 .* and 2 .* markers"),
        (f"{MARKER_START}\n{MARKER_START}\n{MARKER_END}\n", r"found 2 .* and 1 .* markers"),
    ],
)
def test_mismatched_markers_raise(card: str, message: str) -> None:
    with pytest.raises(TraindocsError, match=message):
        update_card(card, section())


def test_section_must_be_one_block() -> None:
    with pytest.raises(ValueError, match="section: expected one block"):
        update_card("# m\n", "## Training report\n")


# apply_card_update


def test_apply_writes_and_reports(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    card = (FRONT_MATTER + "# m\n").encode()
    readme.write_bytes(card)
    change = apply_card_update(readme, section(), dry_run=False)
    assert change == CardChange(path=readme, changed=True, created=False, diff=change.diff)
    data = readme.read_bytes()
    assert data.startswith(card)
    assert data == card + b"\n" + section().encode() + b"\n"
    assert change.diff.startswith(f"--- a/{readme.as_posix()}\n+++ b/{readme.as_posix()}\n@@ ")
    assert f"+{MARKER_START}\n" in change.diff

    again = apply_card_update(readme, section(), dry_run=False)
    assert again == CardChange(path=readme, changed=False, created=False, diff="")
    assert readme.read_bytes() == data


def test_unchanged_file_is_not_rewritten(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# m\n\n{section()}\n", encoding="utf-8")
    before = readme.stat()
    assert not apply_card_update(readme, section(), dry_run=False).changed
    after = readme.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_dry_run_writes_nothing_and_returns_the_diff(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_bytes(b"# m\nno newline")
    change = apply_card_update(readme, section(), dry_run=True)
    assert change.changed and not change.created
    assert readme.read_bytes() == b"# m\nno newline"
    assert "-no newline\n\\ No newline at end of file\n+no newline\n" in change.diff
    assert "+## Training report\n" in change.diff

    missing = tmp_path / "other" / "README.md"
    missing.parent.mkdir()
    change = apply_card_update(missing, section(), dry_run=True)
    assert change.changed and change.created
    assert not missing.exists()
    assert change.diff.startswith(f"--- /dev/null\n+++ b/{missing.as_posix()}\n")


def test_bom_and_crlf_survive_on_disk(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    card = "\ufeff---\r\nlicense: mit\r\n---\r\n# m  \r\n".encode()
    readme.write_bytes(card)
    apply_card_update(readme, section(), dry_run=False)
    data = readme.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf---\r\nlicense: mit\r\n---\r\n# m  \r\n")
    assert data.count(b"\xef\xbb\xbf") == 1
    assert b"\n" not in data.replace(b"\r\n", b"")


def test_missing_readme_is_created(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    change = apply_card_update(readme, section(), dry_run=False)
    assert change.created and change.changed
    assert readme.read_text(encoding="utf-8") == section() + "\n"
    assert apply_card_update(readme, section(), dry_run=False) == CardChange(readme, False, False, "")


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    readme = tmp_path / "nope" / "README.md"
    with pytest.raises(TraindocsError, match=r"nope/README\.md: its folder does not exist"):
        apply_card_update(readme, section(), dry_run=False)
    assert not readme.parent.exists()


def test_not_utf8_is_an_error_naming_the_file(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_bytes("# modèle\n".encode("latin-1"))
    with pytest.raises(TraindocsError, match=r"README\.md: not UTF-8 text \(byte 5\); save it as UTF-8"):
        apply_card_update(readme, section(), dry_run=False)
    assert readme.read_bytes() == "# modèle\n".encode("latin-1")


def test_marker_error_names_the_file(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# m\n{MARKER_START}\n", encoding="utf-8")
    with pytest.raises(TraindocsError, match=rf"^{tmp_path.as_posix()}/README\.md: found 1 .* and 0 .* markers"):
        apply_card_update(readme, section(), dry_run=False)
    assert readme.read_text(encoding="utf-8") == f"# m\n{MARKER_START}\n"

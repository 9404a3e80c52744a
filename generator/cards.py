"""A "Training report" section in a Hugging Face model card (README.md), kept between markers.

The section is the only part of the card traindocs owns: every byte outside
the markers (front matter, BOM, line endings, trailing spaces) stays as it is,
and updating twice gives the same file as updating once.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from generator.errors import TraindocsError, located
from generator.files import write_atomic
from generator.formatting import fmt_number, md_text
from generator.pages import model_asset_path, model_page_path
from generator.records import CheckpointEntry, ModelReport, SiteLayout

MARKER_START = "<!-- traindocs:training-report:start -->"
MARKER_END = "<!-- traindocs:training-report:end -->"

# Hub cards are GitHub-flavoured Markdown with math: also escape ~ (strikethrough) and $.
HUB_EXTRA_SPECIAL = "~$"
# Characters that would end or split a link destination or an autolink.
_URL_BREAKERS = frozenset("<>()\\")


@dataclass(frozen=True)
class CardChange:
    """What updating one model card did (or, in a dry run, would do)."""

    path: Path
    """The README.md."""
    changed: bool
    """Whether its bytes differ (or would differ) from before."""
    created: bool
    """Whether the file did not exist."""
    diff: str
    """Unified diff from the old to the new text; empty when unchanged."""


def _hub_text(text: str) -> str:
    return md_text(text, extra=HUB_EXTRA_SPECIAL)


def _checked_url(field: str, url: str) -> str:
    """`url` unchanged if it is http(s) or relative and cannot break the Markdown; else ValueError."""
    bad = sorted({c for c in url if c in _URL_BREAKERS or c.isspace() or not c.isprintable()})
    if bad:
        raise ValueError(f"{field}: {url!r} contains {''.join(bad)!r}; percent-encode it")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ValueError(f"{field}: {url!r} is not a URL ({exc})") from None
    if not url or (parts.scheme and (parts.scheme not in ("http", "https") or not parts.netloc)):
        raise ValueError(f"{field}: expected an http(s) or relative URL, got {url!r}")
    return url


def card_section(name: str, page_url: str, badge_url: str, figures: list[tuple[str, str]]) -> str:
    """The managed block, markers included (no newline after the end marker).

    `figures` are (label, value) rows of the table; all text is escaped, URLs
    must be http(s) or relative (ValueError otherwise).
    """
    page = _checked_url("page_url", page_url)
    badge = _checked_url("badge_url", badge_url)
    # An autolink needs a scheme; a relative address gets an ordinary link.
    shown_page = f"<{page}>" if urlsplit(page).scheme else f"[{_hub_text(page)}]({page})"
    lines = [
        MARKER_START,
        "",
        "## Training report",
        "",
        f"[![Training report: {_hub_text(name)}]({badge})]({page})",
        "",
        f"Loss curves and analysis: {shown_page}",
        "",
    ]
    if figures:
        lines += ["| Figure | Value |", "| :--- | :--- |"]
        lines += [f"| {_hub_text(label)} | {_hub_text(value)} |" for label, value in figures]
        # A blank line ends the table before the closing comment.
        lines.append("")
    lines.append(MARKER_END)
    return "\n".join(lines)


def _newline(text: str) -> str:
    """The file's line ending: CRLF when most of its lines end so, else LF."""
    crlf = text.count("\r\n")
    return "\r\n" if crlf > text.count("\n") - crlf else "\n"


def update_card(text: str, section: str) -> str:
    """`text` with the managed block replaced by `section`, or `section` appended.

    Appending keeps everything that is there and adds one blank line before the
    section. Raises TraindocsError when the markers in `text` do not form one
    pair in order (the caller adds the file name).
    """
    if not (section.startswith(MARKER_START) and section.endswith(MARKER_END)) or (
        section.count(MARKER_START) != 1 or section.count(MARKER_END) != 1
    ):
        raise ValueError("section: expected one block from the start marker to the end marker")
    starts, ends = text.count(MARKER_START), text.count(MARKER_END)
    if starts == ends == 0:
        newline = _newline(text)
        block = section.replace("\r\n", "\n").replace("\n", newline)
        if not text.lstrip("\ufeff"):
            return text + block + newline
        if not text.endswith("\n"):
            text += newline
        if not text.endswith(newline * 2):
            text += newline
        return text + block + newline
    if starts != 1 or ends != 1:
        raise TraindocsError(
            f"found {starts} '{MARKER_START}' and {ends} '{MARKER_END}' markers; expected one of each "
            "(remove the extra ones, or both, and run again)"
        )
    begin, end = text.index(MARKER_START), text.index(MARKER_END)
    if end < begin:
        raise TraindocsError(f"'{MARKER_END}' comes before '{MARKER_START}'; swap or remove them")
    end += len(MARKER_END)
    newline = _newline(text[:begin] + text[end:])
    return text[:begin] + section.replace("\r\n", "\n").replace("\n", newline) + text[end:]


def _diff(old: str, new: str, old_label: str, new_label: str) -> str:
    """A unified diff that, like git's, marks a last line without a newline."""
    out: list[str] = []
    for line in difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), old_label, new_label, lineterm="\n"
    ):
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def apply_card_update(readme: Path, section: str, dry_run: bool) -> CardChange:
    """Put `section` into the model card at `readme`; with `dry_run`, only report the change.

    A missing file is created with just the section. Errors name the file.
    """
    shown = readme.as_posix()
    try:
        data: bytes | None = readme.read_bytes()
    except FileNotFoundError:
        data = None
    except OSError as exc:
        raise TraindocsError(located(shown, "", f"cannot read: {exc.strerror or exc}")) from None
    if data is None:
        if not readme.parent.is_dir():
            raise TraindocsError(located(shown, "", "its folder does not exist"))
        old = ""
    else:
        try:
            old = data.decode("utf-8")  # not utf-8-sig: a BOM stays in the text and is written back
        except UnicodeDecodeError as exc:
            raise TraindocsError(
                located(shown, "", f"not UTF-8 text (byte {exc.start}); save it as UTF-8 and run again")
            ) from None
    try:
        new = update_card(old, section)
    except TraindocsError as exc:
        raise TraindocsError(located(shown, "", str(exc))) from None
    created = data is None
    changed = created or new != old
    diff = _diff(old, new, "/dev/null" if created else f"a/{shown}", f"b/{shown}") if changed else ""
    if changed and not dry_run:
        # Through a symlinked card to the file it points at, not over the link; but only
        # when that file is in the card's own folder (a link to ~/.bashrc is not a card).
        write_atomic(readme.resolve(), new.encode("utf-8"), inside=readme.parent)
    return CardChange(path=readme, changed=changed, created=created, diff=diff)


def card_path(entry: CheckpointEntry) -> Path:
    """The model card of a registered checkpoint: README.md in the registered
    folder (or, for a registered file, in the file's folder)."""
    folder = entry.resolved if entry.resolved.is_dir() else entry.resolved.parent
    return folder / "README.md"


def report_section(report: ModelReport, layout: SiteLayout) -> str:
    """The managed block for one model, with absolute links from `layout`."""
    if not layout.site_url:
        raise TraindocsError(
            "site_url is not set in mkdocs.yml: model cards need the published address to link to"
        )
    f = report.figures
    page = layout.absolute(layout.page_url(model_page_path(report.entry.slug)))
    badge = layout.absolute(layout.file_url(model_asset_path(report.entry.slug, "badge.svg")))
    rows = [
        ("Base model", report.base_model or "unknown"),
        ("Steps", str(f.steps)),
    ]
    label, series, last = f.headline()
    if series is not None:  # an RL run: its reward, not a loss that says nothing of progress
        rows += [(f"{label.capitalize()}, start to end (means)", f"{fmt_number(series.head_mean)} to "
                  f"{fmt_number(series.tail_mean)}"), (f"Last {label}", fmt_number(last))]
    else:
        rows += [
            ("Start loss", fmt_number(f.start_loss)),
            ("End loss", fmt_number(f.end_loss)),
            ("Convergence speed", f.convergence_label),
        ]
    return card_section(report.entry.name, page, badge, rows)

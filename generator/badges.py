"""A small flat badge (label | value) as a self-contained SVG, in the style of shields.io.

No fonts, images or scripts are referenced: the text uses the system's Verdana
(or DejaVu Sans) and the box widths come from a table of their widths at 11px,
so the badge looks the same on GitHub, the Hub and the site without a network.
The same arguments always give the same bytes.
"""

from __future__ import annotations

import hashlib
import html
import math
import re
import unicodedata

HEIGHT = 20
PADDING = 5
"""Space (px) left and right of each text."""
LABEL_COLOR = "#555"

# Advance widths in tenths of a pixel of Verdana at 11px (DejaVu Sans is close),
# grouped by width. Tenths keep the arithmetic in integers, hence deterministic.
_WIDTH_GROUPS: dict[int, str] = {
    30: "il'",
    38: "j.,",
    39: " f",
    43: "t!",
    45: ":;",
    46: "I",
    47: "r",
    50: "-/()[]|\\J",
    51: '"',
    57: "csz",
    60: "?",
    61: "L",
    63: "F",
    64: "kvxy",
    66: "aeP",
    67: "o",
    68: "bdgpqTY",
    70: "hnuE0123456789$*_`{}",
    75: "ABSVXZ",
    76: "CKR",
    80: "&U",
    82: "HN",
    85: "DG",
    87: "OQ",
    91: "w",
    92: "#+<=>^~M",
    107: "m",
    109: "W",
    110: "@",
    119: "%",
}
_CHAR_WIDTH = {char: width for width, chars in _WIDTH_GROUPS.items() for char in chars}
_AVERAGE_WIDTH = round(sum(_CHAR_WIDTH.values()) / len(_CHAR_WIDTH))
_COLOR = re.compile(r"#(?:[0-9a-fA-F]{3}){1,2}")


def text_width(text: str) -> int:
    """Width of `text` in tenths of a pixel; characters not in the table count as average."""
    return sum(_CHAR_WIDTH.get(char, _AVERAGE_WIDTH) for char in text)


def _clean(text: str) -> str:
    """One line of text that XML can carry: whitespace collapsed, control characters dropped."""
    text = " ".join(text.split())
    return "".join(
        char for char in text if unicodedata.category(char) not in ("Cc", "Cs") and char not in "\ufffe\uffff"
    )


def _is_light(color: str) -> bool:
    """Whether white text would be hard to read on `color` (#rgb or #rrggbb)."""
    digits = color[1:]
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    red, green, blue = (int(digits[i : i + 2], 16) for i in (0, 2, 4))
    # The YIQ brightness that shields.io uses for the same decision.
    return (red * 299 + green * 587 + blue * 114) / 255000 > 0.69


def badge_svg(label: str, value: str, color: str = "#0072B2") -> bytes:
    """A flat badge: `label` on grey, `value` on `color` (`#RGB` or `#RRGGBB`), as UTF-8 SVG.

    An empty label gives a value-only badge. Raises ValueError for any other colour.
    """
    if not isinstance(color, str) or not _COLOR.fullmatch(color):
        raise ValueError(f"badge colour: expected '#RGB' or '#RRGGBB', got {color!r}")
    color = color.lower()
    label, value = _clean(label), _clean(value)
    title = f"{label}: {value}" if label else value

    label_text, value_text = text_width(label), text_width(value)
    label_box = math.ceil(label_text / 10) + 2 * PADDING if label else 0
    value_box = math.ceil(value_text / 10) + 2 * PADDING
    width = label_box + value_box
    # Fixed-but-distinct ids, so two different badges inlined in one page do not share a clip path.
    uid = hashlib.sha256(f"{label}\0{value}\0{color}".encode()).hexdigest()[:8]
    dark = ("#fff", "#010101")  # text, shadow on the grey label and on dark colours
    value_fill, value_shadow = ("#333", "#ccc") if _is_light(color) else dark

    def texts(text: str, length: int, box_x: int, box_width: int, fill: str, shadow: str) -> str:
        # Drawn at ten times the size and scaled down, for sub-pixel placement.
        x = box_x * 10 + box_width * 5
        escaped = html.escape(text, quote=True)
        common = f'x="{x}" transform="scale(.1)" textLength="{length}"'
        return (
            f'<text aria-hidden="true" {common} y="150" fill="{shadow}" fill-opacity=".3">{escaped}</text>'
            f'<text aria-hidden="true" {common} y="140" fill="{fill}">{escaped}</text>'
        )

    shown = html.escape(title, quote=True)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{HEIGHT}" '
        f'role="img" aria-label="{shown}">',
        f"<title>{shown}</title>",
        f'<linearGradient id="s-{uid}" x2="0" y2="100%">'
        '<stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/>'
        "</linearGradient>",
        f'<clipPath id="r-{uid}"><rect width="{width}" height="{HEIGHT}" rx="3" fill="#fff"/></clipPath>',
        f'<g clip-path="url(#r-{uid})">'
        f'<rect width="{label_box}" height="{HEIGHT}" fill="{LABEL_COLOR}"/>'
        f'<rect x="{label_box}" width="{value_box}" height="{HEIGHT}" fill="{color}"/>'
        f'<rect width="{width}" height="{HEIGHT}" fill="url(#s-{uid})"/></g>',
        '<g text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" '
        'text-rendering="geometricPrecision" font-size="110">',
    ]
    if label:
        parts.append(texts(label, label_text, 0, label_box, *dark))
    parts.append(texts(value, value_text, label_box, value_box, value_fill, value_shadow))
    parts.append("</g></svg>\n")
    return "".join(parts).encode("utf-8")

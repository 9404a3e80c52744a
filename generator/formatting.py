"""How numbers are written on pages and in sentences (display only).

Raw values stay untouched in records and in summary.json; these helpers only
decide how many digits a reader sees.
"""

from __future__ import annotations

import html
import math


def fmt_number(value: float | None) -> str:
    """Up to 4 decimals without trailing zeros (Trainer logs loss rounded to 4).

    0.8985 -> '0.8985', 2.864 -> '2.864', 1.0762689 -> '1.0763';
    small values keep 3 significant digits instead of rounding to 0.
    """
    if value is None:
        return "n/a"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value != 0 and abs(value) < 0.001:
        return f"{value:.3g}"
    if abs(value) >= 1e9:
        return f"{value:.4g}"
    if abs(value) >= 10000:
        return f"{value:,.0f}"
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def fmt_level(value: float) -> str:
    """A threshold as written by a person: 1.0 -> '1.0', 0.75 -> '0.75'."""
    text = f"{value:g}"
    return text if any(c in text for c in ".e") or not text.lstrip("-").isdigit() else text + ".0"


def fmt_short(value: float | None) -> str:
    """Two decimals, for numbers quoted inside sentences ('2.86 vs 0.98')."""
    if value is None or not math.isfinite(value):
        return fmt_number(value)
    return f"{value:.2f}"


def fmt_percent(fraction: float | None, digits: int = 1) -> str:
    """0.9234 -> '92.3%'."""
    if fraction is None or not math.isfinite(fraction):
        return "n/a"
    if abs(fraction) >= 1e4:  # keep absurd ratios short: '1.5e+302%'
        return f"{fraction * 100:.2g}%"
    percent = fraction * 100
    text = f"{percent:.{digits}f}"
    # 99.96% is not 100%, and 0.02% is not 0%: add digits until the rounding stops claiming a round figure.
    while digits < 4 and float(text) in (100.0, -100.0, 0.0) and percent != float(text):
        digits += 1
        text = f"{percent:.{digits}f}"
    return f"{text}%"


def fmt_count(value: float | None) -> str:
    """Whole numbers with thousands separators: 1234567 -> '1,234,567'."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:,.0f}"


def fmt_duration(seconds: float | None) -> str:
    """8123.4 -> '2 h 15 min'."""
    if seconds is None or not math.isfinite(seconds):
        return "n/a"
    minutes = round(seconds / 60)
    if minutes < 1:
        return f"{seconds:.0f} s"
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def join_words(items: list[str]) -> str:
    """['a'] -> 'a'; ['a', 'b'] -> 'a and b'; ['a', 'b', 'c'] -> 'a, b and c'."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


NUMBER_WORDS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine"}


def count_words(count: int) -> str:
    """3 -> 'three', 12 -> '12'."""
    return NUMBER_WORDS.get(count, str(count))


_MD_SPECIAL = "\\`*_[]{}|#!"


def md_text(text: str, extra: str = "") -> str:
    """Plain text for one line of Markdown: no HTML, links, emphasis, table cells or
    attribute lists. `extra` escapes more characters (the Hub's Markdown also
    reads ~ as strikethrough and $ as math)."""
    table = str.maketrans({c: "\\" + c for c in _MD_SPECIAL + extra})
    return html.escape(" ".join(text.split()), quote=False).translate(table)


def md_code(text: str) -> str:
    """Inline code, or escaped text when a backtick would end the code span."""
    text = " ".join(text.split())
    if not text:
        return "n/a"
    if "`" in text:
        return md_text(text)
    return f"`{text}`"

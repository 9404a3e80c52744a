"""Which fonts draw a plot's text, and what to draw where no installed font has the glyphs.

Plots draw in DejaVu Sans (it ships with matplotlib: the same Latin, Greek and
Cyrillic glyphs on every machine). Text it cannot draw (a model named
'Qwen 7B — 日本語') is drawn from an installed font that covers it, found by
matplotlib's font manager in `FALLBACK_FAMILIES` order, then among the other
installed sans-serif families by name: matplotlib (>= 3.6) takes the list and
falls back glyph by glyph. Characters no installed font covers are replaced by
a label naming their script ('[CJK text]'), never drawn as boxes, and the
generation warns about them (`undrawable_warnings`).

Everything here depends only on the text and the installed fonts, so it gives
the same choice in the generating process (warnings, artefact keys) and in the
worker that draws. matplotlib is imported only for text that is not ASCII.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence

PRIMARY_FAMILY = "DejaVu Sans"
FALLBACK_FAMILIES = (
    "Noto Sans CJK JP",
    "Noto Sans CJK SC",
    "Noto Sans CJK TC",
    "Noto Sans CJK KR",
    "Source Han Sans",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Droid Sans Fallback",
    "Noto Sans",
)
"""Tried first, in this order, for characters DejaVu Sans lacks (Debian: fonts-noto-cjk,
fonts-wqy-microhei, fonts-droid-fallback)."""
NOT_TEXT_FONTS = re.compile(r"Last Resort|STIX|^cm|Math|Mono|Emoji|Symbol", re.IGNORECASE)
"""Installed families never used as a fallback: matplotlib's Last Resort font draws every character as
a box, math and symbol fonts map letters to other shapes, colour emoji fonts cannot be drawn by Agg."""
EAST_ASIAN = frozenset({"CJK", "HIRAGANA", "KATAKANA", "HANGUL", "BOPOMOFO", "IDEOGRAPHIC", "HALFWIDTH",
                        "FULLWIDTH", "KANGXI", "YI"})
"""First words of Unicode character names of one family of scripts: labelled 'CJK'."""


CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
"""Control characters (a tab or a bell in a name): laid out as a space, since no font has a glyph for them."""


def needs_fonts(text: str) -> bool:
    """Whether `text` may hold something DejaVu Sans does not draw (printable ASCII never does)."""
    return not (text.isascii() and text.isprintable())


@functools.cache
def _charmap(family: str) -> frozenset[int] | None:
    """The code points an installed family draws (its regular face); None when it is not installed."""
    from matplotlib import font_manager, ft2font

    faces = [font for font in font_manager.fontManager.ttflist if font.name == family]
    if not faces:
        return None
    # The face closest to what plots use (upright, normal weight), the same one on every run.
    face = min(faces, key=lambda font: (font.style != "normal", abs(_weight(font.weight) - 400), font.fname))
    try:
        return frozenset(ft2font.FT2Font(face.fname).get_charmap())
    except (OSError, RuntimeError):
        return None


def _weight(weight: object) -> int:
    from matplotlib import font_manager

    if isinstance(weight, int):
        return weight
    return int(font_manager.weight_dict.get(str(weight), 400))


@functools.cache
def _candidates() -> tuple[str, ...]:
    """Fallback families in the order they are tried: the preferred ones, then other installed sans fonts."""
    from matplotlib import font_manager

    installed = sorted({font.name for font in font_manager.fontManager.ttflist})
    others = [name for name in installed
              if "Sans" in name and not name.startswith("DejaVu") and not NOT_TEXT_FONTS.search(name)]
    return tuple(dict.fromkeys([*FALLBACK_FAMILIES, *others]))


def _drawn(character: str) -> bool:
    """Characters that need no glyph: spaces and controls are laid out, not drawn."""
    return not character.isspace() and unicodedata.category(character)[0] != "C"


@functools.cache
def _choice(characters: frozenset[str]) -> tuple[tuple[str, ...], frozenset[str], tuple[tuple[str, str], ...]]:
    """(families to draw with, characters none of them draws, (character, its stand-in) pairs) for a set
    of characters. A character no font has but whose compatibility form DejaVu Sans draws (full-width
    U+FF1C is '<') is drawn as that form: the same text, not a label."""
    primary = _charmap(PRIMARY_FAMILY) or frozenset()
    missing = {c for c in characters if _drawn(c) and ord(c) not in primary}
    families = [PRIMARY_FAMILY]
    for family in _candidates() if missing else ():
        charmap = _charmap(family)
        if charmap is None:
            continue
        covered = {c for c in missing if ord(c) in charmap}
        if covered:
            families.append(family)
            missing -= covered
        if not missing:
            break
    stand_ins = {c: unicodedata.normalize("NFKC", c) for c in missing}
    equivalent = {c: form for c, form in stand_ins.items()
                  if form != c and form and all(ord(x) in primary or not _drawn(x) for x in form)}
    return tuple(families), frozenset(missing - set(equivalent)), tuple(sorted(equivalent.items()))


def families_for(texts: Iterable[str]) -> tuple[str, ...]:
    """The font families to draw these texts with: DejaVu Sans first, then fallbacks for what it lacks."""
    characters = frozenset(c for text in texts if needs_fonts(text) for c in text)
    return _choice(characters)[0] if characters else (PRIMARY_FAMILY,)


def undrawable(text: str) -> str:
    """The characters of `text` that no installed font draws, in order of first appearance."""
    if not needs_fonts(text):
        return ""
    missing = _choice(frozenset(text))[1]
    return "".join(dict.fromkeys(c for c in text if c in missing))


def script_label(characters: str) -> str:
    """What a run of undrawable characters is replaced by: '[CJK text]', '[Thai text]', '[symbols]'."""
    scripts = []
    for character in characters:
        if not unicodedata.category(character).startswith(("L", "M", "N")):
            scripts.append("symbols")
            continue
        word = unicodedata.name(character, "").split(" ")[0]
        scripts.append("CJK" if word in EAST_ASIAN else word.capitalize() or "symbols")
    named = list(dict.fromkeys(scripts))
    if named == ["symbols"]:
        return "[symbols]"
    return "[" + "/".join(name for name in named if name != "symbols") + " text]"


def drawable(text: str) -> str:
    """`text` with characters no installed font draws replaced: by their compatibility form when DejaVu
    Sans has it, else each run by a label naming its script."""
    if not needs_fonts(text):
        return text
    text = CONTROL.sub(" ", text)
    _, missing, equivalents = _choice(frozenset(text))
    for character, form in equivalents:
        text = text.replace(character, form)
    if not missing:
        return text
    pattern = "[" + re.escape("".join(sorted(missing))) + "]+"
    return re.sub(pattern, lambda match: script_label(match.group(0)), text)


def fonts_key(texts: Sequence[str]) -> str:
    """What the drawing of these texts depends on beyond the texts: '' for ASCII, else the families
    chosen and what none draws (installing a font then redraws the plots that need it)."""
    if not any(needs_fonts(text) for text in texts):
        return ""
    characters = frozenset(c for text in texts for c in text)
    families, missing, equivalents = _choice(characters)
    return "|".join(families) + "|missing:" + "".join(sorted(missing)) + "|as:" + "".join(c for c, _ in equivalents)


def undrawable_warnings(label: str, texts: Iterable[str]) -> list[str]:
    """A warning naming the characters of `texts` (a model's name, its metric keys) no installed font
    draws, and what the plots show instead; empty when every character is drawn."""
    shown = [text for text in dict.fromkeys(texts) if undrawable(text)]
    if not shown:
        return []
    missing = "".join(dict.fromkeys(c for text in shown for c in undrawable(text)))
    example = shown[0]
    return [f"{label}: no installed font draws {missing!r} ({len(missing)} characters); the plots show "
            f"{example!r} as {drawable(example)!r}; install a font that covers them (on Debian: fonts-noto-cjk "
            "for Chinese, Japanese and Korean) and generate again"]

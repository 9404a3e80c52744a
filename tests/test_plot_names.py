"""Names in any script: drawn from a font that covers them when one is installed, a script label
otherwise (never boxes), warnings through traindocs (never raw matplotlib output), working slugs.

The machines that run this have no CJK font (Debian's fonts-noto-cjk is 57 MB to download): the
'installed' case registers a small font generated here with fontTools, and each test fixes the
fallback list so the result does not depend on the fonts of the machine.
"""

from __future__ import annotations

import functools
import logging
import warnings
from pathlib import Path

import pytest

from conftest import sft_rows, write_state
from generator import fonts, plots, workers
from generator.cli import main
from generator.colors import color_for
from generator.pipeline import generate
from generator.plan import Artefact
from generator.records import AnalysisSettings, Figures
from generator.registry import SLUG_PATTERN, slugify

CJK_NAME = "Qwen 7B — 日本語"
TEST_FAMILY = "Traindocs Test CJK"
COVERED = "日本語モデル正确性格式"


def _test_font(path: Path) -> Path:
    """A TrueType font named TEST_FAMILY with a square glyph for each character of COVERED."""
    from fontTools.fontBuilder import FontBuilder
    from fontTools.pens.ttGlyphPen import TTGlyphPen

    names = [".notdef", *(f"uni{ord(c):04X}" for c in COVERED)]
    builder = FontBuilder(1000, isTTF=True)
    builder.setupGlyphOrder(names)
    builder.setupCharacterMap({ord(c): f"uni{ord(c):04X}" for c in COVERED})
    glyphs = {}
    for name in names:
        pen = TTGlyphPen(None)
        if name != ".notdef":
            for x0, y0, x1, y1 in ((100, 0, 900, 100), (100, 700, 900, 800), (100, 0, 200, 800), (800, 0, 900, 800)):
                pen.moveTo((x0, y0))
                pen.lineTo((x0, y1))
                pen.lineTo((x1, y1))
                pen.lineTo((x1, y0))
                pen.closePath()
        glyphs[name] = pen.glyph()
    builder.setupGlyf(glyphs)
    builder.setupHorizontalMetrics({name: (1000, 100) for name in names})
    builder.setupHorizontalHeader(ascent=880, descent=-120)
    builder.setupNameTable({"familyName": TEST_FAMILY, "styleName": "Regular"})
    builder.setupOS2(sTypoAscender=880, usWinAscent=880, usWinDescent=120)
    builder.setupPost()
    builder.save(str(path))
    return path


def _reset_font_choice() -> None:
    for cached in (fonts._charmap, fonts._candidates, fonts._choice):
        cached.cache_clear()


@pytest.fixture
def no_cjk_font(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever this machine has installed: no fallback family is tried."""
    monkeypatch.setattr(fonts, "_candidates", functools.cache(lambda: ()))
    _reset_font_choice()
    yield
    _reset_font_choice()


@pytest.fixture
def cjk_font(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A font covering COVERED is installed and is the only fallback."""
    from matplotlib import font_manager

    path = _test_font(tmp_path_factory.mktemp("fonts") / "traindocs-test-cjk.ttf")
    font_manager.fontManager.addfont(str(path))
    monkeypatch.setattr(fonts, "_candidates", functools.cache(lambda: (TEST_FAMILY,)))
    _reset_font_choice()
    yield
    font_manager.fontManager.ttflist = [f for f in font_manager.fontManager.ttflist if f.name != TEST_FAMILY]
    _reset_font_choice()


def _loss_png(name: str) -> bytes:
    import pandas as pd

    train = pd.DataFrame({"step": [1, 2, 3, 4], "loss": [2.0, 1.5, 1.2, 1.0]})
    evals = pd.DataFrame({"step": [], "eval_loss": []})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a 'Glyph missing' warning fails the test
        return plots.loss_plot(name, color_for(0), train, evals, Figures(steps=4, logged_rows=4), AnalysisSettings())


# --- fonts ----------------------------------------------------------------------------------------------


def test_without_a_font_undrawable_text_becomes_a_script_label(no_cjk_font: None) -> None:
    assert fonts.undrawable(CJK_NAME) == "日本語"
    assert fonts.drawable(CJK_NAME) == "Qwen 7B — [CJK text]"
    assert fonts.drawable("日本語モデル") == "[CJK text]"
    assert fonts.drawable("Modèle Ωmega Жук") == "Modèle Ωmega Жук"  # DejaVu Sans draws these
    assert fonts.families_for([CJK_NAME]) == ("DejaVu Sans",)
    assert _loss_png(CJK_NAME) == _loss_png(CJK_NAME)  # same bytes, and no warning raised


def test_with_a_covering_font_the_name_is_drawn_from_it(cjk_font: None) -> None:
    assert fonts.undrawable(CJK_NAME) == ""
    assert fonts.families_for([CJK_NAME]) == ("DejaVu Sans", TEST_FAMILY)
    assert fonts.drawable(CJK_NAME) == CJK_NAME
    assert fonts.families_for(["plain ascii"]) == ("DejaVu Sans",)
    drawn = _loss_png(CJK_NAME)
    assert drawn == _loss_png(CJK_NAME)
    assert fonts.undrawable_warnings("checkpoints[0]", [CJK_NAME]) == []


def test_the_font_choice_is_part_of_the_plot_key(no_cjk_font: None, tmp_path_factory: pytest.TempPathFactory,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Installing a font changes the key of the plots that need it (they are redrawn), not of the others."""
    without = fonts.fonts_key([CJK_NAME, "loss"])
    assert without == "DejaVu Sans|missing:日本語|as:"
    assert fonts.fonts_key(["plain", "ascii"]) == ""
    from matplotlib import font_manager

    font_manager.fontManager.addfont(str(_test_font(tmp_path_factory.mktemp("fonts") / "test.ttf")))
    monkeypatch.setattr(fonts, "_candidates", functools.cache(lambda: (TEST_FAMILY,)))
    _reset_font_choice()
    try:
        assert fonts.fonts_key([CJK_NAME, "loss"]) == f"DejaVu Sans|{TEST_FAMILY}|missing:|as:"
    finally:
        font_manager.fontManager.ttflist = [f for f in font_manager.fontManager.ttflist if f.name != TEST_FAMILY]


def test_full_width_forms_and_controls_are_drawn_as_plain_text(no_cjk_font: None) -> None:
    """A full-width '<' (U+FF1C) is drawn as '<', a tab as a space: no label, no warning, no missing glyph."""
    name = "\uff1cscript\uff1e\tx\x07"
    assert fonts.drawable(name) == "<script> x "
    assert fonts.undrawable(name) == ""
    assert fonts.undrawable_warnings("checkpoints[0]", [name]) == []
    assert _loss_png(name)  # raises on a 'Glyph missing' warning


def test_a_label_names_the_script() -> None:
    assert fonts.script_label("日本語") == "[CJK text]"
    assert fonts.script_label("한국어") == "[CJK text]"
    assert fonts.script_label("ไทย") == "[Thai text]"
    assert fonts.script_label("\U0001F680") == "[symbols]"


# --- warnings reach the user through traindocs ----------------------------------------------------------


def _site(tmp_path: Path, names: list[str]) -> Path:
    lines = ["checkpoints:\n"]
    for n, name in enumerate(names):
        write_state(tmp_path / f"run{n}", sft_rows([2.0, 1.5, 1.2, 1.0, 0.9, 0.85]))
        lines.append(f"  - {{name: '{name}', path: run{n}}}\n")
    registry = tmp_path / "checkpoints.yaml"
    registry.write_text("".join(lines), encoding="utf-8")
    return registry


@pytest.mark.slow  # builds a site
def test_a_cjk_name_without_a_font_is_one_warning_and_fails_strict(
        no_cjk_font: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = _site(tmp_path, [CJK_NAME, "日本語モデル"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = generate(registry, tmp_path / "docs", cache=False)
    assert [r.entry.slug for r in result.reports] == ["qwen-7b-日本語", "日本語モデル"]
    font_warnings = [w for w in result.warnings() if "no installed font draws" in w]
    assert font_warnings == [
        "checkpoints[0] (Qwen 7B — 日本語): no installed font draws '日本語' (3 characters); the plots show "
        "'Qwen 7B — 日本語' as 'Qwen 7B — [CJK text]'; install a font that covers them (on Debian: "
        "fonts-noto-cjk for Chinese, Japanese and Korean) and generate again",
        "checkpoints[1] (日本語モデル): no installed font draws '日本語モデル' (6 characters); the plots show "
        "'日本語モデル' as '[CJK text]'; install a font that covers them (on Debian: fonts-noto-cjk for "
        "Chinese, Japanese and Korean) and generate again",
    ]
    assert (tmp_path / "docs/models/日本語モデル/loss.png").is_file()
    capsys.readouterr()
    # Again, from the unchanged files: the warning does not depend on a plot being redrawn.
    assert main(["generate", "--strict", "--config", str(registry), "--docs", str(tmp_path / "docs")]) == 1
    err = capsys.readouterr().err
    assert err.count("no installed font draws") == 2 and "Glyph" not in err and "UserWarning" not in err


@pytest.mark.slow  # builds a site
def test_a_cjk_name_with_a_font_builds_clean_under_strict(
        cjk_font: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = _site(tmp_path, [CJK_NAME])
    assert main(["generate", "--strict", "--config", str(registry), "--docs", str(tmp_path / "docs")]) == 0
    assert "warning" not in capsys.readouterr().err


def _warning_render() -> bytes:
    """A render that warns both ways a library does (in a worker process)."""
    warnings.warn("Glyph 26085 missing from font(s) DejaVu Sans.", UserWarning, stacklevel=1)
    logging.getLogger("matplotlib.font_manager").warning("findfont: Font family 'X' not found.")
    return b"drawn"


@pytest.mark.slow  # starts worker processes
def test_warnings_while_rendering_come_back_from_the_workers(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(workers, "RENDER_POOL_THRESHOLD", 1)
    pool = workers.WorkerPool(2)
    notes: list[str] = []
    try:
        artefacts = [Artefact(f"models/m{n}/loss.png", str(n), _warning_render, expensive=True) for n in range(3)]
        rendered = dict(workers.render_each(artefacts, pool, None, notes))
    finally:
        pool.close()
    assert pool._pool is not None  # they did run in workers
    assert set(rendered.values()) == {b"drawn"}
    assert notes == sorted(notes) and len(notes) == 6
    assert "models/m0/loss.png: while rendering: UserWarning: Glyph 26085 missing from font(s) DejaVu Sans." in notes
    assert "models/m2/loss.png: while rendering: matplotlib.font_manager: findfont: Font family 'X' not found." in notes
    assert capsys.readouterr().err == ""


def test_a_glyph_warning_from_a_real_plot_is_captured(no_cjk_font: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Were the script label ever bypassed, matplotlib's own warning would still reach the report."""
    import pandas as pd

    monkeypatch.setattr(fonts, "drawable", lambda text: text)
    train = pd.DataFrame({"step": [1, 2, 3], "loss": [2.0, 1.5, 1.0]})
    evals = pd.DataFrame({"step": [], "eval_loss": []})
    _, lines = workers.render_capturing(functools.partial(
        plots.loss_plot, CJK_NAME, color_for(0), train, evals, Figures(steps=3, logged_rows=3), AnalysisSettings()))
    assert any("Glyph" in line and "missing" in line for line in lines)


# --- slugs ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "slug"), [
    ("Qwen 7B — 日本語", "qwen-7b-日本語"),
    ("日本語モデル", "日本語モデル"),
    ("Modèle Français", "modele-francais"),
    ("\uff31\uff37\uff25\uff2e\u3000\uff17\uff22", "qwen-7b"),  # full-width letters and digits
    ("हिन्दी मॉडल", "हिन्दी-मॉडल"),  # the vowel signs stay with their letters
    ("İstanbul", "istanbul"),
    ("عربي\u200e v2", "عربي-v2"),  # a direction mark is not a separator
    ("Llama-3 (8B) v2", "llama-3-8b-v2"),
    ("🚀🚀", ""),  # still refused: nothing to make a slug from
])
def test_slugs_keep_letters_of_any_script(name: str, slug: str) -> None:
    assert slugify(name) == slug


def test_derived_slugs_stay_short_in_bytes() -> None:
    for name in ("日" * 100, "a" * 100, "é" * 100, "x " * 60):
        slug = slugify(name)
        assert 0 < len(slug.encode("utf-8")) <= 80 and not slug.endswith("-")


def test_explicit_slugs_keep_their_ascii_rule(tmp_path: Path) -> None:
    from generator.registry import load_registry

    (tmp_path / "checkpoints.yaml").write_text(
        "checkpoints:\n  - {name: 日本語モデル, path: a}\n  - {name: b, path: b, slug: 日本語}\n", encoding="utf-8")
    registry = load_registry(tmp_path / "checkpoints.yaml")
    assert [entry.slug for entry in registry.entries] == ["日本語モデル"]
    [problem] = registry.problems
    assert "slug: '日本語' is not a valid slug" in problem.message and "(e.g. 'my-model')" in problem.message
    assert not SLUG_PATTERN.match("日本語")

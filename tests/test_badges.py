"""badges: a self-contained, accessible, deterministic SVG badge."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from generator.badges import badge_svg, text_width

SVG = "{http://www.w3.org/2000/svg}"


def parse(data: bytes) -> ET.Element:
    return ET.fromstring(data.decode("utf-8"))


def texts(root: ET.Element) -> list[str]:
    return [element.text or "" for element in root.iter(f"{SVG}text")]


def test_badge_is_svg_with_title_and_accessible_name() -> None:
    root = parse(badge_svg("training report", "loss 0.8985"))
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    assert root.get("aria-label") == "training report: loss 0.8985"
    title = root.find(f"{SVG}title")
    assert title is not None and title.text == "training report: loss 0.8985"
    # Each text twice: the shadow, then the text.
    assert texts(root) == ["training report", "training report", "loss 0.8985", "loss 0.8985"]


def test_badge_is_self_contained() -> None:
    data = badge_svg("a", "b")
    root = parse(data)
    assert not [element for element in root.iter() if element.tag in (f"{SVG}script", f"{SVG}image", f"{SVG}style")]
    for attribute in (b"href", b"@import", b"url(http", b"<script"):
        assert attribute not in data


def test_colour_is_used_for_the_value_box() -> None:
    root = parse(badge_svg("eval", "0.91", "#E69F00"))
    fills = [rect.get("fill") for rect in root.iter(f"{SVG}rect")]
    assert "#e69f00" in fills
    assert "#555" in fills


@pytest.mark.parametrize(
    ("label", "value"),
    [
        ("<script>alert(1)</script>", "x"),
        ("x", "<script>alert(1)</script>"),
        ('a "quoted" & \'single\'', "<b>&amp;</b>"),
    ],
)
def test_markup_in_text_stays_text(label: str, value: str) -> None:
    data = badge_svg(label, value)
    root = parse(data)
    assert b"<script" not in data and b"<b>" not in data
    assert [element for element in root.iter() if "script" in element.tag or element.tag == f"{SVG}b"] == []
    assert texts(root)[0] == label and texts(root)[-1] == value
    assert root.get("aria-label") == f"{label}: {value}"


def test_control_characters_and_line_breaks_do_not_break_the_xml() -> None:
    root = parse(badge_svg("line\nbreak\x00", "tab\tbed\x1b"))
    assert texts(root)[0] == "line break"
    assert texts(root)[-1] == "tab bed"


def test_width_grows_with_the_text() -> None:
    widths = [int(parse(badge_svg("loss", value)).get("width", "0")) for value in ("1", "0.89", "0.8985 at step 1200")]
    assert widths == sorted(widths) and len(set(widths)) == 3
    assert text_width("WWW") > text_width("iii")
    # Characters outside the table count as average, not as nothing.
    assert text_width("損失") > text_width("")
    assert int(parse(badge_svg("loss", "損失")).get("width", "0")) > int(parse(badge_svg("loss", "")).get("width", "0"))


def test_boxes_add_up_to_the_badge_width() -> None:
    root = parse(badge_svg("training", "loss 0.8985"))
    width = int(root.get("width", "0"))
    group = root.find(f"{SVG}g")
    assert group is not None
    label_box, value_box = (int(rect.get("width", "0")) for rect in group.findall(f"{SVG}rect")[:2])
    assert label_box + value_box == width
    assert label_box > 0 and value_box > 0


def test_empty_label_gives_a_value_only_badge() -> None:
    root = parse(badge_svg("", "passing"))
    assert root.get("aria-label") == "passing"
    assert texts(root) == ["passing", "passing"]


def test_light_colours_get_dark_text() -> None:
    dark = [t.get("fill") for t in parse(badge_svg("a", "b", "#0072B2")).iter(f"{SVG}text")]
    light = [t.get("fill") for t in parse(badge_svg("a", "b", "#ffffff")).iter(f"{SVG}text")]
    assert dark[-1] == "#fff"
    assert light[-1] == "#333"
    # The label stays white on grey either way.
    assert dark[1] == light[1] == "#fff"


def test_same_arguments_give_the_same_bytes() -> None:
    first = badge_svg("training report", "loss 0.8985", "#009E73")
    assert first == badge_svg("training report", "loss 0.8985", "#009E73")
    assert first != badge_svg("training report", "loss 0.8986", "#009E73")
    assert first.endswith(b"</svg>\n")
    first.decode("utf-8")


def test_different_badges_have_different_ids() -> None:
    # Two badges inlined into one page must not share a clip path.
    def ids(data: bytes) -> set[str]:
        return {element.get("id", "") for element in parse(data).iter() if element.get("id")}

    assert ids(badge_svg("a", "short")).isdisjoint(ids(badge_svg("a", "a much longer value")))


@pytest.mark.parametrize("color", ["#fff", "#FFFFFF", "#0072b2"])
def test_valid_colours(color: str) -> None:
    assert f'fill="{color.lower()}"'.encode() in badge_svg("a", "b", color)


@pytest.mark.parametrize(
    "color",
    ["0072B2", "#0072B", "#12", "#GGGGGG", "blue", "", "#0072B2 ", "#fff;stroke:red", '#fff" onload="x', "#ffff"],
)
def test_bad_colour_raises(color: str) -> None:
    with pytest.raises(ValueError, match=r"badge colour: expected '#RGB' or '#RRGGBB'"):
        badge_svg("a", "b", color)

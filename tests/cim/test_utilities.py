"""CJJ 61 utility class table: codes, colours and flow regimes as in Appendix B."""

from __future__ import annotations

import pytest

from cim import utilities
from cim.errors import InvalidInput


def test_classes_in_appendix_b_order() -> None:
    assert utilities.utility_codes() == ("JS", "PS", "RQ", "RL", "DL", "TX", "GY", "QT")


@pytest.mark.parametrize(
    ("code", "rgb", "hex_colour"),
    [
        ("JS", (0, 255, 255), "#00FFFF"),
        ("PS", (76, 57, 38), "#4C3926"),
        ("RQ", (255, 0, 255), "#FF00FF"),
        ("RL", (255, 128, 0), "#FF8000"),
        ("DL", (255, 0, 0), "#FF0000"),
        ("TX", (0, 255, 0), "#00FF00"),
        ("GY", (0, 0, 0), "#000000"),
        ("ZH", (0, 0, 0), "#000000"),
        ("BM", (102, 0, 204), "#6600CC"),
        ("WS", (76, 57, 38), "#4C3926"),
    ],
)
def test_colours(code: str, rgb: tuple[int, int, int], hex_colour: str) -> None:
    assert utilities.colour_of(code) == rgb
    assert utilities.hex_colour_of(code) == hex_colour
    red, green, blue = rgb
    assert hex_colour == f"#{red:02X}{green:02X}{blue:02X}"


def test_resolve_codes_and_names() -> None:
    assert utilities.resolve_utility("ys") == ("PS", "YS")
    assert utilities.resolve_utility("给水") == ("JS", None)
    assert utilities.resolve_utility("天然气") == ("RQ", "TR")
    assert utilities.resolve_utility("8") == ("QT", None)
    assert utilities.utility_class("ZQ").name_zh == "热力"


def test_flow_regimes() -> None:
    assert [c for c in utilities.utility_codes() if utilities.is_gravity(c)] == ["PS"]
    assert [c for c in utilities.utility_codes() if utilities.is_pressure(c)] == [
        "JS",
        "RQ",
        "RL",
        "GY",
    ]
    assert utilities.is_cable("TX") and utilities.is_cable("LD")
    assert not utilities.is_gravity("JS")


def test_unknown_code_names_the_known_ones() -> None:
    with pytest.raises(InvalidInput, match=r"unknown CJJ 61 utility code 'XY'.*JS"):
        utilities.colour_of("XY")


def test_every_subclass_code_is_unique() -> None:
    codes = [s.code for c in utilities.utility_classes() for s in c.subclasses]
    assert len(codes) == len(set(codes))
    assert not set(codes) & set(utilities.utility_codes())

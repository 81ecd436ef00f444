"""Pipe sections: labels, sizes, areas and half-sizes (SQL), and the class name and colour.

Circular pipes have ``diameter_mm``; rectangular sections ``width_mm`` x ``height_mm``.
Half-sizes are what clearances subtract from axis distances.
"""

from __future__ import annotations

import math
from typing import TypedDict

from cim.errors import InvalidInput
from cim.nominal_sizes import nominal_dn
from cim.utilities import hex_colour_of, utility_class

# Horizontal / vertical half-size (m) of a section as SQL over the alias {t}.
HALF_WIDTH_SQL = "(COALESCE(NULLIF({t}.diameter_mm, 0), NULLIF({t}.width_mm, 0), 0) / 2000.0)"
HALF_HEIGHT_SQL = "(COALESCE(NULLIF({t}.diameter_mm, 0), NULLIF({t}.height_mm, 0), 0) / 2000.0)"


def half_width_sql(alias: str) -> str:
    return HALF_WIDTH_SQL.format(t=alias)


def half_height_sql(alias: str) -> str:
    return HALF_HEIGHT_SQL.format(t=alias)


def section_label(
    shape: str | None, diameter: float | None, width: float | None, height: float | None
) -> str:
    """``DN300`` for circular pipes, ``800x600`` for rectangular sections, ``?`` if unknown.

    Circular pipes are labelled with their nominal size (:mod:`cim.nominal_sizes`): a 12-inch
    pipe stored as 304.8 mm reads ``DN300``; the exact diameter stays in ``diameter_mm``.
    """
    if shape == "rectangular" and width and height:
        return f"{width:g}x{height:g}"
    if diameter:
        return f"DN{nominal_dn(diameter)}"
    if width and height:
        return f"{width:g}x{height:g}"
    return "?"


def section_height_m(diameter: float | None, height: float | None) -> float:
    """Vertical outer size (m); 0 when unknown."""
    return float(diameter or height or 0.0) / 1000.0


def section_area_m2(
    shape: str | None, diameter: float | None, width: float | None, height: float | None
) -> float:
    """Inner cross-section area (m2) used for water volumes; 0 when unknown."""
    if shape == "rectangular" and width and height:
        return (width / 1000.0) * (height / 1000.0)
    if diameter:
        return math.pi * (diameter / 1000.0) ** 2 / 4.0
    if width and height:
        return (width / 1000.0) * (height / 1000.0)
    return 0.0


class ClassStyle(TypedDict):
    """How a utility class is named and drawn."""

    utility_name: str
    colour: str


def class_info(utility: str | None) -> ClassStyle:
    """Name and standard CJJ 61 colour of a class code (unknown codes get grey)."""
    if not utility:
        return {"utility_name": "", "colour": "#808080"}
    try:
        cls = utility_class(utility)
        return {"utility_name": cls.name_zh, "colour": hex_colour_of(utility)}
    except InvalidInput:
        return {"utility_name": utility, "colour": "#808080"}


def round_or_none(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)

"""CJJ 61-2017 utility classes: codes, names, standard colours and flow regime, from package data.

The table lives in ``cim/data/cjj61_classes.yaml`` (Appendix B, with its source) so the importers,
the 3D Tiles writer, the API and the analyses all colour and classify pipes the same way.

Examples
--------
>>> colour_of("JS")
(0, 255, 255)
>>> resolve_utility("YS")
('PS', 'YS')
>>> is_gravity("WS"), is_pressure("RQ"), is_cable("DL")
(True, True, True)
>>> hex_colour_of("BM")
'#6600CC'
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

import yaml

from cim.errors import InvalidInput

Flow = Literal["gravity", "pressure", "cable", "mixed"]
RGB = tuple[int, int, int]


@dataclass(frozen=True)
class UtilitySubclass:
    """A CJJ 61 sub-class (小类), e.g. YS 雨水 under PS 排水."""

    code: str
    number: str
    name_zh: str
    name_en: str
    parent: str
    rgb: RGB
    hex: str


@dataclass(frozen=True)
class UtilityClass:
    """A CJJ 61 class (大类) with its standard colour and flow regime."""

    code: str
    number: int
    name_zh: str
    name_en: str
    colour_name_zh: str
    rgb: RGB
    hex: str
    flow: Flow
    subclasses: tuple[UtilitySubclass, ...]


def _rgb(value: Any) -> RGB:
    red, green, blue = (int(v) for v in value)
    return (red, green, blue)


@cache
def utility_classes() -> tuple[UtilityClass, ...]:
    """Every CJJ 61 class in Appendix B order (JS, PS, RQ, RL, DL, TX, GY, QT)."""
    text = resources.files("cim").joinpath("data/cjj61_classes.yaml").read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    classes = []
    for entry in raw["classes"]:
        rgb = _rgb(entry["rgb"])
        subclasses = tuple(
            UtilitySubclass(
                code=sub["code"],
                number=str(sub["number"]),
                name_zh=sub["name_zh"],
                name_en=sub["name_en"],
                parent=entry["code"],
                rgb=_rgb(sub["rgb"]) if "rgb" in sub else rgb,
                hex=sub.get("hex", entry["hex"]),
            )
            for sub in entry.get("subclasses", [])
        )
        classes.append(
            UtilityClass(
                code=entry["code"],
                number=int(entry["number"]),
                name_zh=entry["name_zh"],
                name_en=entry["name_en"],
                colour_name_zh=entry["colour_name_zh"],
                rgb=rgb,
                hex=entry["hex"],
                flow=entry["flow"],
                subclasses=subclasses,
            )
        )
    return tuple(classes)


@cache
def _index() -> dict[str, tuple[UtilityClass, UtilitySubclass | None]]:
    """Lookup by class/sub-class code (upper case), Chinese name, or class number."""
    index: dict[str, tuple[UtilityClass, UtilitySubclass | None]] = {}
    for cls in utility_classes():
        for sub in cls.subclasses:
            index[sub.code] = (cls, sub)
            index[sub.name_zh] = (cls, sub)
        index[cls.code] = (cls, None)
        index[cls.name_zh] = (cls, None)
        index[str(cls.number)] = (cls, None)
    return index


def utility_codes() -> tuple[str, ...]:
    """The class codes: ``('JS', 'PS', 'RQ', 'RL', 'DL', 'TX', 'GY', 'QT')``."""
    return tuple(cls.code for cls in utility_classes())


def _lookup(code: str) -> tuple[UtilityClass, UtilitySubclass | None]:
    key = code.strip()
    found = _index().get(key.upper()) or _index().get(key)
    if found is None:
        known = ", ".join(
            f"{cls.code} ({'/'.join(s.code for s in cls.subclasses)})" for cls in utility_classes()
        )
        raise InvalidInput(f"unknown CJJ 61 utility code {code!r}; known: {known}")
    return found


def resolve_utility(code: str) -> tuple[str, str | None]:
    """(class code, sub-class code or None) for a class/sub-class code or Chinese name."""
    cls, sub = _lookup(code)
    return cls.code, (sub.code if sub else None)


def utility_class(code: str) -> UtilityClass:
    """The class of a class or sub-class code (``YS`` -> PS 排水)."""
    return _lookup(code)[0]


def colour_of(code: str) -> RGB:
    """Standard RGB colour of a class or sub-class (sub-classes of QT have their own)."""
    cls, sub = _lookup(code)
    return sub.rgb if sub else cls.rgb


def hex_colour_of(code: str) -> str:
    """Standard colour as ``#RRGGBB``."""
    cls, sub = _lookup(code)
    return sub.hex if sub else cls.hex


def flow_of(code: str) -> Flow:
    """Flow regime of the class: gravity, pressure, cable or mixed."""
    return _lookup(code)[0].flow


def is_gravity(code: str) -> bool:
    """True for gravity classes (PS drainage and its sub-classes)."""
    return flow_of(code) == "gravity"


def is_pressure(code: str) -> bool:
    """True for pressurised pipes (JS, RQ, RL, GY)."""
    return flow_of(code) == "pressure"


def is_cable(code: str) -> bool:
    """True for cable classes (DL, TX)."""
    return flow_of(code) == "cable"

"""The words of cim's tables and drawings, one YAML file per language (``zh.yaml``, ``en.yaml``).

Why files: the users are Chinese planning and utility departments who pass tables on as they
are, so headers, sheet titles, value names (valve states, impact, reasons...) and the chart
strings are written once per language, beside each other, and a third language is a third file
``<code>.yaml`` with the same keys - no code changes. CJJ 61 utility class names come from
``cim/data/cjj61_classes.yaml`` (``name_zh``/``name_en``) unless the language file names them
under ``values.utility``.

Examples
--------
>>> header("zh", "cover_m"), header("en", "cover_m")
('覆土深度 (m)', 'Cover (m)')
>>> value_name("zh", "impact", "struck"), value_name("en", "utility", "JS")
('挖断', 'water supply')
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml

from cim.errors import InvalidInput
from cim.utilities import utility_classes

DEFAULT_LANGUAGE = "zh"
"""The users are Chinese departments: tables and drawings speak Chinese unless asked."""

Cell = str | int | float | bool | None
"""A table cell: what the JSON answer holds (numbers stay numbers)."""


@cache
def languages() -> tuple[str, ...]:
    """The language codes there is a file for, sorted (``('en', 'zh')``)."""
    folder = resources.files("cim.services.tables")
    return tuple(sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml")))


def check_language(lang: str) -> str:
    """``lang`` when there is a file for it; InvalidInput naming the known ones otherwise."""
    if lang not in languages():
        raise InvalidInput(f"unknown language {lang!r}; known: {', '.join(languages())}")
    return lang


@cache
def strings(lang: str) -> dict[str, Any]:
    """The parsed language file (headers, sheets, values, svg)."""
    check_language(lang)
    path = resources.files("cim.services.tables").joinpath(f"{lang}.yaml")
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def header(lang: str, key: str) -> str:
    """The column header of ``key``; the key itself when the file lacks it (a test keeps the
    files complete, so a reader never sees one)."""
    return str(strings(lang)["headers"].get(key, key))


def sheet_title(lang: str, key: str) -> str:
    """An xlsx sheet title: at most 31 characters and none of ``[]:*?/\\`` (Excel's rules)."""
    title = str(strings(lang)["sheets"].get(key, key))
    for forbidden in "[]:*?/\\":
        title = title.replace(forbidden, " ")
    return title[:31]


def value_name(lang: str, vocabulary: str, value: Cell) -> Cell:
    """``value`` named in ``lang`` through the ``vocabulary`` (``boolean``, ``impact``...);
    values the vocabulary does not name (and ``None``) pass through unchanged."""
    if value is None:
        return None
    named = strings(lang)["values"].get(vocabulary) or {}
    if value in named:
        return str(named[value])
    if vocabulary == "utility" and isinstance(value, str):
        return _utility_name(lang, value)
    return value


def svg_text(lang: str, key: str, **fields: object) -> str:
    """A chart string of ``lang`` with its ``{fields}`` filled in."""
    return str(strings(lang)["svg"][key]).format(**fields)


def _utility_name(lang: str, code: str) -> str:
    """The CJJ 61 name of a class or sub-class code (``YS`` -> 雨水); the code if unknown."""
    names = _utility_names()
    zh, en = names.get(code.upper(), (code, code))
    return zh if lang == "zh" else en


@cache
def _utility_names() -> dict[str, tuple[str, str]]:
    names: dict[str, tuple[str, str]] = {}
    for cls in utility_classes():
        names[cls.code] = (cls.name_zh, cls.name_en)
        for sub in cls.subclasses:
            names[sub.code] = (sub.name_zh, sub.name_en)
    return names

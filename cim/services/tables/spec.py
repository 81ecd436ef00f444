"""Declarative tables: a column is a key (its header in every language) and how to read a cell.

An analysis answer becomes one or more :class:`Table` s whose rows hold the answer's own values
(ids, codes, numbers as the JSON has them), so a table is the JSON answer laid flat; only the
writers (:mod:`cim.services.tables.writers`) name headers and values in a language.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from cim.errors import InvalidInput
from cim.services.tables.language import Cell


@dataclass(frozen=True)
class Column:
    """One column: ``key`` names its header in the language files; ``get`` reads the cell from
    an item of the answer's list; ``vocabulary`` (``boolean``, ``impact``, ``utility``...) names
    the values in the writer's language, ``None`` writes them as they are."""

    key: str
    get: Callable[[Any], Cell]
    vocabulary: str | None = None


@dataclass(frozen=True)
class Table:
    """Rows of one list of an answer: ``name`` picks it (``table=segments``), ``sheet`` is the
    key of its xlsx sheet title."""

    name: str
    sheet: str
    columns: tuple[Column, ...]
    rows: list[tuple[Cell, ...]]

    @property
    def keys(self) -> tuple[str, ...]:
        """The column keys, in order."""
        return tuple(c.key for c in self.columns)


@dataclass(frozen=True)
class TableSpec:
    """The columns of one kind of table; :meth:`build` lays a list of items flat."""

    name: str
    sheet: str
    columns: tuple[Column, ...]

    def build(self, items: Iterable[Any]) -> Table:
        """One row per item, one cell per column, in the answer's order."""
        getters = [c.get for c in self.columns]
        rows = [tuple(get(item) for get in getters) for item in items]
        return Table(self.name, self.sheet, self.columns, rows)


def attr(key: str, field: str | None = None, vocabulary: str | None = None) -> Column:
    """A column read from attribute ``field`` (default ``key``) of a typed item."""
    return Column(key, attrgetter(field or key), vocabulary)


def prop(key: str, field: str | None = None, vocabulary: str | None = None) -> Column:
    """A column read from ``properties[field]`` of a GeoJSON feature (``None`` if absent)."""
    name = field or key

    def get(feature: Any) -> Cell:
        value: Cell = feature["properties"].get(name)
        return value

    return Column(key, get, vocabulary)


def item(key: str, field: str | None = None, vocabulary: str | None = None) -> Column:
    """A column read from ``item[field]`` of a plain dict (``None`` if absent)."""
    name = field or key

    def get(row: Any) -> Cell:
        value: Cell = row.get(name)
        return value

    return Column(key, get, vocabulary)


def coordinate(key: str, index: int, field: str = "location") -> Column:
    """Coordinate ``index`` of a list attribute (``location[0]`` = x); ``None`` if shorter."""

    def get(row: Any) -> Cell:
        values: Sequence[float] = getattr(row, field)
        return values[index] if len(values) > index else None

    return Column(key, get)


def pick(tables: Sequence[Table], name: str | None) -> Table:
    """The table called ``name`` (default: the first, the answer's main list)."""
    if name is None:
        return tables[0]
    for table in tables:
        if table.name == name:
            return table
    known = ", ".join(t.name for t in tables)
    raise InvalidInput(f"this answer has no table {name!r}; it has: {known}")

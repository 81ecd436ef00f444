"""Read the data as it was: OGC ``datetime`` (an instant or an interval) on any collection.

A versioned table (:mod:`.tables`) is read at a time as the union of its current rows valid by
then and the ``feature_history`` rows whose validity covers it, rebuilt into the table's own row
type with ``jsonb_populate_record`` — so every collection spec works unchanged on the union: its
columns are swapped for the union's with SQLAlchemy's ``ClauseAdapter``. A feature is returned
when it was valid at the instant, or at any time in the interval (OGC API Features, Part 1,
7.15.4). Tables not versioned yet are filtered by their dataset's import time. Collections with no
dataset behind them (terrain coverage, the latest shelter plan) ignore ``datetime``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Select,
    Table,
    and_,
    case,
    func,
    literal,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.sql.util import ClauseAdapter

from cim.db.models import Dataset, FeatureHistory
from cim.errors import InvalidInput
from cim.services.ogc.specs import CollectionSpec
from cim.services.versions.tables import VERSIONED_TABLES

Interval = tuple[datetime | None, datetime | None]
"""(start, end), both inclusive; None is open. An instant is (t, t)."""

OPEN = ("..", "")


def _instant(value: str) -> datetime:
    text = value.strip()
    try:
        if len(text) == 10:  # a date: its start
            moment = datetime.fromisoformat(text + "T00:00:00+00:00")
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput(
            f"datetime {value!r} is not an RFC 3339 date-time such as 2026-12-05T10:00:00Z"
        ) from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_datetime(value: str) -> Interval:
    """An instant (``2026-12-05T10:00:00Z``) or interval (``2026-01-01/2026-06-30``, ``../t``)."""
    if "/" not in value:
        moment = _instant(value)
        return moment, moment
    first, _, second = value.partition("/")
    start = None if first.strip() in OPEN else _instant(first)
    end = None if second.strip() in OPEN else _instant(second)
    if start is None and end is None:
        raise InvalidInput("datetime: an interval needs at least one end (not ../..)")
    if start is not None and end is not None and start > end:
        raise InvalidInput("datetime: the interval ends before it starts")
    return start, end


def table_at(table: Table, interval: Interval) -> Select[Any]:
    """The rows of a versioned ``table`` valid at the instant or during the interval."""
    start, end = interval
    history = FeatureHistory.__table__
    current = select(*table.c)
    if end is not None:
        current = current.where(table.c.valid_from <= literal(end))
    kept = [history.c.table_name == table.name]
    if end is not None:
        kept.append(history.c.valid_from <= literal(end))
    if start is not None:
        kept.append(history.c.valid_to > literal(start))
    # only this table's rows are populated (see as_of: a filter pushed below the subquery may
    # run before the table_name condition, and another table's geometry type would fail)
    own_row = case((history.c.table_name == table.name, history.c.row))
    record = func.jsonb_populate_record(literal_column(f"NULL::{table.name}"), own_row)
    rows = (
        select(record.label("r"), history.c.geom.label("geom"))
        .where(and_(*kept))
        .subquery("history_rows")
    )

    def past_column(column: Any) -> Any:
        # a 3D ``geom`` from the indexed history column, so a bbox reaches the GiST index (it
        # is stored forced to 3D: a 2D geometry is read back exactly from the row instead)
        indexed = column.name == "geom" and getattr(column.type, "dimension", 2) == 3
        source = "history_rows.geom" if indexed else f"(history_rows.r).{column.name}"
        return literal_column(source, type_=column.type).label(column.name)

    past = select(*[past_column(c) for c in table.c]).select_from(rows)
    return union_all(current, past)  # type: ignore[return-value]


def spec_at(spec: CollectionSpec, interval: Interval) -> CollectionSpec:
    """``spec`` reading the data valid at the instant or during the interval."""
    source = spec.source
    if isinstance(source, Table) and source.name in VERSIONED_TABLES:
        at = table_at(source, interval).subquery(f"{source.name}_at")
        adapter = ClauseAdapter(at)
        return replace(
            spec,
            source=at,
            id_column=adapter.traverse(spec.id_column),
            geom=adapter.traverse(spec.geom),
            index_geom=None if spec.index_geom is None else adapter.traverse(spec.index_geom),
            properties=tuple(
                replace(p, column=adapter.traverse(p.column)) for p in spec.properties
            ),
            base_filter=None if spec.base_filter is None else adapter.traverse(spec.base_filter),
            utility_column=(
                None if spec.utility_column is None else adapter.traverse(spec.utility_column)
            ),
            variant=f"{spec.variant}@{interval[0]}/{interval[1]}",
        )
    if isinstance(source, Table) and "dataset_id" in source.c and interval[1] is not None:
        dataset = Dataset.__table__
        existed = source.c.dataset_id.in_(
            select(dataset.c.id).where(dataset.c.imported_at <= literal(interval[1]))
        )
        base = existed if spec.base_filter is None else and_(spec.base_filter, existed)
        return replace(spec, base_filter=base, variant=f"{spec.variant}@../{interval[1]}")
    return spec

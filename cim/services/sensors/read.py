"""Reading the SensorThings API: resource paths, collections with query options, ``$expand``.

A resource path (``Things(1)/Datastreams(2)/Observations``) resolves to a :class:`Target`: an
entity set and a condition on its rows, built from nested id subqueries (see
:func:`cim.services.sensors.schema.related`). Every step also applies the caller's visibility,
so a hidden Thing's datastreams are unreachable by any path. Collections are ordered (by
``$orderby`` then id, so pages are stable) and fetched one row past ``$top`` to know whether a
``@iot.nextLink`` is due.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, select, true
from sqlalchemy.orm import Session

from cim.errors import InvalidInput, NotFound
from cim.services.sensors.documents import Context, document, interval, iso, self_link
from cim.services.sensors.filters import filter_condition, order_keys
from cim.services.sensors.options import QueryOptions
from cim.services.sensors.schema import EntitySet, entity_set, navigation, related, visible

SEGMENT = re.compile(r"^([A-Za-z]+)(?:\((\d{1,18})\))?$")


@dataclass
class Target:
    """What a resource path addresses; ``parent`` is (set, id, navigation) when the last step
    is a navigation from one entity given by id (``Datastreams(1)/Observations``)."""

    entity_set: EntitySet
    condition: ColumnElement[bool]
    single: bool
    entity_id: int | None = None
    property: str | None = None
    raw_value: bool = False
    parent: tuple[EntitySet, int, str] | None = None


def _segment(text: str) -> tuple[str, int | None]:
    match = SEGMENT.match(text)
    if match is None:
        raise InvalidInput(f"bad path segment {text!r}; expected Name or Name(id)")
    return match[1], int(match[2]) if match[2] else None


def resolve_path(path: str, hidden: frozenset[str]) -> Target:
    """The target of ``path`` (relative to the service root)."""
    segments = [part for part in path.strip("/").split("/") if part]
    if not segments:
        raise InvalidInput("empty resource path")
    name, entity_id = _segment(segments[0])
    current = entity_set(name)
    target = Target(current, true(), entity_id is not None, entity_id)
    if entity_id is not None:
        target.condition = current.model.id == entity_id
    for text in segments[1:]:
        if target.property is not None:
            if text != "$value" or target.raw_value:
                raise InvalidInput(f"nothing follows a property but $value (got {text!r})")
            target.raw_value = True
            continue
        name, entity_id = _segment(text)
        if not target.single:
            raise InvalidInput(f"{text!r} must follow one entity, not a collection")
        if name in target.entity_set.properties or name == "id":
            if entity_id is not None:
                raise InvalidInput(f"{name} is a property, not a collection")
            target.property = name
            continue
        target = _navigate(target, name, entity_id, hidden)
    return target


def _navigate(target: Target, name: str, entity_id: int | None, hidden: frozenset[str]) -> Target:
    parent = target.entity_set
    nav = navigation(parent, name)
    ids = select(parent.model.id).where(target.condition, visible(parent.name, hidden))
    child = entity_set(nav.target)
    condition = related(parent, nav, ids)
    if entity_id is not None:
        condition = and_(condition, child.model.id == entity_id)
    origin = (parent, target.entity_id, name) if target.entity_id is not None else None
    return Target(
        child, condition, entity_id is not None or not nav.many, entity_id, None, False, origin
    )


def _query(target: Target, options: QueryOptions, ctx: Context) -> Select[Any]:
    model = target.entity_set.model
    query = select(model).where(target.condition, visible(target.entity_set.name, ctx.hidden))
    if options.filter:
        query = query.where(filter_condition(options.filter, target.entity_set, ctx.srid))
    return query


def _ordered(query: Select[Any], target: Target, options: QueryOptions, ctx: Context) -> Any:
    """``$orderby`` then a total order (id), one page and one row more. Observations default
    to time order, which their (datastream, time) index serves without a sort."""
    model = target.entity_set.model
    keys = order_keys(options.orderby, target.entity_set, ctx.srid) if options.orderby else []
    if not keys and target.entity_set.name == "Observations":
        keys = [model.phenomenon_time]
    return query.order_by(*keys, model.id).offset(options.skip).limit(options.top + 1)


def get_entity(session: Session, target: Target, options: QueryOptions, ctx: Context) -> Any:
    """One entity's JSON (with ``$expand``), or a property's ``{name: value}``."""
    row = session.scalars(_query(target, QueryOptions(), ctx).limit(2)).first()
    if row is None:
        what = target.entity_set.singular
        raise NotFound(f"no {what}" + (f" with id {target.entity_id}" if target.entity_id else ""))
    doc = document(target.entity_set, row, ctx, options.select)
    expand(session, target.entity_set, row, doc, options, ctx)
    if target.property is not None:
        key = "@iot.id" if target.property == "id" else target.property
        full = document(target.entity_set, row, ctx)
        return full[key] if target.raw_value else {target.property: full[key]}
    return doc


def list_collection(
    session: Session, target: Target, options: QueryOptions, ctx: Context
) -> tuple[list[dict[str, Any]], int | None, bool]:
    """(entities, ``@iot.count`` if asked, whether more rows follow the page)."""
    query = _query(target, options, ctx)
    count = None
    if options.count:
        count = session.scalar(select(func.count()).select_from(query.subquery()))
    rows = session.scalars(_ordered(query, target, options, ctx)).all()
    more = len(rows) > options.top
    docs = []
    for row in rows[: options.top]:
        doc = document(target.entity_set, row, ctx, options.select)
        expand(session, target.entity_set, row, doc, options, ctx)
        docs.append(doc)
    return docs, count, more


def expand(
    session: Session,
    parent: EntitySet,
    row: Any,
    doc: dict[str, Any],
    options: QueryOptions,
    ctx: Context,
) -> None:
    """Put each ``$expand`` navigation of ``row`` inline in ``doc`` (entity or list)."""
    for name, inner in options.expand.items():
        nav = navigation(parent, name)
        ids = select(parent.model.id).where(parent.model.id == row.id)
        child = Target(entity_set(nav.target), related(parent, nav, ids), not nav.many)
        if nav.many:
            values, count, more = list_collection(session, child, inner, ctx)
            doc[name] = values
            if count is not None:
                doc[f"{name}@iot.count"] = count
            if more:
                link = f"{self_link(ctx, parent, row.id)}/{name}"
                doc[f"{name}@iot.nextLink"] = (
                    f"{link}?$top={inner.top}&$skip={inner.skip + inner.top}"
                )
        else:
            found = session.scalars(_query(child, inner, ctx).limit(1)).first()
            if found is not None:
                doc[name] = document(child.entity_set, found, ctx, inner.select)
                expand(session, child.entity_set, found, doc[name], inner, ctx)


def data_array(
    session: Session, target: Target, options: QueryOptions, ctx: Context
) -> tuple[list[dict[str, Any]], int | None, bool]:
    """Observations in the ``$resultFormat=dataArray`` form: one block per datastream."""
    if target.entity_set.name != "Observations":
        raise InvalidInput("$resultFormat=dataArray applies to Observations only")
    query = _query(target, options, ctx)
    count = None
    if options.count:
        count = session.scalar(select(func.count()).select_from(query.subquery()))
    rows = session.scalars(_ordered(query, target, options, ctx)).all()
    components = ["id", "phenomenonTime", "result", "resultTime"]
    blocks: dict[int, list[list[Any]]] = defaultdict(list)
    for row in rows[: options.top]:
        result = row.result if row.result is not None else row.result_json
        phenomenon = interval(row.phenomenon_time, row.phenomenon_time_end)
        blocks[row.datastream_id].append([row.id, phenomenon, result, iso(row.result_time)])
    datastreams = entity_set("Datastreams")
    values = [
        {
            "Datastream@iot.navigationLink": self_link(ctx, datastreams, datastream_id),
            "components": components,
            "dataArray@iot.count": len(block),
            "dataArray": block,
        }
        for datastream_id, block in blocks.items()
    ]
    return values, count, len(rows) > options.top

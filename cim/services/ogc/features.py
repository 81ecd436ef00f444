"""Items of a collection as GeoJSON text built by PostGIS (ST_AsGeoJSON + string_agg).

One round trip per page: the matched count and the page's features come back in one row, and
the features are already JSON text, so Python only wraps them in the FeatureCollection
envelope. Z is kept (``ST_AsGeoJSON`` writes it); every value reaches SQL as a bound parameter.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, NamedTuple, TypedDict

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Float,
    Select,
    Text,
    all_,
    and_,
    any_,
    bindparam,
    cast,
    func,
    literal_column,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from cim.errors import InvalidInput, NotFound
from cim.services.ogc.cql import filter_clause
from cim.services.ogc.crs import OgcCrs, bbox_to_storage
from cim.services.ogc.models import ItemsPage, ItemsQuery
from cim.services.ogc.specs import CollectionSpec

GEOGRAPHIC_DIGITS = 9
PROJECTED_DIGITS = 4
MAX_OFFSET = 2**62


def parse_sortby(value: str | None, spec: CollectionSpec) -> list[tuple[str, bool]]:
    """``+name,-diameter_mm`` into (property, descending) pairs; unknown names refused."""
    if not value:
        return []
    out = []
    for raw in value.split(","):
        item = raw.strip()
        if not item:
            continue
        descending = item.startswith("-")
        name = item.lstrip("+-").strip()
        if name != "id":
            prop = spec.property(name)
            if prop is None or not prop.filterable:
                raise InvalidInput(f"cannot sort by {name!r}: not a sortable property")
        out.append((name, descending))
    return out


def parse_properties(value: str | None, spec: CollectionSpec) -> list[str] | None:
    """The ``properties`` parameter: names of properties to return (None = all)."""
    if value is None:
        return None
    names = [name.strip() for name in value.split(",") if name.strip()]
    for name in names:
        if spec.property(name) is None:
            raise InvalidInput(f"unknown property {name!r}")
    return names


def _geometry_sql(spec: CollectionSpec, crs: OgcCrs, storage_srid: int) -> ColumnElement[Any]:
    geom: ColumnElement[Any] = spec.geom
    if crs.srid != storage_srid:
        geom = func.ST_Transform(geom, crs.srid)
    if crs.north_first:
        geom = func.ST_FlipCoordinates(geom)
    digits = GEOGRAPHIC_DIGITS if crs.geographic else PROJECTED_DIGITS
    return func.coalesce(func.ST_AsGeoJSON(geom, digits, 0), "null")


def _sql_string(value: str) -> ColumnElement[str]:
    # Constant strings of our own (JSON punctuation, property names) inlined, not bound.
    return literal_column("'" + value.replace("'", "''") + "'", type_=Text)


def _feature_sql(
    spec: CollectionSpec, crs: OgcCrs, storage_srid: int, names: list[str] | None
) -> ColumnElement[str]:
    chosen = spec.properties if names is None else [spec.property(n) for n in names]
    pairs: list[Any] = []
    for prop in chosen:
        assert prop is not None
        pairs.extend([_sql_string(prop.name), prop.column])
    properties = func.json_build_object(*pairs) if pairs else _sql_string("{}")
    return func.concat(
        _sql_string('{"type":"Feature","id":'),
        spec.id_column,
        _sql_string(',"geometry":'),
        _geometry_sql(spec, crs, storage_srid),
        _sql_string(',"properties":'),
        properties,
        _sql_string("}"),
    )


def _where(spec: CollectionSpec, query: ItemsQuery, storage_srid: int) -> list[ColumnElement[bool]]:
    """Conditions with named bind parameters (values come from :func:`_parameters`)."""
    clauses: list[ColumnElement[bool]] = []
    if spec.base_filter is not None:
        clauses.append(spec.base_filter)
    if query.hidden_utilities and spec.utility_column is not None:
        hidden = cast(bindparam("hidden_utilities"), ARRAY(Text))
        clauses.append(spec.utility_column != all_(hidden))
    if query.bbox is not None:
        envelope = func.ST_MakeEnvelope(
            bindparam("xmin", type_=Float), bindparam("ymin", type_=Float),
            bindparam("xmax", type_=Float), bindparam("ymax", type_=Float), storage_srid,
        )  # fmt: skip
        target = spec.geom if spec.index_geom is None else spec.index_geom
        clauses += [target.op("&&")(envelope), func.ST_Intersects(target, envelope)]
        if len(query.bbox) == 6 and spec.is_3d:
            clauses += [
                func.ST_ZMax(spec.geom) >= bindparam("zmin", type_=Float),
                func.ST_ZMin(spec.geom) <= bindparam("zmax", type_=Float),
            ]
    if query.ids is not None:
        clauses.append(spec.id_column == any_(cast(bindparam("ids"), ARRAY(BigInteger))))
    if query.filter:
        assert query.filter_crs is not None
        clauses.append(
            filter_clause(
                query.filter,
                query.filter_lang,
                spec,
                query.filter_crs,
                storage_srid,
                query.filter_limits,
            )
        )
    return clauses


class BindValues(TypedDict, total=False):
    """Values of the named bind parameters of :func:`_where` and of the page's LIMIT/OFFSET."""

    page_limit: int
    page_offset: int
    hidden_utilities: list[str]
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    zmin: float
    zmax: float
    ids: list[int]


def _parameters(spec: CollectionSpec, query: ItemsQuery, storage_srid: int) -> BindValues | None:
    """Values of the bind parameters of :func:`_where`; None when nothing can match."""
    values: BindValues = {"page_limit": query.limit, "page_offset": query.offset}
    if query.hidden_utilities:
        values["hidden_utilities"] = sorted(query.hidden_utilities)
    if query.bbox is not None:
        assert query.bbox_crs is not None
        box = query.bbox
        flat = (box[0], box[1], box[3], box[4]) if len(box) == 6 else box
        storage_box = bbox_to_storage(
            (flat[0], flat[1], flat[2], flat[3]), query.bbox_crs, storage_srid
        )
        if storage_box is None:
            return None
        values["xmin"], values["ymin"], values["xmax"], values["ymax"] = storage_box
        if len(box) == 6:
            values["zmin"], values["zmax"] = box[2], box[5]
    if query.ids is not None:
        numeric = [int(i) for i in query.ids if i.strip().isdigit() and int(i) < 2**63]
        if not numeric:
            return None
        values["ids"] = numeric
    return values


def _page_parameters(
    spec: CollectionSpec, query: ItemsQuery, storage_srid: int
) -> BindValues | None:
    """:func:`_parameters` of a page, once its offset is known to be in range."""
    if not 0 <= query.offset <= MAX_OFFSET:
        raise InvalidInput("offset is out of range")
    return _parameters(spec, query, storage_srid)


def items_statement(spec: CollectionSpec, query: ItemsQuery, storage_srid: int) -> Select[Any]:
    """The one SELECT returning (matched, returned, features text) for ``query``."""
    crs = query.crs
    assert crs is not None
    where = and_(true(), *_where(spec, query, storage_srid))
    order = _order(spec, query)
    page = (
        select(
            _feature_sql(spec, crs, storage_srid, query.properties).label("feature"),
            func.row_number().over(order_by=order).label("ord"),
        )
        .select_from(spec.source)
        .where(where)
        .order_by(*order)
        .limit(bindparam("page_limit", type_=BigInteger))
        .offset(bindparam("page_offset", type_=BigInteger))
        .subquery("page")
    )
    matched = select(func.count()).select_from(spec.source).where(where).scalar_subquery()
    return select(
        matched,
        func.count(),
        func.coalesce(
            func.string_agg(page.c.feature, aggregate_order_by(_sql_string(","), page.c.ord)),
            _sql_string(""),
        ),
    ).select_from(page)


class CompiledItems(NamedTuple):
    """SQL text of an items statement and the constants compiled into its parameters."""

    sql: str
    constants: dict[str, object]


_COMPILED: dict[tuple[Any, ...], CompiledItems] = {}
_COMPILED_LOCK = threading.Lock()


def _compiled(
    session: Session, spec: CollectionSpec, query: ItemsQuery, storage_srid: int
) -> CompiledItems:
    """SQL text and constant parameters of the statement, cached per request shape.

    Items requests differ mostly in values (bbox, paging), so the SQL of each shape is built
    and compiled once; a request then costs one driver-level execute. Filters are compiled
    per request (their literals are part of the statement).
    """
    assert query.crs is not None
    properties = None if query.properties is None else tuple(query.properties)
    key = (
        spec.id, spec.variant, query.crs.uri, storage_srid, properties, tuple(query.sortby),
        None if query.bbox is None else len(query.bbox), query.ids is not None,
        bool(query.hidden_utilities),
    )  # fmt: skip
    if not query.filter:
        with _COMPILED_LOCK:
            found = _COMPILED.get(key)
        if found is not None:
            return found
    compiled = items_statement(spec, query, storage_srid).compile(
        dialect=session.get_bind().dialect
    )
    result = CompiledItems(
        str(compiled), {k: v for k, v in compiled.params.items() if v is not None}
    )
    if not query.filter:
        with _COMPILED_LOCK:
            if len(_COMPILED) > 1024:
                _COMPILED.clear()
            _COMPILED[key] = result
    return result


def query_items(
    session: Session, *, spec: CollectionSpec, query: ItemsQuery, storage_srid: int
) -> ItemsPage:
    """Run one items page (see :func:`items_statement`)."""
    values = _page_parameters(spec, query, storage_srid)
    if values is None:
        # Nothing can match (bbox outside the storage CRS's area, no numeric id).
        return ItemsPage(0, 0, "")
    sql, constants = _compiled(session, spec, query, storage_srid)
    row = session.connection().exec_driver_sql(sql, {**constants, **values}).one()
    return ItemsPage(int(row[0]), int(row[1]), str(row[2]))


def _order(spec: CollectionSpec, query: ItemsQuery) -> list[Any]:
    order: list[Any] = []
    for name, descending in query.sortby:
        column = spec.id_column if name == "id" else spec.property(name).column  # type: ignore[union-attr]
        order.append(column.desc().nulls_last() if descending else column.asc().nulls_last())
    order.append(spec.id_column.asc())
    return order


def _page_statement(spec: CollectionSpec, query: ItemsQuery, storage_srid: int) -> Select[Any]:
    assert query.crs is not None
    order = _order(spec, query)
    return (
        select(_feature_sql(spec, query.crs, storage_srid, query.properties))
        .select_from(spec.source)
        .where(and_(true(), *_where(spec, query, storage_srid)))
        .order_by(*order)
        .limit(bindparam("page_limit", type_=BigInteger))
        .offset(bindparam("page_offset", type_=BigInteger))
    )


def count_matched(
    session: Session, *, spec: CollectionSpec, query: ItemsQuery, storage_srid: int
) -> int:
    """numberMatched of ``query`` (for streamed pages, counted before the features)."""
    values = _page_parameters(spec, query, storage_srid)
    if values is None:
        return 0
    statement = (
        select(func.count())
        .select_from(spec.source)
        .where(and_(true(), *_where(spec, query, storage_srid)))
    )
    return int(session.scalar(statement, values) or 0)


def iter_features(
    connection: Connection,
    *,
    spec: CollectionSpec,
    query: ItemsQuery,
    storage_srid: int,
    chunk: int = 500,
) -> Iterator[tuple[int, str]]:
    """(count, JSON text of that many features) chunks from a server-side cursor, in order."""
    values = _parameters(spec, query, storage_srid)
    if values is None:
        return
    result = connection.execution_options(stream_results=True, yield_per=chunk).execute(
        _page_statement(spec, query, storage_srid), values
    )
    for rows in result.partitions():
        yield len(rows), ",".join(str(row[0]) for row in rows)


def query_feature(
    session: Session,
    *,
    spec: CollectionSpec,
    fid: str,
    crs: OgcCrs,
    storage_srid: int,
    hidden_utilities: frozenset[str] = frozenset(),
) -> str:
    """One feature's GeoJSON text, or NotFound."""
    if not fid.isdigit() or int(fid) >= 2**63:
        raise NotFound(f"feature {fid!r} does not exist in {spec.id}")
    query = ItemsQuery(ids=[fid], hidden_utilities=hidden_utilities, crs=crs)
    statement = (
        select(_feature_sql(spec, crs, storage_srid, None))
        .select_from(spec.source)
        .where(and_(true(), *_where(spec, query, storage_srid)))
    )
    values: BindValues = _parameters(spec, query, storage_srid) or {}
    values.pop("page_limit", None)
    values.pop("page_offset", None)
    feature = session.scalar(statement, values)
    if feature is None:
        raise NotFound(f"feature {fid!r} does not exist in {spec.id}")
    return str(feature)

"""Items of a collection as GeoJSON text built by PostGIS (ST_AsGeoJSON + string_agg).

One round trip per page: the matched count and the page's features come back in one row, and
the features are already JSON text, so Python only wraps them in the FeatureCollection
envelope. Z is kept (``ST_AsGeoJSON`` writes it); every value reaches SQL as a bound parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, literal, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import false

from cim.errors import InvalidInput, NotFound
from cim.services.collections import CollectionSpec
from cim.services.cql import filter_clause
from cim.services.ogc_crs import OgcCrs, bbox_to_storage

GEOGRAPHIC_DIGITS = 9
PROJECTED_DIGITS = 4
MAX_OFFSET = 2**62


@dataclass
class ItemsQuery:
    """What an items request asks for, already parsed; see :func:`query_items`."""

    limit: int = 10
    offset: int = 0
    bbox: tuple[float, ...] | None = None
    bbox_crs: OgcCrs | None = None
    crs: OgcCrs | None = None
    sortby: list[tuple[str, bool]] = field(default_factory=list)
    """(property, descending) pairs."""
    properties: list[str] | None = None
    ids: list[str] | None = None
    filter: str | None = None
    filter_lang: str | None = None
    filter_crs: OgcCrs | None = None
    hidden_utilities: frozenset[str] = frozenset()
    """Utility classes the caller may not see (rows are left out, not refused)."""


@dataclass(frozen=True)
class ItemsPage:
    """One page: ``features`` is the JSON text of the features array's members."""

    number_matched: int
    number_returned: int
    features: str


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


def _feature_sql(
    spec: CollectionSpec, crs: OgcCrs, storage_srid: int, names: list[str] | None
) -> ColumnElement[str]:
    chosen = spec.properties if names is None else [spec.property(n) for n in names]
    pairs: list[Any] = []
    for prop in chosen:
        assert prop is not None
        pairs.extend([literal(prop.name), prop.column])
    properties = func.json_build_object(*pairs) if pairs else literal("{}")
    return func.concat(
        '{"type":"Feature","id":',
        spec.id_column,
        ',"geometry":',
        _geometry_sql(spec, crs, storage_srid),
        ',"properties":',
        properties,
        "}",
    )


def _where(spec: CollectionSpec, query: ItemsQuery, storage_srid: int) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if spec.base_filter is not None:
        clauses.append(spec.base_filter)
    if query.hidden_utilities and spec.utility_column is not None:
        clauses.append(spec.utility_column.not_in(sorted(query.hidden_utilities)))
    if query.bbox is not None:
        clauses.extend(_bbox_clauses(spec, query, storage_srid))
    if query.ids is not None:
        numeric = [int(i) for i in query.ids if i.strip().isdigit() and int(i) < 2**63]
        clauses.append(spec.id_column.in_(numeric) if numeric else false())
    if query.filter:
        assert query.filter_crs is not None
        clauses.append(
            filter_clause(query.filter, query.filter_lang, spec, query.filter_crs, storage_srid)
        )
    return clauses


def _bbox_clauses(
    spec: CollectionSpec, query: ItemsQuery, storage_srid: int
) -> list[ColumnElement[bool]]:
    assert query.bbox is not None and query.bbox_crs is not None
    box2d = query.bbox
    zrange = None
    if len(box2d) == 6:
        box2d = (box2d[0], box2d[1], box2d[3], box2d[4])
        zrange = (query.bbox[2], query.bbox[5])
    assert len(box2d) == 4
    storage_box = bbox_to_storage(
        (box2d[0], box2d[1], box2d[2], box2d[3]), query.bbox_crs, storage_srid
    )
    if storage_box is None:
        return [false()]
    envelope = func.ST_MakeEnvelope(*storage_box, storage_srid)
    clauses = [spec.geom.op("&&")(envelope), func.ST_Intersects(spec.geom, envelope)]
    if zrange is not None and spec.is_3d:
        clauses += [func.ST_ZMax(spec.geom) >= zrange[0], func.ST_ZMin(spec.geom) <= zrange[1]]
    return clauses


def items_statement(spec: CollectionSpec, query: ItemsQuery, storage_srid: int) -> Select[Any]:
    """The one SELECT returning (matched, returned, features text) for ``query``."""
    if not 0 <= query.offset <= MAX_OFFSET:
        raise InvalidInput("offset is out of range")
    crs = query.crs
    assert crs is not None
    where = and_(*_where(spec, query, storage_srid))
    order: list[Any] = []
    for name, descending in query.sortby:
        column = spec.id_column if name == "id" else spec.property(name).column  # type: ignore[union-attr]
        order.append(column.desc().nulls_last() if descending else column.asc().nulls_last())
    order.append(spec.id_column.asc())
    page = (
        select(
            _feature_sql(spec, crs, storage_srid, query.properties).label("feature"),
            func.row_number().over(order_by=order).label("ord"),
        )
        .select_from(spec.source)
        .where(where)
        .order_by(*order)
        .limit(query.limit)
        .offset(query.offset)
        .subquery("page")
    )
    matched = select(func.count()).select_from(spec.source).where(where).scalar_subquery()
    return select(
        matched,
        func.count(),
        func.coalesce(
            func.string_agg(page.c.feature, aggregate_order_by(literal(","), page.c.ord)), ""
        ),
    ).select_from(page)


def query_items(
    session: Session, *, spec: CollectionSpec, query: ItemsQuery, storage_srid: int
) -> ItemsPage:
    """Run one items page (see :func:`items_statement`)."""
    row = session.execute(items_statement(spec, query, storage_srid)).one()
    return ItemsPage(int(row[0]), int(row[1]), str(row[2]))


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
        .where(and_(*_where(spec, query, storage_srid)))
    )
    feature = session.scalar(statement)
    if feature is None:
        raise NotFound(f"feature {fid!r} does not exist in {spec.id}")
    return str(feature)

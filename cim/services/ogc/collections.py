"""The OGC API Features collections over cim's tables: ids, properties, queryables, extents.

Every table-backed layer is one collection; a collection appears once its table has rows.
Pipes get one collection per utility class present (``pipes_JS``...), found with a loose index
scan on ``pipe_segment.utility`` so it stays cheap on large networks. The list is cached for
``CimSettings.collection_cache_seconds`` because items requests look it up every time.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Table,
    exists,
    func,
    literal_column,
    select,
    text,
)
from sqlalchemy.orm import Session

from cim.db.models import (
    Building,
    BuildingElement,
    Dataset,
    HazardZone,
    PipeNode,
    PipeSegment,
    PopulationUnit,
    RoadSegment,
    Shelter,
    ShelterPlan,
    ShelterZone,
    TerrainRaster,
)

JSON_TYPES = ("string", "number", "integer", "boolean", "object", "array")
UTILITY_PATTERN = re.compile(r"^[A-Z0-9]{1,8}$")


@dataclass(frozen=True)
class Queryable:
    """One feature property: its SQL expression and JSON type (``object`` is not filterable)."""

    name: str
    column: ColumnElement[Any]
    type: str
    title: str = ""

    @property
    def filterable(self) -> bool:
        return self.type not in ("object", "array")


@dataclass(frozen=True)
class CollectionSpec:
    """How one collection maps onto SQL."""

    id: str
    title: str
    description: str
    source: FromClause
    id_column: ColumnElement[Any]
    geom: ColumnElement[Any]
    geometry_type: str
    properties: tuple[Queryable, ...]
    base_filter: ColumnElement[bool] | None = None
    utility_column: ColumnElement[Any] | None = None
    """Rows whose utility class is sensitive are hidden from callers without a role."""
    utility: str | None = None
    """The one class of a ``pipes_XX`` collection."""
    is_3d: bool = False

    def property(self, name: str) -> Queryable | None:
        for prop in self.properties:
            if prop.name == name:
                return prop
        return None


@dataclass(frozen=True)
class CollectionInfo:
    """A collection present in the database, with its extent in the storage CRS."""

    spec: CollectionSpec
    extent: tuple[float, float, float, float] | None
    z_range: tuple[float, float] | None = None


def _props(table: Table, names: list[str], types: dict[str, str]) -> tuple[Queryable, ...]:
    out = []
    for name in names:
        column = table.c[name]
        out.append(Queryable(name=name, column=column, type=types.get(name) or _json_type(column)))
    return tuple(out)


def _json_type(column: Any) -> str:
    python_type: type[Any] | None
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        python_type = None
    if python_type is bool:
        return "boolean"
    if python_type is int:
        return "integer"
    if python_type is float:
        return "number"
    if python_type is str:
        return "string"
    if python_type is list:
        return "array"
    return "object"


def _table(model: type[Any]) -> Table:
    table: Table = model.__table__
    return table


SEGMENT_COLUMNS = [
    "dataset_id", "code", "utility", "subclass", "link_type", "start_node_id", "end_node_id",
    "start_invert_z", "end_invert_z", "start_top_z", "end_top_z", "section_shape",
    "diameter_mm", "width_mm", "height_mm", "material", "pressure", "voltage", "cable_count",
    "hole_total", "hole_used", "burial", "owner", "year", "length_m", "attrs",
]  # fmt: skip


def pipe_class_spec(code: str) -> CollectionSpec:
    """The ``pipes_<code>`` collection: the segments of one utility class."""
    seg = _table(PipeSegment)
    return CollectionSpec(
        id=f"pipes_{code}",
        title=f"Pipes {code}",
        description=f"Pipe segments of utility class {code} (CJJ 61), centrelines with Z.",
        source=seg,
        id_column=seg.c.id,
        geom=seg.c.geom,
        geometry_type="LineString",
        properties=_props(seg, SEGMENT_COLUMNS, {}),
        base_filter=seg.c.utility == code,
        utility_column=seg.c.utility,
        utility=code,
        is_3d=True,
    )


def _terrain_coverage() -> CollectionSpec:
    raster = _table(TerrainRaster)
    dataset = _table(Dataset)
    coverage = (
        select(
            raster.c.dataset_id.label("id"),
            dataset.c.name.label("name"),
            func.min(raster.c.resolution).label("resolution"),
            func.count().label("tile_count"),
            func.ST_Multi(func.ST_Union(func.ST_Envelope(raster.c.rast))).label("geom"),
        )
        .join(dataset, dataset.c.id == raster.c.dataset_id)
        .group_by(raster.c.dataset_id, dataset.c.name)
        .subquery("terrain_coverage")
    )
    return CollectionSpec(
        id="terrain_coverage",
        title="Terrain coverage",
        description="Area covered by each imported DEM, with its resolution (m).",
        source=coverage,
        id_column=coverage.c.id,
        geom=coverage.c.geom,
        geometry_type="MultiPolygon",
        properties=(
            Queryable("name", coverage.c.name, "string"),
            Queryable("resolution", coverage.c.resolution, "number"),
            Queryable("tile_count", coverage.c.tile_count, "integer"),
        ),
    )


def base_specs() -> list[CollectionSpec]:
    """Every fixed collection (the per-class pipe collections are added when present)."""
    building = _table(Building)
    element = _table(BuildingElement)
    node = _table(PipeNode)
    seg = _table(PipeSegment)
    shelter = _table(Shelter)
    unit = _table(PopulationUnit)
    hazard = _table(HazardZone)
    zone = _table(ShelterZone)
    road = _table(RoadSegment)
    latest_plan = select(func.max(_table(ShelterPlan).c.id)).scalar_subquery()
    return [
        CollectionSpec(
            "buildings", "Buildings", "IfcBuilding footprints with base and top heights (m).",
            building, building.c.id, building.c.footprint, "MultiPolygon",
            _props(building, ["dataset_id", "guid", "name", "base_z", "top_z", "attrs"], {}),
        ),
        CollectionSpec(
            "building_elements", "Building elements",
            "Every IFC product with a body: class, properties and triangulated 3D mesh.",
            element, element.c.id, element.c.mesh, "MultiPolygon",
            _props(
                element,
                ["dataset_id", "building_id", "storey_id", "guid", "ifc_class", "name",
                 "is_space", "material", "color", "triangle_count", "psets"],
                {"color": "array"},
            ),
            is_3d=True,
        ),
        CollectionSpec(
            "pipe_nodes", "Pipe nodes",
            "Feature points and appurtenances of every utility network, at ground (PointZ).",
            node, node.c.id, node.c.geom, "Point",
            _props(
                node,
                ["dataset_id", "code", "utility", "subclass", "kind", "feature", "appurtenance",
                 "ground_z", "bottom_z", "valve_state", "attrs"],
                {},
            ),
            utility_column=node.c.utility, is_3d=True,
        ),
        CollectionSpec(
            "pipe_segments", "Pipe segments",
            "Pipes, conduits, cable ducts and tunnels of every class (centrelines with Z).",
            seg, seg.c.id, seg.c.geom, "LineString", _props(seg, SEGMENT_COLUMNS, {}),
            utility_column=seg.c.utility, is_3d=True,
        ),
        CollectionSpec(
            "shelters", "Shelters", "Emergency shelter sites (GB 51143) with capacity.",
            shelter, shelter.c.id, shelter.c.geom, "Geometry",
            _props(
                shelter,
                ["dataset_id", "name", "level", "effective_area", "capacity", "attrs"], {},
            ),
        ),
        CollectionSpec(
            "population_units", "Population units", "Census blocks or points with residents.",
            unit, unit.c.id, unit.c.geom, "Geometry",
            _props(unit, ["dataset_id", "code", "population", "attrs"], {}),
        ),
        CollectionSpec(
            "hazard_zones", "Hazard zones", "Areas a shelter must not be in.",
            hazard, hazard.c.id, hazard.c.geom, "MultiPolygon",
            _props(hazard, ["dataset_id", "kind", "severity", "attrs"], {}),
        ),
        CollectionSpec(
            "road_segments", "Road segments",
            "The road network of along-road shelter distances, cut at every junction.",
            road, road.c.id, road.c.geom, "LineString",
            _props(road, ["dataset_id", "name", "kind", "length", "attrs"], {}),
        ),
        CollectionSpec(
            "shelter_zones", "Shelter zones (latest plan)",
            "Service zone of each shelter in the most recent shelter plan, with load ratio.",
            zone, zone.c.id, zone.c.geom, "MultiPolygon",
            _props(
                zone, ["plan_id", "shelter_id", "population", "capacity", "load_ratio"], {}
            ),
            base_filter=zone.c.plan_id == latest_plan,
        ),
        _terrain_coverage(),
    ]  # fmt: skip


def present_utilities(session: Session) -> list[str]:
    """Distinct ``pipe_segment.utility`` values by a loose index scan (fast on big tables)."""
    rows = session.execute(
        text(
            "WITH RECURSIVE u(v) AS ("
            " SELECT min(utility) FROM pipe_segment"
            " UNION ALL"
            " SELECT (SELECT min(utility) FROM pipe_segment WHERE utility > u.v)"
            " FROM u WHERE u.v IS NOT NULL)"
            " SELECT v FROM u WHERE v IS NOT NULL"
        )
    )
    return [str(v) for (v,) in rows if UTILITY_PATTERN.match(str(v))]


def _extent(
    session: Session, spec: CollectionSpec
) -> tuple[tuple[float, float, float, float] | None, tuple[float, float] | None]:
    query = select(
        func.ST_XMin(func.ST_3DExtent(spec.geom)),
        func.ST_YMin(func.ST_3DExtent(spec.geom)),
        func.ST_XMax(func.ST_3DExtent(spec.geom)),
        func.ST_YMax(func.ST_3DExtent(spec.geom)),
        func.ST_ZMin(func.ST_3DExtent(spec.geom)),
        func.ST_ZMax(func.ST_3DExtent(spec.geom)),
    ).select_from(spec.source)
    if spec.base_filter is not None:
        query = query.where(spec.base_filter)
    row = session.execute(query).one()
    if row[0] is None:
        return None, None
    box = (float(row[0]), float(row[1]), float(row[2]), float(row[3]))
    z = (float(row[4]), float(row[5])) if spec.is_3d and row[4] is not None else None
    return box, z


def discover(session: Session) -> dict[str, CollectionInfo]:
    """Every collection with rows, in a stable order, with extents (storage CRS)."""
    specs = base_specs()
    specs[4:4] = [pipe_class_spec(code) for code in present_utilities(session)]
    found: dict[str, CollectionInfo] = {}
    for spec in specs:
        probe = exists(
            select(literal_column("1"))
            .select_from(spec.source)
            .where(spec.base_filter if spec.base_filter is not None else literal_column("true"))
        )
        if not session.scalar(select(probe)):
            continue
        box, z = _extent(session, spec)
        found[spec.id] = CollectionInfo(spec=spec, extent=box, z_range=z)
    return found


def data_signature(session: Session) -> str:
    """A cheap fingerprint of everything the collection list depends on: the datasets (rows
    never change once ready; imports and deletes change this list) and the shelter plans (the
    ``shelter_zones`` collection shows the newest). Reading it costs a scan of two small tables,
    where :func:`discover` scans every geometry (seconds on a million pipes)."""
    return str(
        session.execute(
            text(
                "SELECT md5(coalesce((SELECT string_agg(id || ':' || status || ':' ||"
                " coalesce(ready_at::text, ''), ',' ORDER BY id) FROM dataset), '')"
                " || '|' || (SELECT count(*) || ':' || coalesce(max(id), 0) FROM shelter_plan))"
            )
        ).scalar_one()
    )


@dataclass
class CollectionCatalog:
    """A cache of :func:`discover`, safe to share between request threads.

    Every ``ttl_seconds`` one request checks :func:`data_signature`; only when the data changed
    does it run :func:`discover` again (extents are full scans: run every few seconds by every
    worker, they kept a loaded server's database busy - ``bench/load.py``). While one request
    refreshes, the others keep using the previous list (stale-while-revalidate).
    """

    ttl_seconds: float
    _value: dict[str, CollectionInfo] | None = None
    _signature: str | None = None
    _at: float = 0.0
    _refreshing: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _first: threading.Lock = field(default_factory=threading.Lock)

    def get(self, session: Session) -> dict[str, CollectionInfo]:
        with self._lock:
            value = self._value
            fresh = value is not None and time.monotonic() - self._at < self.ttl_seconds
            if fresh and value is not None:
                return value
            if value is not None and self._refreshing:
                return value  # another request is refreshing it
            self._refreshing = True
        try:
            if value is None:
                with self._first:  # the very first list: compute it once, the others wait
                    with self._lock:
                        if self._value is not None and self.ttl_seconds > 0:
                            return self._value
                    signature = data_signature(session)
                    value = discover(session)
            else:
                signature = data_signature(session)
                if signature != self._signature:
                    value = discover(session)
            with self._lock:
                self._value, self._signature, self._at = value, signature, time.monotonic()
            return value
        finally:
            with self._lock:
                self._refreshing = False

    def invalidate(self) -> None:
        with self._lock:
            self._value = None

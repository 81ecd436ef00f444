"""Which collections cim offers and how each maps onto SQL: its table, id, geometry and properties.

One collection per table-backed layer (buildings, pipe network, shelter planning, terrain
coverage) and one ``pipes_<code>`` per utility class; :func:`collection_specs` gives them in
listing order. Properties are typed for JSON Schema from their columns (``queryables``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, FromClause, Table, func, select

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
    index_geom: ColumnElement[Any] | None = None
    """Where ``bbox`` looks when ``geom`` is computed (``?lod=``: the footprint, indexed)."""
    variant: str = ""
    """Tells apart specs of one collection that build other SQL (``lod=2``)."""

    def property(self, name: str) -> Queryable | None:
        for prop in self.properties:
            if prop.name == name:
                return prop
        return None


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
    "diameter_mm", "nominal_dn", "width_mm", "height_mm", "material", "pressure", "voltage",
    "cable_count", "hole_total", "hole_used", "burial", "owner", "year", "length_m", "attrs",
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


def _building_specs() -> list[CollectionSpec]:
    building = _table(Building)
    element = _table(BuildingElement)
    return [
        CollectionSpec(
            "buildings", "Buildings",
            "Building footprints with base and top heights (m): IfcBuildings and city-model "
            "buildings (CityJSON/CityGML: source id, LoDs, height, storeys, function, year).",
            building, building.c.id, building.c.footprint, "MultiPolygon",
            _props(
                building,
                ["dataset_id", "guid", "name", "base_z", "top_z", "attrs", "source_id", "lods",
                 "height", "storeys", "function", "year", "superseded_by"],
                {"lods": "array"},
            ),
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
    ]  # fmt: skip


def _network_specs() -> list[CollectionSpec]:
    node = _table(PipeNode)
    seg = _table(PipeSegment)
    return [
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
    ]  # fmt: skip


def _emergency_specs() -> list[CollectionSpec]:
    """Shelter planning: shelters, residents, hazards, roads and the latest plan's zones."""
    shelter = _table(Shelter)
    unit = _table(PopulationUnit)
    hazard = _table(HazardZone)
    zone = _table(ShelterZone)
    road = _table(RoadSegment)
    latest_plan = select(func.max(_table(ShelterPlan).c.id)).scalar_subquery()
    return [
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
    ]  # fmt: skip


def collection_specs(utilities: list[str]) -> list[CollectionSpec]:
    """Every collection in listing order; ``pipes_<code>`` of each of ``utilities`` follow
    the network's own collections."""
    return [
        *_building_specs(),
        *_network_specs(),
        *[pipe_class_spec(code) for code in utilities],
        *_emergency_specs(),
        _terrain_coverage(),
    ]

"""Generated rows as COPY takes them: hex EWKB, box meshes, pipe nodes and pipe segments.

Shared by the benches and by the test fixtures that write hand-made networks straight into
the tables (tests may import ``bench``; ``bench`` never imports ``tests``).

Examples
--------
>>> ewkb(shapely.Point(1, 2), 4547)[:10]  # little-endian, point with an SRID
'0101000020'
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import shapely
from sqlalchemy.orm import Session

from bench.generator import BuildingBlock
from cim.db.copy import copy_rows, reserve_ids

NODE_COLUMNS = (
    "id",
    "dataset_id",
    "code",
    "utility",
    "kind",
    "geom",
    "ground_z",
    "bottom_z",
    "valve_state",
    "attrs",
)
BOX_QUADS = ((0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5))
WALL_M = 0.3  # thickness of the generated walls and roofs
NODE_REFERENCES = {"start": "start_node_id", "end": "end_node_id"}
"""Fields of :class:`SegmentRow` holding node codes -> the columns holding the node ids."""


def ewkb(geometry: shapely.Geometry, srid: int) -> str:
    """Hex EWKB of ``geometry`` in ``srid``, as COPY into a geometry column takes it."""
    return str(shapely.to_wkb(shapely.set_srid(geometry, srid), hex=True, include_srid=True))


def box_ewkb(x0: float, y0: float, z0: float, x1: float, y1: float, z1: float, srid: int) -> str:
    """A box as 12 triangles (the mesh layout the IFC importer stores), hex EWKB."""
    p = [(x, y, z) for z in (z0, z1) for y in (y0, y1) for x in (x0, x1)]
    triangles = []
    for a, b, c, d in BOX_QUADS:
        triangles += [shapely.Polygon([p[a], p[b], p[c]]), shapely.Polygon([p[a], p[c], p[d]])]
    return ewkb(shapely.MultiPolygon(triangles), srid)


def building_parts(building: BuildingBlock) -> list[tuple[str, tuple[float, ...]]]:
    """The four walls and the roof of a generated building: (IFC class, box bounds) each."""
    (x0, y0), _, (x1, y1) = building.footprint[0], building.footprint[1], building.footprint[2]
    z0, z1, t = building.base_z, building.base_z + building.height, WALL_M
    return [
        ("IfcWall", (x0, y0, z0, x1, y0 + t, z1)),
        ("IfcWall", (x0, y1 - t, z0, x1, y1, z1)),
        ("IfcWall", (x0, y0 + t, z0, x0 + t, y1 - t, z1)),
        ("IfcWall", (x1 - t, y0 + t, z0, x1, y1 - t, z1)),
        ("IfcRoof", (x0, y0, z1, x1, y1, z1 + t)),
    ]


def copy_elements(
    session: Session,
    *,
    dataset_id: int,
    srid: int,
    buildings: Iterable[BuildingBlock],
    name: Callable[[BuildingBlock, str], str],
) -> int:
    """COPY the walls and roof of every building as ``building_element`` rows (12 triangles
    each; ``name`` of building and IFC class); returns the count."""
    rows = (
        [dataset_id, f"{b.code}-{k}", cls, name(b, cls), box_ewkb(*bounds, srid), 12]
        for b in buildings
        for k, (cls, bounds) in enumerate(building_parts(b))
    )
    return copy_rows(
        session,
        table="building_element",
        columns=["dataset_id", "guid", "ifc_class", "name", "mesh", "triangle_count"],
        rows=rows,
    )


@dataclass
class NodeRow:
    """A ``pipe_node`` row; the point is (x, y, z), the other columns as the table names them."""

    code: str
    x: float
    y: float
    z: float
    utility: str = "JS"
    kind: str = "junction"
    ground_z: float | None = None
    bottom_z: float | None = None
    valve_state: str | None = None


@dataclass
class SegmentRow:
    """A ``pipe_segment`` row: ``start``/``end`` are node codes, ``geom`` the 3D centreline;
    the other fields are the table's columns, their defaults the table's."""

    code: str
    start: str
    end: str
    geom: shapely.LineString
    utility: str = "JS"
    subclass: str | None = None
    link_type: str = "pipe"
    start_invert_z: float | None = None
    end_invert_z: float | None = None
    start_top_z: float | None = None
    end_top_z: float | None = None
    section_shape: str = "circular"
    diameter_mm: float | None = None
    width_mm: float | None = None
    height_mm: float | None = None
    material: str | None = None
    pressure: str | None = None
    voltage: str | None = None
    cable_count: int | None = None
    hole_total: int | None = None
    hole_used: int | None = None
    burial: str | None = None
    owner: str | None = None
    year: int | None = None
    length_m: float | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


def copy_nodes(
    session: Session, *, dataset_id: int, srid: int, nodes: Sequence[NodeRow]
) -> dict[str, int]:
    """COPY ``nodes`` with reserved ids; returns node code -> id."""
    reserved = reserve_ids(session, table="pipe_node", count=len(nodes))
    ids = dict(zip([n.code for n in nodes], reserved, strict=True))
    copy_rows(
        session,
        table="pipe_node",
        columns=NODE_COLUMNS,
        rows=(
            [
                ids[n.code],
                dataset_id,
                n.code,
                n.utility,
                n.kind,
                ewkb(shapely.Point(n.x, n.y, n.z), srid),
                n.ground_z,
                n.bottom_z,
                n.valve_state,
                "{}",
            ]
            for n in nodes
        ),
    )
    return ids


def copy_segments(
    session: Session,
    *,
    dataset_id: int,
    srid: int,
    segments: Iterable[SegmentRow],
    node_ids: Mapping[str, int],
    ids: Sequence[int] | None = None,
) -> int:
    """COPY ``segments`` (ids from the sequence unless given, in order); returns the count."""
    names = [f.name for f in fields(SegmentRow)]
    columns = [NODE_REFERENCES.get(name, name) for name in names]

    def values(segment: SegmentRow) -> list[Any]:
        computed = {
            "start": node_ids[segment.start],
            "end": node_ids[segment.end],
            "geom": ewkb(segment.geom, srid),
            "attrs": json.dumps(segment.attrs),
        }
        return [dataset_id] + [
            computed[name] if name in computed else getattr(segment, name) for name in names
        ]

    rows: Iterable[list[Any]] = (values(s) for s in segments)
    if ids is not None:
        rows = ([i, *row] for i, row in zip(ids, rows, strict=True))
    return copy_rows(
        session,
        table="pipe_segment",
        columns=(["id"] if ids is not None else []) + ["dataset_id", *columns],
        rows=rows,
    )

"""Underground spaces of other classes near gas pipes: wells and chambers, tunnels, basements.

What counts as a space, and where its size comes from:

* **Wells and chambers** - ``pipe_node`` rows of every class but gas whose kind is a chamber
  the importers write (CJJ 61 附属物 检修井/检查井/窨井 -> ``manhole``, 手孔 -> ``handhole``,
  阀门井 -> ``valve``, 水表井 -> ``meter``, 化粪池 -> ``septic_tank``, 雨水口 -> ``inlet``), plus
  drainage junctions and storage nodes with a surveyed bottom (SWMM manholes), and any node
  whose 附属物 text names a well the vocabulary does not map (电力井, 通信井, 工作井, 热力井 …:
  ``appurtenance`` containing 井, taken as a manhole). Bottom =
  ``bottom_z`` (井底高程), else ground minus a default depth; plan area by kind (defaults below,
  a design choice: the survey tables carry no chamber size); volume = area x depth.
* **Utility tunnels** (综合管廊, CJJ 61 sub-class ZH of class QT) - ``pipe_segment`` rows;
  bottom = invert under the point nearest the gas pipe; volume = section x segment length
  (3 m x 3 m assumed when the section is not stored).
* **Basements**, where the model knows them: a building whose source states
  ``storeysBelowGround`` (CityJSON/CityGML; 3 m a storey assumed) or whose stored geometry
  reaches 2 m or more below the local ground (an IFC model with its basement); volume =
  footprint area x depth. Other buildings within reach are only counted
  (``buildings_without_basement_data``): the model does not say whether they have one.

The nearest gas pipe is the one an answer relates a space to (ties: lowest id); horizontal
distance is 2D, from the well's centre, the tunnel's centreline or the footprint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import shapely
from shapely.ops import nearest_points
from sqlalchemy import text
from sqlalchemy.orm import Session

from cim.services.gas.gas_pipes import GAS_UTILITY, GasPipe, z_along
from cim.services.gas.models import SpaceLayer

#: kind -> (plan area m², depth m when no bottom is surveyed); defaults, a design choice.
CHAMBER_KINDS = {
    "manhole": (1.0, 2.0),
    "handhole": (0.5, 1.0),
    "valve": (1.5, 1.5),
    "meter": (1.0, 1.0),
    "septic_tank": (6.0, 2.0),
    "inlet": (0.5, 1.0),
}
SWMM_MANHOLE_KINDS = ("junction", "storage")
SPACE_TYPE_OF_CLASS = {
    "DL": "power_well",
    "TX": "telecom_well",
    "PS": "drainage_well",
    "RL": "heat_well",
    "JS": "water_well",
}
TUNNEL_SUBCLASS = "ZH"
TUNNEL_SECTION_M = (3.0, 3.0)
BASEMENT_STOREY_M = 3.0
BASEMENT_MIN_DEPTH_M = 2.0


@dataclass(frozen=True)
class Space:
    """One underground space next to a gas pipe, before scoring."""

    layer: SpaceLayer
    id: int
    code: str
    space_type: str
    utility: str | None
    kind: str | None
    geom: Any  # shapely geometry, 2D: point, line or polygon
    gas_id: int
    distance_m: float
    bottom_z: float | None
    volume_m3: float
    volume_assumed: bool


_GAS = "WITH gas AS MATERIALIZED (SELECT id, geom FROM pipe_segment WHERE id = ANY(:gas)) "

_NODES_SQL = (
    _GAS
    + """
SELECT DISTINCT ON (n.id) n.id, n.code, upper(n.utility) AS utility, n.kind, n.appurtenance,
       n.ground_z,
       n.bottom_z, ST_X(n.geom) AS x, ST_Y(n.geom) AS y, g.id AS gas_id,
       ST_Distance(n.geom, g.geom) AS distance
FROM gas g JOIN pipe_node n ON ST_DWithin(n.geom, g.geom, :radius)
WHERE n.dataset_id = ANY(:datasets) AND upper(n.utility) <> :gas_class
  AND NOT (upper(n.utility) = ANY(:hidden))
  AND (n.kind = ANY(:kinds) OR strpos(n.appurtenance, '井') > 0
       OR (upper(n.utility) = 'PS' AND n.kind = ANY(:swmm) AND n.bottom_z IS NOT NULL))
ORDER BY n.id, distance, g.id
"""
)

_TUNNELS_SQL = (
    _GAS
    + """
SELECT DISTINCT ON (t.id) t.id, t.code, upper(t.utility) AS utility, t.width_mm, t.height_mm,
       t.diameter_mm, ST_Length(t.geom) AS length, ST_AsBinary(t.geom) AS wkb,
       g.id AS gas_id, ST_Distance(t.geom, g.geom) AS distance
FROM gas g JOIN pipe_segment t ON ST_DWithin(t.geom, g.geom, :radius)
WHERE t.dataset_id = ANY(:datasets) AND NOT (upper(t.utility) = ANY(:hidden))
  AND (upper(t.subclass) = :tunnel OR upper(t.utility) = :tunnel)
ORDER BY t.id, distance, g.id
"""
)

_BUILDINGS_SQL = (
    _GAS
    + """
SELECT DISTINCT ON (b.id) b.id, COALESCE(b.name, b.source_id, b.guid) AS code, b.base_z,
       b.attrs->>'storeysBelowGround' AS below, ST_AsBinary(b.footprint) AS wkb,
       ST_Area(b.footprint) AS area, g.id AS gas_id, ST_Distance(b.footprint, g.geom) AS distance
FROM gas g JOIN building b ON ST_DWithin(b.footprint, g.geom, :radius)
JOIN dataset d ON d.id = b.dataset_id AND d.status = 'ready'
WHERE b.superseded_by IS NULL
ORDER BY b.id, distance, g.id
"""
)


def _params(pipes: dict[int, GasPipe], radius_m: float, **more: Any) -> dict[str, Any]:
    return {"gas": sorted(pipes), "radius": radius_m, **more}


def chamber_spaces(
    session: Session,
    pipes: dict[int, GasPipe],
    *,
    radius_m: float,
    datasets: list[int],
    hidden: frozenset[str],
) -> list[Space]:
    """Wells and chambers of other classes within ``radius_m`` of a gas pipe."""
    rows = session.execute(
        text(_NODES_SQL),
        _params(
            pipes,
            radius_m,
            datasets=datasets,
            gas_class=GAS_UTILITY,
            hidden=sorted(hidden),
            kinds=sorted(CHAMBER_KINDS),
            swmm=list(SWMM_MANHOLE_KINDS),
        ),
    ).all()
    spaces = []
    for r in rows:
        area, default_depth = CHAMBER_KINDS.get(r.kind, CHAMBER_KINDS["manhole"])
        bottom = r.bottom_z
        if bottom is None and r.ground_z is not None:
            bottom = r.ground_z - default_depth
        surveyed = r.bottom_z is not None and r.ground_z is not None
        depth = r.ground_z - r.bottom_z if surveyed else default_depth
        spaces.append(
            Space(
                layer="pipe_node",
                id=int(r.id),
                code=str(r.code),
                space_type=SPACE_TYPE_OF_CLASS.get(r.utility, "other_well"),
                utility=r.utility,
                kind=r.kind if r.kind in CHAMBER_KINDS or not r.appurtenance else r.appurtenance,
                geom=shapely.Point(r.x, r.y),
                gas_id=int(r.gas_id),
                distance_m=float(r.distance),
                bottom_z=None if bottom is None else float(bottom),
                volume_m3=area * max(float(depth), 0.0),
                volume_assumed=True,
            )
        )
    return spaces


def tunnel_spaces(
    session: Session,
    pipes: dict[int, GasPipe],
    *,
    radius_m: float,
    datasets: list[int],
    hidden: frozenset[str],
) -> list[Space]:
    """Utility-tunnel segments within ``radius_m`` of a gas pipe."""
    params = _params(pipes, radius_m, datasets=datasets, hidden=sorted(hidden))
    rows = session.execute(text(_TUNNELS_SQL), params | {"tunnel": TUNNEL_SUBCLASS}).all()
    spaces = []
    for r in rows:
        line = shapely.from_wkb(bytes(r.wkb))
        flat = shapely.force_2d(line)
        near, _ = nearest_points(flat, shapely.force_2d(pipes[int(r.gas_id)].line))
        width = (r.width_mm or r.diameter_mm or 0.0) / 1000.0
        height = (r.height_mm or r.diameter_mm or 0.0) / 1000.0
        known = width > 0 and height > 0
        if not known:
            width, height = TUNNEL_SECTION_M
        centre = z_along(line, near)
        spaces.append(
            Space(
                layer="pipe_segment",
                id=int(r.id),
                code=str(r.code),
                space_type="utility_tunnel",
                utility=r.utility,
                kind=TUNNEL_SUBCLASS,
                geom=flat,
                gas_id=int(r.gas_id),
                distance_m=float(r.distance),
                bottom_z=None if centre is None else centre - height / 2.0,
                volume_m3=width * height * float(r.length),
                volume_assumed=not known,
            )
        )
    return spaces


def building_spaces(
    session: Session, pipes: dict[int, GasPipe], *, radius_m: float
) -> tuple[list[Space], int]:
    """Basements within ``radius_m`` of a gas pipe, and how many buildings in reach say
    nothing of one."""
    rows = session.execute(text(_BUILDINGS_SQL), _params(pipes, radius_m)).all()
    spaces, unknown = [], 0
    for r in rows:
        footprint = shapely.force_2d(shapely.from_wkb(bytes(r.wkb)))
        pipe = pipes[int(r.gas_id)]
        _, on_pipe = nearest_points(footprint, shapely.force_2d(pipe.line))
        ground = pipe.ground_at(on_pipe)
        known = _basement_depth(r.below, r.base_z, ground)
        if known is None:
            unknown += 1
            continue
        depth, assumed = known
        spaces.append(
            Space(
                layer="building",
                id=int(r.id),
                code=str(r.code),
                space_type="basement",
                utility=None,
                kind="basement",
                geom=footprint,
                gas_id=pipe.id,
                distance_m=float(r.distance),
                bottom_z=None if ground is None else ground - depth,
                volume_m3=float(r.area) * depth,
                volume_assumed=assumed,
            )
        )
    return spaces, unknown


def _basement_depth(
    below: str | None, base_z: float | None, ground: float | None
) -> tuple[float, bool] | None:
    """(depth below the local ground, whether assumed) of a known basement, or None."""
    try:
        storeys = int(float(below)) if below is not None else 0
    except ValueError:
        storeys = 0
    if storeys > 0:
        return storeys * BASEMENT_STOREY_M, True
    if base_z is not None and ground is not None and ground - base_z >= BASEMENT_MIN_DEPTH_M:
        return float(ground - base_z), False
    return None

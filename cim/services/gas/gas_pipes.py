"""The gas pipes an analysis looks at (all, an area, or one segment) with their 3D centrelines.

Heights along a pipe are read off its stored 3D centreline (``pipe_segment.geom``, centre =
invert + h/2) at the point nearest a space, interpolated linearly by horizontal distance along
the line; the ground at that point is interpolated between the ground heights of the pipe's end
nodes (the surveyed ground at the wells), the local reference for "below ground".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from cim.errors import InvalidInput, NotFound
from cim.services.gas.pressure import pressure_class, pressure_rank

GAS_UTILITY = "RQ"


@dataclass(frozen=True)
class GasPipe:
    """One gas segment: identity, what makes its leak matter, 3D line, ground at both ends."""

    id: int
    code: str
    dataset_id: int
    pressure: str | None
    material: str | None
    year: int | None
    height_m: float
    line: shapely.LineString
    start_ground_z: float | None
    end_ground_z: float | None

    @property
    def pressure_class(self) -> str | None:
        return pressure_class(self.pressure)

    @property
    def pressure_rank(self) -> int | None:
        return pressure_rank(self.pressure_class)

    def centre_z_at(self, point: shapely.Point) -> float | None:
        """Centreline height where the pipe is nearest ``point`` (None for a 2D line)."""
        return z_along(self.line, point)

    def ground_at(self, point: shapely.Point) -> float | None:
        """Ground height where the pipe is nearest ``point``, from its end nodes' ground."""
        grounds = [z for z in (self.start_ground_z, self.end_ground_z) if z is not None]
        if len(grounds) < 2:
            return grounds[0] if grounds else None
        return grounds[0] + _fraction(self.line, point) * (grounds[1] - grounds[0])


def _fraction(line: shapely.LineString, point: shapely.Point) -> float:
    """How far along ``line`` (share of its horizontal length) the point nearest ``point`` is."""
    flat = shapely.force_2d(line)
    return float(flat.project(point, normalized=True)) if flat.length > 0 else 0.0


def z_along(line: shapely.LineString, point: shapely.Point) -> float | None:
    """Height of a 3D ``line`` where it is horizontally nearest ``point`` (None if 2D)."""
    coords = np.asarray(line.coords)
    if coords.shape[1] < 3 or np.isnan(coords[:, 2]).any():
        return None
    steps = np.hypot(np.diff(coords[:, 0]), np.diff(coords[:, 1]))
    along = np.concatenate([[0.0], np.cumsum(steps)])
    return float(np.interp(_fraction(line, point) * along[-1], along, coords[:, 2]))


_PIPES_SQL = """
SELECT s.id, s.code, s.dataset_id, s.pressure, s.material, s.year,
       COALESCE(s.height_mm, s.diameter_mm, 0) / 1000.0 AS height_m,
       ST_AsBinary(s.geom) AS wkb, a.ground_z AS start_ground, b.ground_z AS end_ground
FROM pipe_segment s
LEFT JOIN pipe_node a ON a.id = s.start_node_id
LEFT JOIN pipe_node b ON b.id = s.end_node_id
WHERE upper(s.utility) = :gas AND s.dataset_id = ANY(:datasets)
"""


def gas_pipes(
    session: Session,
    *,
    datasets: list[int],
    segment_id: int | None = None,
    area_ewkt: str | None = None,
) -> list[GasPipe]:
    """The gas segments of ``datasets``: one (``segment_id``), those crossing an area, or all."""
    sql = _PIPES_SQL
    params: dict[str, Any] = {"gas": GAS_UTILITY, "datasets": datasets}
    if segment_id is not None:
        sql += " AND s.id = :segment"
        params["segment"] = segment_id
    if area_ewkt is not None:
        sql += " AND ST_Intersects(s.geom, ST_GeomFromEWKT(:area))"
        params["area"] = area_ewkt
    rows = session.execute(text(sql + " ORDER BY s.id"), params).all()
    if segment_id is not None and not rows:
        _explain_missing(session, segment_id)
    return [
        GasPipe(
            id=int(r.id),
            code=str(r.code),
            dataset_id=int(r.dataset_id),
            pressure=r.pressure,
            material=r.material,
            year=r.year,
            height_m=float(r.height_m),
            line=shapely.from_wkb(bytes(r.wkb)),
            start_ground_z=r.start_ground,
            end_ground_z=r.end_ground,
        )
        for r in rows
    ]


def _explain_missing(session: Session, segment_id: int) -> None:
    utility = session.execute(
        text("SELECT utility FROM pipe_segment WHERE id = :id"), {"id": segment_id}
    ).scalar_one_or_none()
    if utility is None:
        raise NotFound(f"pipe segment {segment_id} does not exist")
    if str(utility).upper() != GAS_UTILITY:
        raise InvalidInput(f"segment {segment_id} is class {utility}, not RQ gas")
    raise NotFound(f"gas segment {segment_id} is not in a ready pipe dataset asked for")

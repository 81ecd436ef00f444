"""Ground heights from ``terrain_raster``: elevation at points and profiles along polylines.

Overlap rule: where several DEMs cover a point, the one with the finest resolution (smallest
pixel size in storage units) that has a value there wins; a tie goes to the newest dataset. A
finer DEM's nodata pixel therefore falls through to the next coarser DEM, and a point no DEM
covers has no height (``None``). The height is the value of the pixel containing the point (no
interpolation), so a DEM stored without reprojection answers exactly what ``rasterio``'s
``sample()`` reads from the source file. The terrain tiler applies the same rule.

Coordinates may be given in any CRS (``crs``; default the storage CRS, x = easting or
longitude); they are transformed to the storage CRS, and results are reported back in the
caller's CRS. Profile distances are metres measured in the storage CRS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pyproj import CRS
from sqlalchemy import text
from sqlalchemy.orm import Session

from cim.crs import crs_label, parse_crs, to_storage, transformer
from cim.db.migrate import recorded_srid
from cim.errors import ConfigError, InvalidInput, UnsupportedCRS
from cim.services.results import Result

MAX_POINTS = 10_000
"""Most points one elevation or profile request may ask for, unless the caller passes another
``max_points`` (the API passes ``CIM_TERRAIN_MAX_POINTS``)."""

_HEIGHTS_SQL = text(
    """
    SELECT u.ord, h.z, h.dataset_id
    FROM unnest(CAST(:xs AS float8[]), CAST(:ys AS float8[])) WITH ORDINALITY AS u(x, y, ord)
    LEFT JOIN LATERAL (
        SELECT v.z, v.dataset_id
        FROM (
            SELECT ST_Value(t.rast, 1, pt.geom, true) AS z, t.dataset_id, t.resolution
            FROM terrain_raster AS t,
                 (SELECT ST_SetSRID(ST_MakePoint(u.x, u.y), :srid) AS geom) AS pt
            WHERE ST_ConvexHull(t.rast) && pt.geom
              AND ST_Intersects(ST_ConvexHull(t.rast), pt.geom)
        ) AS v
        WHERE v.z IS NOT NULL
        ORDER BY v.resolution, v.dataset_id DESC
        LIMIT 1
    ) AS h ON true
    ORDER BY u.ord
    """
)


def _input_crs(value: str | int) -> CRS:
    crs = parse_crs(value)
    if not (crs.is_projected or crs.is_geographic) or crs.is_geocentric:
        raise UnsupportedCRS(f"{crs_label(crs)} is not a 2D map CRS; give x, y in one")
    return crs


def session_srid(session: Session) -> int:
    """The storage SRID, read inside the session's own transaction."""
    srid = recorded_srid(session.connection())
    if srid is None:
        raise ConfigError("the database has no cim schema yet: run `cim db upgrade`")
    return srid


@dataclass
class Elevation:
    """Ground height at one point (``z`` None where no DEM has a value there)."""

    x: float
    y: float
    z: float | None
    dataset_id: int | None


class Elevations(Result):
    """Heights at points, reported in the points' CRS (``crs``)."""

    crs: str
    points: list[Elevation]


@dataclass
class ProfilePoint:
    """One sample of a profile: distance along the line (m), position and ground height."""

    distance: float
    x: float
    y: float
    z: float | None


@dataclass
class Profile:
    """Samples along a polyline; ``length`` in metres of the storage CRS."""

    crs: str
    length: float
    points: list[ProfilePoint]


def heights_in_storage(
    session: Session, xs: npt.ArrayLike, ys: npt.ArrayLike
) -> list[tuple[float | None, int | None]]:
    """(height, dataset id) at storage-CRS coordinates, by the overlap rule of this module."""
    x = np.asarray(xs, dtype=np.float64).tolist()
    y = np.asarray(ys, dtype=np.float64).tolist()
    if not x:
        return []
    srid = session_srid(session)
    rows = session.execute(_HEIGHTS_SQL, {"xs": x, "ys": y, "srid": srid}).all()
    return [
        (
            None if row.z is None else float(row.z),
            None if row.dataset_id is None else int(row.dataset_id),
        )
        for row in rows
    ]


def _check_count(count: int, what: str, limit: int) -> None:
    if count < 1:
        raise InvalidInput(f"give at least one {what}")
    if count > limit:
        raise InvalidInput(f"at most {limit} {what}s per request, got {count}")


def elevations(
    session: Session,
    *,
    points: Sequence[tuple[float, float]],
    crs: str | int | None = None,
    max_points: int = MAX_POINTS,
) -> list[Elevation]:
    """Ground height at each point (given in ``crs``, default the storage CRS); at most
    ``max_points`` points.

    Examples
    --------
    ``elevations(session, points=[(-85.6, 38.05)], crs="EPSG:4326")`` ->
    ``[Elevation(x=-85.6, y=38.05, z=189.34, dataset_id=1)]`` (ky4, reprojected)
    """
    _check_count(len(points), "point", max_points)
    coords = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if not np.all(np.isfinite(coords)):
        raise InvalidInput("coordinates must be finite numbers")
    srid = session_srid(session)
    source = srid if crs is None else _input_crs(crs)
    sx, sy, _ = to_storage(source, srid, coords[:, 0], coords[:, 1])
    heights = heights_in_storage(session, sx, sy)
    return [
        Elevation(x=float(px), y=float(py), z=z, dataset_id=dataset_id)
        for (px, py), (z, dataset_id) in zip(coords, heights, strict=True)
    ]


def elevations_in_crs(
    session: Session,
    *,
    points: Sequence[tuple[float, float]],
    crs: str | int | None = None,
    max_points: int = MAX_POINTS,
) -> Elevations:
    """:func:`elevations` with the name of the points' CRS: the answer of ``/terrain/elevation``."""
    heights = elevations(session, points=points, crs=crs, max_points=max_points)
    name = f"EPSG:{session_srid(session)}" if crs is None else crs_label(parse_crs(crs))
    return Elevations(crs=name, points=heights)


def _sample_distances(
    length: float, step: float | None, samples: int | None, limit: int
) -> npt.NDArray[np.float64]:
    if (step is None) == (samples is None):
        raise InvalidInput("give exactly one of step (metres) or samples (count)")
    if samples is not None:
        if samples < 2:
            raise InvalidInput("samples must be at least 2 (both ends of the line)")
        _check_count(samples, "sample", limit)
        return np.linspace(0.0, length, samples)
    assert step is not None
    if not (np.isfinite(step) and step > 0):
        raise InvalidInput("step must be a positive number of metres")
    ratio = length / step  # a tiny step overflows to inf: refuse it before int()
    if not np.isfinite(ratio) or ratio + 2 > limit:
        raise InvalidInput(
            f"at most {limit} samples per request: a step of {step:g} m over {length:.1f} m "
            "gives more; use a longer step"
        )
    count = int(np.floor(ratio)) + 1
    _check_count(count + 1, "sample", limit)
    distances = np.arange(count, dtype=np.float64) * step
    if length - distances[-1] > 1e-9 * max(1.0, length):
        distances = np.append(distances, length)  # always end at the last vertex
    return distances


def profile(
    session: Session,
    *,
    line: Sequence[tuple[float, float]],
    crs: str | int | None = None,
    step: float | None = None,
    samples: int | None = None,
    max_points: int = MAX_POINTS,
) -> Profile:
    """Ground heights along ``line`` every ``step`` metres, or at ``samples`` even spacings.

    The line is straight between its vertices in the storage CRS; samples start at the first
    vertex and end at the last. ``x``/``y`` are reported in ``crs`` (default storage).
    """
    coords = np.asarray(line, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[0] < 2 or coords.shape[1] < 2:
        raise InvalidInput("a profile line needs at least two [x, y] vertices")
    if not np.all(np.isfinite(coords[:, :2])):
        raise InvalidInput("coordinates must be finite numbers")
    srid = session_srid(session)
    source = parse_crs(srid) if crs is None else _input_crs(crs)
    vx, vy, _ = to_storage(source, srid, coords[:, 0], coords[:, 1])
    segment = np.hypot(np.diff(vx), np.diff(vy))
    cumulative = np.concatenate([[0.0], np.cumsum(segment)])
    length = float(cumulative[-1])
    if not np.isfinite(length):
        raise InvalidInput("the profile line is too long to sample")
    if length == 0.0:
        raise InvalidInput("the profile line has zero length")
    distances = _sample_distances(length, step, samples, max_points)
    sx = np.interp(distances, cumulative, vx)
    sy = np.interp(distances, cumulative, vy)
    heights = heights_in_storage(session, sx, sy)
    if source.equals(parse_crs(srid), ignore_axis_order=True):
        ox, oy = sx, sy
    else:
        ox, oy = transformer(srid, source).transform(sx, sy)
    points = [
        ProfilePoint(distance=float(d), x=float(x), y=float(y), z=z)
        for d, x, y, (z, _) in zip(distances, np.asarray(ox), np.asarray(oy), heights, strict=True)
    ]
    return Profile(crs=crs_label(source), length=length, points=points)

"""Excavation impact: pipes inside a planned cut or within a margin, their cover and clearance.

For a cut polygon (storage CRS) dug ``depth_m`` below ground: every segment that intersects the
polygon grown by ``margin_m`` (GiST ``ST_DWithin``) is examined along the part of it inside that
zone, sampled every metre: the cover (ground - pipe top) and pipe top/invert there, the
horizontal clearance from the pipe's outer edge to the cut wall (0 inside the cut), and the
vertical clearance from the cut floor (ground - depth) down to the pipe top. A pipe is
``struck`` when it lies under the cut with its top above the floor, ``under`` when it runs below
the floor, ``near`` when it is outside the cut but within the margin. The answer groups the
pipes by utility class and owner: who has to be notified before digging.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from shapely import Point
from shapely.geometry.base import BaseGeometry
from sqlalchemy import text
from sqlalchemy.orm import Session

from cim import bounds
from cim.errors import InvalidInput
from cim.services.pipes.geojson import highlight
from cim.services.pipes.ground import has_terrain, terrain_heights
from cim.services.pipes.inputs import ewkt, parse_polygon
from cim.services.pipes.models import ExcavatedPipe, ExcavationImpact, OwnerToNotify
from cim.services.pipes.scope import AnyRow, no_jit, pipe_dataset_ids, session_srid
from cim.services.pipes.sections import class_info, section_label
from cim.services.results import FeatureCollection

SAMPLE_STEP_M = 1.0
MAX_SAMPLES_PER_PIPE = 200


FloatArray = npt.NDArray[np.float64]

SEGMENTS_SQL = """
SELECT s.id, s.code, s.utility, s.subclass, s.owner, s.material, s.section_shape,
       s.diameter_mm, s.width_mm, s.height_mm, ST_AsBinary(s.geom) AS wkb,
       s.start_invert_z, s.end_invert_z, s.start_top_z, s.end_top_z,
       a.ground_z AS ground_a, b.ground_z AS ground_b
FROM pipe_segment s
JOIN pipe_node a ON a.id = s.start_node_id
JOIN pipe_node b ON b.id = s.end_node_id
WHERE s.dataset_id = ANY(:ds) AND ST_DWithin(s.geom, ST_GeomFromEWKT(:cut), :margin)
  AND NOT (s.utility = ANY(:hidden))
ORDER BY s.id
"""


def excavation_impact(
    session: Session,
    *,
    polygon: Any,
    depth_m: float,
    margin_m: float = 1.0,
    dataset_id: int | None = None,
    hidden_utilities: frozenset[str] = frozenset(),
    output_crs: str | None = None,
) -> ExcavationImpact:
    """Pipes affected by digging ``polygon`` ``depth_m`` deep, and those within ``margin_m``.

    ``polygon`` is in the storage CRS; the GeoJSON highlight in ``output_crs`` (default storage).
    """
    if not depth_m > 0:
        raise InvalidInput("depth_m must be positive")
    if margin_m < 0:
        raise InvalidInput("margin_m must not be negative")
    cut = parse_polygon(polygon)
    zone = cut.buffer(margin_m) if margin_m > 0 else cut
    bounds.current().check_area(zone.area, "the excavation zone (cut grown by the margin)")
    srid = session_srid(session)
    no_jit(session)
    rows = session.execute(
        text(SEGMENTS_SQL),
        {
            "ds": pipe_dataset_ids(session, dataset_id),
            "cut": ewkt(cut, srid),
            "margin": margin_m,
            "hidden": sorted(hidden_utilities),
        },
    ).all()
    samples = [_samples(r, zone) for r in rows]
    terrain = has_terrain(session)
    dem = _dem_heights(session, samples, srid) if terrain else [None] * len(samples)
    shapely.prepare(cut)
    pipes = [
        _excavated_pipe(r, sampled, cut, depth_m, heights)
        for r, sampled, heights in zip(rows, samples, dem, strict=True)
    ]
    return ExcavationImpact(
        srid=srid,
        depth_m=depth_m,
        margin_m=margin_m,
        cut_area_m2=round(cut.area, 3),
        ground_source="terrain" if terrain else "nodes",
        pipe_count=len(pipes),
        struck_count=sum(p.status == "struck" for p in pipes),
        pipes=pipes,
        notify=_owners_to_notify(pipes),
        geojson=_highlight(session, pipes, srid, output_crs),
    )


@dataclass(frozen=True)
class PipeSamples:
    """Where one pipe is examined: its line, the length in the zone and the sample points."""

    line: BaseGeometry
    length_in_zone: float
    fractions: FloatArray
    points: list[Point]


def _samples(r: AnyRow, zone: BaseGeometry) -> PipeSamples:
    """The sample points of one pipe inside the zone (every metre, at most 200)."""
    bounds.check_deadline("excavation: sampling the pipes")
    line = shapely.from_wkb(r.wkb)
    length_in_zone, fractions = _sample_fractions(line, zone)
    points = [line.interpolate(f, normalized=True) for f in fractions]
    return PipeSamples(line, length_in_zone, fractions, points)


def _dem_heights(
    session: Session, samples: list[PipeSamples], srid: int
) -> list[list[float | None]]:
    """DEM heights at every pipe's samples, looked up in one statement for all the pipes
    (one per pipe kept a big cut outside the statement timeout and took minutes)."""
    heights = terrain_heights(session, [(p.x, p.y) for s in samples for p in s.points], srid)
    bounds = [0, *itertools.accumulate(len(s.points) for s in samples)]
    return [heights[a:b] for a, b in itertools.pairwise(bounds)]


def _sample_fractions(line: BaseGeometry, zone: BaseGeometry) -> tuple[float, FloatArray]:
    """Length of ``line`` inside ``zone`` and sample positions there (fractions of the line)."""
    flat = shapely.force_2d(line)
    part = flat.intersection(zone)
    if part.is_empty:
        part = flat
    # sample positions (distance along the pipe) over the part inside the zone
    positions: list[float] = []
    for piece in getattr(part, "geoms", [part]):
        if piece.length == 0:
            positions.append(float(shapely.line_locate_point(flat, piece.centroid)))
            continue
        count = min(MAX_SAMPLES_PER_PIPE, max(2, int(piece.length / SAMPLE_STEP_M) + 1))
        for t in np.linspace(0, piece.length, count):
            positions.append(float(shapely.line_locate_point(flat, piece.interpolate(t))))
    length = flat.length
    fractions = np.clip(np.array(positions) / length if length else np.zeros(len(positions)), 0, 1)
    return part.length, fractions


def _excavated_pipe(
    r: AnyRow,
    sampled: PipeSamples,
    cut: BaseGeometry,
    depth_m: float,
    dem: list[float | None] | None,
) -> ExcavatedPipe:
    """One pipe near the cut: top/invert/ground sampled in the zone, status and clearances;
    ``dem`` the DEM heights at the samples (None without a DEM)."""
    bounds.check_deadline("excavation: cover and clearances")
    line, fractions, points = sampled.line, sampled.fractions, sampled.points
    height = float(r.diameter_mm or r.height_mm or 0.0) / 1000.0
    half_width = float(r.diameter_mm or r.width_mm or 0.0) / 2000.0
    centre = np.array([p.z if p.has_z else np.nan for p in points])
    top = _lerp(r.start_top_z, r.end_top_z, fractions)
    if top is None:
        top = centre + height / 2
    invert = _lerp(r.start_invert_z, r.end_invert_z, fractions)
    if invert is None:
        invert = top - height
    ground = _ground(r, fractions, dem)
    inside = shapely.intersects(cut, shapely.points([(p.x, p.y) for p in points]))
    axis_distance = shapely.force_2d(line).distance(cut)
    cover = None if ground is None else float(np.nanmin(ground - top))
    floor = None if ground is None else ground - depth_m
    vertical = None
    if floor is not None and inside.any():
        vertical = float(np.nanmin(floor[inside] - top[inside]))
    if inside.any() or axis_distance == 0:
        status = "struck" if vertical is None or vertical < 0 else "under"
    else:
        status = "near"
    return ExcavatedPipe(
        segment_id=r.id,
        code=r.code,
        utility=r.utility,
        subclass=r.subclass,
        **class_info(r.utility),
        owner=r.owner,
        material=r.material,
        section=section_label(r.section_shape, r.diameter_mm, r.width_mm, r.height_mm),
        status=status,
        inside_cut=bool(inside.any() or axis_distance == 0),
        length_in_zone_m=round(sampled.length_in_zone, 3),
        min_cover_m=None if cover is None else round(cover, 3),
        top_z_max=round(float(np.nanmax(top)), 3),
        invert_z_min=round(float(np.nanmin(invert)), 3),
        horizontal_clearance_m=round(max(0.0, axis_distance - half_width), 3),
        vertical_clearance_m=None if vertical is None else round(vertical, 3),
    )


def _ground(r: AnyRow, fractions: FloatArray, dem: list[float | None] | None) -> FloatArray | None:
    """Ground at the samples: the DEM where it has a value, else between the end nodes."""
    ground = _lerp(r.ground_a, r.ground_b, fractions)
    if dem is None:
        return ground
    from_dem = np.array([np.nan if h is None else h for h in dem])
    return np.where(np.isnan(from_dem), ground if ground is not None else np.nan, from_dem)


def _owners_to_notify(pipes: list[ExcavatedPipe]) -> list[OwnerToNotify]:
    """Pipes and struck pipes per (utility class, owner), sorted by class then owner."""
    counts: dict[tuple[str, str | None], tuple[ExcavatedPipe, int, int]] = {}
    for p in pipes:
        first, count, struck = counts.get((p.utility, p.owner), (p, 0, 0))
        counts[(p.utility, p.owner)] = (first, count + 1, struck + (p.status == "struck"))
    notify = [
        OwnerToNotify(
            utility=first.utility,
            utility_name=first.utility_name,
            colour=first.colour,
            owner=first.owner,
            pipes=count,
            struck=struck,
        )
        for first, count, struck in counts.values()
    ]
    return sorted(notify, key=lambda e: (e.utility, e.owner or ""))


def _highlight(
    session: Session, pipes: list[ExcavatedPipe], srid: int, output_crs: str | None
) -> FeatureCollection:
    """The affected segments for the map (capped), each with its status as ``role``."""
    bounds.check_deadline("excavation: highlight")
    status_of = {p.segment_id: p.status for p in pipes}
    collection = highlight(session, [("segment", list(status_of), "affected")], srid, output_crs)
    for feature in collection["features"]:
        feature["properties"]["role"] = status_of[feature["properties"]["id"]]
    return collection


def _lerp(a: float | None, b: float | None, t: FloatArray) -> FloatArray | None:
    if a is None or b is None:
        return None
    return a + (b - a) * t

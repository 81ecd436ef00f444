"""Cross-section (横断面) along a user line: every pipe crossed, its depth, size, colour; ground.

For each crossing of the line with a segment (2D, storage CRS): the offset along the line, the
centreline elevation interpolated along the segment's 3D centreline, the invert and top
elevations interpolated between the segment's end values (or centre -/+ half the section
height), the ground from the terrain DEM (``ST_Value`` on ``terrain_raster``) or, without a DEM,
interpolated between the segment's end-node ground heights, and from those the centre depth and
the cover. The ground profile is sampled along the line from the DEM when there is one.
"""

from __future__ import annotations

from typing import Any

import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from cim.errors import InvalidInput
from cim.services.pipes import svg
from cim.services.pipes.ground import has_terrain, terrain_heights
from cim.services.pipes.inputs import ewkt, parse_line
from cim.services.pipes.models import CrossSection, GroundPoint, SectionPipe
from cim.services.pipes.scope import AnyRow, no_jit, pipe_dataset_ids, session_srid
from cim.services.pipes.sections import class_info, round_or_none, section_label
from cim.services.tables.language import DEFAULT_LANGUAGE, svg_text

MAX_LINE_M = 5000.0
GROUND_SAMPLES = 100

CROSSINGS_SQL = """
WITH hits AS (
    SELECT s.*, (ST_Dump(ST_Intersection(ST_Force2D(s.geom), ST_GeomFromEWKT(:line)))).geom AS hit
    FROM pipe_segment s
    WHERE s.dataset_id = ANY(:ds) AND ST_Intersects(s.geom, ST_GeomFromEWKT(:line))
),
points AS (
    SELECT hits.*, CASE WHEN GeometryType(hit) = 'POINT' THEN hit ELSE ST_StartPoint(hit) END AS p
    FROM hits
)
SELECT p.id, p.code, p.utility, p.subclass, p.section_shape, p.diameter_mm, p.width_mm,
       p.height_mm, p.material, p.owner, p.pressure, p.burial,
       ST_X(p.p), ST_Y(p.p),
       ST_LineLocatePoint(ST_GeomFromEWKT(:line), p.p) * ST_Length(ST_GeomFromEWKT(:line))
           AS offset_m,
       ST_LineLocatePoint(ST_Force2D(p.geom), p.p) AS frac,
       ST_Z(ST_LineInterpolatePoint(p.geom, ST_LineLocatePoint(ST_Force2D(p.geom), p.p))) AS centre,
       p.start_invert_z, p.end_invert_z, p.start_top_z, p.end_top_z,
       (SELECT ground_z FROM pipe_node WHERE id = p.start_node_id),
       (SELECT ground_z FROM pipe_node WHERE id = p.end_node_id)
FROM points p
ORDER BY offset_m, p.id
"""


def _lerp(a: float | None, b: float | None, t: float) -> float | None:
    if a is None or b is None:
        return None
    return a + (b - a) * t


def cross_section(
    session: Session,
    *,
    line: Any,
    dataset_id: int | None = None,
    utilities: list[str] | None = None,
    hidden_utilities: frozenset[str] = frozenset(),
) -> CrossSection:
    """Pipes crossed by ``line`` (GeoJSON/WKT LineString in the storage CRS), nearest first."""
    geom = parse_line(line)
    if geom.length > MAX_LINE_M:
        raise InvalidInput(
            f"line is {geom.length:.0f} m long; a cross-section is at most {MAX_LINE_M:g} m"
        )
    srid = session_srid(session)
    rows = _crossings(session, geom, srid, dataset_id, utilities, hidden_utilities)
    terrain = has_terrain(session)
    crossing_ground = (
        terrain_heights(session, [(r[12], r[13]) for r in rows], srid)
        if terrain
        else [None] * len(rows)
    )
    pipes = [_section_pipe(r, ground) for r, ground in zip(rows, crossing_ground, strict=True)]
    return CrossSection(
        line_length_m=round(geom.length, 3),
        srid=srid,
        ground_source="terrain" if terrain else "nodes",
        pipe_count=len(pipes),
        pipes=pipes,
        ground_profile=(
            _terrain_profile(session, geom, srid)
            if terrain
            else [
                GroundPoint(offset_m=p.offset_m, z=p.ground_z)
                for p in pipes
                if p.ground_z is not None
            ]
        ),
    )


def _crossings(
    session: Session,
    geom: shapely.LineString,
    srid: int,
    dataset_id: int | None,
    utilities: list[str] | None,
    hidden: frozenset[str],
) -> list[AnyRow]:
    """Crossings of the line with the segments the caller may see, of the classes asked for."""
    datasets = pipe_dataset_ids(session, dataset_id)
    no_jit(session)
    rows = session.execute(text(CROSSINGS_SQL), {"line": ewkt(geom, srid), "ds": datasets}).all()
    rows = [r for r in rows if r.utility.upper() not in hidden]
    if utilities:
        wanted = {u.upper() for u in utilities}
        rows = [r for r in rows if r.utility in wanted or (r.subclass or "") in wanted]
    return rows


def _section_pipe(r: AnyRow, dem_ground: float | None) -> SectionPipe:
    """One crossing: elevations interpolated at the crossing, ground from the DEM or nodes."""
    frac = float(r.frac)
    height = float(r.diameter_mm or r.height_mm or 0.0) / 1000.0
    width = float(r.diameter_mm or r.width_mm or 0.0) / 1000.0
    centre = float(r.centre) if r.centre is not None else None
    invert = _lerp(r.start_invert_z, r.end_invert_z, frac)
    if invert is None and centre is not None:
        invert = centre - height / 2
    top = _lerp(r.start_top_z, r.end_top_z, frac)
    if top is None and invert is not None:
        top = invert + height
    if centre is None and invert is not None:
        centre = invert + height / 2
    ground = dem_ground
    ground_source = "terrain" if ground is not None else "nodes"
    if ground is None:
        ground = _lerp(r[21], r[22], frac)
    return SectionPipe(
        segment_id=r.id,
        code=r.code,
        utility=r.utility,
        subclass=r.subclass,
        **class_info(r.subclass if r.utility == "QT" and r.subclass else r.utility),
        offset_m=round(float(r.offset_m), 3),
        x=round(float(r[12]), 3),
        y=round(float(r[13]), 3),
        section=section_label(r.section_shape, r.diameter_mm, r.width_mm, r.height_mm),
        section_shape=r.section_shape,
        width_m=round(width, 3),
        height_m=round(height, 3),
        centre_z=round_or_none(centre),
        invert_z=round_or_none(invert),
        top_z=round_or_none(top),
        ground_z=round_or_none(ground),
        ground_source=ground_source if ground is not None else None,
        centre_depth_m=round_or_none(None if ground is None or centre is None else ground - centre),
        cover_m=round_or_none(None if ground is None or top is None else ground - top),
        material=r.material,
        owner=r.owner,
        pressure=r.pressure,
        burial=r.burial,
    )


def _terrain_profile(session: Session, geom: shapely.LineString, srid: int) -> list[GroundPoint]:
    """The DEM sampled at GROUND_SAMPLES points along the line (off-DEM samples left out)."""
    count = GROUND_SAMPLES
    samples = [geom.interpolate(geom.length * i / (count - 1)) for i in range(count)]
    heights = terrain_heights(session, [(p.x, p.y) for p in samples], srid)
    return [
        GroundPoint(offset_m=round(geom.length * i / (count - 1), 3), z=round(h, 3))
        for i, h in enumerate(heights)
        if h is not None
    ]


def section_svg(section: CrossSection, lang: str = DEFAULT_LANGUAGE) -> str:
    """An SVG drawing of a :func:`cross_section` answer: ground line and coloured pipes, its
    title and axis names in ``lang`` (``zh`` or ``en``, the language files of
    :mod:`cim.services.tables`)."""
    ground = [(g.offset_m, g.z) for g in section.ground_profile]
    elevations = [z for _, z in ground]
    for pipe in section.pipes:
        elevations += [z for z in (pipe.invert_z, pipe.top_z) if z is not None]
    frame = svg.frame_for([0.0, section.line_length_m], elevations)
    parts = svg.axes(
        frame,
        svg_text(lang, "section_title", pipes=section.pipe_count),
        svg_text(lang, "distance_axis"),
        svg_text(lang, "elevation_axis"),
    )
    if len(ground) > 1:
        parts.append(svg.polyline(frame, ground, "#8B5A2B"))
    for pipe in section.pipes:
        if pipe.centre_z is None:
            continue
        cx, cy = frame.x(pipe.offset_m), frame.y(pipe.centre_z)
        rx = max(3.0, pipe.width_m / 2 * frame.sx())
        ry = max(3.0, pipe.height_m / 2 * frame.sy())
        if pipe.section_shape == "rectangular":
            parts.append(
                f'<rect x="{cx - rx:.1f}" y="{cy - ry:.1f}" width="{2 * rx:.1f}"'
                f' height="{2 * ry:.1f}" fill="{pipe.colour}" stroke="#222"/>'
            )
        else:
            parts.append(
                f'<ellipse cx="{cx:.1f}" cy="{cy:.1f}" rx="{rx:.1f}" ry="{ry:.1f}"'
                f' fill="{pipe.colour}" stroke="#222"/>'
            )
        parts.append(svg.label(cx + rx + 2, cy - 2, f"{pipe.code} {pipe.utility} {pipe.section}"))
        if pipe.cover_m is not None:
            cover = svg_text(lang, "cover", cover=f"{pipe.cover_m:.2f}")
            parts.append(svg.label(cx + rx + 2, cy + 10, cover))
    return svg.document(parts, lang)

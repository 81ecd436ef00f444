"""Longitudinal profile (纵断面) between two nodes along the network path (shortest by length).

Per segment, in the direction of the path: chainage, invert and top at both ends, cover at both
ends (ground - top), slope (fall of the invert over the horizontal length, positive = falling
along the path) and, for gravity classes, a backward-slope flag (倒坡: the invert rises from the
segment's inlet to its outlet, i.e. against its stored flow direction). The ground line is the
surveyed ground height of each node, or the terrain DEM where a node has none.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from cim.errors import InvalidInput
from cim.services.pipes import svg
from cim.services.pipes.graph import dataset_of_node, load_graph
from cim.services.pipes.ground import has_terrain, terrain_heights
from cim.services.pipes.models import (
    LongitudinalProfile,
    ProfileNode,
    ProfileSegment,
    Ref,
)
from cim.services.pipes.scope import AnyRow, refuse_hidden, session_srid
from cim.services.pipes.sections import class_info, round_or_none, section_label
from cim.services.tables.language import DEFAULT_LANGUAGE, svg_text
from cim.utilities import is_gravity

SLOPE_EPSILON = 1e-6


def longitudinal_profile(
    session: Session,
    *,
    from_node_id: int,
    to_node_id: int,
    hidden_utilities: frozenset[str] = frozenset(),
) -> LongitudinalProfile:
    """Ground line, top/invert per segment, cover, slope and backward slopes from A to B."""
    dataset, node_ids, segment_ids = _path(session, from_node_id, to_node_id, hidden_utilities)
    nodes, segments = _path_rows(session, node_ids, segment_ids)
    ground = _ground_heights(session, nodes, node_ids)
    rows = []
    chainage = 0.0
    for k, segment_id in enumerate(segment_ids):
        a, b = nodes[node_ids[k]], nodes[node_ids[k + 1]]
        row = _profile_segment(segments[segment_id], a, b, ground, chainage)
        rows.append(row)
        chainage += float(segments[segment_id].length_2d)
    chainages = [0.0] + [r.chainage_to_m for r in rows]
    return LongitudinalProfile(
        dataset_id=dataset,
        from_node=Ref(id=from_node_id, code=nodes[from_node_id].code),
        to_node=Ref(id=to_node_id, code=nodes[to_node_id].code),
        length_m=round(chainage, 3),
        nodes=[
            ProfileNode(
                id=n,
                code=nodes[n].code,
                kind=nodes[n].kind,
                chainage_m=round(c, 3),
                ground_z=round_or_none(ground[n]),
            )
            for n, c in zip(node_ids, chainages, strict=True)
        ],
        segments=rows,
        backward_segments=[r.code for r in rows if r.backward_slope],
    )


def _path(
    session: Session, from_node_id: int, to_node_id: int, hidden: frozenset[str]
) -> tuple[int, list[int], list[int]]:
    """The dataset, node ids and segment ids of the shortest path (by length) from A to B."""
    if from_node_id == to_node_id:
        raise InvalidInput("a profile needs two different nodes")
    dataset = dataset_of_node(session, from_node_id)
    if dataset_of_node(session, to_node_id) != dataset:
        raise InvalidInput("both nodes must belong to the same pipe dataset")
    graph = load_graph(session, dataset)
    path_nodes, path_segments = graph.shortest_path(
        graph.node_index(from_node_id), graph.node_index(to_node_id)
    )
    for segment in path_segments:
        refuse_hidden(graph.segment_utility[segment], hidden)
    node_ids = [int(graph.node_ids[n]) for n in path_nodes]
    segment_ids = [int(graph.segment_ids[s]) for s in path_segments]
    return dataset, node_ids, segment_ids


def _path_rows(
    session: Session, node_ids: list[int], segment_ids: list[int]
) -> tuple[dict[int, AnyRow], dict[int, AnyRow]]:
    """The path's node and segment rows by id."""
    nodes = {
        r.id: r
        for r in session.execute(
            text(
                "SELECT id, code, kind, ground_z, ST_X(geom) AS x, ST_Y(geom) AS y"
                " FROM pipe_node WHERE id = ANY(:ids)"
            ),
            {"ids": node_ids},
        )
    }
    segments = {
        r.id: r
        for r in session.execute(
            text(
                """
                SELECT id, code, utility, subclass, start_node_id, end_node_id, section_shape,
                       diameter_mm, width_mm, height_mm, material, start_invert_z, end_invert_z,
                       start_top_z, end_top_z, ST_Length(geom) AS length_2d
                FROM pipe_segment WHERE id = ANY(:ids)
                """
            ),
            {"ids": segment_ids},
        )
    }
    return nodes, segments


def _ground_heights(
    session: Session, nodes: dict[int, AnyRow], node_ids: list[int]
) -> dict[int, float | None]:
    """Surveyed ground height of each node, or the DEM's where a node has none."""
    ground: dict[int, float | None] = {node_id: nodes[node_id].ground_z for node_id in node_ids}
    missing = [n for n in node_ids if ground[n] is None]
    if missing and has_terrain(session):
        heights = terrain_heights(
            session, [(nodes[n].x, nodes[n].y) for n in missing], session_srid(session)
        )
        ground.update(zip(missing, heights, strict=True))
    return ground


def _profile_segment(
    seg: AnyRow,
    a: AnyRow,
    b: AnyRow,
    ground: dict[int, float | None],
    chainage: float,
) -> ProfileSegment:
    """Segment ``seg`` walked from node ``a`` to node ``b``, starting at ``chainage``."""
    forward = seg.start_node_id == a.id
    inv = (
        (seg.start_invert_z, seg.end_invert_z)
        if forward
        else (seg.end_invert_z, seg.start_invert_z)
    )
    top = (seg.start_top_z, seg.end_top_z) if forward else (seg.end_top_z, seg.start_top_z)
    height = float(seg.diameter_mm or seg.height_mm or 0.0) / 1000.0
    top = tuple(
        t if t is not None else (i + height if i is not None else None)
        for t, i in zip(top, inv, strict=True)
    )  # type: ignore[assignment]
    length = float(seg.length_2d)
    slope = (
        (inv[0] - inv[1]) / length
        if inv[0] is not None and inv[1] is not None and length > 0
        else None
    )
    backward = None
    if is_gravity(seg.utility) and seg.start_invert_z is not None and seg.end_invert_z is not None:
        backward = bool(seg.end_invert_z - seg.start_invert_z > SLOPE_EPSILON * max(length, 1.0))
    return ProfileSegment(
        segment_id=seg.id,
        code=seg.code,
        utility=seg.utility,
        **class_info(seg.utility),
        from_node=a.code,
        to_node=b.code,
        along_link_direction=forward,
        section=section_label(seg.section_shape, seg.diameter_mm, seg.width_mm, seg.height_mm),
        material=seg.material,
        chainage_from_m=round(chainage, 3),
        chainage_to_m=round(chainage + length, 3),
        length_m=round(length, 3),
        invert_from_z=round_or_none(inv[0]),
        invert_to_z=round_or_none(inv[1]),
        top_from_z=round_or_none(top[0]),
        top_to_z=round_or_none(top[1]),
        cover_from_m=_cover(ground[a.id], top[0]),
        cover_to_m=_cover(ground[b.id], top[1]),
        slope=round_or_none(slope, 6),
        slope_permille=round_or_none(None if slope is None else slope * 1000, 3),
        backward_slope=backward,
    )


def _cover(ground: float | None, top: float | None) -> float | None:
    return None if ground is None or top is None else round(ground - top, 3)


def profile_svg(profile: LongitudinalProfile, lang: str = DEFAULT_LANGUAGE) -> str:
    """SVG of a :func:`longitudinal_profile`: ground, pipe top and invert; backward pipes red;
    title and axis names in ``lang`` (the language files of :mod:`cim.services.tables`)."""
    ground = [(n.chainage_m, n.ground_z) for n in profile.nodes if n.ground_z is not None]
    elevations = [z for _, z in ground]
    for s in profile.segments:
        elevations += [
            z for z in (s.invert_from_z, s.invert_to_z, s.top_from_z, s.top_to_z) if z is not None
        ]
    frame = svg.frame_for([0.0, profile.length_m], elevations)
    title = svg_text(lang, "profile_title", start=profile.from_node.code, end=profile.to_node.code)
    parts = svg.axes(
        frame, title, svg_text(lang, "distance_axis"), svg_text(lang, "elevation_axis")
    )
    if len(ground) > 1:
        parts.append(svg.polyline(frame, ground, "#8B5A2B"))
    for s in profile.segments:
        if (
            s.invert_from_z is None
            or s.invert_to_z is None
            or s.top_from_z is None
            or s.top_to_z is None
        ):
            continue
        colour = "#D00000" if s.backward_slope else s.colour
        a, b = s.chainage_from_m, s.chainage_to_m
        corners = [(a, s.top_from_z), (b, s.top_to_z), (b, s.invert_to_z), (a, s.invert_from_z)]
        points = " ".join(f"{frame.x(d):.1f},{frame.y(z):.1f}" for d, z in corners)
        parts.append(
            f'<polygon points="{points}" fill="{colour}" fill-opacity="0.6" stroke="#222"/>'
        )
        note = f"{s.code} {s.section} i={s.slope_permille}‰"
        parts.append(svg.label(frame.x((a + b) / 2) - 20, frame.y(s.top_from_z) - 6, note))
    for n in profile.nodes:
        x = frame.x(n.chainage_m)
        parts.append(
            f'<line x1="{x:.1f}" y1="{svg.MARGIN}" x2="{x:.1f}" y2="{svg.HEIGHT - svg.MARGIN}"'
            ' stroke="#bbb" stroke-dasharray="3,3"/>'
        )
        parts.append(svg.label(x + 2, svg.MARGIN + 10, n.code))
    return svg.document(parts, lang)

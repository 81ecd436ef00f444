"""Network tracing: downstream/upstream on gravity networks, connected component on pressure ones.

Gravity (PS drainage): a segment flows from its higher invert to its lower one
(``direction_from="invert"``, the default; level or unknown inverts fall back to the stored link
direction) or always from start to end node (``"link"``: SWMM conduits are stored from inlet to
outlet node, so this follows the model's link direction). Pressure and cable networks are traced
as an undirected connected component. Stop conditions: valves (any valve, or only closed ones
for pressure networks), a change of utility class/sub-class, and a maximum path distance (the
walk is a Dijkstra over segment lengths, so "within 500 m" means along the pipes).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.orm import Session

from cim import bounds
from cim.errors import InvalidInput
from cim.services.pipes.geojson import highlight
from cim.services.pipes.graph import (
    PipeGraph,
    dataset_of_node,
    dataset_of_segment,
    load_graph,
)
from cim.services.pipes.models import NetworkTrace, NodeRef, Ref, TracedNode
from cim.services.pipes.scope import refuse_hidden, session_srid
from cim.services.results import FeatureCollection
from cim.utilities import is_gravity

Direction = Literal["downstream", "upstream", "both"]
DirectionFrom = Literal["invert", "link"]


def flows_forward(graph: PipeGraph, segment: int, direction_from: DirectionFrom) -> bool:
    """True when water runs from the segment's start node to its end node."""
    if direction_from == "invert":
        start = float(graph.segment_start_invert[segment])
        end = float(graph.segment_end_invert[segment])
        if not (math.isnan(start) or math.isnan(end)) and start != end:
            return start > end
    return True


def trace_indices(
    graph: PipeGraph,
    start_nodes: list[int],
    *,
    direction: Direction,
    direction_from: DirectionFrom = "invert",
    stop_at_valves: bool = False,
    stop_at_class_change: bool = False,
    max_distance_m: float | None = None,
    start_class: tuple[str, str | None] | None = None,
    hidden: frozenset[str] = frozenset(),
) -> tuple[list[int], list[int], dict[int, float]]:
    """Segments and nodes reached from ``start_nodes`` and each node's path distance."""
    starts, ends = graph.ends()
    lengths = graph.lengths()
    limit = math.inf if max_distance_m is None else max_distance_m
    best: dict[int, float] = {node: 0.0 for node in start_nodes}
    heap = [(0.0, node) for node in start_nodes]
    heapq.heapify(heap)
    reached_segments: set[int] = set()
    steps = 0
    while heap:
        distance, node = heapq.heappop(heap)
        steps += 1
        if steps % bounds.CHECK_EVERY == 0:
            bounds.check_deadline("trace: walking the network")
        if distance > best.get(node, math.inf):
            continue
        if node not in start_nodes and graph.is_valve(node):
            state = graph.node_valve_state[node]
            if stop_at_valves or state == "closed":
                continue
        for segment in graph.incident(node):
            if hidden and graph.segment_utility[segment].upper() in hidden:
                continue  # an anonymous walk never enters a sensitive class (gas, power)
            forward = starts[segment] == node
            other = ends[segment] if forward else starts[segment]
            if direction != "both":
                downhill = flows_forward(graph, segment, direction_from)
                along_flow = forward == downhill
                if (direction == "downstream") != along_flow:
                    continue
            if stop_at_class_change and start_class is not None:
                here = (graph.segment_utility[segment], graph.segment_subclass[segment])
                if here != start_class:
                    continue
            candidate = distance + lengths[segment]
            if candidate > limit:
                continue
            reached_segments.add(segment)
            if candidate < best.get(other, math.inf):
                best[other] = candidate
                heapq.heappush(heap, (candidate, other))
    return sorted(reached_segments), sorted(best), best


def trace(
    session: Session,
    *,
    node_id: int | None = None,
    segment_id: int | None = None,
    direction: Direction = "downstream",
    direction_from: DirectionFrom = "invert",
    stop_at_valves: bool = False,
    stop_at_class_change: bool = False,
    max_distance_m: float | None = None,
    with_geojson: bool = True,
    hidden_utilities: frozenset[str] = frozenset(),
    output_crs: str | None = None,
) -> NetworkTrace:
    """Trace from a node or a segment (both its ends); gravity networks directed, others not.

    The GeoJSON highlight is in ``output_crs`` (default the storage CRS).
    """
    if (node_id is None) == (segment_id is None):
        raise InvalidInput("give exactly one of node_id or segment_id")
    if direction not in ("downstream", "upstream", "both"):
        raise InvalidInput("direction must be downstream, upstream or both")
    if direction_from not in ("invert", "link"):
        raise InvalidInput("direction_from must be invert or link")
    if max_distance_m is not None and max_distance_m <= 0:
        raise InvalidInput("max_distance_m must be positive")
    srid = session_srid(session)
    start = _start(session, node_id, segment_id)
    refuse_hidden(start.utility, hidden_utilities)
    gravity = is_gravity(start.utility)
    mode: Direction = direction if gravity else "both"
    graph = start.graph
    segments, nodes, distance = trace_indices(
        graph,
        start.nodes,
        direction=mode,
        direction_from=direction_from,
        stop_at_valves=stop_at_valves,
        stop_at_class_change=stop_at_class_change,
        max_distance_m=max_distance_m,
        start_class=start.start_class,
        hidden=hidden_utilities,
    )
    if start.segment is not None:
        segments = sorted(set(segments) | {start.segment})
    terminals = _terminals(graph, nodes, segments, mode, direction_from)
    room = bounds.current().highlight_room(max(len(segments), len(nodes)))
    truncated = room < max(len(segments), len(nodes))
    return NetworkTrace(
        dataset_id=graph.dataset_id,
        mode="directed" if gravity else "connected_component",
        direction=mode,
        direction_from=direction_from if gravity else None,
        segments=[
            Ref(id=int(graph.segment_ids[s]), code=graph.segment_codes[s]) for s in segments[:room]
        ],
        nodes=[
            TracedNode(
                id=int(graph.node_ids[n]),
                code=graph.node_codes[n],
                kind=graph.node_kind[n],
                distance_m=round(distance[n], 3),
            )
            for n in nodes[:room]
        ],
        terminal_nodes=[
            NodeRef(id=int(graph.node_ids[n]), code=graph.node_codes[n], kind=graph.node_kind[n])
            for n in terminals[:room]
        ],
        segment_count=len(segments),
        length_m=round(float(graph.segment_length[segments].sum()) if segments else 0.0, 3),
        geojson=(
            _highlight(session, graph, segments, terminals, srid, output_crs)
            if with_geojson
            else None
        ),
        node_count=len(nodes) if truncated else None,
        truncated=truncated,
    )


@dataclass(frozen=True)
class _Start:
    """Where a trace starts: the graph, start node indices, the class walked."""

    graph: PipeGraph
    nodes: list[int]
    segment: int | None  # the start segment's index when tracing from a segment
    utility: str
    start_class: tuple[str, str | None]


def _start(session: Session, node_id: int | None, segment_id: int | None) -> _Start:
    """A segment starts at both its ends; a node alone, with the class of its first segment."""
    if segment_id is not None:
        graph = load_graph(session, dataset_of_segment(session, segment_id))
        segment = graph.segment_index(segment_id)
        starts, ends = graph.ends()
        utility = graph.segment_utility[segment]
        start_class = (utility, graph.segment_subclass[segment])
        return _Start(graph, [starts[segment], ends[segment]], segment, utility, start_class)
    assert node_id is not None
    graph = load_graph(session, dataset_of_node(session, node_id))
    node = graph.node_index(node_id)
    incident = graph.incident(node)
    utility = graph.segment_utility[incident[0]] if incident else graph.node_utility[node]
    start_class = (utility, graph.segment_subclass[incident[0]]) if incident else (utility, None)
    return _Start(graph, [node], None, utility, start_class)


def _highlight(
    session: Session,
    graph: PipeGraph,
    segments: list[int],
    terminals: list[int],
    srid: int,
    output_crs: str | None,
) -> FeatureCollection:
    """Traced segments and terminal nodes, for the map (capped)."""
    return highlight(
        session,
        [
            ("segment", [int(graph.segment_ids[s]) for s in segments], "traced"),
            ("node", [int(graph.node_ids[n]) for n in terminals], "terminal"),
        ],
        srid,
        output_crs,
    )


def _terminals(
    graph: PipeGraph,
    nodes: list[int],
    segments: list[int],
    direction: Direction,
    direction_from: DirectionFrom,
) -> list[int]:
    """Reached nodes where the walk ended: outfalls downstream, heads upstream, ends otherwise."""
    starts, _ = graph.ends()
    reached = set(segments)
    out = []
    for node in nodes:
        onward = 0
        for segment in graph.incident(node):
            if segment not in reached and direction == "both":
                continue
            forward = starts[segment] == node
            if direction == "both":
                onward += 1
                continue
            along_flow = forward == flows_forward(graph, segment, direction_from)
            if (direction == "downstream") == along_flow:
                onward += 1
        if (direction == "both" and onward <= 1) or (direction != "both" and onward == 0):
            out.append(node)
    return out

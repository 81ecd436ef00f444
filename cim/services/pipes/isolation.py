"""Burst-valve isolation (爆管关阀) on pressure networks: which valves to close, what is cut off.

The search is Giswater's mincut reduced to its graph core: from the burst segment, walk the
network through every non-valve node; an operable valve (open or already closed) stops the walk
and becomes part of the ring to close; a valve that is broken or inaccessible (stored state, or
named in ``failed_valves`` on a second call) is walked through, so the ring extends to the
next valves. The segments walked are the isolated ones; their length and water volume
(inner section area x length) and the non-valve nodes reached (hydrants, consumers, tees) are
reported. With valves modelled as nodes on the pipes (the EPANET importer's ``--valves`` layer
puts them there), the isolated set equals WNTR's ``valve_segments`` segment of the burst pipe:
tested on Net3 and ky4 imported with a ``generate_valve_layer`` layer.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session

from cim import bounds
from cim.errors import InvalidInput
from cim.services.pipes.geojson import highlight
from cim.services.pipes.graph import (
    FAILED_VALVE_STATES,
    PipeGraph,
    dataset_of_segment,
    load_graph,
    nearest_segment,
)
from cim.services.pipes.models import BurstIsolation, Ref, ValveNode
from cim.services.pipes.scope import pipe_dataset_ids, refuse_hidden, session_srid
from cim.services.pipes.valve_zones import CLOSED, PASSED, TO_CLOSE, WALKED, valve_zones
from cim.services.results import FeatureCollection
from cim.utilities import is_pressure

PRESSURE_HINT = "isolation runs on pressure networks (JS water, RQ gas, RL heat)"


@dataclass(frozen=True)
class Isolation:
    """Indices (into the graph) of what a burst cuts off and the valves that do it."""

    segments: list[int]
    nodes: list[int]
    valves_to_close: list[int]
    valves_already_closed: list[int]
    failed_valves_passed: list[int]


def isolate(
    graph: PipeGraph,
    start_segment: int,
    failed_valves: frozenset[int],
    hidden: frozenset[str] = frozenset(),
) -> Isolation:
    """Graph search from one segment bounded by operable valves (indices; pure, no database);
    segments of a ``hidden`` class (what an anonymous caller may not see) are never entered.

    Without failed valves or hidden classes in the graph the answer is the segment's
    precomputed valve zone (:mod:`cim.services.pipes.valve_zones`), the same sets as the walk.
    """
    if not failed_valves and not hidden & utilities_of(graph):
        return _from_zone(graph, start_segment)
    return _walk(graph, start_segment, failed_valves, hidden)


def utilities_of(graph: PipeGraph) -> frozenset[str]:
    """The utility classes of a graph's segments (upper case; computed once per graph)."""
    known = graph._lists.get("utilities")
    if not isinstance(known, frozenset):
        known = graph._lists["utilities"] = frozenset(u.upper() for u in graph.segment_utility)
    return known


def _from_zone(graph: PipeGraph, start_segment: int) -> Isolation:
    zones = valve_zones(graph)
    segments = zones.segments(start_segment)
    reached = np.unique(
        np.concatenate([graph.segment_start[segments], graph.segment_end[segments]])
    )
    role = zones.node_role[reached]
    return Isolation(
        segments=segments.tolist(),
        nodes=reached[role == WALKED].tolist(),
        valves_to_close=reached[role == TO_CLOSE].tolist(),
        valves_already_closed=reached[role == CLOSED].tolist(),
        failed_valves_passed=reached[role == PASSED].tolist(),
    )


def _walk(
    graph: PipeGraph, start_segment: int, failed_valves: frozenset[int], hidden: frozenset[str]
) -> Isolation:
    starts, ends = graph.ends()
    seen_segments = {start_segment}
    seen_nodes: set[int] = set()
    queue = deque([starts[start_segment], ends[start_segment]])
    nodes: list[int] = []
    to_close: list[int] = []
    closed: list[int] = []
    passed: list[int] = []
    while queue:
        node = queue.popleft()
        if node in seen_nodes:
            continue
        seen_nodes.add(node)
        if len(seen_nodes) % bounds.CHECK_EVERY == 0:
            bounds.check_deadline("isolation: walking to the valves")
        if graph.is_valve(node):
            state = graph.node_valve_state[node]
            if node not in failed_valves and state not in FAILED_VALVE_STATES:
                (closed if state == "closed" else to_close).append(node)
                continue
            passed.append(node)
        else:
            nodes.append(node)
        for segment in graph.incident(node):
            if hidden and graph.segment_utility[segment].upper() in hidden:
                continue
            if segment not in seen_segments:
                seen_segments.add(segment)
                queue.append(starts[segment] if ends[segment] == node else ends[segment])
    return Isolation(
        segments=sorted(seen_segments),
        nodes=sorted(nodes),
        valves_to_close=sorted(to_close),
        valves_already_closed=sorted(closed),
        failed_valves_passed=sorted(passed),
    )


def isolate_burst(
    session: Session,
    *,
    segment_id: int | None = None,
    point: tuple[float, float] | None = None,
    dataset_id: int | None = None,
    failed_valve_ids: list[int] | None = None,
    tolerance_m: float = 50.0,
    with_geojson: bool = True,
    hidden_utilities: frozenset[str] = frozenset(),
    output_crs: str | None = None,
) -> BurstIsolation:
    """Valves to close for a burst on ``segment_id`` (or the pressure pipe nearest ``point``).

    ``point`` is in the storage CRS; the GeoJSON highlight is in ``output_crs`` (default storage).
    """
    srid = session_srid(session)
    if (segment_id is None) == (point is None):
        raise InvalidInput("give exactly one of segment_id or point")
    if segment_id is None:
        assert point is not None
        segment_id = nearest_segment(
            session,
            x=point[0],
            y=point[1],
            srid=srid,
            dataset_ids=pipe_dataset_ids(session, dataset_id),
            utilities=[u for u in ("JS", "RQ", "RL", "GY") if u not in hidden_utilities],
            tolerance_m=tolerance_m,
        )
    dataset = dataset_of_segment(session, segment_id)
    if dataset_id is not None and dataset != dataset_id:
        raise InvalidInput(f"segment {segment_id} belongs to dataset {dataset}, not {dataset_id}")
    graph = load_graph(session, dataset)
    start = graph.segment_index(segment_id)
    utility = graph.segment_utility[start]
    refuse_hidden(utility, hidden_utilities)
    if not is_pressure(utility):
        raise InvalidInput(f"segment {segment_id} is class {utility}; {PRESSURE_HINT}")
    failed: set[int] = set()
    for valve_id in failed_valve_ids or []:
        index = graph.node_index(valve_id)
        if not graph.is_valve(index):
            raise InvalidInput(f"node {valve_id} is not a valve")
        failed.add(index)
    result = isolate(graph, start, frozenset(failed), hidden_utilities)
    return isolation_summary(
        session,
        graph,
        result,
        segment_id,
        srid,
        with_geojson=with_geojson,
        output_crs=output_crs,
    )


def isolation_summary(
    session: Session,
    graph: PipeGraph,
    result: Isolation,
    segment_id: int,
    srid: int,
    *,
    with_geojson: bool,
    output_crs: str | None = None,
) -> BurstIsolation:
    """The answer: valves, segments, length, volume, affected nodes, GeoJSON highlight."""
    lengths = graph.segment_length[result.segments]
    volume = float((lengths * graph.segment_area[result.segments]).sum())
    node_kind = graph.node_kind
    kinds = dict(Counter(node_kind[i] or "junction" for i in result.nodes))
    room = bounds.current().highlight_room(max(len(result.segments), len(result.nodes)))
    return BurstIsolation(
        dataset_id=graph.dataset_id,
        burst_segment=Ref(id=segment_id, code=graph.segment_codes[graph.segment_index(segment_id)]),
        valves_to_close=_valve_nodes(graph, result.valves_to_close),
        valves_already_closed=_valve_nodes(graph, result.valves_already_closed),
        failed_valves_passed=_valve_nodes(graph, result.failed_valves_passed),
        isolated_segments=[
            Ref(id=int(graph.segment_ids[s]), code=graph.segment_codes[s])
            for s in result.segments[:room]
        ],
        segment_count=len(result.segments),
        length_m=round(float(lengths.sum()), 3),
        volume_m3=round(volume, 3),
        affected_nodes=_valve_nodes(graph, result.nodes[:room]),
        affected_node_kinds=kinds,  # exact: the number of affected nodes of each kind
        geojson=(_highlight(session, graph, result, srid, output_crs) if with_geojson else None),
        truncated=room < max(len(result.segments), len(result.nodes)),
    )


def _valve_nodes(graph: PipeGraph, indices: list[int]) -> list[ValveNode]:
    return [
        ValveNode(
            id=int(graph.node_ids[i]),
            code=graph.node_codes[i],
            kind=graph.node_kind[i],
            valve_state=graph.node_valve_state[i],
        )
        for i in indices
    ]


def _highlight(
    session: Session, graph: PipeGraph, result: Isolation, srid: int, output_crs: str | None
) -> FeatureCollection:
    """Isolated segments, valves to close and failed valves passed, for the map (capped)."""
    return highlight(
        session,
        [
            ("segment", [int(graph.segment_ids[s]) for s in result.segments], "isolated"),
            ("node", [int(graph.node_ids[v]) for v in result.valves_to_close], "close"),
            ("node", [int(graph.node_ids[v]) for v in result.failed_valves_passed], "failed"),
        ],
        srid,
        output_crs,
    )

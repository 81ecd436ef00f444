"""Planned shutdowns (计划停水): store them with the ring they cut off, list, cancel, conflicts.

A plan closes what a shutdown closes - the valves isolating a work segment (burst isolation),
or given valves and pipes - from ``starts_at`` to ``ends_at``. Storing it runs
:func:`cim.services.simulation.shutdown.shutdown_impact` over the plan's hours (an hour to
a day): that validates the closures the way ``POST
/analysis/pipes/shutdown`` does, names the links closed and the junctions cut off, and gives
the impact summary kept with the plan.

The ring is kept as stored rows: the segments with no path to a tank or reservoir once the
closed valves (and valves already stored closed) stop the water, plus the closed pipes and
the work segment's isolation zone (a zone beside a reservoir is still fed, yet is the work
area). The model's :func:`~cim.services.simulation.shutdown.cut_off` answers junctions of
whole model links; a pipe cut by a valve is two or more stored pieces, and only the stored
graph says which piece lies on the dry side of the valve. Its junctions are the shutdown's
cut-off junctions (tested on Net3). ``ring_node_ids`` are the nodes of the ring's segments,
the closed valves at its edge included.

Two non-cancelled plans of one dataset conflict when their periods overlap and their rings
share a segment or a node, or one closes a valve on the other's ring (reopening it at the end
of its period would fill the other's work area).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from cim.db.models import Dataset, PipeShutdownPlan
from cim.errors import InvalidInput, NotFound
from cim.services.pipes.graph import PipeGraph, load_graph
from cim.services.simulation.hydraulics import Engine
from cim.services.simulation.shutdown import DEFAULT_DURATION_H, shutdown_impact
from cim.services.simulation.shutdown_plan_models import (
    ShutdownConflict,
    ShutdownConflictList,
    ShutdownPlan,
    ShutdownPlanImpact,
    ShutdownPlanList,
    StoredShutdownPlan,
)

SIMULATED_HOURS_MAX = DEFAULT_DURATION_H
"""A plan's impact is simulated over its hours, at most a day (the pattern of a day repeats)."""
SIMULATED_HOURS_MIN = 1.0
"""... and at least an hour: a shorter run is one hydraulic step and serves no volume."""
SOURCE_KINDS = frozenset({"tank", "reservoir"})
MAX_TITLE = 200


def store_plan(
    session: Session,
    *,
    dataset_id: int,
    title: str,
    starts_at: datetime,
    ends_at: datetime,
    segment_id: int | None = None,
    failed_valve_ids: list[int] | None = None,
    valve_ids: list[int] | None = None,
    segment_ids: list[int] | None = None,
    created_by: str | None = None,
    engine: Engine = "epanet",
    hidden_utilities: frozenset[str] = frozenset(),
) -> StoredShutdownPlan:
    """Store a planned shutdown of water dataset ``dataset_id`` and answer its conflicts.

    Give a work segment (``segment_id``: its isolation names the valves; ``failed_valve_ids``
    are passed) or ``valve_ids`` and/or ``segment_ids`` to close. Nothing is stored when the
    period, the dataset or a closure is refused.
    """
    _check_period(starts_at, ends_at)
    title = title.strip()
    if not title or len(title) > MAX_TITLE:
        raise InvalidInput(f"title must be 1 to {MAX_TITLE} characters")
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        raise NotFound(f"dataset {dataset_id} does not exist")
    hours = (ends_at - starts_at).total_seconds() / 3600
    impact = shutdown_impact(
        session,
        segment_id=segment_id,
        dataset_id=dataset_id,
        failed_valve_ids=failed_valve_ids,
        valve_ids=valve_ids,
        segment_ids=segment_ids,
        duration_h=min(max(hours, SIMULATED_HOURS_MIN), SIMULATED_HOURS_MAX),
        engine=engine,
        hidden_utilities=hidden_utilities,
        with_geojson=False,
    )
    # every valve closed (a link with two valves is one closed link of the answer)
    named = impact.isolation.valves_to_close if impact.isolation is not None else []
    closed_valves = sorted({v.id for v in named} | set(valve_ids or []))
    closed_pipes = sorted(set(segment_ids or []))
    graph = load_graph(session, dataset_id)
    ring_segments = ring(graph, closed_valves, closed_pipes)
    if impact.isolation is not None:  # the work zone, even where a source still feeds it
        zone = [graph.segment_index(s.id) for s in impact.isolation.isolated_segments]
        ring_segments = sorted(set(ring_segments) | set(zone))
    starts, ends = graph.segment_start[ring_segments], graph.segment_end[ring_segments]
    ring_nodes = {int(n) for n in graph.node_ids[np.concatenate([starts, ends])]}
    ring_nodes |= {n.id for n in impact.isolated_nodes}
    summary = ShutdownPlanImpact(
        duration_h=impact.duration_h,
        isolated_nodes=len(impact.isolated_nodes),
        below_service_nodes=len(impact.below_service_nodes),
        affected_beyond_count=impact.affected_beyond_count,
        not_served_m3=impact.demand.not_served_m3,
        not_served_percent=impact.demand.not_served_percent,
    )
    segment_list = [int(s) for s in graph.segment_ids[ring_segments]]
    row = PipeShutdownPlan(
        dataset_id=dataset_id,
        title=title,
        starts_at=starts_at,
        ends_at=ends_at,
        valve_ids=closed_valves,
        segment_ids=closed_pipes,
        ring_segment_ids=segment_list,
        ring_node_ids=sorted(ring_nodes),
        impact=summary.model_dump(mode="json"),
        created_by=created_by,
        status="planned",
    )
    session.add(row)
    session.flush()
    _store_geometry(session, row.id)
    plan = _one(session, row.id)
    others = _plans(session, dataset_id=dataset_id, start=starts_at, end=ends_at)
    conflicts = [c for o in others if o.id != plan.id and (c := conflict(o, plan)) is not None]
    return StoredShutdownPlan(plan=plan, conflicts=conflicts)


def ring(graph: PipeGraph, valve_ids: Sequence[int], segment_ids: Sequence[int]) -> list[int]:
    """Indices of the segments cut off from every tank and reservoir when ``valve_ids`` (and
    valves stored closed) and ``segment_ids`` are closed, with the closed segments; sorted."""
    closed_nodes = np.zeros(graph.node_count, dtype=bool)
    closed_nodes[[graph.node_index(v) for v in valve_ids]] = True
    closed_nodes |= np.array([s == "closed" for s in graph.node_valve_state], dtype=bool)
    closed_segments = np.zeros(graph.segment_count, dtype=bool)
    closed_segments[[graph.segment_index(s) for s in segment_ids]] = True
    ptr = np.asarray(graph.incidence_ptr, dtype=np.int64)
    incident = np.asarray(graph.incidence_seg, dtype=np.int64)
    owner = np.repeat(np.arange(graph.node_count), np.diff(ptr))
    # segments meeting at an open node are one piece of network (consecutive entries of the
    # node's slice of the incidence list chain them); a closed valve or pipe joins nothing
    keep = (owner[:-1] == owner[1:]) & ~closed_nodes[owner[:-1]]
    keep &= ~closed_segments[incident[:-1]] & ~closed_segments[incident[1:]]
    count = graph.segment_count
    edges = coo_matrix(
        (np.ones(int(keep.sum()), dtype=np.int8), (incident[:-1][keep], incident[1:][keep])),
        shape=(count, count),
    )
    _, labels = connected_components(edges, directed=False)
    source = np.array([k in SOURCE_KINDS for k in graph.node_kind], dtype=bool)
    at_source = source[owner] & ~closed_segments[incident]
    fed = np.isin(labels, labels[incident[at_source]])
    return [int(s) for s in np.flatnonzero(~fed | closed_segments)]


def conflict(first: ShutdownPlan, second: ShutdownPlan) -> ShutdownConflict | None:
    """The conflict of two plans (None when they do not conflict); order does not matter."""
    a, b = sorted((first, second), key=lambda p: p.id)
    if a.dataset_id != b.dataset_id or "cancelled" in (a.status, b.status) or a.id == b.id:
        return None
    start, end = max(a.starts_at, b.starts_at), min(a.ends_at, b.ends_at)
    if start >= end:
        return None
    segments = sorted(set(a.ring_segment_ids) & set(b.ring_segment_ids))
    nodes = sorted(set(a.ring_node_ids) & set(b.ring_node_ids))
    valves = (set(a.valve_ids) & set(b.ring_node_ids)) | (set(b.valve_ids) & set(a.ring_node_ids))
    if not (segments or nodes or valves):
        return None
    return ShutdownConflict(
        dataset_id=a.dataset_id,
        plan_ids=(a.id, b.id),
        titles=(a.title, b.title),
        overlap_from=start,
        overlap_to=end,
        shared_segment_ids=segments,
        shared_node_ids=nodes,
        valves_in_other_ring=sorted(valves),
    )


def list_plans(
    session: Session,
    *,
    dataset_id: int | None = None,
    at: datetime | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    include_cancelled: bool = False,
) -> ShutdownPlanList:
    """Plans by start time: active at ``at`` (start <= at < end) and/or overlapping
    [``start``, ``end``); cancelled plans only with ``include_cancelled``."""
    for moment in (at, start, end):
        if moment is not None:
            _require_zone(moment)
    if start is not None and end is not None and end <= start:
        raise InvalidInput("the interval must end after it starts")
    plans = _plans(
        session,
        dataset_id=dataset_id,
        start=start,
        end=end,
        at=at,
        include_cancelled=include_cancelled,
    )
    return ShutdownPlanList(plans=plans)


def cancel_plan(session: Session, plan_id: int) -> ShutdownPlan:
    """Cancel a plan (kept, with status ``cancelled``; cancelling twice changes nothing)."""
    row = session.get(PipeShutdownPlan, plan_id)
    if row is None:
        raise NotFound(f"shutdown plan {plan_id} does not exist")
    row.status = "cancelled"
    session.flush()
    return _one(session, plan_id)


def plan_conflicts(session: Session, *, dataset_id: int | None = None) -> ShutdownConflictList:
    """Every conflict between planned shutdowns (of ``dataset_id``, or of every dataset)."""
    if dataset_id is not None and session.get(Dataset, dataset_id) is None:
        raise NotFound(f"dataset {dataset_id} does not exist")
    plans = _plans(session, dataset_id=dataset_id)
    found: list[ShutdownConflict] = []
    for i, first in enumerate(plans):  # by start: stop at the first plan starting after it ends
        for second in plans[i + 1 :]:
            if second.starts_at >= first.ends_at:
                break
            if (pair := conflict(first, second)) is not None:
                found.append(pair)
    found.sort(key=lambda c: (c.dataset_id, c.overlap_from, c.plan_ids))
    return ShutdownConflictList(conflicts=found)


def _check_period(starts_at: datetime, ends_at: datetime) -> None:
    _require_zone(starts_at)
    _require_zone(ends_at)
    if ends_at <= starts_at:
        raise InvalidInput(f"the shutdown ends ({ends_at}) before it starts ({starts_at})")


def _require_zone(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInput(f"{moment.isoformat()} has no time zone: give one (Z or +08:00)")


def _store_geometry(session: Session, plan_id: int) -> None:
    """The ring's lines as one MultiLineString (null for an empty ring)."""
    session.execute(
        text(
            "UPDATE pipe_shutdown_plan p SET geom = (SELECT ST_Multi(ST_Collect(s.geom ORDER BY"
            " s.id)) FROM pipe_segment s WHERE s.id = ANY(p.ring_segment_ids)) WHERE p.id = :id"
        ),
        {"id": plan_id},
    )


def _plans(
    session: Session,
    *,
    dataset_id: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    at: datetime | None = None,
    include_cancelled: bool = False,
) -> list[ShutdownPlan]:
    query = select(PipeShutdownPlan, func.coalesce(func.ST_Length(PipeShutdownPlan.geom), 0.0))
    if dataset_id is not None:
        query = query.where(PipeShutdownPlan.dataset_id == dataset_id)
    if start is not None:
        query = query.where(PipeShutdownPlan.ends_at > start)
    if end is not None:
        query = query.where(PipeShutdownPlan.starts_at < end)
    if at is not None:
        query = query.where(PipeShutdownPlan.starts_at <= at, PipeShutdownPlan.ends_at > at)
    if not include_cancelled:
        query = query.where(PipeShutdownPlan.status != "cancelled")
    query = query.order_by(PipeShutdownPlan.starts_at, PipeShutdownPlan.id)
    return [_answer(row, float(length)) for row, length in session.execute(query)]


def _one(session: Session, plan_id: int) -> ShutdownPlan:
    query = select(PipeShutdownPlan, func.coalesce(func.ST_Length(PipeShutdownPlan.geom), 0.0))
    found = session.execute(query.where(PipeShutdownPlan.id == plan_id)).one()
    return _answer(found[0], float(found[1]))


def _answer(row: PipeShutdownPlan, length_m: float) -> ShutdownPlan:
    return ShutdownPlan(
        id=row.id,
        dataset_id=row.dataset_id,
        title=row.title,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        status="cancelled" if row.status == "cancelled" else "planned",
        valve_ids=list(row.valve_ids),
        segment_ids=list(row.segment_ids),
        ring_segment_ids=list(row.ring_segment_ids),
        ring_node_ids=list(row.ring_node_ids),
        ring_length_m=round(length_m, 2),
        impact=ShutdownPlanImpact.model_validate(row.impact) if row.impact else None,
        created_by=row.created_by,
        created_at=row.created_at,
    )

"""Planned shutdowns on Net3 (real importer, strategic valve layer): rings against a networkx
oracle, conflicts when periods and rings overlap, none when they do not or a plan is cancelled,
bad input refused with nothing stored.

Work on pipe 117 closes nine valves; the ring also holds the dead-end branch behind them (pipes
303, 305, 307), which work on pipe 303 isolates by itself: the two rings share that branch.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cim.errors import InvalidInput, NotFound
from cim.services.pipes.isolation import isolate_burst
from cim.services.simulation.shutdown import shutdown_impact
from cim.services.simulation.shutdown_plan_models import ShutdownPlanList
from cim.services.simulation.shutdown_plans import (
    cancel_plan,
    list_plans,
    plan_conflicts,
    store_plan,
)
from importers.pipes import PipeImportOptions, import_pipes
from tests.cim.test_pipes_isolation import import_with_valves
from tests.conftest import SHARED_SAMPLES

DAY = datetime(2026, 12, 7, tzinfo=UTC)


def hour(h: float) -> datetime:
    return DAY + timedelta(hours=h)


def segment_of(session: Session, dataset: int, code: str) -> int:
    return int(
        session.execute(
            text("SELECT id FROM pipe_segment WHERE dataset_id = :d AND code = :c"),
            {"d": dataset, "c": code},
        ).scalar_one()
    )


def oracle_ring(
    session: Session,
    dataset: int,
    valves: set[int],
    pipes: frozenset[int] = frozenset(),
) -> set[int]:
    """Segments with no path to a tank or reservoir once ``valves`` (and valves stored closed)
    and ``pipes`` are shut, plus ``pipes``: networkx on the rows, segments and nodes as vertices."""
    nodes = {
        n: (kind, state)
        for n, kind, state in session.execute(
            text("SELECT id, lower(kind), valve_state FROM pipe_node WHERE dataset_id = :d"),
            {"d": dataset},
        )
    }
    shut = valves | {n for n, (_, state) in nodes.items() if state == "closed"}
    graph = nx.Graph()
    segments = session.execute(
        text("SELECT id, start_node_id, end_node_id FROM pipe_segment WHERE dataset_id = :d"),
        {"d": dataset},
    ).all()
    for segment, start, end in segments:
        graph.add_node(("s", segment))
        if segment in pipes:
            continue
        graph.add_edges_from(
            (("s", segment), ("n", node)) for node in (start, end) if node not in shut
        )
    dry: set[int] = set()
    for component in nx.connected_components(graph):
        if not any(v[0] == "n" and nodes[v[1]][0] in ("tank", "reservoir") for v in component):
            dry |= {v[1] for v in component if v[0] == "s"}
    return dry | set(pipes)


@pytest.fixture
def net3(database_url: str, engine: Engine, clean_tables: None, tmp_path: Path) -> int:
    _, _, dataset = import_with_valves(database_url, engine, tmp_path, "Net3.inp", 1, via_cli=False)
    return dataset


def test_overlapping_rings_conflict_while_both_are_planned(engine: Engine, net3: int) -> None:
    with Session(engine) as session, session.begin():
        work_a, work_b = segment_of(session, net3, "117"), segment_of(session, net3, "303")
        a = store_plan(
            session, dataset_id=net3, title="A: pipe 117", starts_at=hour(8), ends_at=hour(12),
            segment_id=work_a, created_by="test",
        )  # fmt: skip
        assert a.conflicts == []
        isolation_a = isolate_burst(session, segment_id=work_a, with_geojson=False)
        valves_a = {v.id for v in isolation_a.valves_to_close}
        assert set(a.plan.valve_ids) == valves_a and a.plan.segment_ids == []
        ring_a = oracle_ring(session, net3, valves_a)
        assert set(a.plan.ring_segment_ids) == ring_a
        assert ring_a > {s.id for s in isolation_a.isolated_segments}  # and the branch behind
        # the ring's junctions are the ones the shutdown simulation finds cut off
        impact = shutdown_impact(session, segment_id=work_a, duration_h=4, with_geojson=False)
        junctions = set(
            session.execute(
                text("SELECT id FROM pipe_node WHERE id = ANY(:ids) AND kind = 'junction'"),
                {"ids": a.plan.ring_node_ids},
            ).scalars()
        )
        assert junctions == {n.id for n in impact.isolated_nodes}
        assert a.plan.impact is not None and a.plan.impact.duration_h == 4.0
        assert a.plan.impact.isolated_nodes == len(impact.isolated_nodes)
        assert a.plan.impact.not_served_m3 == impact.demand.not_served_m3
        assert a.plan.ring_length_m > 0 and a.plan.created_by == "test"

        b = store_plan(
            session, dataset_id=net3, title="B: pipe 303", starts_at=hour(10), ends_at=hour(14),
            segment_id=work_b,
        )  # fmt: skip
        isolation_b = isolate_burst(session, segment_id=work_b, with_geojson=False)
        ring_b = oracle_ring(session, net3, {v.id for v in isolation_b.valves_to_close})
        shared = ring_a & ring_b
        codes = set(
            session.execute(
                text("SELECT code FROM pipe_segment WHERE id = ANY(:ids)"), {"ids": list(shared)}
            ).scalars()
        )
        assert {"303", "305#261", "307"} <= codes
        [conflict] = b.conflicts
        assert conflict.plan_ids == (a.plan.id, b.plan.id)
        assert (conflict.overlap_from, conflict.overlap_to) == (hour(10), hour(12))
        assert conflict.shared_segment_ids == sorted(shared)
        assert set(conflict.shared_node_ids) >= {v.id for v in isolation_b.valves_to_close} & set(
            a.plan.ring_node_ids
        )
        assert plan_conflicts(session, dataset_id=net3).conflicts == [conflict]

        # C repeats B after A has ended (A's end is C's start: half-open periods do not meet)
        c = store_plan(
            session, dataset_id=net3, title="C: pipe 303 again", starts_at=hour(12),
            ends_at=hour(16), segment_id=work_b,
        )  # fmt: skip
        assert [x.plan_ids for x in c.conflicts] == [(b.plan.id, c.plan.id)]
        assert (c.conflicts[0].overlap_from, c.conflicts[0].overlap_to) == (hour(12), hour(14))
        pairs = [x.plan_ids for x in plan_conflicts(session, dataset_id=net3).conflicts]
        assert pairs == [(a.plan.id, b.plan.id), (b.plan.id, c.plan.id)]

        cancelled = cancel_plan(session, b.plan.id)
        assert cancelled.status == "cancelled"
        assert cancel_plan(session, b.plan.id) == cancelled  # twice changes nothing
        assert plan_conflicts(session, dataset_id=net3).conflicts == []

        def ids(found: ShutdownPlanList) -> list[int]:
            return [p.id for p in found.plans]

        assert ids(list_plans(session, dataset_id=net3)) == [a.plan.id, c.plan.id]
        assert ids(list_plans(session, dataset_id=net3, include_cancelled=True)) == [
            a.plan.id,
            b.plan.id,
            c.plan.id,
        ]
        assert ids(list_plans(session, at=hour(11))) == [a.plan.id]
        assert ids(list_plans(session, at=hour(12))) == [c.plan.id]
        assert ids(list_plans(session, start=hour(11), end=hour(13))) == [a.plan.id, c.plan.id]
        assert ids(list_plans(session, start=hour(16))) == []


def test_closing_given_valves_and_a_pipe(engine: Engine, net3: int) -> None:
    with Session(engine) as session, session.begin():
        isolation = isolate_burst(
            session, segment_id=segment_of(session, net3, "303"), with_geojson=False
        )
        valves = {v.id for v in isolation.valves_to_close}
        pipe = segment_of(session, net3, "123")
        found = store_plan(
            session, dataset_id=net3, title="valves", starts_at=hour(0), ends_at=hour(2),
            valve_ids=sorted(valves), segment_ids=[pipe],
        )  # fmt: skip
        want = oracle_ring(session, net3, valves, frozenset({pipe}))
        assert set(found.plan.ring_segment_ids) == want
        assert pipe in found.plan.ring_segment_ids and found.plan.segment_ids == [pipe]
        geometry = session.execute(
            text(
                "SELECT GeometryType(geom), ST_NumGeometries(geom), ST_SRID(geom)"
                " = Find_SRID('public', 'pipe_segment', 'geom') FROM pipe_shutdown_plan"
                " WHERE id = :id"
            ),
            {"id": found.plan.id},
        ).one()
        assert tuple(geometry) == ("MULTILINESTRING", len(found.plan.ring_segment_ids), True)


def test_work_beside_a_reservoir_keeps_its_zone(engine: Engine, net3: int) -> None:
    """Pipe 60 leaves the river: its one valve leaves it fed, yet the work zone is the ring."""
    with Session(engine) as session, session.begin():
        work = segment_of(session, net3, "60")
        isolation = isolate_burst(session, segment_id=work, with_geojson=False)
        valves = sorted(v.id for v in isolation.valves_to_close)
        assert oracle_ring(session, net3, set(valves)) == set()
        short = store_plan(
            session, dataset_id=net3, title="work on 60", starts_at=hour(1),
            ends_at=hour(1) + timedelta(minutes=10), segment_id=work,
        )  # fmt: skip
        assert short.plan.ring_segment_ids == [s.id for s in isolation.isolated_segments]
        assert short.plan.impact is not None and short.plan.impact.duration_h == 1.0
        closing = store_plan(
            session, dataset_id=net3, title="valve only", starts_at=hour(3), ends_at=hour(4),
            valve_ids=valves,
        )  # fmt: skip
        assert closing.plan.ring_segment_ids == [] and closing.plan.ring_length_m == 0.0
        empty = session.execute(
            text("SELECT geom IS NULL FROM pipe_shutdown_plan WHERE id = :id"),
            {"id": closing.plan.id},
        ).scalar_one()
        assert empty


def test_bad_input_is_refused_and_nothing_stored(engine: Engine, net3: int) -> None:
    options = PipeImportOptions(origin=(500000.0, 3400000.0, 0.0))
    [swmm] = import_pipes(engine, [SHARED_SAMPLES / "pipes" / "swmm_Example1.inp"], options)
    with Session(engine) as session, session.begin():
        work = segment_of(session, net3, "117")
        junction = session.execute(
            text("SELECT min(id) FROM pipe_node WHERE dataset_id = :d AND kind = 'junction'"),
            {"d": net3},
        ).scalar_one()
        plan: dict[str, Any] = {"title": "t", "starts_at": hour(2), "ends_at": hour(4)}
        with pytest.raises(InvalidInput, match="before it starts"):
            store_plan(session, dataset_id=net3, segment_id=work, **plan | {"ends_at": hour(1)})
        with pytest.raises(InvalidInput, match="time zone"):
            naive = {"starts_at": datetime(2026, 12, 7, 2), "ends_at": datetime(2026, 12, 7, 4)}
            store_plan(session, dataset_id=net3, segment_id=work, **plan | naive)
        with pytest.raises(NotFound, match="dataset"):
            store_plan(session, dataset_id=10**12, segment_id=work, **plan)
        with pytest.raises(NotFound):
            store_plan(session, dataset_id=net3, valve_ids=[10**12], **plan)
        with pytest.raises(InvalidInput, match="is not a valve"):
            store_plan(session, dataset_id=net3, valve_ids=[junction], **plan)
        with pytest.raises(InvalidInput, match="not an EPANET water"):
            swmm_segment = session.execute(
                text("SELECT min(id) FROM pipe_segment WHERE dataset_id = :d"),
                {"d": swmm.dataset.id},
            ).scalar_one()
            store_plan(session, dataset_id=swmm.dataset.id, segment_ids=[swmm_segment], **plan)
        with pytest.raises(InvalidInput, match="title"):
            store_plan(session, dataset_id=net3, segment_id=work, **plan | {"title": " "})
        with pytest.raises(NotFound):
            cancel_plan(session, 10**12)
        with pytest.raises(InvalidInput, match="time zone"):
            list_plans(session, at=datetime(2026, 12, 7))
        count = session.execute(text("SELECT count(*) FROM pipe_shutdown_plan")).scalar_one()
        assert count == 0

"""Bounded analyses (issue 16, defect 2): set-based SQL, so the statement timeout applies;
the deadline of a request stops loops and statements, not shared graph builds."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from cim.bounds import Bounds, Deadline, bounded, statements_bounded
from cim.errors import AnalysisTimeout
from cim.services.graph_cache import GraphCache
from cim.services.pipes.excavation import excavation_impact
from tests.cim.pipes_fixtures import N, S, make_dataset, write_network
from tests.conftest import TEST_SRID

CUT = {"type": "Polygon", "coordinates": [[[0, 0], [100, 0], [100, 10], [0, 10], [0, 0]]]}


@contextmanager
def counted_statements(session: Session) -> Iterator[list[str]]:
    """The SQL statements ``session`` sends while the block runs."""
    statements: list[str] = []
    connection = session.connection()

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(connection, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(connection, "before_cursor_execute", count)


def crossing_pipes(session: Session, count: int) -> int:
    """``count`` north-south water pipes 2 m apart crossing the cut, top at 9.05 m (DN300)."""
    dataset = make_dataset(session, f"crossing-{count}")
    nodes, segments = [], []
    for i in range(count):
        x = 1.0 + 2.0 * i
        nodes += [N(f"C{i}.a", x, -20.0), N(f"C{i}.b", x, 30.0)]
        segments.append(S(f"C{i}", f"C{i}.a", f"C{i}.b", coords=[(x, -20, 8.9), (x, 30, 8.9)]))
    write_network(session, dataset, nodes, segments)
    return dataset


def add_dem(session: Session) -> None:
    """Ground 12.5 m west of x = 50 and 11.0 m east of it (two 1 m DEM tiles)."""
    terrain = make_dataset(session, "dem", kind="terrain")
    for x0, height in ((-50, 12.5), (50, 11.0)):
        session.execute(
            text(
                "INSERT INTO terrain_raster (dataset_id, resolution, rast) VALUES (:d, 1.0,"
                " ST_AddBand(ST_MakeEmptyRaster(100, 200, :x0, 100, 1, -1, 0, 0, :srid),"
                " '32BF'::text, :h, -9999))"
            ),
            {"d": terrain, "x0": x0, "h": height, "srid": TEST_SRID},
        )


def test_excavation_sends_the_same_statements_for_few_or_many_pipes(session: Session) -> None:
    """One query per pipe (ground heights) kept a big cut outside the statement timeout."""
    add_dem(session)
    sent = {}
    for count in (3, 40):
        dataset = crossing_pipes(session, count)
        with counted_statements(session) as statements:
            answer = excavation_impact(
                session, polygon=CUT, depth_m=2.0, margin_m=0.0, dataset_id=dataset
            )
        assert answer.pipe_count == count and answer.ground_source == "terrain"
        covers = {p.code: p.min_cover_m for p in answer.pipes}
        assert covers["C0"] == pytest.approx(12.5 - 9.05)
        if count > 25:
            assert covers["C30"] == pytest.approx(11.0 - 9.05)
        sent[count] = len(statements)
    assert sent[40] == sent[3]


def test_past_the_deadline_no_statement_starts_but_a_graph_build_finishes(
    session: Session,
) -> None:
    """A shared cache fill is shielded (the next request would only start it over); the
    request's next statement is refused with the deadline's error."""
    cache: GraphCache[int] = GraphCache(2)
    with bounded(Bounds(deadline=Deadline(0.0))), statements_bounded(session):
        built, _ = cache.get_or_build(
            "key", session, lambda: int(session.execute(text("SELECT 41 + 1")).scalar_one())
        )
        assert built == 42 and cache.get("key") == 42
        with pytest.raises(AnalysisTimeout, match="CIM_ANALYSIS_TIMEOUT_MS"):
            session.execute(text("SELECT 1"))


def test_an_expired_deadline_stops_the_excavation_loop(session: Session) -> None:
    dataset = crossing_pipes(session, 3)
    with bounded(Bounds(deadline=Deadline(0.0))), pytest.raises(AnalysisTimeout, match="excav"):
        excavation_impact(session, polygon=CUT, depth_m=2.0, dataset_id=dataset)

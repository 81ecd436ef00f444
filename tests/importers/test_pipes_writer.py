"""The pipe writer's bulk path: indexes dropped for the COPY and built afterwards."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

import cim.db.copy
from cim.db.models import Dataset
from cim.errors import ImportFailed
from cim.services.datasets import DatasetSource
from importers.base import WriteOutcome, run_import
from importers.pipes import qc
from importers.pipes.network import Network, node_frame, segment_frame
from importers.pipes.topology import place
from importers.pipes.writer import write_network

SRID = 4547


def _network(count: int) -> Network:
    """A line of ``count`` nodes whose codes run against their position."""
    codes = [f"N{count - i:05d}" for i in range(count)]
    nodes = node_frame(
        count,
        code=codes,
        x=500_000.0 + 10.0 * np.arange(count),
        y=np.full(count, 2_500_000.0),
        ground_z=np.full(count, 10.0),
        kind="junction",
        utility="WS",
    )
    segments = segment_frame(
        count - 1,
        code=[f"S{i:05d}" for i in range(count - 1)],
        start=codes[:-1],
        end=codes[1:],
        start_top=np.full(count - 1, 9.0),
        end_top=np.full(count - 1, 9.0),
        depth_ref="top",
        section_shape="circular",
        diameter_mm=np.full(count - 1, 200.0),
        link_type="pipe",
        utility="WS",
    )
    return Network(nodes=nodes, segments=segments, source_format="test")


def _indexes(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [
            (r[0], r[1])
            for r in conn.execute(
                text(
                    "SELECT indexname, indexdef FROM pg_indexes"
                    " WHERE tablename IN ('pipe_node', 'pipe_segment') ORDER BY indexname"
                )
            )
        ]


def _import(engine: Engine, network: Network, name: str, *, fail: bool = False) -> int:
    timings: dict[str, float] = {}

    def write(session: Session, dataset: Dataset) -> WriteOutcome:
        clean, _ = qc.check_source(network)
        placed = place(clean, default_cover=1.0, ground=None)
        nodes, segments = write_network(
            session, dataset_id=dataset.id, srid=SRID, placed=placed, timings=timings
        )
        if fail:
            raise ImportFailed("stop after the COPY")
        return WriteOutcome(counts={"pipe_node": nodes, "pipe_segment": segments}, qc={})

    result = run_import(
        engine,
        source=DatasetSource(kind="pipes", name=name, source_name=name, source_sha256=name),
        write=write,
    )
    return result.dataset.id


def test_indexes_built_after_the_copy_are_the_same(
    engine: Engine, clean_tables: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cim.db.copy, "DEFER_INDEXES_MIN_ROWS", 1)
    before = _indexes(engine)
    assert len(before) >= 12
    with pytest.raises(ImportFailed):
        _import(engine, _network(50), "failed", fail=True)
    assert _indexes(engine) == before
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM pipe_node")).scalar_one() == 0

    dataset_id = _import(engine, _network(50), "first")
    assert _indexes(engine) == before
    with engine.connect() as conn:
        codes = conn.execute(
            text("SELECT code FROM pipe_node WHERE dataset_id = :d ORDER BY id"),
            {"d": dataset_id},
        ).scalars()
        assert list(codes) == sorted(f"N{50 - i:05d}" for i in range(50))  # code order
        ends = conn.execute(
            text(
                "SELECT s.code, a.code, b.code FROM pipe_segment s"
                " JOIN pipe_node a ON a.id = s.start_node_id"
                " JOIN pipe_node b ON b.id = s.end_node_id WHERE s.dataset_id = :d"
            ),
            {"d": dataset_id},
        ).all()
        assert sorted(ends) == [
            (f"S{i:05d}", f"N{50 - i:05d}", f"N{49 - i:05d}") for i in range(49)
        ]


def test_tables_holding_more_rows_keep_their_indexes(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cim.db.copy, "DEFER_INDEXES_MIN_ROWS", 1)
    assert cim.db.copy.defer_indexes(session, "pipe_node", new_rows=0) == []
    dropped = cim.db.copy.defer_indexes(session, "pipe_node", new_rows=10)
    assert any("USING gist (geom)" in d for d in dropped)
    assert not any("pkey" in d for d in dropped)  # constraint-backed indexes stay
    cim.db.copy.rebuild_indexes(session, dropped)
    session.execute(
        text(
            "INSERT INTO dataset (kind, name, source_name, source_sha256)"
            " VALUES ('pipes', 'x', 'x', 'x')"
        )
    )
    session.execute(
        text(
            "INSERT INTO pipe_node (dataset_id, code, utility, kind, geom)"
            " SELECT currval(pg_get_serial_sequence('dataset', 'id')), 'N' || g, 'WS',"
            " 'junction', ST_SetSRID(ST_MakePoint(g, g, 0), 4547)"
            " FROM generate_series(1, 10) g"
        )
    )
    assert cim.db.copy.defer_indexes(session, "pipe_node", new_rows=10) == []

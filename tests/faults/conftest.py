"""Fixtures of the fault tests: a UTM 16N database for ky4, a pipe grid to tile."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import shapely
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cim.db.copy import copy_rows, reserve_ids
from cim.db.engine import make_engine
from cim.services.datasets import DatasetSource
from importers.base import WriteOutcome, run_import
from tests.conftest import migrated_database
from tests.tiles.conftest import X0, Y0, ewkb

UTM16 = 32616


@pytest.fixture(scope="module")
def utm_url(server_url: str) -> str:
    """A database migrated with the storage SRID EPSG:32616, for the real ky4 network."""
    return migrated_database(server_url, "cim_faults_utm16", srid=UTM16)


@pytest.fixture
def utm_engine(utm_url: str) -> Iterator[Engine]:
    """An engine on :func:`utm_url`; every dataset is deleted afterwards."""
    engine = make_engine(utm_url)
    yield engine
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM dataset"))
    engine.dispose()


def _write_grid(segments_per_side: int) -> Any:
    """A writer of a grid of water mains (JS) around the test origin, no nodes."""

    def write(session: Session, dataset: Any) -> WriteOutcome:
        n, spacing = segments_per_side, 25.0
        ids = reserve_ids(session, table="pipe_node", count=(n + 1) * n)
        node = {(i, j): ids[i * n + j] for i in range(n + 1) for j in range(n)}
        copy_rows(
            session,
            table="pipe_node",
            columns=["id", "dataset_id", "code", "utility", "kind", "geom"],
            rows=(
                [k, dataset.id, f"N{i}-{j}", "JS", "junction",
                 ewkb(shapely.Point(X0 + i * spacing, Y0 + j * spacing, 18.0))]
                for (i, j), k in node.items()
            ),
        )  # fmt: skip
        rows = []
        for i in range(n):
            for j in range(n):
                x, y = X0 + i * spacing, Y0 + j * spacing
                line = shapely.LineString([(x, y, 18.0), (x + spacing, y, 18.0)])
                rows.append(
                    [dataset.id, f"S{i}-{j}", "JS", node[i, j], node[i + 1, j], ewkb(line),
                     "circular", 100 + 10 * (j % 30)]
                )  # fmt: skip
        copy_rows(
            session,
            table="pipe_segment",
            columns=["dataset_id", "code", "utility", "start_node_id", "end_node_id", "geom",
                     "section_shape", "diameter_mm"],
            rows=rows,
        )  # fmt: skip
        return WriteOutcome(counts={"pipe_node": len(node), "pipe_segment": len(rows)})

    return write


@pytest.fixture(scope="module")
def pipe_grid(engine: Engine) -> Iterator[int]:
    """A committed pipes dataset of 60 x 60 segments in ``cim_test``; its id."""
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM dataset"))
        conn.execute(text("DELETE FROM tileset"))
    result = run_import(
        engine,
        source=DatasetSource(
            kind="pipes", name="grid", source_name="grid.csv", source_sha256=f"grid{time.time_ns()}"
        ),
        write=_write_grid(60),
    )
    yield int(result.dataset.id)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM dataset"))
        conn.execute(text("DELETE FROM tileset"))

"""Hand-made pipe networks written straight into the test database with COPY (``bench.rows``).

The analyses are tested against rows built here, independently of the importers (the WNTR
isolation oracles go through the real importer instead): a node is
``(code, x, y, ground_z, kind, valve_state)`` and a segment
``(code, start, end, coords, sizes, inverts)`` with everything else defaulted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from bench.rows import NodeRow, SegmentRow, copy_nodes, copy_segments, ewkb
from cim.db.copy import reserve_ids
from tests.conftest import TEST_SRID


@dataclass
class N:
    code: str
    x: float
    y: float
    ground_z: float = 10.0
    utility: str = "JS"
    kind: str = "junction"
    valve_state: str | None = None


@dataclass
class S:
    code: str
    start: str
    end: str
    utility: str = "JS"
    coords: list[tuple[float, float, float]] | None = None  # default: straight from node to node
    diameter_mm: float | None = 300.0
    width_mm: float | None = None
    height_mm: float | None = None
    section_shape: str = "circular"
    start_invert_z: float | None = None
    end_invert_z: float | None = None
    pressure: str | None = None
    material: str | None = None
    owner: str | None = None
    year: int | None = None
    subclass: str | None = None
    link_type: str = "pipe"
    attrs: dict[str, Any] = field(default_factory=dict)


def make_dataset(
    session: Session, name: str = "fixture", kind: str = "pipes", qc: dict[str, Any] | None = None
) -> int:
    return int(
        session.execute(
            text(
                "INSERT INTO dataset (kind, name, source_name, source_sha256, status, qc, counts,"
                " ready_at) VALUES (:kind, :name, :name, md5(random()::text), 'ready',"
                " CAST(:qc AS jsonb), '{}'::jsonb, :now) RETURNING id"
            ),
            {"kind": kind, "name": name, "qc": json.dumps(qc or {}), "now": datetime.now(UTC)},
        ).scalar_one()
    )


def hex_geom(geom: shapely.Geometry) -> str:
    return ewkb(geom, TEST_SRID)


def write_network(
    session: Session, dataset_id: int, nodes: list[N], segments: list[S]
) -> tuple[dict[str, int], dict[str, int]]:
    """COPY the nodes and segments; returns code -> id maps for nodes and segments."""
    node_rows = [
        NodeRow(
            n.code, n.x, n.y, n.ground_z, utility=n.utility, kind=n.kind, ground_z=n.ground_z,
            valve_state=n.valve_state,
        )
        for n in nodes
    ]  # fmt: skip
    node_ids = copy_nodes(session, dataset_id=dataset_id, srid=TEST_SRID, nodes=node_rows)
    seg_ids = dict(
        zip(
            [s.code for s in segments],
            reserve_ids(session, table="pipe_segment", count=len(segments)),
            strict=True,
        )
    )
    by_code = {n.code: n for n in nodes}
    copy_segments(
        session,
        dataset_id=dataset_id,
        srid=TEST_SRID,
        segments=[_segment_row(s, by_code[s.start], by_code[s.end]) for s in segments],
        node_ids=node_ids,
        ids=list(seg_ids.values()),
    )
    session.flush()
    return node_ids, seg_ids


def _segment_row(s: S, a: N, b: N) -> SegmentRow:
    height = (s.diameter_mm or s.height_mm or 0.0) / 1000.0
    # inverts: as given, else from the given centreline, else 1 m of cover
    first = s.coords[0][2] - height / 2 if s.coords else a.ground_z - 1.0 - height
    last = s.coords[-1][2] - height / 2 if s.coords else b.ground_z - 1.0 - height
    inv_a = s.start_invert_z if s.start_invert_z is not None else first
    inv_b = s.end_invert_z if s.end_invert_z is not None else last
    coords = s.coords or [(a.x, a.y, inv_a + height / 2), (b.x, b.y, inv_b + height / 2)]
    line = shapely.LineString(coords)
    return SegmentRow(
        s.code, s.start, s.end, line, utility=s.utility, subclass=s.subclass,
        link_type=s.link_type, start_invert_z=inv_a, end_invert_z=inv_b,
        start_top_z=inv_a + height, end_top_z=inv_b + height, section_shape=s.section_shape,
        diameter_mm=s.diameter_mm, width_mm=s.width_mm, height_mm=s.height_mm,
        pressure=s.pressure, material=s.material, owner=s.owner, year=s.year,
        length_m=line.length, attrs=s.attrs,
    )  # fmt: skip

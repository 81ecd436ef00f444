"""Shared helpers of the pipe-import tests: run an import, read back what was stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from importers.base import ImportResult
from importers.pipes import PipeImportOptions, import_pipes

PIPES = Path(__file__).resolve().parents[2] / ".." / "shared" / "samples" / "pipes"


def run(engine: Engine, *paths: Path, **options: Any) -> ImportResult:
    """Import one network and return its result."""
    results = import_pipes(engine, list(paths), PipeImportOptions(**options))
    assert len(results) == 1
    return results[0]


def nodes(engine: Engine, dataset_id: int) -> dict[str, dict[str, Any]]:
    """Stored nodes by code: kind, x, y, z, ground_z, bottom_z, valve_state."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT code, kind, ST_X(geom) AS x, ST_Y(geom) AS y, ST_Z(geom) AS z, ground_z,"
                " bottom_z, valve_state, utility, attrs FROM pipe_node WHERE dataset_id = :d"
            ),
            {"d": dataset_id},
        ).mappings()
        return {r["code"]: dict(r) for r in rows}


def segments(engine: Engine, dataset_id: int) -> dict[str, dict[str, Any]]:
    """Stored segments by code with their end node codes and geometry facts."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT s.code, s.link_type, a.code AS start, b.code AS end, s.start_invert_z,"
                " s.end_invert_z, s.start_top_z, s.end_top_z, s.diameter_mm, s.width_mm,"
                " s.height_mm, s.section_shape, s.length_m, ST_NPoints(s.geom) AS npoints,"
                " ST_AsText(s.geom) AS wkt, s.utility, s.attrs"
                " FROM pipe_segment s JOIN pipe_node a ON a.id = s.start_node_id"
                " JOIN pipe_node b ON b.id = s.end_node_id WHERE s.dataset_id = :d"
            ),
            {"d": dataset_id},
        ).mappings()
        return {r["code"]: dict(r) for r in rows}


def dataset_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM dataset")).scalar_one())

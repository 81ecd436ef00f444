"""Helpers of the backup and point-in-time recovery tests: clusters, data, fingerprints, CLI."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from cim.db.backup_manifest import user_tables
from cim.db.engine import make_engine
from tests.cli_support import run_cim as in_process

X0, Y0 = 534_000.0, 3_380_000.0  # near Wuhan in EPSG:4547


def embedded_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for ``cim`` on the embedded cluster of ``data_dir`` (no CIM_DATABASE_URL)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIM_")}
    env["CIM_DATA_DIR"] = str(data_dir)
    env.update(extra)
    return env


def run_cim(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``cim`` to its end with captured output (in-process: ``tests.cli_support``)."""
    return in_process(*args, env=env)


def run_json(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``cim ... --json``, which must succeed; its JSON answer."""
    result = run_cim([*args, "--json"], env)
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def add_dataset(engine: Engine, name: str, *, nodes: int, raster: bool = False) -> int:
    """A committed pipes dataset with ``nodes`` nodes and a chain of segments (a raster too)."""
    with engine.begin() as conn:
        dataset_id = int(
            conn.execute(
                text(
                    "INSERT INTO dataset (kind, name, source_name, source_sha256, status, counts) "
                    "VALUES ('pipes', :name, :name || '.inp', md5(:name), 'ready', "
                    "jsonb_build_object('pipe_node', :nodes)) RETURNING id"
                ),
                {"name": name, "nodes": nodes},
            ).scalar_one()
        )
        conn.execute(
            text(
                "INSERT INTO pipe_node (dataset_id, code, utility, geom, attrs) "
                "SELECT :d, 'N' || i, 'JS', ST_SetSRID(ST_MakePoint(:x + i * 5, :y, 18), 4547), "
                "jsonb_build_object('i', i) FROM generate_series(1, :n) AS i"
            ),
            {"d": dataset_id, "x": X0, "y": Y0, "n": nodes},
        )
        conn.execute(
            text(
                "INSERT INTO pipe_segment (dataset_id, code, utility, start_node_id, end_node_id, "
                "geom, diameter_mm) "
                "SELECT :d, 'S' || a.code, 'JS', a.id, b.id, "
                "ST_MakeLine(a.geom, b.geom), 100 + a.id % 7 "
                "FROM pipe_node a JOIN pipe_node b ON b.id = a.id + 1 AND b.dataset_id = :d "
                "WHERE a.dataset_id = :d"
            ),
            {"d": dataset_id},
        )
        if raster:
            conn.execute(
                text(
                    "INSERT INTO terrain_raster (dataset_id, resolution, rast) SELECT :d, 1.0, "
                    "ST_AddBand(ST_MakeEmptyRaster(16, 16, :x, :y, 1, -1, 0, 0, 4547), "
                    "'32BF'::text, 12.5, -9999)"
                ),
                {"d": dataset_id, "x": X0, "y": Y0},
            )
    return dataset_id


def fingerprint(url: str) -> dict[str, tuple[int, str]]:
    """Rows and md5 of the ordered rows of every user table: equal means identical data."""
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            return {
                name: tuple(
                    conn.execute(
                        text(
                            f"SELECT count(*), coalesce(md5(string_agg(t::text, '|' "
                            f"ORDER BY t::text)), '') FROM {name} AS t"
                        )
                    ).one()
                )
                for name in user_tables(conn)
            }
    finally:
        engine.dispose()


def dataset_names(url: str) -> list[str]:
    """Names of the datasets of the database at ``url``, by id."""
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text("SELECT name FROM dataset ORDER BY id")).scalars())
    finally:
        engine.dispose()

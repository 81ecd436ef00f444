"""Tiles on dask.distributed and on an fsspec target are byte-identical to a local build."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sqlalchemy import Engine

from tests.cli_support import run_cim
from tests.conftest import cli_env
from tests.tiles.checks import check_tileset
from tiles.build import build_mesh_layer
from tiles.distributed import dask_renderer, subtrees
from tiles.subdivide import TileNode

SMALL_TILES = 3_000  # triangles per tile: the 60 x 60 grid becomes a few dozen tiles


def _snapshot(layer: Path) -> dict[str, bytes]:
    return {str(p.relative_to(layer)): p.read_bytes() for p in layer.rglob("*") if p.is_file()}


def test_dask_build_equals_local_build(engine: Engine, pipe_grid: int, tmp_path: Path) -> None:
    local = build_mesh_layer(
        engine, tmp_path / "local", "pipes", force=True, max_triangles=SMALL_TILES
    )
    with dask_renderer(workers=2) as renderer:
        remote = build_mesh_layer(
            engine,
            tmp_path / "dask",
            "pipes",
            force=True,
            max_triangles=SMALL_TILES,
            renderer=renderer,
        )
    assert local.tiles > 8
    for figure in ("tiles", "features", "triangles", "bytes", "largest_tile_bytes"):
        assert getattr(remote, figure) == getattr(local, figure), figure
    expected = _snapshot(tmp_path / "local" / "pipes")
    assert _snapshot(tmp_path / "dask" / "pipes") == expected
    assert len(expected) == local.tiles + 2  # every content tile, tileset.json, manifest.npz
    check_tileset(tmp_path / "dask" / "pipes")


def test_cli_workers_and_out_url_publish_the_same_bytes(
    engine: Engine, pipe_grid: int, database_url: str, tmp_path: Path
) -> None:
    build_mesh_layer(engine, tmp_path / "local", "pipes", force=True)
    expected = _snapshot(tmp_path / "local" / "pipes")
    out = tmp_path / "bucket" / "tiles"
    stale = out / "pipes" / "content" / "r9.glb"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"from an older build")
    proc = run_cim(
        "tiles", "build", "--layer", "pipes", "--force", "--workers", "2", "--json",
        "--out", f"file://{out}",
        env=cli_env(database_url, CIM_DATA_DIR=str(tmp_path / "data")),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    results = {r["layer"]: r for r in json.loads(proc.stdout)}
    assert results["pipes"]["path"] == f"file://{out}/pipes"
    assert results["pipes"]["files"] == len(expected)
    assert _snapshot(out / "pipes") == expected  # the stale tile is gone too
    assert not (tmp_path / "data" / "tiles" / "pipes").exists()  # nothing served locally


def test_bad_scale_options_are_clear_errors(database_url: str, tmp_path: Path) -> None:
    env = cli_env(database_url, CIM_DATA_DIR=str(tmp_path))
    both = run_cim("tiles", "build", "--dask", "tcp://127.0.0.1:1", "--workers", "2", env=env)
    assert both.returncode == 2 and "exclude each other" in both.stderr
    relative = run_cim("tiles", "build", "--out", "tiles-here", env=env)
    assert relative.returncode == 2 and "expected a URL" in relative.stderr


def test_subtrees_partition_every_tile_once() -> None:
    keys = ["r", "r0", "r00", "r01", "r1", "r10", "r2", "r3", "r30", "r31"]
    nodes = [TileNode(k, np.array([0]), np.zeros(6)) for k in keys]
    groups = subtrees(nodes, 4)
    assert sorted(n.key for g in groups for n in g) == sorted(keys)
    assert [[n.key for n in g] for g in groups] == [
        ["r"], ["r0", "r00", "r01"], ["r1", "r10"], ["r2"], ["r3", "r30", "r31"]
    ]  # fmt: skip

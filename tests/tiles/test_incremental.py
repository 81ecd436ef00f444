"""Incremental tiles: a new pipe survey version rewrites only the tiles it touches, and the layer
equals a full rebuild of the same state.

Oracle: a full rebuild of version 2 into another folder (``full=True``), compared tile by tile
(content bytes, features and their metadata) and as ``tileset.json`` bytes; the 3D Tiles 1.1
JSON schemas; and the files' inodes (a kept tile is the previous build's file, hard-linked).
The survey is the hand-made two-version fixture of tests/version_fixtures.py plus a small
network 400 m away that is the same in both versions, so some tiles must stay untouched.
"""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from tests.cli_support import run_cim
from tests.conftest import cli_env
from tests.importers.pipes_helpers import run
from tests.tiles.checks import check_tileset, content_path, property_table, read_glb
from tests.version_fixtures import LINES_V1, LINES_V2, POINTS_V1, POINTS_V2, survey
from tiles.build import build_mesh_layer
from tiles.manifest import read_manifest
from tiles.record import BuildResult

BUDGET = 60  # triangles per tile: about one feature per tile, a tree several levels deep
NONE: frozenset[str] = frozenset()
CRS = "EPSG:4547"

# A second network 400 m east, unchanged between the versions: its tiles must be kept.
FAR_POINTS = [
    ["E1", "3400000", "500400", "20.00", "", "检查井", "2.00"],
    ["E2", "3400040", "500400", "20.00", "", "检查井", "2.00"],
    ["E3", "3400040", "500440", "20.00", "", "检查井", "2.00"],
]
FAR_LINES = [
    ["M1", "E1", "E2", "2.00", "2.00", "300", "PE"],
    ["M2", "E2", "E3", "2.00", "2.00", "300", "PE"],
]
FAR_CODES = {"E1", "E2", "E3", "M1", "M2"}


def _build(engine: Engine, out: Path, **options: Any) -> BuildResult:
    return build_mesh_layer(engine, out, "pipes", max_triangles=BUDGET, sensitive=NONE, **options)


def _tiles(tiles_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Every content tile by file name: its features' metadata rows, in the file's order."""
    folder = tiles_dir / "pipes"
    tileset = json.loads((folder / "tileset.json").read_text())
    out: dict[str, list[dict[str, Any]]] = {}
    stack = [tileset["root"]]
    while stack:
        tile = stack.pop()
        stack.extend(tile.get("children", []))
        if "content" in tile:
            name = content_path(tile["content"]["uri"])
            document, binary = read_glb((folder / name).read_bytes())
            out[name] = property_table(document, binary)
    return out


def _files(tiles_dir: Path) -> dict[str, int]:
    """Inode of every content file."""
    return {p.name: p.stat().st_ino for p in (tiles_dir / "pipes" / "content").iterdir()}


@pytest.fixture
def fresh(engine: Engine, clean_tables: None) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM dataset"))
        conn.execute(text("DELETE FROM tileset"))


def test_new_version_rewrites_only_touched_tiles_and_equals_full_rebuild(
    engine: Engine, fresh: None, tmp_path: Path
) -> None:
    run(engine, *survey(tmp_path / "v1", POINTS_V1 + FAR_POINTS, LINES_V1 + FAR_LINES), crs=CRS)
    live = tmp_path / "live"
    first = _build(engine, live)
    assert (first.status, first.mode, first.tiles_rewritten) == ("built", "full", first.tiles)
    before = _files(live)
    far_before = {n for n, rows in _tiles(live).items() if {r["code"] for r in rows} <= FAR_CODES}
    assert far_before  # the far network has tiles of its own

    run(engine, *survey(tmp_path / "v2", POINTS_V2 + FAR_POINTS, LINES_V2 + FAR_LINES), crs=CRS)
    refreshed = _build(engine, live)
    assert (refreshed.status, refreshed.mode, refreshed.full_reason) == (
        "built",
        "incremental",
        "",
    )
    full = _build(engine, tmp_path / "full", full=True)
    assert full.mode == "full"

    # same tree, same bytes: tileset.json (regions, errors, transforms, build tag) and content
    layer, full_layer = live / "pipes", tmp_path / "full" / "pipes"
    assert (layer / "tileset.json").read_bytes() == (full_layer / "tileset.json").read_bytes()
    expected = _tiles(tmp_path / "full")
    assert _tiles(live) == expected
    for name in expected:
        assert (layer / name).read_bytes() == (full_layer / name).read_bytes(), name
    check_tileset(layer)
    codes = {r["code"] for rows in expected.values() for r in rows}
    assert {"W5", "L4"} <= codes and not {"W4", "L3"} & codes  # added in, removed out
    for field in ("features", "tiles", "triangles", "bytes"):
        assert getattr(refreshed, field) == getattr(full, field), field

    # only the rewritten tiles are new files; the far network's tiles are the old files
    after = _files(live)
    kept = {name for name, inode in after.items() if before.get(name) == inode}
    assert len(after) - len(kept) == refreshed.tiles_rewritten
    assert sorted(Path(n).stem for n in set(after) - kept) == refreshed.rewritten_keys
    assert 0 < refreshed.tiles_rewritten < refreshed.tiles
    assert {Path(n).name for n in far_before} <= kept
    manifest = read_manifest(layer)
    assert manifest is not None and sorted(manifest.tiles) == sorted(Path(n).stem for n in expected)
    with engine.connect() as conn:
        stats = conn.execute(text("SELECT stats FROM tileset WHERE layer = 'pipes'")).scalar_one()
    assert stats["mode"] == "full"  # the last build recorded was the full one into "full"


def _utility_survey(folder: Path, prefix: str) -> list[Path]:
    """A one-pipe CJJ 61 survey of another utility (its own dataset)."""
    folder.mkdir()
    rows = {
        f"{prefix}_POINT.csv": [
            POINTS_V1[0],
            ["G1", "3400100", "500200", "20.00", "", "阀门", ""],
            ["G2", "3400130", "500200", "20.00", "", "", ""],
        ],
        f"{prefix}_LINE.csv": [LINES_V1[0], ["G1G2", "G1", "G2", "1.20", "1.20", "200", "钢"]],
    }
    for name, content in rows.items():
        with open(folder / name, "w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows(content)
    return [folder / name for name in rows]


def test_added_dataset_or_full_flag_rebuilds_everything(
    engine: Engine, fresh: None, tmp_path: Path
) -> None:
    run(engine, *survey(tmp_path / "v1", POINTS_V1, LINES_V1), crs=CRS)
    live = tmp_path / "live"
    assert _build(engine, live).mode == "full"
    assert _build(engine, live).status == "up-to-date"

    run(engine, *_utility_survey(tmp_path / "js", "JS"), crs=CRS)
    added = _build(engine, live)
    assert (added.mode, added.full_reason) == (
        "full",
        "a dataset was added or removed, or an option changed",
    )
    assert added.tiles_rewritten == added.tiles

    run(engine, *survey(tmp_path / "v2", POINTS_V2, LINES_V2), crs=CRS)
    forced = _build(engine, live, full=True)
    assert (forced.mode, forced.tiles_rewritten) == ("full", forced.tiles)
    check_tileset(live / "pipes")


def test_purged_history_or_missing_manifest_rebuilds_everything(
    engine: Engine, fresh: None, tmp_path: Path
) -> None:
    run(engine, *survey(tmp_path / "v1", POINTS_V1, LINES_V1), crs=CRS)
    live = tmp_path / "live"
    _build(engine, live)
    run(engine, *survey(tmp_path / "v2", POINTS_V2, LINES_V2), crs=CRS)
    with engine.begin() as conn:  # what `cim datasets purge --before now` does
        conn.execute(text("DELETE FROM feature_history"))
        conn.execute(text("DELETE FROM dataset_version WHERE version = 1"))
    purged = _build(engine, live)
    assert purged.mode == "full" and "history" in purged.full_reason

    (live / "pipes" / "manifest.npz").unlink()
    run(engine, *survey(tmp_path / "v3", POINTS_V1, LINES_V1), crs=CRS)  # back to v1: version 3
    bare = _build(engine, live)
    assert (bare.mode, bare.full_reason) == ("full", "the layer on disk has no manifest")
    check_tileset(live / "pipes")


def _cim(database_url: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = cli_env(database_url, CIM_DATA_DIR=str(data_dir), CIM_SENSITIVE_UTILITIES="")
    return run_cim("tiles", "build", "--layer", "pipes", *args, env=env)


@pytest.mark.slow
def test_cli_refreshes_incrementally_unless_full(
    engine: Engine, fresh: None, database_url: str, tmp_path: Path
) -> None:
    run(engine, *survey(tmp_path / "v1", POINTS_V1 + FAR_POINTS, LINES_V1 + FAR_LINES), crs=CRS)
    first = _cim(database_url, tmp_path, "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)[0]["mode"] == "full"

    run(engine, *survey(tmp_path / "v2", POINTS_V2 + FAR_POINTS, LINES_V2 + FAR_LINES), crs=CRS)
    second = _cim(database_url, tmp_path)
    assert second.returncode == 0, second.stderr
    assert "pipes: incremental, " in second.stdout and " tiles rewritten" in second.stdout

    run(engine, *survey(tmp_path / "v3", POINTS_V1 + FAR_POINTS, LINES_V1 + FAR_LINES), crs=CRS)
    third = _cim(database_url, tmp_path, "--full", "--json")
    assert third.returncode == 0, third.stderr
    result = json.loads(third.stdout)[0]
    assert (result["mode"], result["tiles_rewritten"]) == ("full", result["tiles"])
    check_tileset(tmp_path / "tiles" / "pipes")

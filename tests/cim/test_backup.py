"""``cim db backup`` and ``cim db restore`` end to end, through the CLI as users run them.

A cluster of the module's own holds two datasets (pipes, a raster) and a tiles folder. Its
backup restores into a new data dir and into an empty external database with identical rows
(count and md5 of the ordered rows of every table); a backup SIGKILLed just before it would be
published leaves nothing at DEST and is cleaned up by the next one; a non-empty target, an
existing DEST and a damaged file are refused with one line, touching nothing.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cim.db import migrate
from cim.db.backup_manifest import read_manifest
from cim.db.embedded import EmbeddedCluster
from cim.db.engine import make_engine
from tests.cim.backup_support import (
    add_dataset,
    embedded_env,
    fingerprint,
    run_cim,
    run_json,
)
from tests.conftest import CIM, cli_env, create_database, make_world_readable_tempdir

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Source:
    """The cluster that is backed up, its data dir and one finished backup of it."""

    data_dir: Path
    url: str
    backup: Path


@pytest.fixture(scope="module")
def source() -> Iterator[Source]:
    folder = make_world_readable_tempdir("cim-backup-")
    cluster = EmbeddedCluster(folder / "data")
    cluster.start()
    engine = make_engine(cluster.url())
    migrate.upgrade(engine, srid=4547, default_srid=4547)
    add_dataset(engine, "mains", nodes=300)
    add_dataset(engine, "dem", nodes=3, raster=True)
    engine.dispose()
    tiles = folder / "data" / "tiles" / "pipes"
    tiles.mkdir(parents=True)
    (tiles / "tileset.json").write_text('{"asset": {"version": "1.1"}}')
    (tiles / "0.glb").write_bytes(bytes(range(256)) * 10)
    backup = folder / "backups" / "monday"
    answer = run_json(["db", "backup", str(backup), "--tiles"], embedded_env(folder / "data"))
    assert answer["path"] == str(backup) and answer["datasets"] == 2
    yield Source(folder / "data", cluster.url(), backup)
    cluster.stop()
    shutil.rmtree(folder, ignore_errors=True)


def test_backup_folder_is_complete_and_verified(source: Source) -> None:
    names = sorted(p.name for p in source.backup.iterdir())
    assert names == ["database.dump", "manifest.json", "tiles.tar"]
    assert not list(source.backup.parent.glob("*.partial-*"))
    manifest = json.loads((source.backup / "manifest.json").read_text())
    assert manifest["format"] == "cim-backup" and manifest["storage_srid"] == 4547
    assert manifest["schema_revision"] == migrate.head_revision()
    assert manifest["base_backup"] is None  # the cluster archives no WAL
    assert set(manifest["files"]) == {"database.dump", "tiles.tar"}
    mains = next(d for d in manifest["datasets"] if d["name"] == "mains")
    assert mains["rows"] == {"pipe_node": 300, "pipe_segment": 299}
    assert manifest["tables"]["public.terrain_raster"] == 1


def test_restore_into_new_data_dir_gives_identical_rows_and_tiles(source: Source) -> None:
    folder = make_world_readable_tempdir("cim-restore-")
    target = EmbeddedCluster(folder / "data")
    try:
        env = embedded_env(folder / "data")
        answer = run_json(["db", "restore", str(source.backup)], env)
        assert answer["method"] == "dump" and answer["tiles"] is True
        assert sorted(d["name"] for d in answer["datasets"]) == ["dem", "mains"]
        assert fingerprint(target.url()) == fingerprint(source.url)
        for tile in (source.data_dir / "tiles").rglob("*"):
            twin = folder / "data" / tile.relative_to(source.data_dir)
            assert twin.exists() and (tile.is_dir() or twin.read_bytes() == tile.read_bytes())

        again = run_cim(["db", "restore", str(source.backup)], env)
        assert again.returncode == 2
        tiles = folder / "data" / "tiles"
        assert _error_lines(again.stderr) == [
            f"cim: error: {tiles} is not empty: restore only into a new data dir"
        ]
        shutil.rmtree(folder / "data" / "tiles")
        again = run_cim(["db", "restore", str(source.backup)], env)
        assert again.returncode == 2
        (line,) = _error_lines(again.stderr)
        assert line.startswith("cim: error: the target database is not empty (")
        assert fingerprint(target.url()) == fingerprint(source.url)
        assert not (folder / "data" / "tiles").exists()
    finally:
        target.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("cim: error:")]


def test_restore_into_external_databases(
    source: Source, server_url: str, database_url: str, tmp_path: Path
) -> None:
    """An empty database receives the backup; a database holding tables is refused untouched."""
    empty = create_database(server_url, "cim_restore_target")
    env = cli_env(empty, CIM_DATA_DIR=str(tmp_path / "data"))
    answer = run_json(["db", "restore", str(source.backup)], env)
    assert answer["tables"] == len(fingerprint(source.url))
    assert fingerprint(empty) == fingerprint(source.url)

    before = fingerprint(database_url)
    env = cli_env(database_url, CIM_DATA_DIR=str(tmp_path / "other"))
    refused = run_cim(["db", "restore", str(source.backup)], env)
    assert refused.returncode == 2, refused.stderr
    (line,) = _error_lines(refused.stderr)
    assert line.startswith("cim: error: the target database is not empty (")
    assert fingerprint(database_url) == before
    assert (tmp_path / "data" / "tiles" / "pipes" / "0.glb").exists()


def test_backup_refuses_an_existing_dest(source: Source) -> None:
    result = run_cim(["db", "backup", str(source.backup)], embedded_env(source.data_dir))
    assert result.returncode == 2
    assert "already exists" in result.stderr


def test_restore_refuses_a_damaged_backup(source: Source, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged"
    shutil.copytree(source.backup, damaged)
    dump = damaged / "database.dump"
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    result = run_cim(["db", "restore", str(damaged)], embedded_env(tmp_path / "data"))
    assert result.returncode == 2
    assert "damaged" in result.stderr
    assert not (tmp_path / "data" / "pg").exists()  # nothing touched, no cluster made


def test_killed_backup_leaves_no_complete_dest(source: Source, tmp_path: Path) -> None:
    dest = tmp_path / "killed"
    process = subprocess.Popen(
        [CIM, "db", "backup", str(dest)],
        env=embedded_env(source.data_dir, CIM_TEST_PAUSE_AT="backup-publish"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 120
    for line in process.stderr:
        if line.startswith("CIM_PAUSED backup-publish") or time.monotonic() > deadline:
            break
    (partial,) = tmp_path.glob("killed.partial-*")
    assert (partial / "manifest.json").exists()  # complete inside, but never published
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert not dest.exists()

    answer = run_json(["db", "backup", str(dest)], embedded_env(source.data_dir))
    assert answer["removed_stale"] == [str(partial)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["killed"]


def test_backup_killed_early_leaves_nothing(source: Source, tmp_path: Path) -> None:
    """Killed at a moment nobody chose: DEST is absent (or complete), and pg_dump died too."""
    dest = tmp_path / "early"
    process = subprocess.Popen(
        [CIM, "db", "backup", str(dest)],
        env=embedded_env(source.data_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.5)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    if dest.exists():
        read_manifest(dest)  # published means complete: every checksum matches
    deadline = time.monotonic() + 10
    while _programs_writing_into(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _programs_writing_into(tmp_path)


def _programs_writing_into(folder: Path) -> list[str]:
    """Command lines of live processes that name ``folder`` (an orphaned pg_dump would)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if any(str(folder).encode() in word for word in words):
            found.append(b" ".join(words).decode(errors="replace"))
    return found

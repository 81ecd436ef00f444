"""Point-in-time recovery of the embedded cluster (``CIM_WAL_ARCHIVE``, ``restore --until``).

The archive command is checked on its own (copies, never overwrites, fails on a different file);
end to end: a base backup, dataset A, a noted time, dataset B, and a restore ``--until`` that
time into a new data dir holds A and not B.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from cim.db import migrate
from cim.db.embedded import EmbeddedCluster
from cim.db.engine import make_engine
from cim.db.wal_archive import (
    ARCHIVE_CONF,
    archive_command,
    archive_setting,
    configure_archiving,
    prepare_archive,
)
from cim.errors import ConfigError, InvalidInput
from cli.db_backup import parse_until
from tests.cim.backup_support import add_dataset, dataset_names, embedded_env, run_cim, run_json
from tests.conftest import make_world_readable_tempdir


def _archive(command: str, segment: Path) -> int:
    shell = command.replace("%p", str(segment)).replace("%f", segment.name)
    return subprocess.run(["sh", "-c", shell], check=False).returncode


def test_archive_command_never_overwrites(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    segment = tmp_path / "000000010000000000000001"
    segment.write_bytes(b"first")
    command = archive_command(archive)
    assert _archive(command, segment) == 0
    assert _archive(command, segment) == 0  # a retry of the same segment is done already
    segment.write_bytes(b"other bytes")
    assert _archive(command, segment) != 0  # loud: the server logs and keeps the segment
    assert (archive / segment.name).read_bytes() == b"first"
    assert sorted(p.name for p in archive.iterdir()) == [segment.name]


def test_archive_settings_follow_the_setting(tmp_path: Path) -> None:
    (tmp_path / "postgresql.conf").write_text("port = 5432\n")
    (tmp_path / "pg_hba.conf").write_text("local all all trust\n")
    configure_archiving(tmp_path, tmp_path / "wal")
    configure_archiving(tmp_path, tmp_path / "wal")
    conf = (tmp_path / "postgresql.conf").read_text()
    assert conf.count(f"include_if_exists = '{ARCHIVE_CONF}'") == 1
    assert "archive_mode = on" in (tmp_path / ARCHIVE_CONF).read_text()
    assert (tmp_path / "pg_hba.conf").read_text().count("replication") == 2
    configure_archiving(tmp_path, None)
    assert not (tmp_path / ARCHIVE_CONF).exists()
    with pytest.raises(ConfigError, match="absolute path"):
        configure_archiving(tmp_path, Path("/tmp/it's here"))


def test_archive_folder_is_never_the_data_dir_nor_taken_over(tmp_path: Path) -> None:
    assert archive_setting(None) is None
    assert archive_setting(Path("")) is None  # CIM_WAL_ARCHIVE= must not archive into "."
    data = tmp_path / "data"
    for overlapping in (data, tmp_path, data / "wal"):
        with pytest.raises(ConfigError, match="overlaps"):
            prepare_archive(overlapping, data)
    assert prepare_archive(tmp_path / "wal", data) is True  # created: the server may own it
    assert prepare_archive(tmp_path / "wal", data) is False  # existing: used as it is


def test_until_parsing() -> None:
    assert parse_until("latest") is None
    assert parse_until("2026-12-05T07:40:00") == datetime(2026, 12, 5, 7, 40, tzinfo=UTC)
    assert parse_until("2026-12-05T09:40:00+02:00") == datetime(2026, 12, 5, 7, 40, tzinfo=UTC)
    with pytest.raises(InvalidInput):
        parse_until("yesterday")


@pytest.fixture
def archiving_cluster() -> Iterator[tuple[Path, EmbeddedCluster]]:
    folder = make_world_readable_tempdir("cim-pitr-")
    cluster = EmbeddedCluster(folder / "data", wal_archive=folder / "archive")
    cluster.start()
    engine = make_engine(cluster.url())
    migrate.upgrade(engine, srid=4547, default_srid=4547)
    engine.dispose()
    yield folder, cluster
    cluster.stop()
    shutil.rmtree(folder, ignore_errors=True)


def _switch_and_wait_archived(engine: Engine, archive: Path) -> None:
    """Close the current WAL segment and wait until the archiver has copied it."""
    with engine.connect() as conn:
        segment = conn.execute(text("SELECT pg_walfile_name(pg_switch_wal())")).scalar_one()
    deadline = time.monotonic() + 60
    while not (archive / segment).exists():
        assert time.monotonic() < deadline, f"{segment} was never archived"
        time.sleep(0.2)


@pytest.mark.slow
def test_restore_until_a_time_keeps_earlier_changes_only(
    archiving_cluster: tuple[Path, EmbeddedCluster],
) -> None:
    folder, cluster = archiving_cluster
    archive = folder / "archive"
    source_env = embedded_env(folder / "data", CIM_WAL_ARCHIVE=str(archive))
    backup = run_json(["db", "backup", str(folder / "backup")], source_env)
    assert backup["base_backup"] is True
    assert (folder / "backup" / "base" / "base.tar").exists()

    engine = make_engine(cluster.url())
    add_dataset(engine, "A", nodes=20)
    _switch_and_wait_archived(engine, archive)
    time.sleep(1.0)
    with engine.connect() as conn:
        noted = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
    time.sleep(1.0)
    add_dataset(engine, "B", nodes=20)
    _switch_and_wait_archived(engine, archive)
    engine.dispose()

    refused = run_cim(
        ["db", "restore", str(folder / "backup"), "--until", noted.isoformat()], source_env
    )
    assert refused.returncode == 2 and "already holds a cluster" in refused.stderr

    beyond = run_cim(
        ["db", "restore", str(folder / "backup"), "--until", "2100-01-01T00:00:00Z"],
        embedded_env(folder / "too-far", CIM_WAL_ARCHIVE=str(archive)),
    )
    assert beyond.returncode == 6
    assert "recovery ended before configured recovery target was reached" in beyond.stderr
    EmbeddedCluster(folder / "too-far").stop()

    target = EmbeddedCluster(folder / "recovered", wal_archive=archive)
    try:
        env = embedded_env(folder / "recovered", CIM_WAL_ARCHIVE=str(archive))
        answer = run_json(
            ["db", "restore", str(folder / "backup"), "--until", noted.isoformat()], env
        )
        assert answer["method"] == "point-in-time"
        assert [d["name"] for d in answer["datasets"]] == ["A"]
        assert dataset_names(target.url()) == ["A"]
        assert not (target.pgdata / "recovery.signal").exists()
        recovered = make_engine(target.url())
        with recovered.connect() as conn:  # promoted: writable again
            assert conn.execute(text("SELECT pg_is_in_recovery()")).scalar_one() is False
        recovered.dispose()
    finally:
        target.stop()

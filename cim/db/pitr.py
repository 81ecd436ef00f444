"""Point-in-time recovery of the embedded cluster: a base backup beside the dump, and a replay.

Why two kinds of backup: a dump restores the database as it was when the dump ran; to go back
to any later moment PostgreSQL needs a physical base backup plus every WAL segment archived
since (``CIM_WAL_ARCHIVE``). ``cim db backup`` takes the base backup itself whenever the embedded
cluster archives its WAL, and ``cim db restore --until`` unpacks it into an empty data dir and
lets the server replay the archive up to the chosen time (see :mod:`cim.db.wal_archive`).
"""

from __future__ import annotations

import os
import tarfile
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, text

from cim.config import CimSettings
from cim.db.backup_manifest import BaseBackupEntry, Manifest
from cim.db.connect import embedded_cluster
from cim.db.embedded import SUPERUSER, EmbeddedCluster
from cim.db.pgtools import Progress, run_program
from cim.db.wal_archive import write_recovery
from cim.errors import ConfigError, InvalidInput

BASE_FOLDER = "base"
BASE_TAR = "base.tar"


def archiving(connection: Connection) -> bool:
    """True when the server behind ``connection`` archives its WAL (``archive_mode`` on)."""
    return connection.execute(text("SHOW archive_mode")).scalar_one() in ("on", "always")


def base_backup_wanted(settings: CimSettings, connection: Connection, progress: Progress) -> bool:
    """Whether ``cim db backup`` takes a base backup: embedded cluster with archiving in force.

    A mismatch between ``CIM_WAL_ARCHIVE`` and the running server (archiving takes effect at a
    start) is reported, and no base backup is taken, rather than one nobody could replay.
    """
    if not settings.uses_embedded_database:
        return False
    archive = embedded_cluster(settings).wal_archive
    running = archiving(connection)
    if archive is not None and not running:
        progress(
            "note: CIM_WAL_ARCHIVE is set but the running cluster does not archive yet; "
            "restart it (cim db stop; cim db start) - no base backup this time"
        )
    elif archive is None and running:
        progress("note: the cluster archives WAL but CIM_WAL_ARCHIVE is unset: no base backup")
    return archive is not None and running


def take_base_backup(settings: CimSettings, folder: Path, *, progress: Progress) -> BaseBackupEntry:
    """``pg_basebackup -Ft -X none`` of the embedded cluster into ``folder/base``.

    ``-X none`` keeps WAL out of the backup: the server waits until the segments the backup
    needs are in the archive, which the replay reads anyway.
    """
    cluster = embedded_cluster(settings)
    assert cluster.wal_archive is not None
    target = folder / BASE_FOLDER
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    started = datetime.now(UTC)
    progress("base backup (pg_basebackup) for point-in-time recovery")
    run_program(
        [
            str(cluster.bindir / "pg_basebackup"),
            *("-h", "127.0.0.1", "-p", str(cluster.port), "-U", SUPERUSER, "--no-password"),
            *("-D", str(target), "-Ft", "-X", "none", "--checkpoint=fast"),
        ],
        env=env,
        label="base backup",
        progress=progress,
        watch=target,
    )
    with tarfile.open(target / BASE_TAR) as tar:
        names = set(tar.getnames())
    if not {"PG_VERSION", "backup_label"} <= names:
        raise ConfigError(f"pg_basebackup wrote an incomplete {target / BASE_TAR}")
    return BaseBackupEntry(
        folder=BASE_FOLDER,
        started_at=started.isoformat(),
        finished_at=datetime.now(UTC).isoformat(),
        wal_archive=str(cluster.wal_archive),
    )


def check_recoverable(
    settings: CimSettings, manifest: Manifest, until: datetime | None
) -> EmbeddedCluster:
    """Refuse, before touching anything, a recovery that cannot work; returns the target."""
    base = manifest["base_backup"]
    if not settings.uses_embedded_database:
        raise ConfigError(
            "--until recovers the embedded cluster only; unset CIM_DATABASE_URL (an external "
            "server recovers with its own base backups and restore_command)"
        )
    if base is None:
        raise InvalidInput(
            "this backup holds no base backup (the cluster did not archive WAL when it was "
            "taken): it restores only as it was, without --until"
        )
    cluster = embedded_cluster(settings)
    if cluster.wal_archive is None or not cluster.wal_archive.is_dir():
        raise ConfigError(
            f"set CIM_WAL_ARCHIVE to the WAL archive folder (it was {base['wal_archive']})"
        )
    finished = datetime.fromisoformat(base["finished_at"])
    if until is not None and until < finished:
        raise InvalidInput(
            f"--until {until.isoformat()} is before this base backup ended "
            f"({finished.isoformat()}): choose a later time or an older backup"
        )
    if cluster.pgdata.exists() and any(cluster.pgdata.iterdir()):
        raise InvalidInput(
            f"{cluster.pgdata} already holds a cluster: recover into an empty CIM_DATA_DIR"
        )
    return cluster


def recover(
    cluster: EmbeddedCluster,
    source: Path,
    manifest: Manifest,
    *,
    until: datetime | None,
    progress: Progress,
) -> None:
    """Unpack the base backup into the empty cluster folder and replay the archive to ``until``.

    The server promotes at the target, so the recovered cluster starts a new timeline and its
    later WAL never collides with the archive's old segments.
    """
    base = manifest["base_backup"]
    assert base is not None and cluster.wal_archive is not None
    pgdata = cluster.prepare_empty()
    progress(f"unpacking the base backup into {pgdata}")
    with tarfile.open(source / base["folder"] / BASE_TAR) as tar:
        tar.extractall(pgdata, filter="tar")
    owner = pgdata.stat()
    for path in [pgdata, *pgdata.rglob("*")]:
        os.lchown(path, owner.st_uid, owner.st_gid)
    write_recovery(pgdata, cluster.wal_archive, until)
    target = until.isoformat() if until is not None else "the end of the archive"
    progress(f"replaying WAL from {cluster.wal_archive} up to {target}")
    try:
        cluster.start()
    except ConfigError as exc:
        raise ConfigError(
            f"the point-in-time recovery failed: {_server_fatal(cluster.log_file) or exc}; "
            f"remove {cluster.pgdata} before another restore"
        ) from None


def _server_fatal(log_file: Path) -> str | None:
    """The server's last FATAL message (e.g. the target lies beyond the archive), if any."""
    lines = log_file.read_text(errors="replace").splitlines() if log_file.exists() else []
    fatal = [line.split("FATAL:", 1)[1].strip() for line in lines if "FATAL:" in line]
    return fatal[-1] if fatal else None

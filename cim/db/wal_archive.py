"""WAL archiving settings of the embedded cluster (``CIM_WAL_ARCHIVE``) and its recovery file.

Why a file of our own: the settings must follow ``CIM_WAL_ARCHIVE`` at every start (on, off, a
new folder) without editing what initdb wrote, so ``postgresql.conf`` only gains two
``include_if_exists`` lines and cim rewrites ``cim-archive.conf`` (archiving) before each start
and ``cim-recovery.conf`` (a point-in-time recovery) for one start. Unset ``CIM_WAL_ARCHIVE``
leaves a never-archived cluster exactly as before.

The archive command never overwrites a file: a segment already archived with the same bytes
(the server retries after a crash) counts as done, a different one fails loudly - the server
logs the failure and keeps the segment until someone looks. Copies go to ``%f.part`` first and
are synced, so a crash mid-copy leaves no file that looks archived.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from cim.errors import ConfigError

ARCHIVE_CONF = "cim-archive.conf"
RECOVERY_CONF = "cim-recovery.conf"
RECOVERY_SIGNAL = "recovery.signal"
ARCHIVE_TIMEOUT_SECONDS = 60
"""A quiet cluster still archives its last changes within a minute (a 16 MB segment each)."""
_PLAIN_PATH = re.compile(r"^/[A-Za-z0-9_./-]+$")
_INCLUDES = (f"include_if_exists = '{ARCHIVE_CONF}'", f"include_if_exists = '{RECOVERY_CONF}'")
_REPLICATION_HBA = (
    "# cim: pg_basebackup of the WAL-archiving cluster, local socket and loopback only\n"
    "local replication all trust\n"
    "host replication all 127.0.0.1/32 trust\n"
)


def archive_folder(folder: Path) -> str:
    """``folder`` as text for a shell command in postgresql.conf; refuses anything but plain
    absolute paths (a quote, space or ``%`` would change the command)."""
    value = str(folder)
    if not _PLAIN_PATH.match(value):
        raise ConfigError(
            f"CIM_WAL_ARCHIVE={value}: use an absolute path of letters, digits and . _ - /"
        )
    return value


def archive_command(folder: Path) -> str:
    """The shell command that copies WAL segment ``%p`` (named ``%f``) into ``folder``."""
    target = f"{archive_folder(folder)}/%f"
    return (
        f"if test -f {target}; then cmp -s %p {target}; "
        f"else cp %p {target}.part && sync {target}.part && mv {target}.part {target}; fi"
    )


def archive_setting(value: Path | None) -> Path | None:
    """``CIM_WAL_ARCHIVE`` as an absolute folder, or None when unset or empty (pydantic reads
    ``CIM_WAL_ARCHIVE=`` as ``.``, which must not turn the current folder into an archive)."""
    if value is None or value == Path(""):
        return None
    return value.expanduser().resolve()


def prepare_archive(folder: Path, data_dir: Path) -> bool:
    """Check the archive folder and create it when missing; True when it was created.

    A folder that exists is used as it is (never re-owned): the server account must be able
    to write to it. The archive may not hold, or lie inside, the cluster's data dir.
    """
    archive_folder(folder)
    if folder == data_dir or folder in data_dir.parents or data_dir in folder.parents:
        raise ConfigError(f"CIM_WAL_ARCHIVE={folder} overlaps CIM_DATA_DIR={data_dir}: use another")
    if folder.exists():
        return False
    folder.mkdir(mode=0o700, parents=True)
    return True


def _ensure_lines(path: Path, marker: str, addition: str) -> None:
    content = path.read_text()
    if marker not in content:
        path.write_text(content.rstrip("\n") + "\n\n" + addition)


def _write_private(path: Path, content: str) -> None:
    """Write a file of the cluster folder owned like the folder (the server account), mode 600."""
    path.write_text(content)
    owner = path.parent.stat()
    os.chown(path, owner.st_uid, owner.st_gid)
    path.chmod(0o600)


def configure_archiving(pgdata: Path, wal_archive: Path | None) -> None:
    """Write the archiving settings the next start reads, or remove them when archiving is off."""
    if wal_archive is None:
        (pgdata / ARCHIVE_CONF).unlink(missing_ok=True)
        return
    command = archive_command(wal_archive)
    _ensure_lines(pgdata / "postgresql.conf", _INCLUDES[0], "\n".join(_INCLUDES) + "\n")
    _ensure_lines(pgdata / "pg_hba.conf", "replication", _REPLICATION_HBA)
    _write_private(
        pgdata / ARCHIVE_CONF,
        "# written by cim at every start from CIM_WAL_ARCHIVE; edits are lost\n"
        "wal_level = replica\n"
        "archive_mode = on\n"
        f"archive_command = '{command}'\n"
        f"archive_timeout = {ARCHIVE_TIMEOUT_SECONDS}\n",
    )


def write_recovery(pgdata: Path, wal_archive: Path, until: datetime | None) -> None:
    """Ask the next start to replay ``wal_archive`` up to ``until`` (None: all of it), then
    promote to a new timeline; ``recovery.signal`` is removed by the server when done."""
    source = archive_folder(wal_archive)
    lines = [
        "# written by cim db restore --until for one recovery; removed when it ends",
        f"restore_command = 'cp {source}/%f %p'",
        "recovery_target_action = 'promote'",
    ]
    if until is not None:
        lines.append(f"recovery_target_time = '{until.isoformat()}'")
    _ensure_lines(pgdata / "postgresql.conf", _INCLUDES[1], "\n".join(_INCLUDES) + "\n")
    _write_private(pgdata / RECOVERY_CONF, "\n".join(lines) + "\n")
    _write_private(pgdata / RECOVERY_SIGNAL, "")


def wait_for_recovery(pgdata: Path, is_running: Callable[[], bool], log_file: Path) -> None:
    """Return once a recovery of a just started server has ended (at once when there is none).

    ``pg_ctl start`` returns as soon as a recovering server accepts read-only connections;
    cim must not write (create its database) before the replay ended and the server promoted.
    """
    while (pgdata / RECOVERY_SIGNAL).exists():
        if not is_running():
            tail = log_file.read_text(errors="replace").strip().splitlines()[-3:]
            raise ConfigError(f"the point-in-time recovery failed: {' | '.join(tail)}")
        time.sleep(0.3)
    (pgdata / RECOVERY_CONF).unlink(missing_ok=True)

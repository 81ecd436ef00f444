"""PostgreSQL client programs (pg_dump, pg_restore, pg_basebackup) matching the server, and runs.

Why: a custom-format dump must be written by a ``pg_dump`` at least as new as the server and read
by a ``pg_restore`` at least as new as that, and Debian installs one set of binaries per major
version under ``/usr/lib/postgresql/<major>/bin`` while ``/usr/bin/pg_dump`` is a wrapper that
guesses. So the programs are taken from the folder of the server's own major version (or a newer
one), and passwords travel in ``PGPASSWORD``, never on a command line that ``ps`` shows.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

from cim.errors import ConfigError
from cim.processes import die_with_parent

Progress = Callable[[str], None]
"""Where long steps report what they are doing (the CLI prints these lines on stderr)."""
PROGRESS_EVERY_SECONDS = 5.0


def server_major(connection: Connection) -> int:
    """The major version of the server behind ``connection`` (15 for 15.4)."""
    number = connection.execute(text("SHOW server_version_num")).scalar_one()
    return int(number) // 10000


def client_program(name: str, major: int, explicit_bindir: Path | None = None) -> Path:
    """The ``name`` program (e.g. ``pg_dump``) for a server of version ``major``.

    Tried in order: ``CIM_PG_BINDIR``, the server's own major, newer installed majors (they
    read and write older servers), then ``name`` on ``PATH``.
    """
    folders = [explicit_bindir] if explicit_bindir is not None else []
    installed = sorted(
        (int(p.name), p / "bin")
        for p in Path("/usr/lib/postgresql").glob("*")
        if p.name.isdigit() and int(p.name) >= major
    )
    folders += [folder for _, folder in installed]
    for folder in folders:
        if (folder / name).exists():
            return folder / name
    on_path = shutil.which(name)
    if on_path is not None:
        return Path(on_path)
    raise ConfigError(
        f"no {name} for PostgreSQL {major} found: install postgresql-client-{major} "
        "or set CIM_PG_BINDIR"
    )


def libpq_target(url: str) -> tuple[str, dict[str, str]]:
    """A libpq connection string of ``url`` without its password, and the environment with it."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    bare = parsed.set(drivername="postgresql", password=None)
    return bare.render_as_string(hide_password=False), env


def _die_with_parent() -> None:
    """Run in the child before exec: the kernel kills it when the cim process dies (SIGKILL too),
    so no orphaned pg_dump keeps writing into a half-made backup."""
    die_with_parent(signal.SIGKILL)


def run_program(
    args: list[str],
    *,
    env: dict[str, str] | None = None,
    label: str,
    progress: Progress,
    watch: Path | None = None,
) -> str:
    """Run a PostgreSQL program to its end; returns its stdout, raises ConfigError on failure.

    Every ``PROGRESS_EVERY_SECONDS`` a line tells how long it has run (and how large ``watch``,
    the file or folder it writes, has grown), so a long dump is visibly alive.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            args, stdout=out, stderr=err, env=env, preexec_fn=_die_with_parent
        )
        started = time.monotonic()
        next_report = started + PROGRESS_EVERY_SECONDS
        while process.poll() is None:
            time.sleep(0.1)
            if time.monotonic() >= next_report:
                progress(f"{label}: {_written(watch)}{time.monotonic() - started:.0f} s")
                next_report += PROGRESS_EVERY_SECONDS
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace").strip()
    if process.returncode != 0:
        last = stderr.splitlines()[-1] if stderr else f"exit status {process.returncode}"
        raise ConfigError(f"{Path(args[0]).name} failed: {last}")
    return stdout


def _written(watch: Path | None) -> str:
    if watch is None or not watch.exists():
        return ""
    files = [watch] if watch.is_file() else [p for p in watch.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    return f"{size / 1e6:,.1f} MB written, "

"""A private PostgreSQL + PostGIS cluster under ``CIM_DATA_DIR``, for when no server is given.

Why: a newcomer runs ``make demo`` without installing or configuring a database server. The
cluster lives in ``<data_dir>/pg``, listens on a unix socket in ``<data_dir>/run`` (or a short
folder under /tmp when that path is too long for a socket) and on a free port of 127.0.0.1 only,
and trusts local connections (no password). PostgreSQL refuses to run as root, so under root
the server runs as the unprivileged ``postgres`` system user (or a ``cim-postgres`` user that is
created). Starting a running cluster is harmless; data survives stop/start. With a
``wal_archive`` folder the server archives its WAL there (see :mod:`cim.db.wal_archive`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cim.db.wal_archive import (
    archive_setting,
    configure_archiving,
    prepare_archive,
    wait_for_recovery,
)
from cim.errors import ConfigError

SUPERUSER = "cim"
DATABASE = "cim"
UNIX_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; keep room for ".s.PGSQL.NNNNN"


@dataclass(frozen=True)
class ClusterStatus:
    """What ``cim db status`` reports about the embedded cluster."""

    data_dir: str
    initialised: bool
    running: bool
    port: int | None
    socket_dir: str
    url: str | None
    server_user: str
    bindir: str


def find_bindir(explicit: Path | None = None) -> Path:
    """Return the folder of ``pg_ctl``/``initdb`` of the newest PostgreSQL that has PostGIS."""
    if explicit is not None:
        if not (explicit / "pg_ctl").exists():
            raise ConfigError(f"CIM_PG_BINDIR={explicit} holds no pg_ctl")
        return explicit
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
        reverse=True,
    )
    for pg_ctl in candidates:
        version = pg_ctl.parent.parent.name
        if Path(f"/usr/share/postgresql/{version}/extension/postgis.control").exists():
            return pg_ctl.parent
    if candidates:
        version = candidates[0].parent.parent.name
        raise ConfigError(
            f"PostgreSQL {version} is installed but PostGIS is not: "
            f"install postgresql-{version}-postgis-3 (scripts/bootstrap does this as root)"
        )
    raise ConfigError(
        "no PostgreSQL server binaries found: install postgresql and postgresql-15-postgis-3 "
        "(scripts/bootstrap does this as root) or set CIM_DATABASE_URL"
    )


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As PostgreSQL does: a port in TIME_WAIT after our own stop is still ours to reuse,
        # so the cluster keeps its URL across restarts.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class EmbeddedCluster:
    """Manage the cluster in ``data_dir/pg``; every method is safe to call more than once."""

    def __init__(
        self, data_dir: Path, bindir: Path | None = None, wal_archive: Path | None = None
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.wal_archive = archive_setting(wal_archive)
        self.pgdata = self.data_dir / "pg"
        self.state_file = self.data_dir / "pg-state.json"
        self.log_file = self.data_dir / "postgresql.log"
        self._explicit_bindir = bindir

    # -- where things are -------------------------------------------------------------------
    @property
    def bindir(self) -> Path:
        return find_bindir(self._explicit_bindir)

    @property
    def socket_dir(self) -> Path:
        """Socket folder: inside the data dir unless that path is too long for a socket."""
        preferred = self.data_dir / "run"
        if len(str(preferred)) <= UNIX_SOCKET_PATH_MAX - 20:
            return preferred
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        return Path("/tmp") / f"cim-{digest}"

    @property
    def initialised(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def _state(self) -> dict[str, int]:
        if not self.state_file.exists():
            return {}
        data: dict[str, int] = json.loads(self.state_file.read_text())
        return data

    @property
    def port(self) -> int | None:
        return self._state().get("port")

    def url(self, driver: str = "postgresql") -> str:
        """A libpq URL (``psql`` accepts it); ``driver='postgresql+psycopg'`` for SQLAlchemy."""
        port = self.port
        if port is None:
            raise ConfigError(f"the embedded database in {self.data_dir} was never started")
        return f"{driver}://{SUPERUSER}@127.0.0.1:{port}/{DATABASE}"

    # -- who runs the server ----------------------------------------------------------------
    def _server_account(self) -> pwd.struct_passwd | None:
        """The unprivileged account the server runs as when we are root, else None."""
        if os.geteuid() != 0:
            return None
        for name in ("postgres", "cim-postgres"):
            with contextlib.suppress(KeyError):
                return pwd.getpwnam(name)
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "cim-postgres",
            ],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam("cim-postgres")

    def _run_as_server(
        self, args: list[str], timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        account = self._server_account()
        kwargs: dict[str, object] = {}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C.UTF-8"
        if account is not None:
            kwargs = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
            env["HOME"] = account.pw_dir
        return subprocess.run(  # type: ignore[call-overload, no-any-return]
            args, capture_output=True, text=True, env=env, timeout=timeout, cwd="/", **kwargs
        )

    def _prepare_folders(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        account = self._server_account()
        for folder in (self.pgdata, self.socket_dir):
            folder.mkdir(mode=0o700, exist_ok=True)
            if account is not None:
                os.chown(folder, account.pw_uid, account.pw_gid)
        archive = [self.wal_archive] if self.wal_archive is not None else []
        if archive and prepare_archive(archive[0], self.data_dir) and account is not None:
            os.chown(archive[0], account.pw_uid, account.pw_gid)  # only a folder cim created
        if account is not None:
            for folder in (self.pgdata, *archive):
                self._check_traversable(account, folder)

    def prepare_empty(self) -> Path:
        """Create the cluster folder (owned by the server account) for a restore to fill."""
        with self._lock():
            self._prepare_folders()
        return self.pgdata

    def _check_traversable(self, account: pwd.struct_passwd, folder: Path) -> None:
        probe = subprocess.run(
            ["test", "-w", str(folder)],
            user=account.pw_uid,
            group=account.pw_gid,
            extra_groups=[],
            capture_output=True,
        )
        if probe.returncode != 0:
            raise ConfigError(
                f"the database server runs as user '{account.pw_name}' (PostgreSQL refuses root), "
                f"which cannot reach {folder}: choose a CIM_DATA_DIR (and CIM_WAL_ARCHIVE) "
                "outside private folders such as /root"
            )

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise start/stop of one cluster across processes."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / "pg.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- lifecycle --------------------------------------------------------------------------
    def is_running(self) -> bool:
        if not self.initialised:
            return False
        result = self._run_as_server(
            [str(self.bindir / "pg_ctl"), "status", "-D", str(self.pgdata)]
        )
        return result.returncode == 0

    def _initdb(self) -> None:
        result = self._run_as_server(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ],
            timeout=300,
        )
        if result.returncode != 0:
            raise ConfigError(f"initdb failed: {result.stderr.strip().splitlines()[-1:]}")
        hba = self.pgdata / "pg_hba.conf"
        hba.write_text(
            "# cim embedded cluster: local socket and loopback only, no password\n"
            "local all all trust\n"
            "host all all 127.0.0.1/32 trust\n"
        )

    def start(self) -> ClusterStatus:
        """Initialise on first use, then start unless running; returns the status."""
        with self._lock():
            self._prepare_folders()
            if not self.initialised:
                self._initdb()
            if not self.is_running():
                self._start_server()
                wait_for_recovery(self.pgdata, self.is_running, self.log_file)
            self._ensure_database()
        return self.status()

    def _start_server(self) -> None:
        port = self.port
        if port is None or not _port_is_free(port):
            port = _free_loopback_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={port} "
            f"-c unix_socket_directories={self.socket_dir} "
            "-c shared_buffers=256MB -c max_connections=200 -c fsync=on "
            "-c max_wal_size=2GB -c maintenance_work_mem=256MB -c wal_buffers=64MB"
        )
        configure_archiving(self.pgdata, self.wal_archive)
        log = self.log_file
        log.touch(exist_ok=True)
        account = self._server_account()
        if account is not None:
            os.chown(log, account.pw_uid, account.pw_gid)
        result = self._run_as_server(
            [
                str(self.bindir / "pg_ctl"),
                "start",
                "-D",
                str(self.pgdata),
                "-w",
                "-t",
                "60",
                "-l",
                str(log),
                "-o",
                options,
            ],
            timeout=90,
        )
        if result.returncode != 0:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise ConfigError(f"the embedded PostgreSQL did not start: {' | '.join(tail)}")
        self.state_file.write_text(json.dumps({"port": port}))

    def _psql(
        self, sql: str, database: str = "postgres", tuples_only: bool = False
    ) -> subprocess.CompletedProcess[str]:
        psql = shutil.which("psql") or str(self.bindir / "psql")
        return subprocess.run(
            [
                psql,
                "-X",
                "-q",
                *(["-t", "-A"] if tuples_only else []),
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                "-d",
                database,
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def _ensure_database(self) -> None:
        # A server that ends a point-in-time recovery removes recovery.signal before it
        # writes its end-of-recovery checkpoint and leaves read-only mode: wait for writes.
        deadline = time.monotonic() + 60
        while True:
            in_recovery = self._psql("SELECT pg_is_in_recovery()", tuples_only=True)
            writable = in_recovery.returncode == 0 and in_recovery.stdout.strip() == "f"
            if writable or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        probe = self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'")
        if probe.returncode != 0:
            raise ConfigError(f"cannot reach the embedded database: {probe.stderr.strip()}")
        created = self._psql(f"CREATE DATABASE {DATABASE}")
        if created.returncode != 0 and "already exists" not in created.stderr:
            raise ConfigError(f"cannot create database {DATABASE}: {created.stderr.strip()}")
        extensions = self._psql(
            "CREATE EXTENSION IF NOT EXISTS postgis; CREATE EXTENSION IF NOT EXISTS postgis_raster",
            database=DATABASE,
        )
        if extensions.returncode != 0:
            raise ConfigError(f"cannot create the PostGIS extensions: {extensions.stderr.strip()}")

    def stop(self) -> ClusterStatus:
        """Stop the server if it runs (fast shutdown: open transactions roll back)."""
        with self._lock():
            if self.is_running():
                result = self._run_as_server(
                    [
                        str(self.bindir / "pg_ctl"),
                        "stop",
                        "-D",
                        str(self.pgdata),
                        "-m",
                        "fast",
                        "-w",
                        "-t",
                        "60",
                    ]
                )
                if result.returncode != 0:
                    raise ConfigError(f"pg_ctl stop failed: {result.stderr.strip()}")
        return self.status()

    def status(self) -> ClusterStatus:
        running = self.is_running()
        account = self._server_account() if os.geteuid() == 0 else None
        return ClusterStatus(
            data_dir=str(self.data_dir),
            initialised=self.initialised,
            running=running,
            port=self.port,
            socket_dir=str(self.socket_dir),
            url=self.url() if self.port is not None else None,
            server_user=account.pw_name if account else pwd.getpwuid(os.geteuid()).pw_name,
            bindir=str(self.bindir),
        )

"""Test harness: one real PostGIS for the whole run, started by cim's own embedded manager.

pytest-postgresql's process fixture cannot start a server as root (PostgreSQL refuses), and cim's
manager solves exactly that, so the suite uses it - which also tests it on every run. A database
``cim_test`` is migrated to head once (every run tests the migrations); each test gets a session
inside an outer transaction that is rolled back (``join_transaction_mode="create_savepoint"``).
The tests' other databases are copies of migrated templates (:func:`migrated_database`).
Set ``CIM_TEST_DATABASE_URL`` to run against an existing server instead.
"""

from __future__ import annotations

import hashlib
import json.encoder
import os
import shutil
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from cim.config import CimSettings
from cim.db import migrate
from cim.db.embedded import EmbeddedCluster
from cim.db.engine import make_engine
from tests import scheduling

REPO = Path(__file__).resolve().parents[1]
SHARED_SAMPLES = (REPO / ".." / "shared" / "samples").resolve()
TEST_SRID = 4547
# The suite sends hundreds of anonymous requests a minute from one address; tests of the rate
# limit (tests/api/test_overload.py) set it explicitly.
os.environ.setdefault("CIM_ANONYMOUS_RATE_PER_MINUTE", "0")

# Session fixtures of the shelter-zoning tests (metric databases for Cambridge MA and SF).
pytest_plugins = ["tests.shelter_fixtures"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest units of work first (see :mod:`tests.scheduling`)."""
    scheduling.order_longest_first(items)


def _json_floats() -> tuple[object, object]:
    """What decides how ``json`` writes floats: a ``float`` put into ``json.encoder`` (its
    pure-Python encoder looks the name up there before the builtin) and the C encoder."""
    return vars(json.encoder).get("float"), json.encoder.c_make_encoder


JSON_FLOATS = _json_floats()
"""How ``json`` writes floats when the tests start: a library that replaces them for the whole
process (cjio does, on import: six decimals) breaks every later test of its worker that writes
JSON, far from the cause."""


@pytest.fixture(autouse=True)
def _json_floats_unchanged() -> Iterator[None]:
    """Fail the test after which ``json``'s float encoding is no longer the standard one."""
    yield
    assert _json_floats() == JSON_FLOATS, (
        "this test (or a module it imported) replaced json's floats"
    )


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """``--dist loadfile`` with files sharing a costly fixture kept on one worker."""
    if config.getoption("dist") != "loadfile":
        return None
    return scheduling.make_scheduler(config, log)


def make_world_readable_tempdir(prefix: str) -> Path:
    """A temp folder the unprivileged database user can reach (pytest's tmp is 0700 under root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[EmbeddedCluster | None]:
    if os.environ.get("CIM_TEST_DATABASE_URL"):
        yield None
        return
    folder = make_world_readable_tempdir("cim-test-")
    cluster = EmbeddedCluster(folder)
    cluster.start()
    yield cluster
    cluster.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def server_url(pg_cluster: EmbeddedCluster | None) -> str:
    """libpq URL of the maintenance database ``postgres`` on the test server."""
    if pg_cluster is None:
        return os.environ["CIM_TEST_DATABASE_URL"].rsplit("/", 1)[0] + "/postgres"
    return pg_cluster.url().rsplit("/", 1)[0] + "/postgres"


def _admin(server_url: str) -> Engine:
    """An autocommit engine on the maintenance database (CREATE/DROP DATABASE)."""
    return create_engine(
        server_url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )


def _recreated(server_url: str, name: str, template: str | None = None) -> str:
    """Drop database ``name`` if it exists and create it (a copy of ``template`` if given);
    returns its SQLAlchemy URL."""
    admin = _admin(server_url)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        copy = f' TEMPLATE "{template}"' if template else ""
        conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))
    admin.dispose()
    return (
        server_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    )


def create_database(server_url: str, name: str) -> str:
    """(Re)create database ``name`` with PostGIS; returns its SQLAlchemy URL."""
    url = _recreated(server_url, name)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis_raster"))
    engine.dispose()
    return url


@cache
def _migrations_digest() -> str:
    """A short hash of the migration scripts: a template made by older migrations is not reused."""
    digest = hashlib.sha256()
    for path in sorted(migrate.ALEMBIC_DIR.rglob("*.py")):
        digest.update(str(path.relative_to(migrate.ALEMBIC_DIR)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:10]


_templates: set[tuple[str, str]] = set()
"""(server URL, template name) of the templates this process knows to exist."""


def _template(server_url: str, srid: int) -> str:
    """Name of a template database migrated to head with the storage SRID ``srid``, built on
    first use. Several processes may share one server (``CIM_TEST_DATABASE_URL`` under xdist):
    an advisory lock makes one build it; the others find it in ``pg_database`` once it is
    marked ``IS_TEMPLATE``, the last step of a build (a crashed build is redone). The name holds
    a hash of the migrations, so a server kept between runs never serves an outdated template;
    outdated ones stay until dropped (``ALTER DATABASE ... IS_TEMPLATE false`` first)."""
    name = f"cim_template_{srid}_{_migrations_digest()}"
    if (server_url, name) in _templates:
        return name
    admin = _admin(server_url)
    with admin.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(4547002)"))
        try:
            built = conn.execute(
                text("SELECT datistemplate FROM pg_database WHERE datname = :name"),
                {"name": name},
            ).scalar_one_or_none()
            if not built:  # absent, or a build that did not finish (create_database drops it)
                engine = make_engine(create_database(server_url, name))
                migrate.upgrade(engine, srid=srid, default_srid=srid)
                engine.dispose()  # a template must have no connections when it is copied
                conn.execute(
                    text(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false')
                )
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(4547002)"))
    admin.dispose()
    _templates.add((server_url, name))
    return name


def migrated_database(server_url: str, name: str, *, srid: int) -> str:
    """(Re)create database ``name`` migrated to head with the storage SRID ``srid``; returns its
    SQLAlchemy URL. What ``create_database`` + ``migrate.upgrade(engine, srid=srid,
    default_srid=srid)`` make (on a new database a given ``srid`` wins over ``default_srid``),
    copied from a template database instead.

    Why: creating a database with PostGIS (~0.85 s) and running every migration (~1.0 s) costs
    ~1.9 s, and the suite makes dozens of such databases; ``CREATE DATABASE ... TEMPLATE`` takes
    ~0.13 s, so the migrations run once per SRID and server. Tests of the migrations themselves
    (and ``database_url``, which keeps every run migrating a fresh database to head) still use
    ``create_database`` and ``migrate.upgrade``.
    """
    return _recreated(server_url, name, _template(server_url, srid))


@pytest.fixture(scope="session")
def database_url(server_url: str) -> str:
    """SQLAlchemy URL of ``cim_test``, migrated to head with the storage SRID 4547."""
    url = create_database(server_url, "cim_test")
    engine = make_engine(url)
    migrate.upgrade(engine, srid=TEST_SRID, default_srid=TEST_SRID)
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session whose every change is rolled back after the test (savepoint isolation)."""
    with engine.connect() as connection:
        outer = connection.begin()
        session = Session(bind=connection, join_transaction_mode="create_savepoint")
        try:
            yield session
        finally:
            session.close()
            outer.rollback()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> CimSettings:
    """Settings pointing at the test database, with a private data dir."""
    return CimSettings(database_url=database_url, data_dir=tmp_path / "data")


@pytest.fixture
def clean_tables(engine: Engine) -> Iterator[None]:
    """For tests that must commit (subprocesses, imports): delete every dataset afterwards."""
    yield
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM dataset"))
        # queued tile refreshes of this test's imports: not work for the next test's app
        conn.execute(text("DELETE FROM import_job WHERE status IN ('queued', 'succeeded')"))


def cli_env(database_url: str, **extra: str) -> dict[str, str]:
    """Environment for running ``cim`` in a subprocess against the test database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIM_")}
    env["CIM_DATABASE_URL"] = database_url
    env["CIM_ANONYMOUS_RATE_PER_MINUTE"] = "0"  # one test address sends many requests
    env.update(extra)
    return env


CIM = str(Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin" / "cim")
if not Path(CIM).exists():
    CIM = shutil.which("cim") or "cim"

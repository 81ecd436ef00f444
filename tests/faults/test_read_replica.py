"""``CIM_READ_DATABASE_URL``: read-only routes use the read engine, writes stay on the primary.

The "replica" is a read-only role on the test database (``SELECT`` only and
``default_transaction_read_only``), so where each query runs is observable: revoking the role's
``SELECT`` breaks the reads, and a write through it would fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from api.main import create_app
from cim.config import CimSettings
from cim.services.access import create_key

READER = "cim_test_reader"
ITEMS = "/collections/pipe_segments/items?limit=5"


@pytest.fixture
def read_url(engine: Engine, database_url: str) -> Iterator[str]:
    """URL of a read-only login role on the test database."""
    with engine.begin() as conn:
        conn.execute(
            text(
                f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{READER}') "
                f"THEN CREATE ROLE {READER} LOGIN; END IF; END $$"
            )
        )
        database = conn.execute(text("SELECT current_database()")).scalar_one()
        conn.execute(text(f'GRANT CONNECT ON DATABASE "{database}" TO {READER}'))
        conn.execute(text(f"GRANT USAGE ON SCHEMA public TO {READER}"))
        conn.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {READER}"))
        conn.execute(text(f"ALTER ROLE {READER} SET default_transaction_read_only = on"))
    yield make_url(database_url).set(username=READER).render_as_string(hide_password=False)
    with engine.begin() as conn:
        conn.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {READER}"))


def _reader_sessions(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE usename = :u"), {"u": READER}
            ).scalar_one()
        )


def test_reads_use_the_read_engine_and_writes_the_primary(
    engine: Engine, database_url: str, read_url: str, pipe_grid: int, tmp_path: Path
) -> None:
    settings = CimSettings(
        database_url=database_url, read_database_url=read_url, data_dir=tmp_path / "data"
    )
    with Session(engine) as session, session.begin():
        key, secret = create_key(session, name="replica test", role="reader")
        session.flush()
        key_id = key.id
    try:
        with TestClient(create_app(settings)) as client:
            app = client.app
            assert app.state.read_engine is not app.state.engine  # type: ignore[attr-defined]
            assert app.state.read_engine.url.username == READER  # type: ignore[attr-defined]

            page = client.get(ITEMS)
            assert page.status_code == 200, page.text
            assert page.json()["numberReturned"] == 5
            assert _reader_sessions(engine) >= 1

            # Without SELECT for the read role the same request fails: it really reads there.
            with engine.begin() as conn:
                conn.execute(text(f"REVOKE SELECT ON pipe_segment FROM {READER}"))
            refused = client.get(ITEMS)
            assert refused.status_code == 503
            with engine.begin() as conn:
                conn.execute(text(f"GRANT SELECT ON pipe_segment TO {READER}"))
            assert client.get(ITEMS).status_code == 200

            # A keyed read of a sensitive collection writes the audit log: on the primary.
            keyed = client.get(ITEMS, headers={"X-API-Key": secret})
            assert keyed.status_code == 200, keyed.text
            with engine.connect() as conn:
                audited = conn.execute(
                    text("SELECT count(*) FROM audit_log WHERE api_key_id = :k"), {"k": key_id}
                ).scalar_one()
            assert audited == 1

            # ...where the read engine could not have written it.
            read_engine = app.state.read_engine  # type: ignore[attr-defined]
            with pytest.raises(DBAPIError, match="read-only transaction"), read_engine.begin() as c:
                c.execute(text("DELETE FROM audit_log WHERE api_key_id = :k"), {"k": key_id})

            tiles = client.get("/tiles")
            assert tiles.status_code == 200
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_log WHERE api_key_id = :k"), {"k": key_id})
            conn.execute(text("DELETE FROM api_key WHERE id = :k"), {"k": key_id})


def test_without_a_read_url_everything_uses_the_primary(database_url: str, tmp_path: Path) -> None:
    settings = CimSettings(database_url=database_url, data_dir=tmp_path / "data")
    with TestClient(create_app(settings)) as client:
        assert client.app.state.read_engine is client.app.state.engine  # type: ignore[attr-defined]
        assert client.get("/collections").status_code == 200


def test_both_environment_names_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIM_DATABASE_READ_URL", "postgres://r@replica/cim")
    assert CimSettings().read_database_url == "postgresql+psycopg://r@replica/cim"
    monkeypatch.delenv("CIM_DATABASE_READ_URL")
    monkeypatch.setenv("CIM_READ_DATABASE_URL", "postgresql://r2@replica/cim")
    assert CimSettings().read_database_url == "postgresql+psycopg://r2@replica/cim"

"""Security plumbing: key lifecycle through the CLI, CORS, statement timeout, limits, no traces."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.main import create_app
from cim.config import CimSettings
from cim.services.access import hash_secret
from tests.api.features_fixtures import City
from tests.cli_support import run_cim
from tests.conftest import cli_env


def _cim(database_url: str, *args: str) -> dict[str, object]:
    done = run_cim("keys", *args, "--json", env=cli_env(database_url))
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_cli_key_lifecycle_controls_access(
    database_url: str, engine: Engine, city: City, tmp_path: Path
) -> None:
    created = _cim(database_url, "create", "field team", "--role", "reader")
    secret = str(created["secret"])
    assert created["role"] == "reader" and secret.startswith("cim_")
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT key_hash FROM api_key WHERE id = :id"), {"id": created["id"]}
        ).scalar_one()
    assert stored == hash_secret(secret) and secret not in stored  # only the hash is kept
    listed = run_cim("keys", "list", "--json", env=cli_env(database_url))
    assert secret not in listed.stdout and "field team" in listed.stdout

    settings = CimSettings(database_url=database_url, data_dir=tmp_path, collection_cache_seconds=0)
    with TestClient(create_app(settings)) as client:
        assert (
            client.get("/collections/pipes_RQ/items", headers={"X-API-Key": secret}).status_code
            == 200
        )
        _cim(database_url, "revoke", str(created["id"]))
        refused = client.get("/collections/pipes_RQ/items", headers={"X-API-Key": secret})
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
    with engine.connect() as conn:
        actions = set(
            conn.execute(
                text("SELECT action FROM audit_log WHERE resource = :r"),
                {"r": f"api_key/{created['id']}"},
            ).scalars()
        )
        conn.execute(text("DELETE FROM api_key WHERE id = :id"), {"id": created["id"]})
        conn.commit()
    assert actions == {"key-create", "key-revoke"}
    bad_role = run_cim("keys", "create", "x", "--role", "superuser", env=cli_env(database_url))
    assert bad_role.returncode == 2 and "unknown role" in bad_role.stderr


def test_cors_timeout_and_errors(database_url: str, city: City, tmp_path: Path) -> None:
    settings = CimSettings(
        database_url=database_url,
        data_dir=tmp_path,
        cors_origins="https://viewer.example",
        statement_timeout_ms=1234,
    )
    with TestClient(create_app(settings)) as client:
        preflight = client.options(
            "/collections",
            headers={
                "Origin": "https://viewer.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "X-API-Key",
            },
        )
        assert preflight.headers["access-control-allow-origin"] == "https://viewer.example"
        other = client.get("/collections", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        engine = client.app.state.engine  # type: ignore[attr-defined]
        with engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar_one() == "1234ms"
        nul = client.get("/collections/pipes_JS/items", params={"filter": "code = 'a\x00b'"})
        assert nul.status_code == 400 and "Traceback" not in nul.text
    with TestClient(create_app(CimSettings(database_url=database_url, data_dir=tmp_path))) as plain:
        no_cors = plain.get("/collections", headers={"Origin": "https://viewer.example"})
        assert "access-control-allow-origin" not in no_cors.headers

"""Restricted tiles (gas, power) are audited: one row per tileset.json and per content file served
to a key, with the layer's classes and feature count; anonymous callers get 401 and leave none."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from api.main import create_app
from cim.config import CimSettings
from cim.services.access import create_key
from tests.audit_rows import last_audit_id, reads_since
from tests.tiles.conftest import City
from tiles.build import build_mesh_layer


def test_restricted_tiles_are_audited_per_file(engine: Engine, city: City, tmp_path: Path) -> None:
    settings = CimSettings(
        database_url=str(engine.url.render_as_string(hide_password=False)), data_dir=tmp_path
    )
    built = build_mesh_layer(engine, settings.tiles_dir, "pipes_restricted", force=True)
    build_mesh_layer(engine, settings.tiles_dir, "pipes", force=True)
    with Session(engine) as session, session.begin():
        key, secret = create_key(session, name="tiles audit test", role="reader")
        key_id = key.id
    entry = "/tiles/restricted/pipes/tileset.json"
    try:
        with TestClient(create_app(settings)) as client:
            start = last_audit_id(engine)
            assert client.get(entry).status_code == 401
            assert client.get("/tiles/pipes/tileset.json").status_code == 200  # public: no row
            assert reads_since(engine, start) == []

            tileset = client.get(entry, headers={"X-API-Key": secret})
            assert tileset.status_code == 200
            uri = tileset.json()["root"]["content"]["uri"]
            content = client.get(f"/tiles/restricted/pipes/{uri}", headers={"X-API-Key": secret})
            assert content.status_code == 200
            again = client.get(
                entry, headers={"X-API-Key": secret, "If-None-Match": tileset.headers["etag"]}
            )
            assert again.status_code == 304
            rows = reads_since(engine, start)
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM api_key WHERE id = :id"), {"id": key_id})
    classes = sorted(settings.sensitive_utility_set)
    file = uri.split("?")[0]
    assert built.features == 1  # the power cable of the fixture city
    assert rows == [
        (key_id, "tiles/restricted/pipes/tileset.json", {"classes": classes, "features": 1}),
        (
            key_id,
            f"tiles/restricted/pipes/{file}",
            {"classes": classes, "bytes": len(content.content)},
        ),
        (key_id, "tiles/restricted/pipes/tileset.json", {"classes": classes, "features": 1}),
    ]

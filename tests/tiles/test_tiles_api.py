"""``/tiles/<layer>/...`` serves a built layer with content types, ETag, 304 and caching."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from api.main import create_app
from cim.config import CimSettings
from cim.services.access import create_key
from tests.tiles.conftest import City
from tiles.build import build_mesh_layer


def test_tiles_are_served_with_validators(engine: Engine, city: City, tmp_path: Path) -> None:
    settings = CimSettings(
        database_url=str(engine.url.render_as_string(hide_password=False)), data_dir=tmp_path
    )
    build_mesh_layer(engine, settings.tiles_dir, "pipes", force=True)
    build_mesh_layer(engine, settings.tiles_dir, "pipes_restricted", force=True)
    with Session(engine) as session, session.begin():
        key, secret = create_key(session, name="tiles test", role="reader")
        session.flush()
        key_id = key.id
    with TestClient(create_app(settings)) as client:
        listed = client.get("/tiles").json()
        assert [entry["layer"] for entry in listed] == ["pipes"]
        assert listed[0]["url"] == "/tiles/pipes/tileset.json"

        response = client.get("/tiles/pipes/tileset.json")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        assert response.headers["cache-control"] == "no-cache"
        etag = response.headers["etag"]
        assert response.headers["last-modified"]
        tileset = response.json()
        assert tileset == json.loads((settings.tiles_dir / "pipes" / "tileset.json").read_text())

        again = client.get("/tiles/pipes/tileset.json", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""

        uri = tileset["root"].get("content", {}).get("uri") or next(
            t["content"]["uri"] for t in tileset["root"]["children"] if "content" in t
        )
        content = client.get(f"/tiles/pipes/{uri}")
        assert content.status_code == 200
        assert content.headers["content-type"] == "model/gltf-binary"
        assert content.headers["cache-control"].endswith("immutable")
        assert content.content[:4] == b"glTF"
        assert client.head(f"/tiles/pipes/{uri}").status_code == 200

        for bad in (
            "/tiles/pipes/%2E%2E/%2E%2E/tileset.json",
            "/tiles/pipes/.lock",
            "/tiles/pipes/content/none.glb",
            "/tiles/nolayer/tileset.json",
        ):
            missing = client.get(bad)
            assert missing.status_code == 404, bad

        # gas and power (sensitive classes) only with a key, never in shared caches
        restricted = "/tiles/restricted/pipes/tileset.json"
        assert client.get(restricted).status_code == 401
        with_key = client.get(restricted, headers={"X-API-Key": secret})
        assert with_key.status_code == 200 and with_key.json()["root"]
        listed_with_key = client.get("/tiles", headers={"X-API-Key": secret}).json()
        assert [e["url"] for e in listed_with_key] == [
            "/tiles/pipes/tileset.json",
            "/tiles/restricted/pipes/tileset.json",
        ]
        uri = with_key.json()["root"]["content"]["uri"]
        content = client.get(f"/tiles/restricted/pipes/{uri}", headers={"X-API-Key": secret})
        assert content.status_code == 200
        assert content.headers["cache-control"].startswith("private")
        assert client.get(f"/tiles/restricted/pipes/{uri}").status_code == 401
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM api_key WHERE id = :id"), {"id": key_id})

"""``/tiles/<layer>/...`` serves a built layer with content types, ETag, 304 and caching."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.main import create_app
from cim.config import CimSettings
from tests.tiles.conftest import City
from tiles.build import build_mesh_layer


def test_tiles_are_served_with_validators(engine: Engine, city: City, tmp_path: Path) -> None:
    settings = CimSettings(
        database_url=str(engine.url.render_as_string(hide_password=False)), data_dir=tmp_path
    )
    build_mesh_layer(engine, settings.tiles_dir, "pipes", force=True)
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

"""``/viewer/``: the page, CesiumJS from node_modules, and the layer configuration it reads."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from api.main import create_app
from cim.config import CimSettings
from cim.utilities import utility_codes


def test_viewer_page_and_local_cesium_are_served(settings: CimSettings) -> None:
    with TestClient(create_app(settings)) as client:
        assert client.get("/viewer", follow_redirects=False).status_code == 307
        page = client.get("/viewer/")
        assert page.status_code == 200
        assert 'src="cesium/Cesium.js"' in page.text
        cesium = client.get("/viewer/cesium/Cesium.js")
        assert cesium.status_code == 200
        assert "javascript" in cesium.headers["content-type"]
        assert cesium.headers["cache-control"] == "public, max-age=86400"
        again = client.get(
            "/viewer/cesium/Cesium.js", headers={"if-none-match": cesium.headers["etag"]}
        )
        assert again.status_code == 304
        assert client.get("/viewer/cesium/../../package.json").status_code == 404


def test_config_lists_only_layers_that_exist(settings: CimSettings) -> None:
    with TestClient(create_app(settings)) as client:
        empty = client.get("/viewer/config.json").json()
        assert empty["terrain"] is None and empty["tilesets"] == []
        assert empty["storageSrid"] == 4547
        assert [c["code"] for c in empty["utilityClasses"]] == list(utility_codes())
        assert empty["endpoints"]["collections"] == "/collections"
        # every tool's endpoint, as the OpenAPI document names it (the tools call these paths)
        assert {k: v for k, v in empty["endpoints"].items() if k not in ("collections",)} == {
            "datasets": "/datasets",
            "dataset": "/datasets/{dataset_id}",
            "crossSection": "/analysis/pipes/section",
            "isolation": "/analysis/pipes/isolation",
            "excavation": "/analysis/pipes/excavation",
            "shelterPlans": "/analysis/shelters/plans",
            "shelterPlanList": "/analysis/shelters/plans",
            "shelterZones": "/analysis/shelters/plans/{plan_id}/zones",
            "shelterUncovered": "/analysis/shelters/plans/{plan_id}/uncovered",
            "shelterSuggest": "/analysis/shelters/suggest",
            "elevation": "/terrain/elevation",
            "shutdown": "/analysis/pipes/shutdown",
            "flood": "/analysis/drainage/flood",
        }

        for layer in ("pipes", "buildings", "zoning"):
            folder = settings.tiles_dir / layer
            folder.mkdir(parents=True)
            (folder / "tileset.json").write_text(json.dumps({"asset": {"version": "1.1"}}))
        (settings.tiles_dir / "terrain").mkdir()
        (settings.tiles_dir / "terrain" / "layer.json").write_text("{}")
        (settings.tiles_dir / "empty").mkdir()
        config = client.get("/viewer/config.json").json()
        assert config["terrain"] == "/terrain"
        assert [t["layer"] for t in config["tilesets"]] == ["buildings", "pipes", "zoning"]
        assert config["tilesets"][0]["url"] == "/tiles/buildings/tileset.json"


def test_datasets_json_gives_each_ready_dataset_an_extent_or_null(settings: CimSettings) -> None:
    with TestClient(create_app(settings)) as client:
        datasets = client.get("/viewer/datasets.json").json()
    assert isinstance(datasets, list)
    for dataset in datasets:
        assert set(dataset) == {"id", "kind", "name", "status", "bbox", "heights"}
        assert dataset["bbox"] is None or len(dataset["bbox"]) == 4

"""``POST /analysis/pipes/shutdown`` over HTTP: Net3 with a valve layer, WGS 84 GeoJSON, errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.bulkhead import HEAVY_ROUTES
from api.main import create_app
from cim.config import CimSettings
from importers.pipes import PipeImportOptions, import_pipes
from tests.cim.test_pipes_isolation import import_with_valves
from tests.conftest import SHARED_SAMPLES


@pytest.fixture
def client(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = CimSettings(database_url=database_url, data_dir=tmp_path / "d")
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _segment(engine: Engine, dataset: int, code: str | None = None) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT min(id) FROM pipe_segment WHERE dataset_id = :d"
                    " AND (CAST(:c AS text) IS NULL OR code = :c)"
                ),
                {"d": dataset, "c": code},
            ).scalar_one()
        )


def test_shutdown_of_a_burst_in_wgs84(
    client: TestClient, database_url: str, engine: Engine, clean_tables: None, tmp_path: Path
) -> None:
    _, _, dataset = import_with_valves(database_url, engine, tmp_path, "Net3.inp", 1, via_cli=False)
    body = {
        "segment_id": _segment(engine, dataset, "117"),
        "duration_h": 12,
        "geojson_crs": "EPSG:4326",
    }
    answer = client.post("/analysis/pipes/shutdown", json=body)
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert found["dataset_id"] == dataset and found["service_pressure_m"] == 14.0
    assert found["isolation"]["valves_to_close"] and found["closed_links"]
    assert {n["code"] for n in found["isolated_nodes"]} >= {"117"}
    assert found["demand"]["not_served_m3"] > 0
    roles = {f["properties"]["role"] for f in found["geojson"]["features"]}
    assert {"isolated", "close"} <= roles
    lon, lat = found["geojson"]["features"][0]["geometry"]["coordinates"][:2]
    assert 100 < lon < 130 and 20 < lat < 40  # drawing coordinates placed near 114°E
    assert ("POST", "/analysis/pipes/shutdown") in HEAVY_ROUTES


def test_shutdown_errors_are_4xx(client: TestClient, engine: Engine, clean_tables: None) -> None:
    options = PipeImportOptions(origin=(500000.0, 3400000.0, 0.0))
    [net1] = import_pipes(engine, [SHARED_SAMPLES / "pipes" / "Net1.inp"], options)
    pipe = _segment(engine, net1.dataset.id)
    url = "/analysis/pipes/shutdown"
    no_valves = client.post(url, json={"segment_id": pipe})
    assert no_valves.status_code == 400 and "no valves" in no_valves.json()["detail"]
    assert client.post(url, json={}).status_code == 400
    assert client.post(url, json={"segment_ids": [pipe], "duration_h": 0}).status_code == 400
    assert client.post(url, json={"segment_ids": [10**12]}).status_code == 404
    closed = client.post(url, json={"segment_ids": [pipe], "duration_h": 2, "geojson": False})
    assert closed.status_code == 200 and "geojson" not in closed.json()

"""``POST /analysis/drainage/flood`` over HTTP: Example 1 with its own rain and a design storm,
GeoJSON in WGS 84, errors as 4xx with nothing stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.bulkhead import HEAVY_ROUTES
from api.main import create_app
from cim.config import CimSettings
from tests.conftest import SHARED_SAMPLES
from tests.importers.pipes_helpers import run

PIPES = SHARED_SAMPLES / "pipes"


@pytest.fixture
def client(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = CimSettings(database_url=database_url, data_dir=tmp_path / "d")
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def example1(engine: Engine, clean_tables: None) -> int:
    path = PIPES / "swmm_Example1.inp"
    return run(engine, path, origin=(500_000.0, 3_400_000.0, 0.0)).dataset.id


def _datasets(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM dataset")).scalar_one())


def test_flood_own_rain_in_wgs84(client: TestClient, example1: int) -> None:
    answer = client.post(
        "/analysis/drainage/flood", json={"dataset_id": example1, "geojson_crs": "EPSG:4326"}
    )
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert found["rain"] == "model" and found["storm"] is None
    [node] = found["flooded_nodes"]
    assert node["code"] == "10" and node["volume_m3"] == pytest.approx(511.3, rel=0.01)
    assert found["totals"]["flooded_node_count"] == 1
    [feature] = found["geojson"]["features"]
    lon, lat = feature["geometry"]["coordinates"][:2]
    assert 100 < lon < 130 and 20 < lat < 40
    assert ("POST", "/analysis/drainage/flood") in HEAVY_ROUTES


def test_flood_design_storm(client: TestClient, example1: int) -> None:
    body = {
        "dataset_id": example1,
        "storm": {"return_period_a": 50, "duration_min": 120, "peak_ratio": 0.4},
        "geojson": False,
    }
    answer = client.post("/analysis/drainage/flood", json=body)
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert found["rain"] == "design_storm" and "geojson" not in found
    assert found["storm"]["total_mm"] == pytest.approx(4367.217 / 167 * 120 / 139.736**0.621)
    assert found["totals"]["flood_volume_m3"] > 511  # P = 50 a floods more than the own rain
    assert found["end"] == "2000-01-01 04:00:00"


@pytest.mark.parametrize(
    ("storm", "status", "words"),
    [
        ({"return_period_a": 500}, 400, "return period"),
        ({"return_period_a": 5, "duration_min": 1000}, 400, "duration"),
        ({"return_period_a": 5, "peak_ratio": 1.5}, 400, "peak position"),
        ({"return_period_a": 5, "step_min": 7}, 400, "step"),
        ({"return_period_a": 5, "formula": "atlantis"}, 400, "unknown storm formula"),
    ],
)
def test_bad_storms(
    client: TestClient, engine: Engine, example1: int, storm: dict[str, object], status: int,
    words: str,
) -> None:  # fmt: skip
    before = _datasets(engine)
    answer = client.post("/analysis/drainage/flood", json={"dataset_id": example1, "storm": storm})
    assert answer.status_code == status, answer.text
    assert words in answer.text
    assert _datasets(engine) == before


def test_not_a_drainage_network(client: TestClient, engine: Engine, clean_tables: None) -> None:
    water = run(engine, PIPES / "Net1.inp", crs="EPSG:4547", origin=(500_000.0, 3_400_000.0, 0.0))
    answer = client.post("/analysis/drainage/flood", json={"dataset_id": water.dataset.id})
    assert answer.status_code == 400 and "not a SWMM drainage network" in answer.text
    missing = client.post("/analysis/drainage/flood", json={"dataset_id": 987654})
    assert missing.status_code == 404

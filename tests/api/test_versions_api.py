"""Versions over HTTP: the version list, the diff and OGC ``datetime`` reading version 1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from api.main import create_app
from cim.config import CimSettings
from tests.cim.pipes_fixtures import make_dataset
from tests.importers.pipes_helpers import run
from tests.version_fixtures import (
    CHANGES,
    LINES_V1,
    LINES_V2,
    POINTS_V1,
    POINTS_V2,
    survey,
)


@pytest.fixture
def client(database_url: str, tmp_path: Path, clean_tables: None) -> Iterator[TestClient]:
    settings = CimSettings(
        database_url=database_url, data_dir=tmp_path / "data", collection_cache_seconds=0
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _codes(page: dict[str, Any]) -> list[str]:
    return sorted(f["properties"]["code"] for f in page["features"])


def test_versions_diff_and_datetime(client: TestClient, engine: Engine, tmp_path: Path) -> None:
    first = run(engine, *survey(tmp_path / "v1", POINTS_V1, LINES_V1), crs="EPSG:4547")
    run(engine, *survey(tmp_path / "v2", POINTS_V2, LINES_V2), crs="EPSG:4547")
    dataset_id = first.dataset.id

    listed = client.get(f"/datasets/{dataset_id}/versions").json()
    assert [v["version"] for v in listed["versions"]] == [1, 2]
    assert [v["current"] for v in listed["versions"]] == [False, True]
    assert listed["versions"][1]["changes"]["pipe_segment"]["removed"] == 1
    v1_time = listed["versions"][0]["created_at"]

    diff = client.get(f"/datasets/{dataset_id}/diff", params={"geojson_crs": "EPSG:4326"}).json()
    assert diff["from_version"] == 1 and diff["to_version"] == 2
    assert diff["totals"] == {"added": 2, "removed": 2, "changed": 3}
    states = {
        f["properties"]["code"]: f["properties"]["state"] for f in diff["geojson"]["features"]
    }
    assert states == {
        "W2": "changed", "W4": "removed", "W5": "added",
        "L1": "changed", "L2": "changed", "L3": "removed", "L4": "added",
    }  # fmt: skip
    assert {f["code"]: f["changes"] for f in diff["features"] if f["changes"]} == CHANGES
    properties = {f["properties"]["code"]: f["properties"] for f in diff["geojson"]["features"]}
    assert {c: properties[c]["changes"] for c in CHANGES} == CHANGES
    lon, lat = diff["geojson"]["features"][0]["geometry"]["coordinates"][:2]
    assert 100 < lon < 130 and 20 < lat < 40

    items = "/collections/pipe_segments/items"
    assert _codes(client.get(items).json()) == ["L1", "L2", "L4"]
    assert _codes(client.get(items, params={"datetime": v1_time}).json()) == ["L1", "L2", "L3"]
    interval = client.get(items, params={"datetime": f"{v1_time}/.."}).json()
    assert interval["numberMatched"] == 6  # L1, L2, L3 as they were and L1, L2, L4 now
    before = client.get(items, params={"datetime": "2001-01-01T00:00:00Z"}).json()
    assert before["numberMatched"] == 0
    nodes = client.get("/collections/pipe_nodes/items", params={"datetime": v1_time}).json()
    assert _codes(nodes) == ["W1", "W2", "W3", "W4"]


def test_bad_datetime_and_unknown_versions(
    client: TestClient, engine: Engine, tmp_path: Path
) -> None:
    first = run(engine, *survey(tmp_path / "v1", POINTS_V1, LINES_V1), crs="EPSG:4547")
    bad = client.get("/collections/pipe_segments/items", params={"datetime": "yesterday"})
    assert bad.status_code == 400 and "RFC 3339" in bad.json()["detail"]
    backwards = client.get(
        "/collections/pipe_segments/items", params={"datetime": "2026-02-01/2026-01-01"}
    )
    assert backwards.status_code == 400
    assert client.get(f"/datasets/{first.dataset.id}/diff?from=1&to=5").status_code == 404
    assert client.get("/datasets/999999/versions").status_code == 404


def test_a_dataset_without_recorded_versions_has_no_diff(
    client: TestClient, engine: Engine
) -> None:
    """Rows written around the importers (no ``dataset_version``): 404, not a 500 (found by
    schemathesis with a reader key on the API fixture city)."""
    with engine.begin() as conn:
        dataset_id = make_dataset(Session(bind=conn))
    answer = client.get(f"/datasets/{dataset_id}/diff")
    assert answer.status_code == 404
    assert "no recorded versions" in answer.json()["detail"]


def test_gas_versions_are_hidden_without_a_key(
    client: TestClient, engine: Engine, tmp_path: Path, keys: dict[str, str]
) -> None:
    folder = tmp_path / "gas"
    paths = survey(folder, POINTS_V1, LINES_V1)
    gas = [p.rename(p.with_name(p.name.replace("PS_", "RQ_"))) for p in paths]
    first = run(engine, *gas, crs="EPSG:4547")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT DISTINCT utility FROM pipe_segment")).scalar() == "RQ"
    url = f"/datasets/{first.dataset.id}/versions"
    assert client.get(url).status_code == 404
    assert client.get(url, headers={"X-API-Key": keys["reader"]}).status_code == 200
    hidden = client.get("/collections/pipe_segments/items", params={"datetime": "2001-01-01/.."})
    assert hidden.json()["numberMatched"] == 0
    shown = client.get(
        "/collections/pipe_segments/items",
        params={"datetime": "2001-01-01/.."},
        headers={"X-API-Key": keys["reader"]},
    )
    assert shown.json()["numberMatched"] == 3


def test_analyses_answer_at_a_past_instant(
    client: TestClient, engine: Engine, tmp_path: Path
) -> None:
    def water(folder: Path, points: list[list[str]], lines: list[list[str]]) -> list[Path]:
        paths = survey(folder, points, lines)  # as a water network: isolation runs on it
        return [p.rename(p.with_name(p.name.replace("PS_", "JS_"))) for p in paths]

    first = run(engine, *water(tmp_path / "v1", POINTS_V1, LINES_V1), crs="EPSG:4547")
    with engine.connect() as conn:
        l3 = conn.execute(text("SELECT id FROM pipe_segment WHERE code = 'L3'")).scalar_one()
    run(engine, *water(tmp_path / "v2", POINTS_V2, LINES_V2), crs="EPSG:4547")
    v1_time = client.get(f"/datasets/{first.dataset.id}/versions").json()["versions"][0][
        "created_at"
    ]
    body = {"bbox": [499_990, 3_399_990, 500_100, 3_400_040]}
    now = client.post("/analysis/pipes/query", json=body).json()
    then = client.post("/analysis/pipes/query", params={"at": v1_time}, json=body).json()
    assert _codes(now) == ["L1", "L2", "L4"]
    assert _codes(then) == ["L1", "L2", "L3"]
    # L3 is gone now, but the network as it was can still be isolated around it
    assert client.post("/analysis/pipes/isolation", json={"segment_id": l3}).status_code == 404
    past = client.post("/analysis/pipes/isolation", params={"at": v1_time}, json={"segment_id": l3})
    assert past.status_code == 200, past.text
    isolated = sorted(f["properties"]["code"] for f in past.json()["geojson"]["features"])
    assert "L3" in isolated
    assert client.post("/analysis/pipes/query", json=body).json() == now  # no view left behind
    interval = client.post("/analysis/pipes/query", params={"at": "../2026-01-01"}, json=body)
    assert interval.status_code == 400

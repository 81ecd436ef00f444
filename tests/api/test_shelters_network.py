"""``/analysis/shelters`` with ``distance: network`` through the real app (river town, by hand)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from api.main import create_app
from cim.config import CimSettings
from cim.services.access import create_key
from tests.road_fixtures import engine_of, river, write_roads  # noqa: F401  (fixture)


def _client(
    engine: Engine, data_dir: Path, *, delete_plans: bool
) -> Iterator[tuple[TestClient, str]]:
    with Session(engine) as session, session.begin():
        key, secret = create_key(session, name="roads test admin", role="admin")
        key_id = key.id
    settings = CimSettings(
        database_url=engine.url.render_as_string(hide_password=False), data_dir=data_dir
    )
    try:
        with TestClient(create_app(settings)) as test_client:
            yield test_client, secret
    finally:
        with engine.begin() as conn:
            if delete_plans:
                conn.execute(text("DELETE FROM shelter_plan"))
            conn.execute(text("DELETE FROM api_key WHERE id = :id"), {"id": key_id})


@pytest.fixture
def town_api(river: dict[str, Any], tmp_path: Path) -> Iterator[tuple[TestClient, str]]:  # noqa: F811
    yield from _client(engine_of(river), tmp_path / "data", delete_plans=True)


def test_plan_and_suggest_along_roads(
    town_api: tuple[TestClient, str],
    river: dict[str, Any],  # noqa: F811
) -> None:
    http, secret = town_api
    ids = river["ids"]
    body = {
        "name": "along roads",
        "distance": "network",
        "road_datasets": [ids["roads"]],
        "shelter_datasets": [ids["shelters_ab"]],
        "population_datasets": [ids["units_ns"]],
    }
    created = http.post("/analysis/shelters/plans", json=body, headers={"X-API-Key": secret})
    assert created.status_code == 201, created.text
    plan = created.json()
    assert plan["parameters"]["distance"] == "network"
    assert plan["parameters"]["road_datasets"] == [ids["roads"]]
    stats = plan["stats"]
    assert stats["distance"] == "network"
    assert stats["covered"] == 150.0 and stats["person_distance_m"] == 76_000.0
    loads = {s["name"]: s["population"] for s in plan["shelters"]}
    assert loads == {"A": 50.0, "B": 100.0}
    assert http.get(f"/analysis/shelters/plans/{plan['id']}").json()["stats"] == stats
    uncovered = http.get(f"/analysis/shelters/plans/{plan['id']}/uncovered").json()
    assert [f["properties"]["reason"] for f in uncovered["features"]] == ["out_of_reach"]

    unknown = http.post(
        "/analysis/shelters/plans",
        json={**body, "road_datasets": [987654]},
        headers={"X-API-Key": secret},
    )
    assert unknown.status_code == 404 and "987654" in unknown.text
    bad = http.post(
        "/analysis/shelters/plans",
        json={**body, "distance": "manhattan"},
        headers={"X-API-Key": secret},
    )
    assert bad.status_code == 400 and "distance" in bad.text

    suggested = http.post(
        "/analysis/shelters/suggest",
        json={
            "k": 1,
            "radius_m": 650,
            "demand": "all",
            "population_datasets": [ids["units_ns"]],
            "candidate_dataset": ids["shelters_ab"],
            "distance": "network",
            "road_datasets": [ids["roads"]],
        },
    )
    assert suggested.status_code == 200, suggested.text
    assert suggested.json()["gain"] == 50.0

    # The roads are an OGC API Features collection too (CQL2 filter on one dataset).
    items = http.get(
        "/collections/road_segments/items",
        params={"limit": 100, "filter": f"dataset_id = {ids['roads']}"},
    )
    assert items.status_code == 200, items.text
    features = items.json()["features"]
    assert len(features) == 6
    assert sorted(f["properties"]["length"] for f in features) == [
        200.0, 500.0, 1000.0, 1000.0, 1500.0, 2000.0,
    ]  # fmt: skip
    bridge = next(f for f in features if f["properties"]["kind"] == "bridge")
    assert bridge["geometry"]["type"] == "LineString"


@pytest.mark.parametrize(("noding", "components"), [(None, 1), ("vertices", 3)])
def test_roads_upload_runs_as_an_import_job(
    town_api: tuple[TestClient, str],
    river: dict[str, Any],  # noqa: F811
    tmp_path: Path,
    noding: str | None,
    components: int,
) -> None:
    http, secret = town_api
    admin = {"X-API-Key": secret}
    path = write_roads(tmp_path / "uploaded_roads.geojson", copy=f"upload-{noding}")
    files = {"files": (path.name, path.read_bytes(), "application/geo+json")}
    form = {"kind": "roads", "crs": "EPSG:4547"} | ({"noding": noding} if noding else {})
    started = http.post("/datasets", data=form, files=files, headers=admin)
    assert started.status_code == 202, started.text
    deadline = time.monotonic() + 60
    job = started.json()
    while job["status"] not in ("succeeded", "failed") and time.monotonic() < deadline:
        time.sleep(0.2)
        job = http.get(started.headers["location"], headers=admin).json()
    assert job["status"] == "succeeded", job
    try:
        dataset = http.get(f"/datasets/{job['dataset_id']}").json()
        assert dataset["kind"] == "roads"
        assert dataset["qc"]["components"] == components
    finally:
        with engine_of(river).begin() as conn:
            conn.execute(text("DELETE FROM dataset WHERE id = :d"), {"d": job["dataset_id"]})


def test_network_without_roads_is_a_400(engine: Engine, tmp_path: Path) -> None:
    """The default test database has no road dataset."""
    for http, secret in _client(engine, tmp_path / "data", delete_plans=False):
        refused = http.post(
            "/analysis/shelters/plans",
            json={"distance": "network"},
            headers={"X-API-Key": secret},
        )
        assert refused.status_code == 400
        assert "cim import roads" in refused.json()["detail"]

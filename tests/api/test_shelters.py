"""``/analysis/shelters`` through the real app on the Cambridge MA database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from api.main import create_app
from cim.config import CimSettings
from cim.services.access import create_key


@pytest.fixture
def client(cambridge_engine: Engine, tmp_path) -> Iterator[tuple[TestClient, str, Engine]]:
    url = cambridge_engine.url.render_as_string(hide_password=False)
    with Session(cambridge_engine) as session, session.begin():
        key, secret = create_key(session, name="shelter test admin", role="admin")
        key_id = key.id
    settings = CimSettings(database_url=url, data_dir=tmp_path / "data")
    try:
        with TestClient(create_app(settings)) as test_client:
            yield test_client, secret, cambridge_engine
    finally:
        with cambridge_engine.begin() as conn:
            conn.execute(text("DELETE FROM shelter_plan"))
            conn.execute(text("DELETE FROM api_key WHERE id = :id"), {"id": key_id})


def test_plan_zones_uncovered_and_suggest(client: tuple[TestClient, str, Engine]) -> None:
    http, secret, engine = client
    body = {"name": "api", "radius_m": {"short": 900}}
    assert http.post("/analysis/shelters/plans", json=body).status_code == 401
    created = http.post("/analysis/shelters/plans", json=body, headers={"X-API-Key": secret})
    assert created.status_code == 201, created.text
    plan = created.json()
    stats = plan["stats"]
    assert stats["covered"] + stats["uncovered"] == pytest.approx(101_355.0)
    assert plan["parameters"]["radius_m"] == {"short": 900.0}

    fetched = http.get(f"/analysis/shelters/plans/{plan['id']}").json()
    assert fetched["stats"] == stats and len(fetched["shelters"]) == stats["usable_shelters"]
    assert http.get("/analysis/shelters/plans/latest").json()["id"] == plan["id"]
    assert http.get("/analysis/shelters/plans").json()[0]["id"] == plan["id"]

    zones = http.get(f"/analysis/shelters/plans/{plan['id']}/zones").json()
    assert zones["type"] == "FeatureCollection"
    loads = [f["properties"]["load_ratio"] for f in zones["features"]]
    assert len(loads) == stats["usable_shelters"] and max(loads) <= 1 + 1e-9
    lon, lat = zones["features"][0]["geometry"]["coordinates"][0][0][0]
    assert -71.2 < lon < -71.0 and 42.3 < lat < 42.45  # WGS84, in Cambridge
    uncovered = http.get(f"/analysis/shelters/plans/{plan['id']}/uncovered").json()
    assert sum(f["properties"]["uncovered"] for f in uncovered["features"]) == pytest.approx(
        stats["uncovered"]
    )
    reasons = {f["properties"]["reason"] for f in uncovered["features"]}
    assert reasons <= {"out_of_reach", "over_capacity", "in_hazard_zone"}

    # 250 m grid: flood zones remove candidates in the middle of the id range.
    suggested = http.post(
        "/analysis/shelters/suggest", json={"k": 3, "level": "short", "grid_spacing_m": 250}
    )
    assert suggested.status_code == 200, suggested.text
    result = suggested.json()
    assert result["plan_id"] == plan["id"] and len(result["sites"]) == 3
    assert result["status"] == "optimal"
    assert 0 < result["gain"] <= stats["uncovered"] + 1e-6
    # The gain, recounted in SQL: uncovered persons of units within 1,000 m of a chosen site.
    with engine.connect() as conn:
        recount = conn.execute(
            text(
                """SELECT coalesce(sum(a.persons), 0) FROM shelter_assignment a
                   JOIN population_unit u ON u.id = a.unit_id
                   WHERE a.plan_id = :p AND a.shelter_id IS NULL AND EXISTS (
                     SELECT 1 FROM unnest(CAST(:xs AS float8[]), CAST(:ys AS float8[])) AS c(x, y)
                     WHERE ST_DWithin(ST_PointOnSurface(u.geom),
                                      ST_SetSRID(ST_MakePoint(c.x, c.y), 26986), 1000))"""
            ),
            {
                "p": plan["id"],
                "xs": [s["x"] for s in result["sites"]],
                "ys": [s["y"] for s in result["sites"]],
            },
        ).scalar_one()
    assert result["gain"] == pytest.approx(recount)
    assert not any(s["site"] is None for s in result["sites"])

    assert http.get("/analysis/shelters/plans/999999").status_code == 404
    bad = http.post(
        "/analysis/shelters/plans",
        json={"radius_m": {"short": -5}},
        headers={"X-API-Key": secret},
    )
    assert bad.status_code in (400, 422)


def test_api_documents_every_shelter_analysis_answer(database_url: str, tmp_path: Path) -> None:
    """``/api`` (the OpenAPI document) gives every ``/analysis/shelters`` route the JSON shape of
    its answer, down to the plan statistics and the zone features' properties."""
    settings = CimSettings(database_url=database_url, data_dir=tmp_path / "data")
    with TestClient(create_app(settings)) as http:
        document = http.get("/api").json()
    paths = {p: ops for p, ops in document["paths"].items() if p.startswith("/analysis/shelters")}
    assert len(paths) == 6
    for path, operations in paths.items():
        for method, operation in operations.items():
            status = "201" if method == "post" and path.endswith("/plans") else "200"
            schema = operation["responses"][status]["content"]["application/json"]["schema"]
            model = schema.get("$ref") or schema.get("items", {}).get("$ref")
            assert model, f"{method.upper()} {path} has no response schema"
    schemas = document["components"]["schemas"]
    assert "coverage_ratio" in schemas["PlanStats"]["properties"]
    assert "load_ratio" in schemas["ZoneProperties"]["properties"]
    assert "gain" in schemas["SiteSuggestion"]["properties"]

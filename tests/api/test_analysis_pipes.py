"""``/analysis/pipes/...`` over HTTP on a small committed network (shapes, SVG, CRS, errors)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from api.main import create_app
from cim.config import CimSettings
from cim.crs import transformer
from tests.cim.pipes_fixtures import N, S, make_dataset, write_network
from tests.conftest import TEST_SRID

X0, Y0 = 534_000.0, 3_380_000.0


@pytest.fixture
def network(engine: Engine, clean_tables: None) -> dict[str, int]:
    """Water main with valves a -V1- b - c -V2- d, a sewer m1 -> m2 -> m3 crossing it, QC."""
    with Session(engine) as session, session.begin():
        water = make_dataset(session, "water", qc={"orphan_nodes": []})
        nodes = [
            N("a", X0, Y0),
            N("V1", X0 + 50, Y0, kind="valve", valve_state="open"),
            N("b", X0 + 100, Y0),
            N("c", X0 + 200, Y0, kind="hydrant"),
            N("V2", X0 + 250, Y0, kind="valve", valve_state="open"),
            N("d", X0 + 300, Y0),
        ]
        segs = [
            S("aV1", "a", "V1"),
            S("V1b", "V1", "b"),
            S("bc", "b", "c"),
            S("cV2", "c", "V2"),
            S("V2d", "V2", "d"),
        ]
        water_nodes, water_segs = write_network(session, water, nodes, segs)
        sewer = make_dataset(session, "sewer")
        sewer_nodes, _ = write_network(
            session,
            sewer,
            [N(f"m{k}", X0 + 150, Y0 - 50 + 50 * k, 10.0, "PS", "manhole") for k in range(3)],
            [
                S("s1", "m0", "m1", "PS", diameter_mm=600, start_invert_z=7.0, end_invert_z=6.9),
                S("s2", "m1", "m2", "PS", diameter_mm=600, start_invert_z=6.9, end_invert_z=6.8),
            ],
        )
    return {
        "water": water,
        "bc": water_segs["bc"],
        "V1": water_nodes["V1"],
        "m0": sewer_nodes["m0"],
        "m2": sewer_nodes["m2"],
    }


@pytest.fixture
def client(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(
        create_app(CimSettings(database_url=database_url, data_dir=tmp_path / "d"))
    ) as test_client:
        yield test_client


def test_isolation_trace_and_geojson_in_wgs84(client: TestClient, network: dict[str, int]) -> None:
    answer = client.post("/analysis/pipes/isolation", json={"segment_id": network["bc"]}).json()
    assert [v["code"] for v in answer["valves_to_close"]] == ["V1", "V2"]
    assert answer["length_m"] == pytest.approx(200.0)
    lon, lat = transformer(TEST_SRID, 4326).transform(X0 + 150, Y0 + 2)
    again = client.post(
        "/analysis/pipes/isolation",
        json={
            "point": [lon, lat],
            "crs": "EPSG:4326",
            "geojson_crs": "EPSG:4326",
            "failed_valves": [network["V1"]],
        },
    ).json()
    assert again["burst_segment"]["code"] == "bc" and [
        v["code"] for v in again["valves_to_close"]
    ] == ["V2"]
    x, y, _ = again["geojson"]["features"][0]["geometry"]["coordinates"][0]
    assert 113 < x < 115 and 30 < y < 31
    traced = client.post(
        "/analysis/pipes/trace", json={"node_id": network["m0"], "direction": "downstream"}
    ).json()
    assert [n["code"] for n in traced["terminal_nodes"]] == ["m2"]


def test_section_profile_svg_and_query(client: TestClient, network: dict[str, int]) -> None:
    line = {"type": "LineString", "coordinates": [[X0 + 140, Y0 - 10], [X0 + 140, Y0 + 80]]}
    # the line runs parallel to the sewer, crossing only the water main at offset 10 m
    section = client.post("/analysis/pipes/section", json={"line": line}).json()
    assert [(p["code"], p["offset_m"]) for p in section["pipes"]] == [("bc", 10.0)]
    svg = client.post("/analysis/pipes/section?format=svg", json={"line": line})
    assert svg.headers["content-type"].startswith("image/svg+xml") and svg.text.startswith("<svg")
    profile = client.get(
        "/analysis/pipes/profile", params={"from_node": network["m0"], "to_node": network["m2"]}
    ).json()
    assert profile["length_m"] == pytest.approx(100.0) and profile["backward_segments"] == []
    assert client.get(
        "/analysis/pipes/profile",
        params={"from_node": network["m0"], "to_node": network["m2"], "format": "svg"},
    ).text.startswith("<svg")
    found = client.post(
        "/analysis/pipes/query",
        json={"bbox": [X0 - 1, Y0 - 1, X0 + 301, Y0 + 1], "utilities": ["JS"]},
    ).json()
    assert found["numberMatched"] == 5


def test_clearance_clash_excavation_qc(client: TestClient, network: dict[str, int]) -> None:
    checked = client.post("/analysis/pipes/clearance", json={}).json()
    assert checked["standard"] == "GB 50289-2016" and checked["violation_count"] >= 0
    assert (
        client.post("/analysis/pipes/clashes", json={"kinds": ["pipe"]}).json()["clash_count"] >= 0
    )
    cut = {
        "type": "Polygon",
        "coordinates": [
            [
                [X0 + 90, Y0 - 5],
                [X0 + 110, Y0 - 5],
                [X0 + 110, Y0 + 5],
                [X0 + 90, Y0 + 5],
                [X0 + 90, Y0 - 5],
            ]
        ],
    }
    dug = client.post("/analysis/pipes/excavation", json={"polygon": cut, "depth_m": 2.0}).json()
    assert {p["code"] for p in dug["pipes"]} == {"V1b", "bc"}
    assert client.get(f"/analysis/pipes/qc/{network['water']}").json()["qc"] == {"orphan_nodes": []}


def test_errors_are_problem_json(client: TestClient, network: dict[str, int]) -> None:
    bad = client.post("/analysis/pipes/isolation", json={})
    assert bad.status_code == 400 and bad.headers["content-type"].startswith(
        "application/problem+json"
    )
    assert client.post("/analysis/pipes/isolation", json={"segment_id": 10**12}).status_code == 404
    assert client.get("/analysis/pipes/qc/999999999").status_code == 404
    assert (
        client.post(
            "/analysis/pipes/excavation",
            json={"polygon": {"type": "Point", "coordinates": [0, 0]}, "depth_m": 1},
        ).status_code
        == 400
    )
    assert client.post("/analysis/pipes/section", json={"line": "nonsense"}).status_code == 400


def test_sensitive_classes_need_a_key(
    client: TestClient, network: dict[str, int], engine: Engine
) -> None:
    from cim.services.access import create_key

    with Session(engine) as session, session.begin():
        gas = make_dataset(session, "gas")
        gas_nodes, gas_segs = write_network(
            session,
            gas,
            [N("g1", X0, Y0 + 20, utility="RQ"), N("g2", X0 + 100, Y0 + 20, utility="RQ")],
            [S("G1", "g1", "g2", "RQ", diameter_mm=160)],
        )
        _, secret = create_key(session, name="pipes-test", role="reader")
    try:
        _check_sensitive(client, secret, gas_nodes["g1"], gas_segs["G1"])
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM api_key WHERE name = 'pipes-test'"))


def _check_sensitive(client: TestClient, secret: str, gas_node: int, gas_segment: int) -> None:
    box = {"bbox": [X0 - 1, Y0 - 1, X0 + 301, Y0 + 21]}
    anonymous = client.post("/analysis/pipes/query", json=box).json()
    assert "RQ" not in {f["properties"]["utility"] for f in anonymous["features"]}
    keyed = client.post("/analysis/pipes/query", json=box, headers={"X-API-Key": secret}).json()
    assert "RQ" in {f["properties"]["utility"] for f in keyed["features"]}
    refused = client.post("/analysis/pipes/trace", json={"node_id": gas_node})
    assert refused.status_code == 401
    allowed = client.post(
        "/analysis/pipes/isolation",
        json={"segment_id": gas_segment},
        headers={"X-API-Key": secret},
    )
    assert allowed.status_code == 200 and allowed.json()["length_m"] == 100.0


def test_openapi_documents_every_pipe_analysis_answer(database_url: str, tmp_path: Path) -> None:
    """Every ``/analysis/pipes`` route publishes the JSON shape of its answer (charts: also SVG)."""
    app = create_app(CimSettings(database_url=database_url, data_dir=tmp_path / "d"))
    paths = {p: ops for p, ops in app.openapi()["paths"].items() if p.startswith("/analysis/pipes")}
    assert len(paths) == 13  # nine analyses, the shutdown simulation, three of planned shutdowns
    for path, operations in paths.items():
        for method, operation in operations.items():
            answer = operation["responses"].get("200") or operation["responses"]["201"]
            content = answer["content"]
            schema = content["application/json"]["schema"]
            assert "$ref" in schema, f"{method.upper()} {path} has no response schema"
    for chart in ("/analysis/pipes/section", "/analysis/pipes/profile"):
        (operation,) = paths[chart].values()
        assert "image/svg+xml" in operation["responses"]["200"]["content"]

"""``format=csv|xlsx`` and ``lang=zh|en`` of every list analysis: the file holds the JSON's rows.

For each analysis the JSON answer and the four files (csv/xlsx x zh/en) come from the same
request on a committed network; the files are read back with ``csv`` and ``openpyxl`` and
their headers, row count, order and ids/codes/numbers compared with the JSON.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from api.main import create_app
from cim.config import CimSettings
from cim.services.access import create_key
from cim.services.tables import pipes as pipe_tables
from cim.services.tables import shelters as shelter_tables
from cim.services.tables.language import header, sheet_title
from cim.services.tables.spec import TableSpec
from cim.services.tables.writers import FORMULA_START
from tests.cim.pipes_fixtures import N, S, make_dataset, write_network

X0, Y0 = 534_000.0, 3_380_000.0
ISSUES = [
    {"rule": "duplicate_code", "severity": "error", "code": "a", "message": "point a appears 2"},
    {"rule": "ground_mismatch", "severity": "warning", "code": "=b", "message": "ground 0.4 m"},
]
Item = dict[str, Any]


@dataclass(frozen=True)
class Case:
    """One table of one analysis: the request, where its list is in the JSON, and the columns
    to compare (column key -> JSON field of an item)."""

    method: str
    path: str
    body: Any
    spec: TableSpec
    items: Callable[[Any], list[Item]]
    fields: dict[str, Callable[[Item], Any]]
    table: str | None = None


def field(name: str) -> Callable[[Item], Any]:
    return lambda item: item[name]


def nested(outer: str, name: str) -> Callable[[Item], Any]:
    return lambda item: item[outer].get(name)


def prop(name: str) -> Callable[[Item], Any]:
    return lambda item: item["properties"][name]


@pytest.fixture
def network(engine: Engine, clean_tables: None) -> dict[str, int]:
    """Water main a -V1- b - c -V2- d, a sewer m0 -> m2 crossing it, a sewer 0.8 m beside it
    (clearance), a water pipe through it (clash), gas (sensitive) and QC findings."""
    with Session(engine) as session, session.begin():
        water = make_dataset(session, "water", qc={"issues": ISSUES, "errors": 1})
        nodes = [
            N("a", X0, Y0),
            N("V1", X0 + 50, Y0, kind="valve", valve_state="open"),
            N("b", X0 + 100, Y0),
            N("c", X0 + 200, Y0, kind="hydrant"),
            N("V2", X0 + 250, Y0, kind="valve", valve_state="open"),
            N("d", X0 + 300, Y0),
            N("k1", X0 + 175, Y0 - 10),
            N("k2", X0 + 175, Y0 + 10),
        ]
        segs = [
            S("aV1", "a", "V1", owner="水务集团", material="PE"),
            S("V1b", "V1", "b", owner="水务集团"),
            S("bc", "b", "c", year=1998),
            S("cV2", "c", "V2"),
            S("V2d", "V2", "d"),
            S("k", "k1", "k2", coords=[(X0 + 175, Y0 - 10, 8.85), (X0 + 175, Y0 + 10, 8.85)]),
        ]
        water_nodes, water_segs = write_network(session, water, nodes, segs)
        sewer = make_dataset(session, "sewer")
        sewer_nodes, _ = write_network(
            session,
            sewer,
            [N(f"m{k}", X0 + 150, Y0 - 50 + 50 * k, 10.0, "PS", "manhole") for k in range(3)]
            + [N("p1", X0 + 20, Y0 + 0.8, utility="PS"), N("p2", X0 + 80, Y0 + 0.8, utility="PS")],
            [
                S("s1", "m0", "m1", "PS", diameter_mm=600, start_invert_z=7.0, end_invert_z=6.9),
                S("s2", "m1", "m2", "PS", diameter_mm=600, start_invert_z=6.9, end_invert_z=6.8),
                S("p", "p1", "p2", "PS", subclass="YS", diameter_mm=300),
            ],
        )
        gas = make_dataset(session, "gas")
        write_network(
            session,
            gas,
            [N("g1", X0, Y0 + 20, utility="RQ"), N("g2", X0 + 100, Y0 + 20, utility="RQ")],
            [S("G1", "g1", "g2", "RQ", diameter_mm=160)],
        )
    return {
        "water": water,
        "bc": water_segs["bc"],
        "m0": sewer_nodes["m0"],
        "m2": sewer_nodes["m2"],
        "a": water_nodes["a"],
    }


@pytest.fixture
def client(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = CimSettings(database_url=database_url, data_dir=tmp_path / "d")
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _request(client: TestClient, case: Case, **params: str) -> Any:
    if case.table:
        params["table"] = case.table
    if case.method == "GET":
        answer = client.get(case.path, params={**case.body, **params})
    else:
        answer = client.post(case.path, params=params, json=case.body)
    assert answer.status_code == 200, answer.text
    return answer


def _csv_rows(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def _as_csv(value: Any) -> str:
    """A JSON value as the CSV writes it (text that looks like a formula is quoted)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return "" if value is None else str(value)


def check_case(client: TestClient, case: Case) -> int:
    """The JSON rows equal the csv and xlsx rows in both languages; returns the row count."""
    items = case.items(_request(client, case).json())
    keys = case.spec.columns
    wanted = [[get(item) for get in case.fields.values()] for item in items]
    columns = [[c.key for c in keys].index(key) for key in case.fields]
    for lang in ("zh", "en"):
        headers = [header(lang, c.key) for c in keys]
        got = _request(client, case, format="csv", lang=lang)
        assert got.headers["content-type"] == "text/csv; charset=utf-8"
        assert got.headers["content-disposition"].startswith("attachment; filename=")
        rows = _csv_rows(got.content)
        assert rows[0] == headers, f"{case.path} {lang} csv headers"
        assert [[row[i] for i in columns] for row in rows[1:]] == [
            [_as_csv(v) for v in row] for row in wanted
        ], f"{case.path} {lang} csv rows"
        book = load_workbook(io.BytesIO(_request(client, case, format="xlsx", lang=lang).content))
        sheet = book[sheet_title(lang, case.spec.sheet)]
        cells = list(sheet.iter_rows(values_only=True))
        assert list(cells[0]) == headers, f"{case.path} {lang} xlsx headers"
        assert [[row[i] for i in columns] for row in cells[1:]] == wanted, f"{case.path} xlsx"
    return len(items)


def pipe_cases(network: dict[str, int]) -> list[Case]:
    line = {"type": "LineString", "coordinates": [[X0 + 140, Y0 - 10], [X0 + 140, Y0 + 80]]}
    cut = {
        "type": "Polygon",
        "coordinates": [
            [[X0 + 90, Y0 - 5], [X0 + 110, Y0 - 5], [X0 + 110, Y0 + 5], [X0 + 90, Y0 + 5],
             [X0 + 90, Y0 - 5]]
        ],
    }  # fmt: skip
    profile = {"from_node": network["m0"], "to_node": network["m2"]}
    p, t = "/analysis/pipes", pipe_tables
    ref = {"segment_id": field("id"), "code": field("code")}
    node = {"node_id": field("id"), "code": field("code")}
    return [
        Case("POST", f"{p}/query", {"bbox": [X0 - 1, Y0 - 20, X0 + 301, Y0 + 20]}, t.QUERY,
             field("features"), {"segment_id": prop("id"), "code": prop("code"),
             "utility": prop("utility"), "diameter_mm": prop("diameter_mm"),
             "length_m": prop("length_m"), "depth_m": prop("depth_m"), "owner": prop("owner")}),
        Case("POST", f"{p}/section", {"line": line}, t.SECTION, field("pipes"),
             {"offset_m": field("offset_m"), "segment_id": field("segment_id"),
              "code": field("code"), "section": field("section"), "cover_m": field("cover_m"),
              "top_z": field("top_z")}),
        Case("GET", f"{p}/profile", profile, t.PROFILE_SEGMENTS, field("segments"),
             {"segment_id": field("segment_id"), "code": field("code"),
              "chainage_from_m": field("chainage_from_m"), "length_m": field("length_m"),
              "slope_permille": field("slope_permille"), "invert_to_z": field("invert_to_z")}),
        Case("GET", f"{p}/profile", profile, t.PROFILE_NODES, field("nodes"),
             {**node, "chainage_m": field("chainage_m"), "ground_z": field("ground_z")},
             table="nodes"),
        Case("POST", f"{p}/clearance", {}, t.CLEARANCE, field("violations"),
             {"a_id": nested("a", "id"), "a_code": nested("a", "code"),
              "b_id": nested("b", "id"), "b_code": nested("b", "code"),
              "rule_id": nested("rule", "id"), "required_m": field("required_m"),
              "actual_m": field("actual_m"), "location_x": lambda v: v["location"][0]}),
        Case("POST", f"{p}/clashes", {}, t.CLASHES, field("clashes"),
             {"a_code": nested("a", "code"), "b_code": nested("b", "code"),
              "overlap_m": field("overlap_m"), "clash_distance_m": field("distance_m")}),
        Case("POST", f"{p}/isolation", {"segment_id": network["bc"]}, t.ISOLATION_VALVES,
             field("valves_to_close"), node),
        Case("POST", f"{p}/isolation", {"segment_id": network["bc"]}, t.ISOLATION_SEGMENTS,
             field("isolated_segments"), ref, table="segments"),
        Case("POST", f"{p}/trace", {"node_id": network["a"]}, t.TRACE_SEGMENTS,
             field("segments"), ref),
        Case("POST", f"{p}/trace", {"node_id": network["a"]}, t.TRACE_NODES, field("nodes"),
             {**node, "trace_distance_m": field("distance_m")}, table="nodes"),
        Case("POST", f"{p}/excavation", {"polygon": cut, "depth_m": 2.0}, t.EXCAVATION_PIPES,
             field("pipes"), {"segment_id": field("segment_id"), "code": field("code"),
             "min_cover_m": field("min_cover_m"), "owner": field("owner"),
             "horizontal_clearance_m": field("horizontal_clearance_m")}),
        Case("POST", f"{p}/excavation", {"polygon": cut, "depth_m": 2.0}, t.EXCAVATION_OWNERS,
             field("notify"), {"utility": field("utility"), "owner": field("owner"),
             "pipe_count": field("pipes")}, table="owners"),
        Case("GET", f"{p}/qc/{network['water']}", {}, t.QC_FINDINGS,
             lambda answer: answer["qc"]["issues"], {"code": field("code"),
             "message": field("message")}),
    ]  # fmt: skip


def test_every_pipe_analysis_file_holds_the_json_rows(
    client: TestClient, network: dict[str, int]
) -> None:
    counts = {
        f"{case.path.split('/')[3]}:{case.spec.name}": check_case(client, case)
        for case in pipe_cases(network)
    }
    assert all(counts.values()), f"an analysis listed nothing to compare: {counts}"
    assert counts["isolation:valves"] == 2 and counts["excavation:pipes"] == 2


def test_names_in_the_language_and_errors(client: TestClient, network: dict[str, int]) -> None:
    path = "/analysis/pipes/isolation"
    body = {"segment_id": network["bc"]}
    rows = _csv_rows(client.post(path, params={"format": "csv"}, json=body).content)
    assert rows[0] == ["节点ID", "编号", "节点类型", "阀门状态"]  # zh is the default
    assert [r[2:] for r in rows[1:]] == [["阀门", "开启"], ["阀门", "开启"]]
    qc = _csv_rows(client.get(f"/analysis/pipes/qc/{network['water']}?format=csv").content)
    assert qc[1][:2] == ["编号重复", "错误"] and qc[2][2] == "'=b"  # a formula is not run
    bad_lang = client.post(path, params={"format": "csv", "lang": "fr"}, json=body)
    assert bad_lang.status_code == 400 and "known: en, zh" in bad_lang.json()["detail"]
    bad_table = client.post(path, params={"format": "csv", "table": "pipes"}, json=body)
    assert bad_table.status_code == 400 and "valves, segments" in bad_table.json()["detail"]
    line = {"type": "LineString", "coordinates": [[X0 + 140, Y0 - 10], [X0 + 140, Y0 + 80]]}
    drawing = client.post("/analysis/pipes/section?format=svg&lang=en", json={"line": line})
    assert "Cross-section: 1 pipe(s)" in drawing.text and "Elevation (m)" in drawing.text
    assert "横断面" in client.post("/analysis/pipes/section?format=svg", json={"line": line}).text
    # errors stay problem+json whatever the format
    missing = client.post("/analysis/pipes/isolation?format=xlsx", json={"segment_id": 10**12})
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


def test_sensitive_classes_stay_hidden_and_keyed_files_are_audited(
    client: TestClient, network: dict[str, int], engine: Engine
) -> None:
    with Session(engine) as session, session.begin():
        _, secret = create_key(session, name="tables-test", role="reader")
    body = {"bbox": [X0 - 1, Y0 - 1, X0 + 301, Y0 + 21], "utilities": ["RQ", "JS"]}
    try:
        anonymous = _csv_rows(client.post("/analysis/pipes/query?format=csv", json=body).content)
        assert "RQ" not in {row[2] for row in anonymous[1:]}
        keyed = client.post(
            "/analysis/pipes/query?format=xlsx&lang=en", json=body, headers={"X-API-Key": secret}
        )
        sheet = load_workbook(io.BytesIO(keyed.content))["Pipes"]
        assert "RQ" in {row[2] for row in sheet.iter_rows(min_row=2, values_only=True)}
        with engine.connect() as conn:
            audited = conn.execute(
                text(
                    "SELECT count(*) FROM audit_log WHERE resource = 'analysis/pipes/query'"
                    " AND detail -> 'classes' ? 'RQ'"
                )
            ).scalar_one()
        assert audited >= 1
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM api_key WHERE name = 'tables-test'"))


def test_openapi_documents_the_file_formats(client: TestClient) -> None:
    paths = client.get("/api").json()["paths"]
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    for path, method in (
        ("/analysis/pipes/query", "post"),
        ("/analysis/pipes/profile", "get"),
        ("/analysis/pipes/qc/{dataset_id}", "get"),
        ("/analysis/shelters/plans/{plan_id}/zones", "get"),
    ):
        content = paths[path][method]["responses"]["200"]["content"]
        assert {"application/json", "text/csv", xlsx} <= set(content), path
        names = {p["name"] for p in paths[path][method]["parameters"]}
        assert {"format", "lang", "table"} <= names


@pytest.mark.slow
def test_shelter_zones_and_uncovered_files_hold_the_json_rows(
    cambridge_engine: Engine, tmp_path: Path
) -> None:
    url = cambridge_engine.url.render_as_string(hide_password=False)
    with Session(cambridge_engine) as session, session.begin():
        key, secret = create_key(session, name="tables shelter analyst", role="analyst")
        key_id = key.id
    settings = CimSettings(database_url=url, data_dir=tmp_path / "data")
    try:
        with TestClient(create_app(settings)) as http:
            created = http.post(
                "/analysis/shelters/plans",
                json={"radius_m": {"short": 900}},
                headers={"X-API-Key": secret},
            )
            assert created.status_code == 201, created.text
            plan = f"/analysis/shelters/plans/{created.json()['id']}"
            features = field("features")
            zones = Case("GET", f"{plan}/zones", {}, shelter_tables.ZONES, features,
                         {"shelter_id": prop("shelter_id"), "name": prop("name"),
                          "population": prop("population"),
                          "load_ratio": prop("load_ratio")})  # fmt: skip
            uncovered = Case("GET", f"{plan}/uncovered", {}, shelter_tables.UNCOVERED, features,
                             {"unit_id": prop("unit_id"), "code": prop("code"),
                              "uncovered": prop("uncovered")})  # fmt: skip
            assert check_case(http, zones) > 0 and check_case(http, uncovered) > 0
            reasons = _csv_rows(http.get(f"{plan}/uncovered?format=csv").content)
            assert {row[-1] for row in reasons[1:]} <= {
                "超出服务半径",
                "位于灾害影响区",
                "场所容量不足",
            }
    finally:
        with cambridge_engine.begin() as conn:
            conn.execute(text("DELETE FROM shelter_plan"))
            conn.execute(text("DELETE FROM api_key WHERE id = :id"), {"id": key_id})

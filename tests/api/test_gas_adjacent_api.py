"""``POST /analysis/gas/adjacent-spaces`` on the committed hand-made street of ``gas_fixtures``:
anonymous callers are refused (gas is sensitive), keyed answers equal the service's and are
audited, scopes, the alarm's valves, sensor sites, the map in another CRS, bad requests 400."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from api.main import create_app
from cim.config import CimSettings
from cim.services.access import create_key
from cim.services.gas.adjacent import adjacent_spaces
from tests.audit_rows import last_audit_id, reads_since
from tests.cim.gas_fixtures import AS_OF, X0, Y0, GasStreet, write_gas_street

URL = "/analysis/gas/adjacent-spaces"
RANKED = ["B3", "B1", "W9", "W1", "T1", "W7", "W10", "W5", "W2", "W3", "W4"]
"""The street's spaces by risk, as tests/cim/test_gas_adjacent.py derives them by hand."""


@pytest.fixture(scope="module")
def street(engine: Engine) -> Iterator[tuple[GasStreet, str, int]]:
    """The street and a reader key, committed for the module (the app reads them)."""
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM dataset"))
    with Session(engine) as session, session.begin():
        written = write_gas_street(session)
        key, secret = create_key(session, name="gas adjacent test", role="reader")
        key_id = key.id
    yield written, secret, key_id
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM dataset"))
        conn.execute(text("DELETE FROM api_key WHERE id = :id"), {"id": key_id})


@pytest.fixture(scope="module")
def client(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data_dir: Path = tmp_path_factory.mktemp("gas-api")
    settings = CimSettings(database_url=database_url, data_dir=data_dir)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_anonymous_callers_are_refused(
    client: TestClient, street: tuple[GasStreet, str, int]
) -> None:
    answer = client.post(URL, json={})
    assert answer.status_code == 401
    assert "W1" not in answer.text and "aV1" not in answer.text
    gas, _, _ = street
    one = client.post(URL, json={"segment_id": gas.gas_segments["V1b"], "alarm": True})
    assert one.status_code == 401


def test_keyed_answer_equals_the_service_and_is_audited(
    client: TestClient, engine: Engine, street: tuple[GasStreet, str, int]
) -> None:
    _, secret, key_id = street
    start = last_audit_id(engine)
    answer = client.post(URL, json={"as_of_year": AS_OF}, headers={"X-API-Key": secret})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [s["code"] for s in body["spaces"]] == RANKED
    with Session(engine) as session:
        direct = adjacent_spaces(session, as_of_year=AS_OF)
    assert body == direct.model_dump(mode="json")
    roles = [f["properties"]["role"] for f in body["geojson"]["features"]]
    assert (roles.count("gas_pipe"), roles.count("space"), roles.count("distance")) == (5, 11, 11)
    [(audited_key, resource, detail)] = reads_since(engine, start)
    assert (audited_key, resource) == (key_id, "analysis/gas/adjacent-spaces")
    assert detail["per_class"] == {"DL": 2, "RQ": 5}  # the default sensitive classes


def test_scopes_alarm_sensors_and_output_crs(
    client: TestClient, street: tuple[GasStreet, str, int]
) -> None:
    gas, secret, _ = street
    headers = {"X-API-Key": secret}

    def post(**body: object) -> dict[str, object]:
        answer = client.post(URL, json={"as_of_year": AS_OF, **body}, headers=headers)
        assert answer.status_code == 200, answer.text
        found: dict[str, object] = answer.json()
        return found

    south = post(bbox=[X0 - 10, Y0 - 50, X0 + 210, Y0 + 30])
    assert south["space_count"] == 10
    alarm = post(point=[X0 + 70, Y0 + 0.4], alarm=True)
    isolation = alarm["isolation"]
    assert isinstance(isolation, dict)
    assert [v["code"] for v in isolation["valves_to_close"]] == ["V1", "V2"]
    assert [s["code"] for s in alarm["spaces"]] == ["B1", "W2", "W3"]  # type: ignore[attr-defined]
    sensors = post(sensors=2, geojson_crs="EPSG:4326")["sensors"]
    assert isinstance(sensors, dict) and len(sensors["sites"]) == 2
    wgs84 = post(geojson_crs="EPSG:4326", limit=1)["geojson"]
    assert isinstance(wgs84, dict)
    lon, lat, _ = wgs84["features"][-1]["geometry"]["coordinates"][0]
    assert 110 < lon < 120 and 29 < lat < 32  # EPSG:4547 near Wuhan
    for bad in (
        {"radius_m": 0},
        {"radius_m": 1000},
        {"segment_id": gas.tunnel_segments["T1"]},
        {"bbox": [X0, Y0, X0 + 1, Y0 + 1], "area": {"type": "Polygon", "coordinates": []}},
        {"alarm": True},
        {"alarm": True, "segment_id": gas.gas_segments["V1b"], "sensors": 2},
    ):
        assert client.post(URL, json=bad, headers=headers).status_code in (400, 422), bad


def test_openapi_documents_the_route(client: TestClient) -> None:
    spec = client.get("/api").json()
    operation = spec["paths"][URL]["post"]
    assert operation["tags"] == ["gas analyses"] and "燃气相邻地下空间" in operation["summary"]
    assert {"200", "400", "401"} <= set(operation["responses"])
    assert '"type": "null"' not in json.dumps(spec)  # the 3.0.3 document stays 3.0


def test_tables_hold_the_json_rows(client: TestClient, street: tuple[GasStreet, str, int]) -> None:
    import csv
    import io

    from openpyxl import load_workbook

    from cim.services.tables.gas import GAS_SPACES, SENSOR_SITES
    from cim.services.tables.language import header, sheet_title

    _, secret, _ = street
    headers = {"X-API-Key": secret}
    body = {"as_of_year": AS_OF, "sensors": 2}
    answer = client.post(URL, json=body, headers=headers).json()
    spaces = [
        [s["rank"], s["id"], s["code"], s["distance_m"], s["gas_pipe"]["code"], s["risk"]["score"]]
        for s in answer["spaces"]
    ]
    sites = [[s["id"], s["code"], s["covered_weight"]] for s in answer["sensors"]["sites"]]
    picked = {"spaces": ["rank", "space_id", "code", "distance_m", "gas_pipe_code", "risk_score"],
              "sensors": ["space_id", "code", "covered_weight"]}  # fmt: skip
    for lang in ("zh", "en"):
        for spec, wanted in ((GAS_SPACES, spaces), (SENSOR_SITES, sites)):
            keys = [c.key for c in spec.columns]
            index = [keys.index(k) for k in picked[spec.name]]
            got = client.post(
                URL, json=body, headers=headers,
                params={"format": "csv", "lang": lang, "table": spec.name},
            )  # fmt: skip
            assert got.status_code == 200, got.text
            rows = list(csv.reader(io.StringIO(got.content.decode("utf-8-sig"))))
            assert rows[0] == [header(lang, k) for k in keys]
            assert [[row[i] for i in index] for row in rows[1:]] == [
                [str(v) for v in row] for row in wanted
            ]
            book = client.post(
                URL, json=body, headers=headers, params={"format": "xlsx", "lang": lang}
            )
            cells = list(
                load_workbook(io.BytesIO(book.content))[sheet_title(lang, spec.sheet)].iter_rows(
                    values_only=True
                )
            )
            assert [[row[i] for i in index] for row in cells[1:]] == wanted
    spaces_zh = client.post(URL, json=body, headers=headers, params={"format": "csv"}).text
    assert "电力井" in spaces_zh or "排水检查井" in spaces_zh
    assert client.post(URL, json=body, params={"format": "csv"}).status_code == 401

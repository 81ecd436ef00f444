"""Sensitive utility classes (gas RQ, power DL): every keyed read of them is audited with its
count, and anonymous callers learn nothing about the networks that hold them (issue 16)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from api.main import create_app
from cim.config import CimSettings
from cim.services.access import create_key
from cim.services.ogc.crs import extent_to_crs84
from tests.audit_rows import last_audit_id, reads_since
from tests.cim.pipes_fixtures import N, S, make_dataset, write_network
from tests.conftest import TEST_SRID

X0, Y0 = 534_000.0, 3_380_000.0
GAS_Y = Y0 + 0.25  # 0.25 m beside the water main: clearance violations and clashes
FAR_Y = Y0 + 500.0  # a gas pipe far north: widens the extent of the pipe collections
SECRET_DIR = "/srv/cim/secret"


@dataclass(frozen=True)
class Networks:
    water: int
    gas: int
    gas_nodes: dict[str, int]
    gas_segments: dict[str, int]
    key_id: int
    secret: str


def _main(prefix: str, y: float, utility: str) -> tuple[list[N], list[S]]:
    """a -V1- b - c -V2- d: five 300 mm segments with two open valves, along ``y``."""
    p = prefix
    nodes = [
        N(f"{p}a", X0, y, utility=utility),
        N(f"{p}V1", X0 + 50, y, utility=utility, kind="valve", valve_state="open"),
        N(f"{p}b", X0 + 100, y, utility=utility),
        N(f"{p}c", X0 + 200, y, utility=utility, kind="hydrant"),
        N(f"{p}V2", X0 + 250, y, utility=utility, kind="valve", valve_state="open"),
        N(f"{p}d", X0 + 300, y, utility=utility),
    ]
    pairs = [("a", "V1"), ("V1", "b"), ("b", "c"), ("c", "V2"), ("V2", "d")]
    pressure = "low" if utility == "RQ" else None  # the gas rules of GB 50289 need it
    segments = [S(f"{p}{s}{e}", f"{p}{s}", f"{p}{e}", utility, pressure=pressure) for s, e in pairs]
    return nodes, segments


def _with_paths(session: Session, dataset_id: int, files: list[str]) -> None:
    """Source fields as the CLI importers store them: server paths."""
    options = {
        "mapping": f"{SECRET_DIR}/mapping.yaml",
        "valves": {"file": "valves.csv", "path": f"{SECRET_DIR}/valves.csv", "sha256": "0"},
    }
    session.execute(
        text("UPDATE dataset SET source_name = :source, options = CAST(:options AS jsonb)"
             " WHERE id = :id"),
        {"source": ", ".join(files), "options": json.dumps(options), "id": dataset_id},
    )  # fmt: skip


@pytest.fixture
def networks(engine: Engine, clean_tables: None) -> Iterator[Networks]:
    """A water main (public) and, 0.25 m beside it, a gas main (sensitive), plus a far gas pipe."""
    with Session(engine) as session, session.begin():
        water = make_dataset(session, "water")
        write_network(session, water, *_main("", Y0, "JS"))
        _with_paths(session, water, [f"{SECRET_DIR}/water.inp"])
        gas = make_dataset(session, "gas")
        nodes, segments = _main("g", GAS_Y, "RQ")
        nodes += [N("gf1", X0, FAR_Y, utility="RQ"), N("gf2", X0 + 50, FAR_Y, utility="RQ")]
        segments.append(S("gfar", "gf1", "gf2", "RQ"))
        gas_nodes, gas_segments = write_network(session, gas, nodes, segments)
        _with_paths(session, gas, [f"{SECRET_DIR}/gas_lines.csv", f"{SECRET_DIR}/gas_points.csv"])
        key, secret = create_key(session, name="sensitive-access test", role="reader")
        key_id = key.id
    yield Networks(water, gas, gas_nodes, gas_segments, key_id, secret)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM api_key WHERE id = :id"), {"id": key_id})


@pytest.fixture
def client(database_url: str, tmp_path: Path, networks: Networks) -> Iterator[TestClient]:
    settings = CimSettings(database_url=database_url, data_dir=tmp_path / "d")
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _gas_shown(answer: Any, codes: set[str]) -> set[str]:
    """The gas segments (by code) an answer shows, wherever they are in it."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("code") in codes:
                found.add(value["code"])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(answer)
    return found


CUT = {
    "type": "Polygon",
    "coordinates": [
        [[X0 + 90, Y0 - 5], [X0 + 110, Y0 - 5], [X0 + 110, Y0 + 5], [X0 + 90, Y0 + 5],
         [X0 + 90, Y0 - 5]]
    ],
}  # fmt: skip
SECTION = {
    "line": {"type": "LineString", "coordinates": [[X0 + 140, Y0 - 10], [X0 + 140, Y0 + 10]]}
}
BOX = {"bbox": [X0 - 1, Y0 - 1, X0 + 301, Y0 + 1]}


def _requests(nets: Networks) -> list[tuple[str, str, dict[str, Any], str, int]]:
    """(method, url, body or params, audited resource, gas segments expected in the answer)."""
    g = nets.gas_segments
    nodes = nets.gas_nodes
    return [
        ("POST", "/analysis/pipes/query", BOX, "analysis/pipes/query", 5),
        ("POST", "/analysis/pipes/section", SECTION, "analysis/pipes/section", 1),
        ("POST", "/analysis/pipes/section?format=svg", SECTION, "analysis/pipes/section", 1),
        ("GET", "/analysis/pipes/profile", {"from_node": nodes["ga"], "to_node": nodes["gd"]},
         "analysis/pipes/profile", 5),
        ("POST", "/analysis/pipes/clearance", {}, "analysis/pipes/clearance", 5),
        ("POST", "/analysis/pipes/clashes", {"kinds": ["pipe"]}, "analysis/pipes/clashes", 5),
        ("POST", "/analysis/pipes/isolation", {"segment_id": g["gbc"]},
         "analysis/pipes/isolation", 3),
        ("POST", "/analysis/pipes/trace", {"node_id": nodes["ga"]}, "analysis/pipes/trace", 5),
        ("POST", "/analysis/pipes/excavation", {"polygon": CUT, "depth_m": 2.0},
         "analysis/pipes/excavation", 2),
    ]  # fmt: skip


def _send(client: TestClient, method: str, url: str, payload: dict[str, Any], **kw: Any) -> Any:
    if method == "GET":
        return client.get(url, params=payload, **kw)
    return client.post(url, json=payload, **kw)


def test_keyed_analyses_showing_gas_are_audited_with_their_counts(
    client: TestClient, networks: Networks, engine: Engine
) -> None:
    key = {"X-API-Key": networks.secret}
    gas_codes = set(networks.gas_segments)
    start = last_audit_id(engine)
    for method, url, payload, resource, expected in _requests(networks):
        answer = _send(client, method, url, payload, headers=key)
        assert answer.status_code == 200, (url, answer.text)
        if "svg" not in url:
            assert len(_gas_shown(answer.json(), gas_codes)) == expected, url
        rows = reads_since(engine, start)
        assert len(rows) == 1, (url, rows)
        key_id, logged, detail = rows[0]
        assert (key_id, logged) == (networks.key_id, resource)
        assert detail == {"classes": ["RQ"], "features": expected, "per_class": {"RQ": expected}}
        start = last_audit_id(engine)
    qc = client.get(f"/analysis/pipes/qc/{networks.gas}", headers=key)
    assert qc.status_code == 200
    [(key_id, logged, detail)] = reads_since(engine, start)
    assert logged == f"analysis/pipes/qc/{networks.gas}"
    assert detail == {"classes": ["RQ"], "features": 6, "per_class": {"RQ": 6}}
    # the same key reading only water leaves no row
    start = last_audit_id(engine)
    water_only = client.post(
        "/analysis/pipes/query", json={**BOX, "utilities": ["JS"]}, headers=key
    )
    assert water_only.json()["numberReturned"] == 5
    assert client.get(f"/analysis/pipes/qc/{networks.water}", headers=key).status_code == 200
    assert reads_since(engine, start) == []


def test_anonymous_analyses_show_no_gas_and_leave_no_rows(
    client: TestClient, networks: Networks, engine: Engine
) -> None:
    gas_codes = set(networks.gas_segments)
    start = last_audit_id(engine)
    for method, url, payload, _, _ in _requests(networks):
        answer = _send(client, method, url, payload)
        if answer.status_code == 200 and "svg" not in url:
            assert _gas_shown(answer.json(), gas_codes) == set(), url
        else:
            assert answer.status_code in (200, 401), (url, answer.text)
    assert reads_since(engine, start) == []


def test_area_answers_name_restricted_datasets_only_to_keys(
    client: TestClient, networks: Networks
) -> None:
    """Clearance and clash reports list the datasets they looked at: an anonymous caller's
    leaves out the gas dataset (its id tells that it exists), a key's names both."""
    key = {"X-API-Key": networks.secret}
    for url in ("/analysis/pipes/clearance", "/analysis/pipes/clashes"):
        assert client.post(url, json={}).json()["datasets"] == [networks.water], url
        keyed = client.post(url, json={}, headers=key).json()["datasets"]
        assert keyed == sorted([networks.water, networks.gas]), url


def _water_box(engine: Engine, table: str) -> list[float]:
    with engine.connect() as conn:
        box = conn.execute(
            text(
                f"SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e), ST_ZMin(e), ST_ZMax(e)"
                f" FROM (SELECT ST_3DExtent(geom) AS e FROM {table} WHERE utility = 'JS') AS x"
            )
        ).one()
    crs84 = extent_to_crs84((box[0], box[1], box[2], box[3]), TEST_SRID)
    assert crs84 is not None
    return [crs84[0], crs84[1], box[4], crs84[2], crs84[3], box[5]]


def test_anonymous_callers_see_no_restricted_dataset_and_nobody_sees_server_paths(
    client: TestClient, networks: Networks, engine: Engine
) -> None:
    key = {"X-API-Key": networks.secret}
    anonymous = client.get("/datasets")
    assert [d["id"] for d in anonymous.json()["datasets"]] == [networks.water]
    keyed = client.get("/datasets", headers=key)
    assert {d["id"] for d in keyed.json()["datasets"]} == {networks.water, networks.gas}
    assert client.get(f"/datasets/{networks.gas}").status_code == 404
    gas = client.get(f"/datasets/{networks.gas}", headers=key).json()
    assert gas["source_name"] == "gas_lines.csv, gas_points.csv"
    assert gas["options"]["mapping"] == "mapping.yaml"
    assert gas["options"]["valves"] == {"file": "valves.csv", "path": "valves.csv", "sha256": "0"}
    viewer = client.get("/viewer/datasets.json")
    assert [d["id"] for d in viewer.json()] == [networks.water]
    assert client.get(f"/analysis/pipes/qc/{networks.gas}").status_code == 404
    qc = client.get(f"/analysis/pipes/qc/{networks.gas}", headers=key)
    assert qc.json()["source_name"] == "gas_lines.csv, gas_points.csv"
    answers = [anonymous, keyed, viewer, qc, client.get(f"/datasets/{networks.water}")]
    answers.append(client.get(f"/datasets/{networks.gas}", headers=key))
    for answer in answers:
        assert answer.status_code == 200 and SECRET_DIR not in answer.text, answer.url
        assert "/srv" not in answer.text

    for collection, table in (("pipe_segments", "pipe_segment"), ("pipe_nodes", "pipe_node")):
        public = client.get(f"/collections/{collection}").json()["extent"]["spatial"]["bbox"][0]
        assert public == pytest.approx(_water_box(engine, table), abs=1e-6)
        listed = {c["id"]: c for c in client.get("/collections").json()["collections"]}
        assert listed[collection]["extent"]["spatial"]["bbox"][0] == public
        full = client.get(f"/collections/{collection}", headers=key).json()
        assert full["extent"]["spatial"]["bbox"][0][4] > public[4] + 0.004  # the far gas pipe


def test_walks_of_anonymous_callers_stop_at_hidden_classes(
    client: TestClient, networks: Networks, engine: Engine
) -> None:
    """A water pipe and a gas pipe meeting at one node of a mixed dataset: an anonymous trace or
    isolation from the water side must not walk into the gas pipe; a key's does, audited."""
    y = Y0 - 200.0
    with Session(engine) as session, session.begin():
        mixed = make_dataset(session, "mixed")
        nodes = [N("w1", X0, y), N("j", X0 + 50, y), N("g1", X0 + 100, y, utility="RQ")]
        ids, segments = write_network(
            session, mixed, nodes, [S("W", "w1", "j"), S("G", "j", "g1", "RQ", pressure="low")]
        )
    key = {"X-API-Key": networks.secret}
    trace = {"node_id": ids["w1"]}
    isolation = {"segment_id": segments["W"]}
    start = last_audit_id(engine)
    for url, body in (("/analysis/pipes/trace", trace), ("/analysis/pipes/isolation", isolation)):
        anonymous = client.post(url, json=body)
        assert anonymous.status_code == 200 and _gas_shown(anonymous.json(), {"G"}) == set(), url
        assert reads_since(engine, start) == []
        keyed = client.post(url, json=body, headers=key)
        assert _gas_shown(keyed.json(), {"G"}) == {"G"}, url
        [(key_id, resource, detail)] = reads_since(engine, start)
        assert (key_id, resource) == (networks.key_id, url.lstrip("/"))
        assert detail == {"classes": ["RQ"], "features": 1, "per_class": {"RQ": 1}}
        start = last_audit_id(engine)

"""``/analysis/pipes/shutdowns`` over HTTP on Net3: an analyst stores two plans whose rings and
periods overlap (one conflict, the shared segments from the isolation answers and the ring
oracle), lists, cancels; anonymous and reader keys may not write; bad input is 4xx, unstored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from api.main import create_app
from cim.config import CimSettings
from importers.pipes import PipeImportOptions, import_pipes
from tests.cim.test_pipes_isolation import import_with_valves
from tests.cim.test_shutdown_plans import oracle_ring, segment_of
from tests.conftest import SHARED_SAMPLES

URL = "/analysis/pipes/shutdowns"


@pytest.fixture
def client(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = CimSettings(database_url=database_url, data_dir=tmp_path / "d")
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM pipe_shutdown_plan")).scalar_one())


def test_store_list_conflicts_cancel(
    client: TestClient,
    database_url: str,
    engine: Engine,
    keys: dict[str, str],
    clean_tables: None,
    tmp_path: Path,
) -> None:
    _, _, net3 = import_with_valves(database_url, engine, tmp_path, "Net3.inp", 1, via_cli=False)
    with Session(engine) as session:
        work_a, work_b = segment_of(session, net3, "117"), segment_of(session, net3, "303")
    analyst = {"X-API-Key": keys["analyst"]}
    first = {
        "dataset_id": net3,
        "title": "A",
        "starts_at": "2026-12-07T08:00:00+08:00",
        "ends_at": "2026-12-07T12:00:00+08:00",
        "segment_id": work_a,
    }
    assert client.post(URL, json=first).status_code == 401
    assert client.post(URL, json=first, headers={"X-API-Key": keys["reader"]}).status_code == 403
    stored = client.post(URL, json=first, headers=analyst)
    assert stored.status_code == 201, stored.text
    a = stored.json()
    assert a["conflicts"] == [] and a["plan"]["created_by"] == "test analyst"
    assert a["plan"]["status"] == "planned" and a["plan"]["impact"]["isolated_nodes"] > 0
    second = first | {
        "title": "B",
        "starts_at": "2026-12-07T03:00:00Z",  # 11:00 +08:00
        "ends_at": "2026-12-07T06:00:00Z",
        "segment_id": work_b,
    }
    b = client.post(URL, json=second, headers=analyst).json()
    [conflict] = b["conflicts"]
    isolation_a = client.post("/analysis/pipes/isolation", json={"segment_id": work_a}).json()
    isolation_b = client.post("/analysis/pipes/isolation", json={"segment_id": work_b}).json()
    with Session(engine) as session:
        ring_a = oracle_ring(session, net3, {v["id"] for v in isolation_a["valves_to_close"]})
        ring_b = oracle_ring(session, net3, {v["id"] for v in isolation_b["valves_to_close"]})
    assert conflict["shared_segment_ids"] == sorted(ring_a & ring_b)
    # B's isolated segments all lie in A's ring (the branch behind A's valves)
    assert {s["id"] for s in isolation_b["isolated_segments"]} <= set(
        conflict["shared_segment_ids"]
    )
    assert conflict["plan_ids"] == [a["plan"]["id"], b["plan"]["id"]]
    assert conflict["overlap_from"] == "2026-12-07T03:00:00Z"
    assert conflict["overlap_to"] == "2026-12-07T04:00:00Z"

    listed = client.get(URL, params={"dataset": net3, "at": "2026-12-07T03:30:00Z"}).json()
    assert [p["id"] for p in listed["plans"]] == [a["plan"]["id"], b["plan"]["id"]]
    later = client.get(URL, params={"from": "2026-12-07T04:00:00Z", "to": "2026-12-07T05:00:00Z"})
    assert [p["id"] for p in later.json()["plans"]] == [b["plan"]["id"]]
    found = client.get(f"{URL}/conflicts", params={"dataset": net3}).json()
    assert found["conflicts"] == [conflict]

    assert client.delete(f"{URL}/{b['plan']['id']}").status_code == 401
    cancelled = client.delete(f"{URL}/{b['plan']['id']}", headers=analyst)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert client.get(f"{URL}/conflicts", params={"dataset": net3}).json()["conflicts"] == []
    assert client.delete(f"{URL}/{10**12}", headers=analyst).status_code == 404
    with engine.connect() as conn:
        audited = conn.execute(
            text("SELECT action FROM audit_log WHERE resource LIKE 'analysis/pipes/shutdowns/%'")
        ).scalars()
        assert sorted(audited) == ["cancel", "create", "create"]


def test_bad_plans_are_4xx_and_not_stored(
    client: TestClient,
    database_url: str,
    engine: Engine,
    keys: dict[str, str],
    clean_tables: None,
    tmp_path: Path,
) -> None:
    _, _, net3 = import_with_valves(database_url, engine, tmp_path, "Net3.inp", 1, via_cli=False)
    options = PipeImportOptions(origin=(500000.0, 3400000.0, 0.0))
    [swmm] = import_pipes(engine, [SHARED_SAMPLES / "pipes" / "swmm_Example1.inp"], options)
    with Session(engine) as session:
        work = segment_of(session, net3, "117")
        conduit = session.execute(
            text("SELECT min(id) FROM pipe_segment WHERE dataset_id = :d"), {"d": swmm.dataset.id}
        ).scalar_one()
    analyst = {"X-API-Key": keys["analyst"]}
    plan = {
        "dataset_id": net3,
        "title": "t",
        "starts_at": "2026-12-07T08:00:00Z",
        "ends_at": "2026-12-07T10:00:00Z",
        "segment_id": work,
    }
    swmm_plan = {"dataset_id": swmm.dataset.id, "segment_id": None, "segment_ids": [conduit]}
    cases = [
        ({"ends_at": "2026-12-07T07:00:00Z"}, 400, "before it starts"),
        ({"starts_at": "2026-12-07T08:00:00"}, 400, "timezone"),
        ({"dataset_id": 10**12}, 404, "dataset"),
        (swmm_plan, 400, "EPANET"),
        ({"segment_id": None, "valve_ids": [10**12]}, 404, "do not exist"),
        ({"segment_id": None}, 400, "nothing to close"),
    ]  # fmt: skip
    for change, code, words in cases:
        answer = client.post(URL, json=plan | change, headers=analyst)
        assert answer.status_code == code, (change, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert words in answer.text, answer.text
    assert client.get(URL, params={"at": "2026-12-07T08:00:00"}).status_code == 400
    assert _count(engine) == 0

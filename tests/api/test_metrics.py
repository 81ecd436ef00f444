"""``GET /metrics`` (issue 23): Prometheus text that parses and moves with the traffic, route
templates as labels, who may read it, and one scrape summing the workers of ``cim serve``."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from api.main import create_app
from cim.config import CimSettings
from tests.api.server import free_port
from tests.conftest import CIM, SHARED_SAMPLES, cli_env

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(body: str) -> Samples:
    """Every sample of a scrape: (name, labels) -> value (the official text parser)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value, 0 when absent (a counter nobody has moved yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def _settings(database_url: str, tmp_path: Path, **values: Any) -> CimSettings:
    return CimSettings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        collection_cache_seconds=0,
        anonymous_rate_per_minute=0,
        **values,
    )


@pytest.fixture
def client(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(database_url, tmp_path))) as test_client:
        yield test_client


def scrape(client: TestClient, admin: str) -> Samples:
    answer = client.get("/metrics", headers={"X-API-Key": admin})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return parse(answer.text)


def test_requests_are_counted_by_route_template(client: TestClient, keys: dict[str, str]) -> None:
    before = scrape(client, keys["admin"])
    for _ in range(3):
        assert client.get("/health").status_code == 200
    assert client.get("/collections/no_such_thing/items").status_code == 404
    assert client.get("/no/such/path/42").status_code == 404
    client.get("/viewer/cesium/no-such-file.js")  # a static mount: its prefix names it
    after = scrape(client, keys["admin"])

    health = {"method": "GET", "route": "/health", "status": "200"}
    assert (
        value(after, "cim_http_requests_total", **health)
        - value(before, "cim_http_requests_total", **health)
        == 3
    )
    count = "cim_http_request_duration_seconds_count"
    assert (
        value(after, count, method="GET", route="/health")
        - value(before, count, method="GET", route="/health")
        == 3
    )
    items = {"method": "GET", "route": "/collections/{collection_id}/items", "status": "404"}
    assert value(after, "cim_http_requests_total", **items) >= 1
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert value(after, "cim_http_requests_total", **unmatched) >= 1
    assert value(after, "cim_http_requests_total", method="GET", route="/viewer/cesium/{path}",
                 status="404")  # fmt: skip
    routes = {dict(labels).get("route", "") for _, labels in after}
    assert not any("no_such_thing" in route or "42" in route for route in routes)
    # the scrape before was counted too, under its own template
    assert value(after, "cim_http_requests_total", method="GET", route="/metrics", status="200")
    assert value(after, "cim_db_pool_size", engine="primary") == 10
    assert value(after, "cim_db_pool_checked_out", engine="primary") >= 0
    assert ("cim_http_requests_in_flight", frozenset()) in after


def test_only_loopback_admin_or_public_may_read(
    database_url: str, tmp_path: Path, client: TestClient, keys: dict[str, str]
) -> None:
    anonymous = client.get("/metrics")  # TestClient's address is "testclient": not loopback
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    reader = client.get("/metrics", headers={"X-API-Key": keys["reader"]})
    assert reader.status_code == 403 and reader.json()["title"] == "PermissionDenied"
    bearer = client.get("/metrics", headers={"Authorization": f"Bearer {keys['admin']}"})
    assert bearer.status_code == 200
    app = create_app(_settings(database_url, tmp_path))
    with TestClient(app, client=("127.0.0.1", 40000)) as local:
        assert local.get("/metrics").status_code == 200
    with TestClient(app, client=("::1", 40000)) as local6:
        assert local6.get("/metrics").status_code == 200
    public = create_app(_settings(database_url, tmp_path, metrics_public=True))
    with TestClient(public) as anyone:
        assert anyone.get("/metrics").status_code == 200
    assert "/metrics" not in client.get("/api").json()["paths"]


def test_rate_limited_requests_are_shed_and_metrics_are_exempt(
    database_url: str, tmp_path: Path, keys: dict[str, str]
) -> None:
    settings = _settings(database_url, tmp_path).model_copy(
        update={"anonymous_rate_per_minute": 1, "metrics_public": True}
    )
    with TestClient(create_app(settings)) as client:
        before = parse(client.get("/metrics").text)
        assert client.get("/health").status_code == 200
        assert client.get("/health").status_code == 429
        for _ in range(3):  # the scraper is never charged: still answered
            assert client.get("/metrics").status_code == 200
        after = parse(client.get("/metrics").text)
    shed = "cim_http_requests_shed_total"
    assert value(after, shed, reason="rate_limit") - value(before, shed, reason="rate_limit") == 1
    limited = {"method": "GET", "route": "/health", "status": "429"}
    assert value(after, "cim_http_requests_total", **limited) >= 1  # matched though never routed


def _wait(client: TestClient, url: str, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(url, headers=headers).json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {url} did not finish")


def test_import_jobs_and_tile_builds(
    client: TestClient, keys: dict[str, str], engine: Engine, clean_tables: None
) -> None:
    admin = {"X-API-Key": keys["admin"]}
    before = scrape(client, keys["admin"])
    net1 = SHARED_SAMPLES / "pipes" / "Net1.inp"
    form = {"kind": "pipes", "crs": "EPSG:4547", "origin": "534000,3380000", "utility": "JS"}
    files = {"files": (net1.name, net1.read_bytes(), "application/octet-stream")}
    request_id = f"import-{uuid.uuid4().hex}"  # audit rows stay: unique per run
    upload = {**admin, "X-Request-ID": request_id}
    started = client.post("/datasets", data=form, files=files, headers=upload)
    assert started.status_code == 202, started.text
    assert _wait(client, started.headers["location"], admin)["status"] == "succeeded"
    with engine.connect() as conn:  # the upload's audit row names its request
        action = conn.execute(
            text("SELECT action FROM audit_log WHERE request_id = :id"), {"id": request_id}
        ).scalar_one()
    assert action == "import"
    bad = {"files": ("notes.tif", b"not a raster", "image/tiff")}
    failed = client.post("/datasets", data={"kind": "terrain"}, files=bad, headers=admin)
    assert _wait(client, failed.headers["location"], admin)["status"] == "failed"
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tileset (layer, spec, dataset_versions, stats, built_at) VALUES "
                "('metrics_test', '1.1', '{}', '{\"seconds\": 12.5}', now())"
            )
        )
    try:
        after = scrape(client, keys["admin"])
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM tileset WHERE layer = 'metrics_test'"))

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    count = "cim_import_job_duration_seconds_count"
    assert moved(count, kind="pipes", outcome="succeeded") == 1
    assert moved(count, kind="terrain", outcome="failed") == 1
    assert moved("cim_import_rows_total", kind="pipes") > 10  # Net1: 11 nodes, 13 links
    assert value(after, "cim_import_rows_per_second", kind="pipes") > 0
    assert value(after, "cim_import_jobs_queued") == 0
    assert value(after, "cim_import_jobs_running") == 0
    assert value(after, "cim_tileset_build_seconds", layer="metrics_test") == 12.5
    assert value(after, "cim_tileset_built_timestamp_seconds", layer="metrics_test") > 1.7e9


@pytest.mark.slow
def test_one_scrape_sums_the_workers_and_logs_are_json_lines(
    database_url: str, tmp_path: Path, keys: dict[str, str]
) -> None:
    """``cim serve --workers 2``: whichever worker answers, the counts are the server's; each
    request leaves one JSON access line with its id."""
    port = free_port()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    stale = data_dir / "metrics" / str(port) / "counter_999999.db"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left by an earlier server")
    env = cli_env(database_url, CIM_DATA_DIR=str(data_dir), CIM_LOG_FORMAT="auto")
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [CIM, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_up(base, process, log_path)
            assert not stale.exists()  # the folder was emptied at start
            folder = data_dir / "metrics" / str(port)
            _wait_for(lambda: len(_pids(folder)) == 2)  # both workers have written their files
            first = parse(httpx.get(f"{base}/metrics", timeout=10).text)
            for index in range(20):
                answer = httpx.get(f"{base}/health", headers={"X-Request-ID": f"sum-{index}"})
                assert answer.headers["x-request-id"] == f"sum-{index}"
            keyed = httpx.get(
                f"{base}/datasets", headers={"X-API-Key": keys["admin"], "X-Request-ID": "key-1"}
            )
            assert keyed.status_code == 200
            health = {"method": "GET", "route": "/health", "status": "200"}
            for _ in range(6):  # new connections: either worker answers, the sum is the same
                last = parse(httpx.get(f"{base}/metrics", timeout=10).text)
                moved = value(last, "cim_http_requests_total", **health) - value(
                    first, "cim_http_requests_total", **health
                )
                assert moved == 20
        finally:
            process.terminate()
            process.wait(timeout=20)
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    access = {line["request_id"]: line for line in lines if line["logger"] == "cim.access"}
    line = access["sum-7"]
    assert line["method"] == "GET" and line["route"] == "/health" and line["path"] == "/health"
    assert line["status"] == 200 and line["duration_ms"] >= 0 and line["client"] == "127.0.0.1"
    assert line["key_id"] is None and {"time", "level", "message"} <= set(line)
    assert isinstance(access["key-1"]["key_id"], int)
    assert keys["admin"] not in log_path.read_text()
    assert not any(line["logger"] == "uvicorn.access" for line in lines)


def _pids(folder: Path) -> set[str]:
    """The worker pids of the value files in ``folder`` (``<kind>_<pid>.db``)."""
    return {path.stem.rsplit("_", 1)[-1] for path in folder.glob("*.db")}


def _wait_for(condition: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _wait_up(base: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.2)
    raise RuntimeError(log_path.read_text()[-3000:])

"""Hostile input: huge CQL2 filters, non-finite and out-of-range numbers, control bytes in paths.

Each answer is a 4xx problem naming what was wrong (never a 500, never a false "database
unavailable"), and database errors that are not an outage are not reported as one.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from api.deps import SessionDep
from api.main import create_app
from cim.config import CimSettings
from tests.api.features_fixtures import X0, Y0, City

ITEMS = "/collections/pipe_segments/items"


@pytest.fixture(scope="module")
def client(
    database_url: str, city: City, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    data_dir = tmp_path_factory.mktemp("hostile-data")
    layer = data_dir / "tiles" / "pipes"
    layer.mkdir(parents=True)
    (layer / "tileset.json").write_text('{"asset": {"version": "1.1"}}')
    settings = CimSettings(database_url=database_url, data_dir=data_dir, collection_cache_seconds=0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def _problem(response: Any, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    detail = response.json()["detail"]
    for word in words:
        assert word in detail, detail


def _json_and(count: int) -> str:
    term = {"op": ">", "args": [{"property": "id"}, 0]}
    return json.dumps({"op": "and", "args": [term] * count})


def _json_nested_not(depth: int) -> str:
    node: dict[str, Any] = {"op": ">", "args": [{"property": "id"}, 0]}
    for _ in range(depth):
        node = {"op": "not", "args": [node]}
    return json.dumps(node)


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"filter": " AND ".join(["id > 0"] * 600)}, ("at most 200 conditions",)),
        (
            {"filter": _json_and(300), "filter-lang": "cql2-json"},
            ("at most 200 conditions",),
        ),
        (
            {"filter": _json_nested_not(400), "filter-lang": "cql2-json"},
            ("nested", "at most 20"),
        ),
        ({"filter": "(" * 300 + "id > 0" + ")" * 300}, ("nested", "at most 20")),
        ({"filter": "NOT (" * 300 + "id > 0" + ")" * 300}, ("nested", "at most 20")),
        ({"filter": "id " + "+ 1 " * 300 + "> 0"}, ("nested", "at most 20")),
        ({"filter": "id IN (" + ",".join(["1"] * 1500) + ")"}, ("at most 1000 values",)),
        ({"filter": "code = '" + "x" * 20_000 + "'"}, ("at most 16384 characters",)),
        (
            {"filter": "[" * 5000 + "]" * 5000, "filter-lang": "cql2-json"},
            ("nested", "at most 20"),
        ),
    ],
    ids=[
        "text-600-and",
        "json-300-and",
        "json-deep-not",
        "text-deep-parentheses",
        "text-deep-not",
        "text-arithmetic-chain",
        "text-long-in-list",
        "text-too-long",
        "json-deep-brackets",
    ],
)
def test_huge_cql2_filters_are_400_naming_the_limit(
    client: TestClient,
    params: dict[str, str],
    words: tuple[str, ...],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="cim"):
        response = client.get(ITEMS, params=params)
    _problem(response, 400, *words)
    server_log = [r for r in caplog.records if r.name.startswith("cim")]
    assert not [r for r in server_log if r.exc_info or r.levelno >= logging.WARNING]


def test_filters_within_the_limits_still_work(client: TestClient, city: City) -> None:
    total = sum(city.segments[c] for c in ("JS", "PS"))
    for params in (
        {"filter": " AND ".join(["id > 0"] * 200)},
        {"filter": _json_and(200), "filter-lang": "cql2-json"},
        {"filter": " OR ".join(["id < 0"] * 199 + ["id > 0"])},
        {"filter": "id IN (" + ",".join(str(k) for k in range(1000)) + ")"},
    ):
        response = client.get(ITEMS, params={**params, "limit": 1})
        assert response.status_code == 200, response.text
        assert response.json()["numberMatched"] <= total


def _nan_body(key: str, value: str) -> str:
    return '{"%s": %s}' % (key, value)  # noqa: UP031 - literal NaN/Infinity tokens


@pytest.mark.parametrize(
    ("path", "body", "where"),
    [
        ("/analysis/pipes/query", '{"bbox": [NaN, 0, 1, 1]}', "bbox"),
        ("/analysis/pipes/query", '{"bbox": [-Infinity, 0, Infinity, 1]}', "bbox"),
        ("/analysis/pipes/query", '{"bbox": [0, 0, 1e309, 1]}', "bbox"),
        ("/analysis/pipes/query", '{"buffer_m": -5, "bbox": [0, 0, 1, 1]}', "buffer_m"),
        ("/analysis/pipes/query", '{"diameter_min_mm": NaN}', "diameter_min_mm"),
        ("/analysis/pipes/query", '{"limit": -1}', "limit"),
        ("/analysis/pipes/query", '{"offset": -1}', "offset"),
        (
            "/analysis/pipes/isolation",
            f'{{"point": [{X0}, {Y0}], "tolerance_m": -1}}',
            "tolerance_m",
        ),
        ("/analysis/pipes/isolation", '{"point": [Infinity, 0]}', "point"),
        ("/analysis/pipes/isolation", '{"point": [NaN, 0]}', "point"),
        ("/analysis/pipes/trace", '{"node_id": 1, "max_distance_m": -3}', "max_distance_m"),
        ("/analysis/pipes/trace", '{"node_id": 1, "max_distance_m": NaN}', "max_distance_m"),
        (
            "/analysis/pipes/excavation",
            '{"polygon": {"type": "Polygon", "coordinates": [[[0,0],[1,0],[1,1],[0,0]]]},'
            ' "depth_m": 2, "margin_m": 1e308}',
            "margin_m",
        ),
        (
            "/analysis/pipes/excavation",
            '{"polygon": {"type": "Polygon", "coordinates": [[[0,0],[1,0],[1,1],[0,0]]]},'
            ' "depth_m": Infinity}',
            "depth_m",
        ),
        ("/analysis/pipes/clearance", '{"limit": -5}', "limit"),
    ],
)
def test_non_finite_and_out_of_range_numbers_are_400(
    client: TestClient, path: str, body: str, where: str
) -> None:
    response = client.post(path, content=body, headers={"Content-Type": "application/json"})
    _problem(response, 400, where)


@pytest.mark.parametrize(
    "path",
    [
        "/tiles/pipes/tileset.json%00",
        "/tiles/pipes/%00/tileset.json",
        "/tiles/pipes/a%01b.glb",
        "/tiles/pipes/x%7F.json",
        "/tiles/restricted/pipes/tileset.json%00",
        "/terrain/layer.json%00",
        "/tiles/pipes/" + "a" * 5000 + ".glb",
        "/tiles/pipes%0A/tileset.json",
    ],
    ids=["nul-end", "nul-folder", "soh", "del", "restricted-nul", "terrain-nul", "long", "newline"],
)
def test_control_bytes_in_tile_paths_are_not_found(client: TestClient, path: str) -> None:
    assert client.get("/tiles/pipes/tileset.json").status_code == 200
    response = client.get(path, headers={"X-API-Key": "nobody"})
    assert response.status_code in (400, 401, 404), response.text
    assert response.headers["content-type"] == "application/problem+json"


def _app_with_route(settings: CimSettings, sql: str) -> TestClient:
    app = create_app(settings)

    @app.get("/probe")
    def probe(session: SessionDep) -> dict[str, str]:
        session.execute(text(sql))
        return {"done": "yes"}

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("sql", "status"),
    [
        ("SELECT 1 / 0", 400),  # DataError: a value the caller sent
        ("SELECT CAST('1e400' AS float8)", 400),  # NumericValueOutOfRange
        ("SELECT ST_DWithin('POINT(0 0)'::geometry, 'POINT(0 0)'::geometry, -1)", 500),
        ("SELECT * FROM no_such_table_anywhere", 500),  # ProgrammingError: our bug
    ],
)
def test_database_errors_that_are_not_an_outage_do_not_claim_one(
    settings: CimSettings, sql: str, status: int
) -> None:
    with _app_with_route(settings, sql) as client:
        response = client.get("/probe")
    assert response.status_code == status, response.text
    assert response.json()["title"] != "DatabaseUnavailable"
    assert "retry-after" not in response.headers


@pytest.mark.parametrize(
    ("path", "body", "where"),
    [
        ("/analysis/shelters/plans", '{"radius_m": {"short": NaN}}', "radius_m"),
        ("/analysis/shelters/plans", '{"time_limit_s": Infinity}', "time_limit_s"),
        ("/analysis/shelters/plans", '{"area_per_person_m2": {"short": -1}}', "area_per_person"),
        ("/analysis/shelters/suggest", '{"radius_m": Infinity}', "radius_m"),
        ("/analysis/shelters/suggest", '{"grid_spacing_m": 1e-9}', "grid_spacing_m"),
        ("/analysis/shelters/suggest", '{"access_max_m": NaN}', "access_max_m"),
    ],
)
def test_shelter_parameters_are_finite_and_in_range(
    client: TestClient, keys: dict[str, str], path: str, body: str, where: str
) -> None:
    response = client.post(
        path,
        content=body,
        headers={"Content-Type": "application/json", "X-API-Key": keys["analyst"]},
    )
    _problem(response, 400, where)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/analysis/pipes/isolation", '{"point": [0, 95], "crs": "EPSG:4326"}'),
        (
            "/analysis/pipes/query",
            '{"polygon": {"type": "Polygon", "coordinates": [[[0,89],[1,95],[2,89],[0,89]]]},'
            ' "crs": "EPSG:4326"}',
        ),
        (
            "/analysis/pipes/section",
            '{"line": {"type": "LineString", "coordinates": [[0, 0], [1e8, 1e8]]},'
            ' "crs": "EPSG:4326"}',
        ),
    ],
)
def test_geometries_that_cannot_be_moved_to_the_storage_crs_are_400(
    client: TestClient, path: str, body: str
) -> None:
    response = client.post(path, content=body, headers={"Content-Type": "application/json"})
    _problem(response, 400)


HOSTILE_NUMBERS = st.one_of(
    st.sampled_from(
        [math.nan, math.inf, -math.inf, -1, -0.0, 0, 1e308, -1e308, 2**63, -(2**63) - 1, 10**400]
    ),
    st.floats(),
    st.integers(),
)
SQUARE = {
    "type": "Polygon",
    "coordinates": [[[X0, Y0], [X0 + 50, Y0], [X0 + 50, Y0 + 50], [X0, Y0]]],
}


@st.composite
def hostile_requests(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A route and a body whose every numeric field is drawn from ``HOSTILE_NUMBERS``."""

    def n() -> Any:
        return draw(HOSTILE_NUMBERS)

    choice = draw(st.integers(0, 7))
    if choice == 0:
        return "/analysis/pipes/query", {"bbox": [n(), n(), n(), n()]}
    if choice == 1:
        ring = [[n(), n()], [n(), n()], [n(), n()], [n(), n()]]
        fields = ("buffer_m", "diameter_min_mm", "depth_max_m", "year_min", "limit", "offset")
        body = {"polygon": {"type": "Polygon", "coordinates": [ring]}}
        return "/analysis/pipes/query", body | {name: n() for name in fields}
    if choice == 2:
        return "/analysis/pipes/isolation", {"point": [n(), n()], "tolerance_m": n()}
    if choice == 3:
        return "/analysis/pipes/isolation", {"segment_id": n()}
    if choice == 4:
        return "/analysis/pipes/trace", {"node_id": n(), "max_distance_m": n()}
    if choice == 5:
        return "/analysis/pipes/excavation", {"polygon": SQUARE, "depth_m": n(), "margin_m": n()}
    if choice == 6:
        return "/analysis/pipes/clearance", {"limit": n(), "dataset_id": n()}
    return "/terrain/elevation", {"points": [[n(), n()], [n(), n()]]}


def test_hostile_numbers_never_give_a_server_error(client: TestClient) -> None:
    """Negative, non-finite and huge numbers in every numeric field: a 2xx or a 4xx, never 5xx."""

    sent: list[int] = []

    @given(request=hostile_requests())
    @settings(max_examples=200, deadline=None, database=None, derandomize=True)
    def run(request: tuple[str, dict[str, Any]]) -> None:
        path, body = request
        response = client.post(
            path, content=json.dumps(body), headers={"Content-Type": "application/json"}
        )
        assert response.status_code < 500, (path, body, response.text)
        sent.append(response.status_code)

    run()
    assert len(sent) >= 150 and 200 in sent


@pytest.mark.parametrize(
    ("error", "status", "title"),
    [
        (
            OperationalError("SELECT 1", {}, psycopg.OperationalError("connection refused")),
            503,
            "DatabaseUnavailable",
        ),
        (PoolTimeout("QueuePool limit reached"), 503, "DatabaseBusy"),
    ],
    ids=["connection-refused", "pool-exhausted"],
)
def test_outages_and_overload_still_say_retry(
    settings: CimSettings, error: Exception, status: int, title: str
) -> None:
    app = create_app(settings)

    @app.get("/probe")
    def probe() -> None:
        raise error

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/probe")
    assert (response.status_code, response.json()["title"]) == (status, title)
    assert response.headers["retry-after"]

"""``format=csv|xlsx`` and ``lang=zh|en`` of the simulations: the files hold the JSON's rows.

The shutdown of a burst on Net3 (with a WNTR valve layer; a 35 m service pressure so that
nodes beyond the ring fall below it) and a design storm on SWMM Example 1 (with a DEM bowl
under node 10, so flooded nodes have extents) are asked once as JSON, then as a CSV per table
and an xlsx per language; every cell of every table is compared with the JSON (the same
request gives the same simulation: EPANET and SWMM are deterministic).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import Engine, text

from api.main import create_app
from cim.config import CimSettings
from cim.services.tables import simulation as tables
from cim.services.tables.language import header, languages, sheet_title, strings, value_name
from cim.services.tables.spec import TableSpec
from tests.cim.test_pipes_isolation import import_with_valves
from tests.cim.test_simulation_flood import _bowl
from tests.conftest import SHARED_SAMPLES
from tests.importers.pipes_helpers import run

Item = dict[str, Any]
Get = Callable[[Item], Any]
SPECS = [v for v in vars(tables).values() if isinstance(v, TableSpec)]


def at(*path: str) -> Get:
    """A JSON value along ``path``; ``None`` when a step on the way is ``None``."""

    def get(item: Item) -> Any:
        value: Any = item
        for key in path:
            if value is None:
                return None
            value = value[key]
        return value

    return get


NODE = {"node_id": at("id"), "code": at("code"), "node_kind": at("kind")}
PRESSURE = {
    **NODE,
    "pressure_role": at("role"),
    "before_min_m": at("before_min_m"),
    "after_min_m": at("after_min_m"),
    "max_drop_m": at("max_drop_m"),
}
SHUTDOWN: list[tuple[TableSpec, str, dict[str, Get]]] = [
    (tables.SHUTDOWN_NODES, "nodes", PRESSURE),
    (tables.SHUTDOWN_BELOW_SERVICE, "below_service_nodes", PRESSURE),
    (tables.SHUTDOWN_ISOLATED, "isolated_nodes", NODE),
    (
        tables.SHUTDOWN_CLOSED,
        "closed_links",
        {
            "model_link": at("link"),
            "valve_id": at("valve", "id"),
            "valve_code": at("valve", "code"),
            "valve_state": at("valve", "valve_state"),
            "segment_id": at("segment_id"),
        },
    ),
]
FLOOD: list[tuple[TableSpec, str, dict[str, Get]]] = [
    (
        tables.FLOODED_NODES,
        "flooded_nodes",
        {
            **NODE,
            "flood_volume_m3": at("volume_m3"),
            "hours_flooded": at("hours_flooded"),
            "peak_rate_m3s": at("peak_rate_m3s"),
            "node_max_depth_m": at("max_depth_m"),
            "extent_area_m2": at("extent", "area_m2"),
            "water_level_m": at("extent", "water_level_m"),
            "ponding_max_depth_m": at("extent", "max_depth_m"),
            "ponding_mean_depth_m": at("extent", "mean_depth_m"),
            "reaches_window_edge": at("extent", "reaches_window_edge"),
            "dem_dataset_id": at("extent", "dem_dataset_id"),
        },
    ),
    (
        tables.SURCHARGED_CONDUITS,
        "surcharged_conduits",
        {
            "segment_id": at("id"),
            "code": at("code"),
            "hours_surcharged": at("hours_surcharged"),
            "hours_full_both_ends": at("hours_full_both_ends"),
            "hours_capacity_limited": at("hours_capacity_limited"),
            "peak_flow_m3s": at("peak_flow_m3s"),
        },
    ),
    (
        tables.OUTFALLS,
        "outfalls",
        {
            **NODE,
            "outfall_volume_m3": at("volume_m3"),
            "average_flow_m3s": at("average_flow_m3s"),
            "peak_flow_m3s": at("peak_flow_m3s"),
        },
    ),
]


@pytest.fixture
def client(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = CimSettings(database_url=database_url, data_dir=tmp_path / "d")
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _csv_rows(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf"), "no UTF-8 byte-order mark"
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def _as_csv(value: Any) -> str:
    return "" if value is None else str(value)


def expected_rows(
    spec: TableSpec, items: list[Item], fields: dict[str, Get], lang: str
) -> list[list[Any]]:
    """The header row then every item's cells in ``lang``, straight from the JSON."""
    assert [c.key for c in spec.columns] == list(fields), f"{spec.name}: a column not compared"
    rows: list[list[Any]] = [[header(lang, key) for key in fields]]
    for item in items:
        cells = []
        for column, get in zip(spec.columns, fields.values(), strict=True):
            value = get(item)
            cells.append(value_name(lang, column.vocabulary, value) if column.vocabulary else value)
        rows.append(cells)
    return rows


def check_files(
    post: Callable[..., Any], answer: Item, cases: list[tuple[TableSpec, str, dict[str, Get]]]
) -> dict[str, int]:
    """Every table of ``answer`` as CSV (``table=``) and in the xlsx, in both languages, equals
    the JSON cell by cell; returns the row count of each table."""
    for lang in ("zh", "en"):
        book = post(format="xlsx", lang=lang)
        assert book.headers["content-disposition"].endswith('.xlsx"')
        workbook = load_workbook(io.BytesIO(book.content))
        assert workbook.sheetnames == [sheet_title(lang, spec.sheet) for spec, _, _ in cases]
        for spec, key, fields in cases:
            wanted = expected_rows(spec, answer[key], fields, lang)
            got = post(format="csv", lang=lang, table=spec.name)
            assert got.headers["content-type"] == "text/csv; charset=utf-8"
            assert _csv_rows(got.content) == [[_as_csv(v) for v in row] for row in wanted], (
                f"{spec.name} {lang} csv"
            )
            cells = [list(r) for r in workbook[sheet_title(lang, spec.sheet)].values]
            assert cells == wanted, f"{spec.name} {lang} xlsx"
    return {spec.name: len(answer[key]) for spec, key, _ in cases}


def test_every_simulation_column_is_named_in_every_language() -> None:
    roles = {"isolated", "below_service", "pressure_drop"}  # NodePressure.role
    for lang in languages():
        words = strings(lang)
        for spec in SPECS:
            assert spec.sheet in words["sheets"], f"{lang}: no sheet title {spec.sheet}"
            assert len(sheet_title(lang, spec.sheet)) <= 31
            for column in spec.columns:
                assert column.key in words["headers"], f"{lang}: no header {column.key}"
                if column.vocabulary:
                    assert column.vocabulary in words["values"], column.vocabulary
        assert set(words["values"]["pressure_role"]) == roles
    assert value_name("zh", "node_kind", "outfall") == "排放口"


def test_shutdown_files_hold_the_json_rows(
    client: TestClient, database_url: str, engine: Engine, clean_tables: None, tmp_path: Path
) -> None:
    _, _, dataset = import_with_valves(database_url, engine, tmp_path, "Net3.inp", 1, via_cli=False)
    with engine.connect() as conn:
        burst = conn.execute(
            text("SELECT id FROM pipe_segment WHERE dataset_id = :d AND code = '117'"),
            {"d": dataset},
        ).scalar_one()
    body = {"segment_id": burst, "duration_h": 6, "service_pressure_m": 35}  # 3 fall below
    url = "/analysis/pipes/shutdown"

    def post(**params: str) -> Any:
        done = client.post(url, params=params, json=body)
        assert done.status_code == 200, done.text
        return done

    answer = post().json()
    assert "geojson" in answer and answer["closed_links"]  # the JSON answer is unchanged
    counts = check_files(post, answer, SHUTDOWN)
    assert all(counts.values()), counts
    default = _csv_rows(post(format="csv").content)  # zh, the nodes whose pressure fell
    assert default[0][:4] == ["节点ID", "编号", "节点类型", "影响类型"]
    assert {row[3] for row in default[1:]} <= {"停水 (关阀区内)", "低于服务压力", "压力下降"}
    closed = _csv_rows(post(format="csv", lang="en", table="closed").content)
    assert closed[0] == ["Model link", "Valve node ID", "Valve code", "Valve state", "Segment ID"]
    bad = client.post(url, params={"format": "csv", "table": "pipes"}, json=body)
    assert bad.status_code == 400
    assert "nodes, below_service, isolated, closed" in bad.json()["detail"]
    bad_lang = client.post(url, params={"format": "xlsx", "lang": "fr"}, json=body)
    assert bad_lang.status_code == 400 and "known: en, zh" in bad_lang.json()["detail"]


@pytest.mark.slow
def test_flood_files_hold_the_json_rows(
    client: TestClient, engine: Engine, clean_tables: None, tmp_path: Path
) -> None:
    from importers.terrain import import_terrain

    path = SHARED_SAMPLES / "pipes" / "swmm_Example1.inp"
    dataset = run(engine, path, origin=(500_000.0, 3_400_000.0, 0.0)).dataset.id
    with engine.connect() as conn:
        x, y = conn.execute(
            text(
                "SELECT ST_X(geom), ST_Y(geom) FROM pipe_node WHERE dataset_id = :d AND code = '10'"
            ),
            {"d": dataset},
        ).one()
    _bowl(tmp_path / "bowl.tif", (x, y), 100.0)
    import_terrain(engine, tmp_path / "bowl.tif")
    body = {"dataset_id": dataset, "storm": {"return_period_a": 50}}
    url = "/analysis/drainage/flood"

    def post(**params: str) -> Any:
        done = client.post(url, params=params, json=body)
        assert done.status_code == 200, done.text
        return done

    answer = post().json()
    assert "geojson" in answer and answer["rain"] == "design_storm"
    counts = check_files(post, answer, FLOOD)
    assert counts["nodes"] and counts["outfalls"], counts
    assert any(n["extent"] for n in answer["flooded_nodes"]), "no extent to compare"
    nodes = _csv_rows(post(format="csv").content)
    assert nodes[0][:5] == ["节点ID", "编号", "节点类型", "溢流量 (m³)", "溢流历时 (h)"]
    outfalls = _csv_rows(post(format="csv", lang="en", table="outfalls").content)
    assert outfalls[0][3] == "Outfall volume (m³)" and outfalls[1][2] == "outfall"
    assert post(format="xlsx").headers["content-disposition"] == (
        'attachment; filename="drainage-flood.xlsx"'
    )


def test_openapi_documents_the_simulation_files(client: TestClient) -> None:
    paths = client.get("/api").json()["paths"]
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    for path in ("/analysis/pipes/shutdown", "/analysis/drainage/flood"):
        content = paths[path]["post"]["responses"]["200"]["content"]
        assert {"application/json", "text/csv", xlsx} <= set(content), path
        assert "$ref" in str(content["application/json"]["schema"]), path  # the typed answer
        names = {p["name"] for p in paths[path]["post"]["parameters"]}
        assert {"format", "lang", "table"} <= names

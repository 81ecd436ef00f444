"""CJJ 61 tables: the derived KY4 sample, a hand-made fixture with known QC errors, bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyproj import Transformer
from sqlalchemy import Engine, text

from cim.errors import ImportFailed, InvalidInput
from tests.importers.pipes_helpers import dataset_count, nodes, run, segments

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "samples" / "cjj61"

POINTS = [
    ["物探点号", "X", "Y", "地面高程", "特征", "附属物", "井底埋深", "井底高程"],
    ["W1", "3400000", "500000", "20.00", "", "检查井", "2.00", "18.00"],
    ["W2", "3400000", "500030", "19.90", "", "检查井", "2.00", "17.50"],  # 17.5 + 2 ≠ 19.9
    ["W3", "3400000", "500060", "19.80", "三通", "", "", ""],  # a tee with 2 pipes
    ["W4", "3400030", "500060", "19.80", "", "", "", ""],
    ["W5", "3400100", "500100", "19.70", "", "", "", ""],  # joins nothing
    ["W1", "3400000", "500000", "20.00", "", "检查井", "2.00", "18.00"],  # duplicate
    ["W6", "3400030", "500060", "19.80", "", "", "", ""],  # same place as W4
]
LINES = [
    ["起点号", "终点号", "起点埋深", "终点埋深", "起点高程", "终点高程", "管径", "材质"],
    ["W1", "W2", "2.00", "2.00", "18.00", "17.90", "400", "砼"],
    ["W2", "W3", "2.10", "1.60", "17.80", "18.20", "400", "砼"],  # rises 0.4 m
    ["W3", "W4", "1.70", "1.80", "18.10", "18.00", "40000", "砼"],  # absurd size
    ["W4", "W6", "1.80", "1.90", "18.00", "17.90", "300", "PVC"],  # zero length
    ["W6", "W9", "1.90", "2.00", "17.90", "17.80", "300", "PVC"],  # W9 does not exist
]
EXPECTED = {
    ("duplicate_code", "W1"),
    ("ground_mismatch", "W2"),
    ("tee_degree", "W3"),
    ("orphan_point", "W5"),
    ("backward_slope", "W2-W3"),
    ("absurd_diameter", "W3-W4"),
    ("zero_length", "W4-W6"),
    ("missing_node", "W6-W9"),
}


def _write(folder: Path, name: str, rows: list[list[str]], encoding: str = "gbk") -> Path:
    path = folder / name
    with open(path, "w", newline="", encoding=encoding) as handle:
        csv.writer(handle).writerows(rows)
    return path


def _fixture(folder: Path, points: list[list[str]] = POINTS) -> list[Path]:
    return [_write(folder, "PS_POINT.csv", points), _write(folder, "PS_LINE.csv", LINES)]


def test_known_qc_errors_exactly(engine: Engine, clean_tables: None, tmp_path: Path) -> None:
    result = run(engine, *_fixture(tmp_path), crs="EPSG:4547")
    qc = result.dataset.qc
    assert {(i["rule"], i["code"]) for i in qc["issues"]} == EXPECTED
    assert qc["errors"] == len(EXPECTED)
    stored = nodes(engine, result.dataset.id)
    links = segments(engine, result.dataset.id)
    assert sorted(stored) == ["W1", "W2", "W3", "W4", "W5", "W6"]
    assert sorted(links) == ["W1-W2", "W2-W3", "W3-W4", "W4-W6"]
    # PS: plain 起点高程 is the invert; CJJ 61 X is the northing
    assert links["W1-W2"]["start_invert_z"] == pytest.approx(18.0, abs=1e-3)
    assert links["W1-W2"]["start_top_z"] == pytest.approx(18.4, abs=1e-3)
    assert stored["W2"]["x"] == pytest.approx(500030.0, abs=1e-3)
    assert stored["W2"]["y"] == pytest.approx(3400000.0, abs=1e-3)
    assert stored["W2"]["ground_z"] == pytest.approx(19.9, abs=1e-3)
    assert stored["W2"]["bottom_z"] == pytest.approx(17.5, abs=1e-3)
    assert stored["W1"]["kind"] == "manhole" and stored["W3"]["kind"] == "tee"
    assert result.dataset.counts["skipped_segments"] == 1


def test_strict_refuses_and_stores_nothing(engine: Engine, tmp_path: Path) -> None:
    before = dataset_count(engine)
    with pytest.raises(ImportFailed, match=r"--strict refuses.*missing_node 1"):
        run(engine, *_fixture(tmp_path), crs="EPSG:4547", strict=True)
    assert dataset_count(engine) == before


def test_xlsx_workbook_reads_the_same(engine: Engine, clean_tables: None, tmp_path: Path) -> None:
    path = tmp_path / "survey.xlsx"
    with pd.ExcelWriter(path) as writer:
        for name, rows in (("PS_POINT", POINTS), ("PS_LINE", LINES)):
            pd.DataFrame(rows[1:], columns=rows[0]).to_excel(writer, sheet_name=name, index=False)
    result = run(engine, path, crs="EPSG:4547")
    assert {(i["rule"], i["code"]) for i in result.dataset.qc["issues"]} == EXPECTED


def test_unknown_headers_point_to_mapping(engine: Engine, tmp_path: Path) -> None:
    points = [[*POINTS[0][:-1], "井盖类型X"], *[[*row[:-1], ""] for row in POINTS[1:]]]
    before = dataset_count(engine)
    with pytest.raises(
        InvalidInput, match=r"unknown CJJ 61 point-table header\(s\): 井盖类型X.*--mapping"
    ):
        run(engine, *_fixture(tmp_path, points), crs="EPSG:4547")
    assert dataset_count(engine) == before


def test_mapping_file_headers_and_values(
    engine: Engine, clean_tables: None, tmp_path: Path
) -> None:
    points = [
        ["PointNo", "North", "East", "Ground", "Fitting", "CoverType"],
        ["A", "3400000", "500000", "20.0", "MH", "ductile"],
        ["B", "3400000", "500020", "19.8", "VALVE", ""],
    ]
    lines = [["From", "To", "Size"], ["A", "B", "600x400"]]
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        "utility: JS\n"
        "point: {PointNo: 物探点号, North: X, East: Y, Ground: 地面高程, Fitting: 附属物}\n"
        "line: {From: 起点号, To: 终点号, Size: 管径}\n"
        "values: {附属物: {MH: 检查井, VALVE: 阀门}}\n"
        "attrs: [CoverType]\n",
        encoding="utf-8",
    )
    paths = [
        _write(tmp_path, "a_point.csv", points, "utf-8"),
        _write(tmp_path, "a_line.csv", lines, "utf-8"),
    ]
    result = run(engine, *paths, crs="EPSG:4547", mapping=mapping)
    stored = nodes(engine, result.dataset.id)
    assert stored["A"]["kind"] == "manhole" and stored["B"]["kind"] == "valve"
    assert stored["A"]["attrs"] == {"CoverType": "ductile"}
    link = segments(engine, result.dataset.id)["A-B"]
    assert (link["section_shape"], link["width_mm"], link["height_mm"]) == ("rectangular", 600, 400)
    # JS without depths or elevations: top at the default cover (1 m) below the ground
    assert link["start_top_z"] == pytest.approx(19.0, abs=1e-3)
    assert link["end_invert_z"] == pytest.approx(19.8 - 1.0 - 0.4, abs=1e-3)


def test_empty_coordinates_fail_naming_the_point(engine: Engine, tmp_path: Path) -> None:
    points = [row[:] for row in POINTS]
    points[3][1] = ""
    before = dataset_count(engine)
    with pytest.raises(ImportFailed, match="empty or non-numeric coordinates: W3"):
        run(engine, *_fixture(tmp_path, points), crs="EPSG:4547")
    points[3][1] = "abc"
    with pytest.raises(InvalidInput, match="'abc', which is not a number"):
        run(engine, *_fixture(tmp_path, points), crs="EPSG:4547")
    assert dataset_count(engine) == before


def test_unsupported_file(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "network.dwg"
    path.write_bytes(b"AC1032")
    with pytest.raises(InvalidInput, match=r"unsupported pipe file type \.dwg"):
        run(engine, path)


def test_ky4_sample_imports_with_real_ground(engine: Engine, clean_tables: None) -> None:
    point_csv = pd.read_csv(SAMPLE / "JS_POINT.csv", encoding="utf-8-sig", dtype=str)
    line_csv = pd.read_csv(SAMPLE / "JS_LINE.csv", encoding="utf-8-sig", dtype=str)
    result = run(engine, SAMPLE / "JS_POINT.csv", SAMPLE / "JS_LINE.csv", crs="EPSG:32616")
    assert result.dataset.source_crs == "EPSG:32616"
    stored = nodes(engine, result.dataset.id)
    links = segments(engine, result.dataset.id)
    assert len(stored) == len(point_csv) and len(links) == len(line_csv)
    to_storage = Transformer.from_crs("EPSG:32616", "EPSG:4547", always_xy=True)
    xs, ys = to_storage.transform(point_csv["Y"].astype(float), point_csv["X"].astype(float))
    got = np.array([[stored[c]["x"], stored[c]["y"]] for c in point_csv["物探点号"]])
    assert np.abs(got - np.column_stack([xs, ys])).max() < 1e-3
    ground = point_csv.set_index("物探点号")["地面高程"].astype(float)
    assert max(abs(stored[c]["ground_z"] - g) for c, g in ground.items()) < 1e-3
    for row in line_csv.head(50).itertuples():
        link = links[row.管线编号]
        assert (link["start"], link["end"]) == (row.起点号, row.终点号)
        assert link["start_top_z"] == pytest.approx(float(row.起点高程), abs=1e-3)  # JS: 管顶
        if isinstance(row.管径, str):
            assert link["start_invert_z"] == pytest.approx(
                float(row.起点高程) - float(row.管径) / 1000, abs=1e-3
            )
    qc = result.dataset.qc
    assert qc["by_rule"]["missing_node"] == 0 and qc["by_rule"]["duplicate_code"] == 0


def test_ground_from_terrain_when_the_table_has_none(
    engine: Engine, clean_tables: None, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        terrain = conn.execute(
            text(
                "INSERT INTO dataset (kind, name, source_name, source_sha256, status)"
                " VALUES ('terrain', 'flat', 'flat.tif', 'flat', 'ready') RETURNING id"
            )
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO terrain_raster (dataset_id, resolution, rast) VALUES (:d, 10,"
                " ST_AddBand(ST_MakeEmptyRaster(100, 100, 499900, 3400100, 10, -10, 0, 0, 4547),"
                " '32BF'::text, 25.5, -9999))"
            ),
            {"d": terrain},
        )
    points = [["物探点号", "X", "Y"], ["J1", "3400000", "500000"], ["J2", "3400000", "500040"]]
    lines = [
        ["起点号", "终点号", "起点埋深", "终点埋深", "管径"],
        ["J1", "J2", "1.2", "1.4", "200"],
    ]
    paths = [_write(tmp_path, "JS_POINT.csv", points), _write(tmp_path, "JS_LINE.csv", lines)]
    result = run(engine, *paths, crs="EPSG:4547")
    stored = nodes(engine, result.dataset.id)
    assert stored["J1"]["ground_z"] == pytest.approx(25.5, abs=1e-3)
    link = segments(engine, result.dataset.id)["J1-J2"]
    # JS depths are to the pipe top: invert = ground - depth - D
    assert link["start_invert_z"] == pytest.approx(25.5 - 1.2 - 0.2, abs=1e-3)
    assert link["end_top_z"] == pytest.approx(25.5 - 1.4, abs=1e-3)
    assert result.dataset.counts["z_source"] == {"depth": 2}

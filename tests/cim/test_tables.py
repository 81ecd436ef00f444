"""Analysis answers as tables: columns per language, CSV with BOM, xlsx sheets, SVG words."""

from __future__ import annotations

import csv
import io

import pytest
from openpyxl import load_workbook

from cim.errors import InvalidInput
from cim.services.pipes.models import (
    BurstIsolation,
    Clash,
    ClashReport,
    CrossSection,
    ElementSide,
    PairSide,
    Ref,
    SectionPipe,
    ValveNode,
)
from cim.services.pipes.section import section_svg
from cim.services.tables import pipes, shelters
from cim.services.tables.catalog import tables_of
from cim.services.tables.language import check_language, header, languages, strings
from cim.services.tables.spec import TableSpec, pick
from cim.services.tables.writers import to_csv, to_xlsx

SPECS = [v for m in (pipes, shelters) for v in vars(m).values() if isinstance(v, TableSpec)]


def _isolation() -> BurstIsolation:
    valve = ValveNode(id=7, code="V1", kind="valve", valve_state="open")
    return BurstIsolation(
        dataset_id=1,
        burst_segment=Ref(id=3, code="bc"),
        valves_to_close=[valve, ValveNode(id=9, code="=V2", kind="valve", valve_state=None)],
        valves_already_closed=[],
        failed_valves_passed=[],
        isolated_segments=[Ref(id=3, code="bc"), Ref(id=4, code="-cd")],
        segment_count=2,
        length_m=200.0,
        volume_m3=14.1,
        affected_nodes=[],
        affected_node_kinds={},
    )


def _read_csv(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf"), "no UTF-8 byte-order mark"
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def test_every_language_names_every_column_sheet_value_and_chart_word() -> None:
    assert set(languages()) >= {"zh", "en"}
    reference = strings("en")
    for lang in languages():
        words = strings(lang)
        for part in ("headers", "sheets", "values", "svg"):
            assert set(words[part]) == set(reference[part]), f"{lang}.yaml {part} differ from en"
        for spec in SPECS:
            assert spec.sheet in words["sheets"], f"{lang}: no sheet title {spec.sheet}"
            for column in spec.columns:
                assert column.key in words["headers"], f"{lang}: no header {column.key}"
                if column.vocabulary and column.vocabulary != "utility":
                    assert column.vocabulary in words["values"], column.vocabulary
    with pytest.raises(InvalidInput, match="known: en, zh"):
        check_language("fr")


def test_csv_has_bom_headers_per_language_and_the_answer_rows() -> None:
    valves, segments = tables_of(_isolation())
    assert valves.rows == [(7, "V1", "valve", "open"), (9, "=V2", "valve", None)]
    assert segments.rows == [(3, "bc"), (4, "-cd")]
    zh = _read_csv(to_csv(valves, "zh"))
    assert zh[0] == ["节点ID", "编号", "节点类型", "阀门状态"]
    # names in the language; a formula-like code is quoted so Excel does not run it
    assert zh[1:] == [["7", "V1", "阀门", "开启"], ["9", "'=V2", "阀门", ""]]
    en = _read_csv(to_csv(pick([valves, segments], "segments"), "en"))
    assert en == [["Segment ID", "Code"], ["3", "bc"], ["4", "'-cd"]]
    with pytest.raises(InvalidInput, match="valves, segments"):
        pick([valves, segments], "pipes")


def test_xlsx_has_a_sheet_per_table_bold_headers_and_numbers() -> None:
    workbook = load_workbook(io.BytesIO(to_xlsx(tables_of(_isolation()), "zh")))
    assert workbook.sheetnames == ["需关闭阀门", "停水管段"]
    valves = workbook["需关闭阀门"]
    rows = list(valves.iter_rows(values_only=True))
    assert rows == [
        ("节点ID", "编号", "节点类型", "阀门状态"),
        (7, "V1", "阀门", "开启"),
        (9, "=V2", "阀门", None),
    ]
    assert valves["A1"].font.bold and valves["B3"].data_type == "s"
    english = load_workbook(io.BytesIO(to_xlsx(tables_of(_isolation()), "en")))
    assert english.sheetnames == ["Valves to close", "Isolated segments"]


def test_clash_rows_name_element_sides_by_guid_and_ifc_class() -> None:
    side = PairSide(layer="pipe_segment", id=1, code="P1", utility="JS")
    element = ElementSide(id=5, guid="2O2Fr$t4X7Zf8NOew3FLOH", ifc_class="IfcWall", name="墙")
    clash = Clash(kind="building", a=side, b=element, overlap_m=0.2, distance_m=0.1,
                  location=[1.0, 2.0, 3.0])  # fmt: skip
    report = ClashReport(srid=4547, datasets=[1], clash_count=1, returned=1, truncated=False,
                         clashes=[clash])  # fmt: skip
    (table,) = tables_of(report)
    assert table.rows[0][:9] == ("building", 1, "P1", "JS", "building_element", 5,
                                 "2O2Fr$t4X7Zf8NOew3FLOH", "IfcWall", "墙")  # fmt: skip
    zh = _read_csv(to_csv(table, "zh"))
    assert zh[1][:4] == ["管线与建筑构件", "1", "P1", "给水"] and zh[1][-3:] == [
        "1.0",
        "2.0",
        "3.0",
    ]


def _section() -> CrossSection:
    pipe = SectionPipe(
        segment_id=1, code="bc", utility="PS", subclass="YS", utility_name="排水", colour="#4B2A00",
        offset_m=10.0, x=0.0, y=0.0, section="DN300", section_shape="circular", width_m=0.3,
        height_m=0.3, centre_z=8.0, invert_z=7.85, top_z=8.15, ground_z=10.0,
        ground_source="nodes", centre_depth_m=2.0, cover_m=1.85, material=None, owner=None,
        pressure=None, burial=None,
    )  # fmt: skip
    return CrossSection(line_length_m=20.0, srid=4547, ground_source="nodes", pipe_count=1,
                        pipes=[pipe], ground_profile=[])  # fmt: skip


def test_section_table_and_svg_speak_the_language() -> None:
    (table,) = tables_of(_section())
    zh = _read_csv(to_csv(table, "zh"))
    assert zh[0][:5] == ["距起点距离 (m)", "管段ID", "编号", "管线类别代码", "管线类别"]
    assert zh[1][:5] == ["10.0", "1", "bc", "PS", "雨水"]  # the sub-class is named
    assert header("en", "utility_name") == "Utility class"
    chinese = section_svg(_section(), "zh")
    assert "横断面（1 条管线）" in chinese and "高程 (m)" in chinese and "覆土 1.85 m" in chinese
    english = section_svg(_section(), "en")
    assert "Cross-section: 1 pipe(s)" in english and "Elevation (m)" in english
    assert 'xml:lang="en"' in english

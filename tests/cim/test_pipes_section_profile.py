"""Cross-section and longitudinal profile on hand-made networks with known answers."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from cim.errors import InvalidInput
from cim.services.pipes.profile import longitudinal_profile, profile_svg
from cim.services.pipes.section import cross_section, section_svg
from tests.cim.pipes_fixtures import N, S, make_dataset, write_network
from tests.conftest import TEST_SRID


def street(session: Session) -> dict[str, int]:
    """Three pipes running north-south crossed by the line y = 0 from x = -20 to x = 20."""
    dataset = make_dataset(session, "street")
    nodes = [
        N("j1", -10, -50, 10.0),
        N("j2", -10, 50, 10.0),
        N("p1", 5, -50, 10.0, "PS", "manhole"),
        N("p2", 5, 50, 10.0, "PS", "manhole"),
        N("d1", 15, -50, 11.0, "DL"),
        N("d2", 15, 50, 9.0, "DL"),
    ]
    segments = [
        S(
            "JS1",
            "j1",
            "j2",
            "JS",
            diameter_mm=300,
            start_invert_z=8.35,
            end_invert_z=8.35,
            material="DI",
            owner="Water Co",
        ),
        S(
            "PS1",
            "p1",
            "p2",
            "PS",
            diameter_mm=None,
            width_mm=1000,
            height_mm=800,
            section_shape="rectangular",
            start_invert_z=7.0,
            end_invert_z=6.0,
        ),
        S("DL1", "d1", "d2", "DL", diameter_mm=200),
    ]
    _, seg_ids = write_network(session, dataset, nodes, segments)
    return seg_ids


LINE = {"type": "LineString", "coordinates": [[-20.0, 0.0], [20.0, 0.0]]}


def test_cross_section_known_answers_without_terrain(session: Session) -> None:
    street(session)
    section = cross_section(session, line=LINE)
    answer = section.model_dump()
    assert answer["ground_source"] == "nodes"
    pipes = {p["code"]: p for p in answer["pipes"]}
    assert [p["code"] for p in answer["pipes"]] == ["JS1", "PS1", "DL1"]
    js, ps, dl = pipes["JS1"], pipes["PS1"], pipes["DL1"]
    assert js["offset_m"] == pytest.approx(10.0)
    assert (js["invert_z"], js["top_z"], js["centre_z"]) == pytest.approx((8.35, 8.65, 8.5))
    assert js["centre_depth_m"] == pytest.approx(1.5) and js["cover_m"] == pytest.approx(1.35)
    assert (js["section"], js["colour"], js["owner"]) == ("DN300", "#00FFFF", "Water Co")
    assert ps["offset_m"] == pytest.approx(25.0)
    assert (ps["invert_z"], ps["top_z"], ps["centre_z"]) == pytest.approx((6.5, 7.3, 6.9))
    assert ps["cover_m"] == pytest.approx(2.7) and ps["section"] == "1000x800"
    assert dl["offset_m"] == pytest.approx(35.0) and dl["ground_z"] == pytest.approx(10.0)
    drawing = ET.fromstring(section_svg(section))
    assert drawing.tag.endswith("svg")
    assert len([e for e in drawing.iter() if e.tag.endswith(("ellipse", "rect"))]) == 4  # 3 + bg


def test_cross_section_uses_terrain_when_present(session: Session) -> None:
    street(session)
    terrain = make_dataset(session, "dem", kind="terrain")
    session.execute(
        text(
            "INSERT INTO terrain_raster (dataset_id, resolution, rast) VALUES (:d, 1.0,"
            " ST_AddBand(ST_MakeEmptyRaster(100, 200, -50, 100, 1, -1, 0, 0, :srid),"
            " '32BF'::text, 12.5, -9999))"
        ),
        {"d": terrain, "srid": TEST_SRID},
    )
    answer = cross_section(session, line=LINE, utilities=["JS", "PS"]).model_dump()
    assert answer["ground_source"] == "terrain"
    assert [p["code"] for p in answer["pipes"]] == ["JS1", "PS1"]
    assert answer["pipes"][0]["cover_m"] == pytest.approx(12.5 - 8.65)
    assert len(answer["ground_profile"]) == 100
    assert {g["z"] for g in answer["ground_profile"]} == {12.5}


def test_cross_section_rejects_bad_lines(session: Session) -> None:
    with pytest.raises(InvalidInput):
        cross_section(session, line={"type": "Point", "coordinates": [0, 0]})
    with pytest.raises(InvalidInput):
        cross_section(session, line="LINESTRING (0 0, 9000 0)")


def sewer(session: Session) -> dict[str, int]:
    """m1 -> m2 -> m3 -> m4 along x, 50 m each; m2 -> m3 is laid backwards (invert rises)."""
    dataset = make_dataset(session, "sewer")
    nodes = [N(f"m{k}", 50.0 * (k - 1), 0, 12.0 - 0.1 * k, "PS", "manhole") for k in range(1, 5)]
    segments = [
        S("s1", "m1", "m2", "PS", diameter_mm=400, start_invert_z=10.0, end_invert_z=9.9),
        S("s2", "m2", "m3", "PS", diameter_mm=400, start_invert_z=9.9, end_invert_z=9.95),
        S(
            "s3", "m4", "m3", "PS", diameter_mm=400, start_invert_z=9.5, end_invert_z=9.6
        ),  # stored m4->m3
    ]
    node_ids, _ = write_network(session, dataset, nodes, segments)
    return node_ids


def test_profile_known_answers_and_backward_slope(session: Session) -> None:
    node_ids = sewer(session)
    typed = longitudinal_profile(session, from_node_id=node_ids["m1"], to_node_id=node_ids["m4"])
    profile = typed.model_dump()
    assert profile["length_m"] == pytest.approx(150.0)
    assert [n["code"] for n in profile["nodes"]] == ["m1", "m2", "m3", "m4"]
    assert [n["chainage_m"] for n in profile["nodes"]] == [0.0, 50.0, 100.0, 150.0]
    s1, s2, s3 = profile["segments"]
    assert s1["slope"] == pytest.approx(0.002) and s1["slope_permille"] == pytest.approx(2.0)
    assert s1["cover_from_m"] == pytest.approx(11.9 - 10.4) and s1["cover_to_m"] == pytest.approx(
        11.8 - 10.3
    )
    assert s2["slope"] == pytest.approx(-0.001) and s2["backward_slope"] is True
    assert s3["along_link_direction"] is False
    assert (s3["invert_from_z"], s3["invert_to_z"]) == (9.6, 9.5)
    assert s3["backward_slope"] is True  # rises from its inlet m4 to its outlet m3
    assert s1["backward_slope"] is False
    assert profile["backward_segments"] == ["s2", "s3"]
    drawing = ET.fromstring(profile_svg(typed))
    assert sum(1 for e in drawing.iter() if e.tag.endswith("polygon")) == 3


def test_profile_needs_connected_nodes(session: Session) -> None:
    node_ids = sewer(session)
    other = make_dataset(session, "other")
    far_ids, _ = write_network(
        session, other, [N("x", 0, 0, utility="PS"), N("y", 1, 0, utility="PS")], []
    )
    with pytest.raises(InvalidInput, match="same pipe dataset"):
        longitudinal_profile(session, from_node_id=node_ids["m1"], to_node_id=far_ids["x"])
    with pytest.raises(InvalidInput, match="not connected"):
        longitudinal_profile(session, from_node_id=far_ids["x"], to_node_id=far_ids["y"])

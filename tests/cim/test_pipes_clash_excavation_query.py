"""3D clashes, excavation impact, pipe query and QC on hand-made fixtures with known answers."""

from __future__ import annotations

import pytest
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from cim.errors import InvalidInput
from cim.services.pipes.clash import detect_clashes
from cim.services.pipes.excavation import excavation_impact
from cim.services.pipes.qc import dataset_qc
from cim.services.pipes.query import query_pipes
from tests.cim.pipes_fixtures import N, S, hex_geom, make_dataset, write_network


def straight(
    code: str,
    utility: str,
    a: tuple[float, float, float],
    b: tuple[float, float, float],
    diameter: float,
    **extra: object,
) -> tuple[list[N], S]:
    nodes = [N(f"{code}.a", a[0], a[1], 10.0, utility), N(f"{code}.b", b[0], b[1], 10.0, utility)]
    return nodes, S(
        code, f"{code}.a", f"{code}.b", utility, coords=[a, b], diameter_mm=diameter, **extra
    )  # type: ignore[arg-type]


def network(session: Session, pipes: list[tuple[list[N], S]]) -> int:
    dataset = make_dataset(session, "fixture")
    write_network(session, dataset, [n for nodes, _ in pipes for n in nodes], [s for _, s in pipes])
    return dataset


def box_mesh(
    x0: float, y0: float, z0: float, x1: float, y1: float, z1: float
) -> shapely.MultiPolygon:
    c = [
        (x0, y0, z0),
        (x1, y0, z0),
        (x1, y1, z0),
        (x0, y1, z0),
        (x0, y0, z1),
        (x1, y0, z1),
        (x1, y1, z1),
        (x0, y1, z1),
    ]
    faces = [(0, 3, 2, 1), (4, 5, 6, 7), (0, 1, 5, 4), (1, 2, 6, 5), (2, 3, 7, 6), (3, 0, 4, 7)]
    return shapely.MultiPolygon([shapely.Polygon([c[i] for i in face]) for face in faces])


def test_pipe_pipe_and_pipe_element_clashes(session: Session) -> None:
    dataset = network(
        session,
        [
            straight("A", "JS", (0, 0, 5), (100, 0, 5), 400),
            straight(
                "B", "PS", (50, -50, 5.49), (50, 50, 5.49), 600
            ),  # 0.49 m apart, sizes need 0.5
            straight("C", "JS", (200, 0, 5), (300, 0, 5), 400),
            straight("D", "PS", (250, -50, 5.51), (250, 50, 5.51), 600),  # 0.51 m: clear
            straight("W1", "JS", (290, 5, 5), (310, 5, 5), 300),  # through the wall
            straight(
                "W2", "DL", (299.9, 20, 5), (299.9, 40, 5), 300
            ),  # 0.1 m from the wall face, r 0.15
            straight("W3", "DL", (299.8, -40, 5), (299.8, -20, 5), 300),  # 0.2 m: clear
        ],
    )
    ifc = make_dataset(session, "ifc", kind="ifc")
    session.execute(
        text(
            "INSERT INTO building_element (dataset_id, guid, ifc_class, name, mesh)"
            " VALUES (:d, 'WALL1', 'IfcWall', 'wall', :m)"
        ),
        {"d": ifc, "m": hex_geom(box_mesh(300, -50, 0, 300.3, 50, 10))},
    )
    answer = detect_clashes(session, dataset_id=dataset).model_dump()
    found = {(c["a"]["code"], c["b"].get("code") or c["b"]["guid"]): c for c in answer["clashes"]}
    assert set(found) == {("A", "B"), ("W1", "WALL1"), ("W2", "WALL1")}
    assert found[("A", "B")]["overlap_m"] == pytest.approx(0.01, abs=1e-6)
    assert found[("A", "B")]["location"] == pytest.approx([50.0, 0.0, 5.245], abs=1e-6)
    assert (
        found[("W1", "WALL1")]["overlap_m"] == pytest.approx(0.15)
        and found[("W1", "WALL1")]["b"]["ifc_class"] == "IfcWall"
    )
    assert found[("W2", "WALL1")]["overlap_m"] == pytest.approx(0.05, abs=1e-6)
    only_pipes = detect_clashes(session, dataset_id=dataset, kinds=("pipe",)).model_dump()
    assert only_pipes["clash_count"] == 1


def excavation_site(session: Session) -> int:
    return network(
        session,
        [
            straight(
                "P1", "JS", (-20, 5, 8.9), (30, 5, 8.9), 200, owner="Water Co"
            ),  # top 9.0: cover 1.0
            straight("P2", "PS", (-20, 7, 7.3), (30, 7, 7.3), 400),  # top 7.5: cover 2.5
            straight(
                "P3", "DL", (10.55, -20, 9.0), (10.55, 30, 9.0), 100, owner="Grid"
            ),  # outside, 0.5 m
            straight("P4", "RQ", (20, -20, 9.0), (20, 30, 9.0), 100),  # far away
        ],
    )


CUT = {"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]]}


def test_excavation_known_answers(session: Session) -> None:
    dataset = excavation_site(session)
    answer = excavation_impact(
        session, polygon=CUT, depth_m=2.0, margin_m=1.0, dataset_id=dataset
    ).model_dump()
    pipes = {p["code"]: p for p in answer["pipes"]}
    assert set(pipes) == {"P1", "P2", "P3"}
    p1, p2, p3 = pipes["P1"], pipes["P2"], pipes["P3"]
    assert (p1["status"], p1["min_cover_m"], p1["vertical_clearance_m"]) == (
        "struck",
        pytest.approx(1.0),
        pytest.approx(-1.0),
    )
    assert p1["length_in_zone_m"] == pytest.approx(12.0) and p1["horizontal_clearance_m"] == 0
    assert (p2["status"], p2["min_cover_m"], p2["vertical_clearance_m"]) == (
        "under",
        pytest.approx(2.5),
        pytest.approx(0.5),
    )
    assert (p3["status"], p3["horizontal_clearance_m"], p3["vertical_clearance_m"]) == (
        "near",
        pytest.approx(0.5),
        None,
    )
    assert answer["struck_count"] == 1
    assert [(n["utility"], n["owner"], n["pipes"], n["struck"]) for n in answer["notify"]] == [
        ("DL", "Grid", 1, 0),
        ("JS", "Water Co", 1, 1),
        ("PS", None, 1, 0),
    ]
    assert {f["properties"]["role"] for f in answer["geojson"]["features"]} == {
        "struck",
        "under",
        "near",
    }
    tight = excavation_impact(
        session, polygon=CUT, depth_m=2.0, margin_m=0.0, dataset_id=dataset
    ).model_dump()
    assert {p["code"] for p in tight["pipes"]} == {"P1", "P2"}
    with pytest.raises(InvalidInput):
        excavation_impact(session, polygon=CUT, depth_m=0)


def test_query_filters(session: Session) -> None:
    dataset = network(
        session,
        [
            straight("Q1", "JS", (0, 0, 8.5), (100, 0, 8.5), 300, material="DI", year=1990),
            straight(
                "Q2",
                "PS",
                (0, 10, 6.0),
                (100, 10, 6.0),
                800,
                material="RC",
                year=2010,
                subclass="YS",
            ),
            straight(
                "Q3",
                "RQ",
                (0, 20, 9.0),
                (100, 20, 9.0),
                160,
                material="PE",
                year=2020,
                pressure="中压B",
            ),
            straight("Q4", "JS", (500, 0, 8.5), (600, 0, 8.5), 100, material="PE", year=2001),
        ],
    )
    everything = query_pipes(session, bbox=(-1, -1, 101, 21), dataset_id=dataset).model_dump()
    assert [f["properties"]["code"] for f in everything["features"]] == ["Q1", "Q2", "Q3"]
    assert everything["numberMatched"] == 3
    q1 = everything["features"][0]["properties"]
    assert q1["depth_m"] == pytest.approx(10.0 - 8.65) and q1["colour"] == "#00FFFF"

    def codes(**kw: object) -> list[str]:
        result = query_pipes(
            session,
            dataset_id=dataset,
            bbox=(-1, -1, 700, 21),
            **kw,  # type: ignore[arg-type]
        ).model_dump()
        return [f["properties"]["code"] for f in result["features"]]

    assert codes(utilities=["JS"]) == ["Q1", "Q4"]
    assert codes(utilities=["YS"]) == ["Q2"]
    assert codes(utilities=["雨水"]) == ["Q2"]
    assert codes(materials=["pe"]) == ["Q3", "Q4"]
    assert codes(diameter_min_mm=200, diameter_max_mm=800) == ["Q1", "Q2"]
    assert codes(year_min=2001, year_max=2010) == ["Q2", "Q4"]
    assert codes(depth_min_m=2.0) == ["Q2"]
    assert codes(depth_max_m=1.0) == ["Q3"]
    assert codes(limit=2, offset=1) == ["Q2", "Q3"]
    line = {"type": "LineString", "coordinates": [[50, 14], [60, 14]]}
    assert [
        f["properties"]["code"]
        for f in query_pipes(session, line=line, buffer_m=5, dataset_id=dataset).features
    ] == ["Q2"]
    polygon = {
        "type": "Polygon",
        "coordinates": [[[490, -5], [610, -5], [610, 5], [490, 5], [490, -5]]],
    }
    assert [f["properties"]["code"] for f in query_pipes(session, polygon=polygon).features][
        -1
    ] == "Q4"
    with pytest.raises(InvalidInput):
        query_pipes(session, bbox=(1, 1, 0, 0))
    with pytest.raises(InvalidInput):
        query_pipes(session, bbox=(0, 0, 1, 1), utilities=["XYZ"])


def test_qc_report(session: Session) -> None:
    qc = {"orphan_nodes": ["J9"], "elevation_mismatches": 2}
    dataset = make_dataset(session, "with qc", qc=qc)
    assert dataset_qc(session, dataset_id=dataset).qc == qc
    terrain = make_dataset(session, "dem", kind="terrain")
    with pytest.raises(InvalidInput):
        dataset_qc(session, dataset_id=terrain)

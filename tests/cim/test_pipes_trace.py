"""Tracing: SWMM Example1's drainage structure (networkx oracle) and hand-made stop conditions."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest
from sqlalchemy.orm import Session

from cim.errors import InvalidInput
from cim.services.pipes.trace import trace
from tests.cim.pipes_fixtures import N, S, make_dataset, write_network
from tests.conftest import SHARED_SAMPLES


def swmm_sections(path: Path) -> dict[str, list[list[str]]]:
    sections: dict[str, list[list[str]]] = {}
    current = ""
    for line in path.read_text().splitlines():
        line = line.split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            current = line.strip("[]").upper()
            sections[current] = []
        else:
            sections[current].append(line.split())
    return sections


def load_swmm(session: Session) -> tuple[int, dict[str, int], nx.DiGraph]:
    sections = swmm_sections(SHARED_SAMPLES / "pipes" / "swmm_Example1.inp")
    xy = {r[0]: (float(r[1]), float(r[2])) for r in sections["COORDINATES"]}
    invert = {r[0]: float(r[1]) for r in sections["JUNCTIONS"] + sections["OUTFALLS"]}
    kind = {r[0]: "manhole" for r in sections["JUNCTIONS"]} | {
        r[0]: "outfall" for r in sections["OUTFALLS"]
    }
    geom1 = {r[0]: float(r[2]) for r in sections["XSECTIONS"]}
    nodes = [
        N(name, *xy[name], ground_z=invert[name] + 3.0, utility="PS", kind=kind[name])
        for name in invert
    ]
    segments = []
    oracle = nx.DiGraph()
    for name, inlet, outlet, _length, _n, in_offset, out_offset, *_ in sections["CONDUITS"]:
        oracle.add_edge(inlet, outlet)
        segments.append(
            S(
                name,
                inlet,
                outlet,
                utility="PS",
                diameter_mm=geom1[name] * 1000,
                start_invert_z=invert[inlet] + float(in_offset),
                end_invert_z=invert[outlet] + float(out_offset),
            )
        )
    dataset = make_dataset(session, "swmm_Example1")
    node_ids, _ = write_network(session, dataset, nodes, segments)
    return dataset, node_ids, oracle


@pytest.mark.parametrize("direction_from", ["invert", "link"])
def test_trace_matches_swmm_example1_outfall_structure(
    session: Session, direction_from: str
) -> None:
    _, node_ids, oracle = load_swmm(session)
    outfalls = [n for n in oracle if oracle.out_degree(n) == 0]
    assert outfalls == ["18"]
    for name, node_id in node_ids.items():
        down = trace(
            session,
            node_id=node_id,
            direction="downstream",
            direction_from=direction_from,  # type: ignore[arg-type]
            with_geojson=False,
        ).model_dump()
        assert {n["code"] for n in down["nodes"]} == {name} | nx.descendants(oracle, name)
        assert [n["code"] for n in down["terminal_nodes"]] == ["18"]
        up = trace(
            session,
            node_id=node_id,
            direction="upstream",
            direction_from=direction_from,  # type: ignore[arg-type]
            with_geojson=False,
        ).model_dump()
        assert {n["code"] for n in up["nodes"]} == {name} | nx.ancestors(oracle, name)
    everything = trace(session, node_id=node_ids["18"], direction="upstream").model_dump()
    assert everything["segment_count"] == oracle.number_of_edges()
    assert {n["code"] for n in everything["terminal_nodes"]} == {
        n for n in oracle if oracle.in_degree(n) == 0
    }
    assert everything["geojson"]["features"][0]["properties"]["colour"] == "#4C3926"


def test_invert_direction_overrides_a_link_stored_backwards(session: Session) -> None:
    dataset = make_dataset(session, "reversed")
    nodes = [N("a", 0, 0, utility="PS"), N("b", 50, 0, utility="PS"), N("c", 100, 0, utility="PS")]
    segments = [
        S("ab", "a", "b", utility="PS", start_invert_z=5.0, end_invert_z=4.0),
        S(
            "cb", "c", "b", utility="PS", start_invert_z=3.0, end_invert_z=4.0
        ),  # stored against the flow
    ]
    node_ids, _ = write_network(session, dataset, nodes, segments)
    by_invert = trace(session, node_id=node_ids["a"], direction="downstream").model_dump()
    assert [n["code"] for n in by_invert["nodes"]] == ["a", "b", "c"]
    assert [n["distance_m"] for n in by_invert["nodes"]] == [0.0, 50.0, 100.0]
    by_link = trace(
        session, node_id=node_ids["a"], direction="downstream", direction_from="link"
    ).model_dump()
    assert [n["code"] for n in by_link["nodes"]] == ["a", "b"]
    limited = trace(
        session, node_id=node_ids["a"], direction="downstream", max_distance_m=60
    ).model_dump()
    assert [n["code"] for n in limited["nodes"]] == ["a", "b"]


def test_pressure_component_stops_at_valves_and_class_changes(session: Session) -> None:
    dataset = make_dataset(session, "pressure")
    nodes = [
        N("a", 0, 0),
        N("v", 50, 0, kind="valve", valve_state="open"),
        N("b", 100, 0),
        N("c", 0, 50),
        N("w", 0, 100, kind="valve", valve_state="closed"),
        N("d", 0, 150),
    ]
    segments = [
        S("av", "a", "v"),
        S("vb", "v", "b"),
        S("ac", "a", "c", subclass="XS"),
        S("cw", "c", "w"),
        S("wd", "w", "d"),
    ]
    node_ids, _ = write_network(session, dataset, nodes, segments)
    full = trace(session, node_id=node_ids["a"], direction="downstream").model_dump()
    assert full["mode"] == "connected_component"
    assert {n["code"] for n in full["nodes"]} == {
        "a",
        "v",
        "b",
        "c",
        "w",
    }  # closed valve w stops it
    at_valves = trace(session, node_id=node_ids["a"], stop_at_valves=True).model_dump()
    assert {n["code"] for n in at_valves["nodes"]} == {"a", "v", "c", "w"}
    same_class = trace(session, node_id=node_ids["b"], stop_at_class_change=True).model_dump()
    assert {n["code"] for n in same_class["nodes"]} == {"a", "v", "b"}
    with pytest.raises(InvalidInput):
        trace(session, node_id=node_ids["a"], segment_id=1)

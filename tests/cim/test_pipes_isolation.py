"""Burst-valve isolation against WNTR's valve_segments (the oracle) on Net3 and ky4."""

from __future__ import annotations

from collections import defaultdict

import pytest
import wntr
from sqlalchemy.orm import Session

from cim.errors import InvalidInput
from cim.services.pipes_graph import load_graph
from cim.services.pipes_isolation import isolate, isolate_burst
from tests.cim.pipes_fixtures import N, S, make_dataset, wntr_rows, write_network
from tests.conftest import SHARED_SAMPLES


def groups(series: object) -> dict[int, set[str]]:
    out: dict[int, set[str]] = defaultdict(set)
    for name, label in series.items():  # type: ignore[attr-defined]
        out[int(label)].add(str(name))
    return out


def load_wntr(session: Session, name: str, seed: int) -> tuple[object, object, int, dict[str, int]]:
    wn = wntr.network.WaterNetworkModel(str(SHARED_SAMPLES / "pipes" / name))
    layer = wntr.network.generate_valve_layer(wn, placement_type="strategic", n=2, seed=seed)
    nodes, segments = wntr_rows(wn, layer)
    dataset = make_dataset(session, name)
    node_ids, _ = write_network(session, dataset, nodes, segments)
    return wn, layer, dataset, node_ids


@pytest.mark.parametrize(("name", "seed"), [("Net3.inp", 1), ("ky4.inp", 7)])
def test_isolation_equals_wntr_valve_segments(session: Session, name: str, seed: int) -> None:
    wn, layer, dataset, _ = load_wntr(session, name, seed)
    node_seg, link_seg, _ = wntr.metrics.topographic.valve_segments(wn.to_graph(), layer)  # type: ignore[attr-defined]
    links_by_label, nodes_by_label = groups(link_seg), groups(node_seg)
    graph = load_graph(session, dataset)
    index = {code: i for i, code in enumerate(graph.segment_codes)}
    tested = 0
    for link_name in wn.link_name_list:  # type: ignore[attr-defined]
        result = isolate(graph, index[link_name], frozenset())
        ours = {
            graph.segment_codes[s] for s in result.segments if "#" not in graph.segment_codes[s]
        }
        label = int(link_seg[link_name])
        assert ours == links_by_label[label], link_name
        assert {graph.node_codes[n] for n in result.nodes} == nodes_by_label.get(label, set()), (
            link_name
        )
        # every ring valve sits on a link of the segment or protects one of its nodes
        for valve in result.valves_to_close:
            _, valve_link, valve_node = graph.node_codes[valve].split(":")
            assert valve_link in ours or valve_node in nodes_by_label.get(label, set())
        tested += 1
    assert tested == len(wn.link_name_list) > 100  # type: ignore[attr-defined]


def test_failed_valve_extends_to_next_ring_like_wntr_without_it(session: Session) -> None:
    wn, layer, dataset, node_ids = load_wntr(session, "Net3.inp", 3)
    graph = load_graph(session, dataset)
    checked = 0
    for row in list(layer.itertuples())[:15]:  # type: ignore[attr-defined]
        reduced = layer.drop(index=row.Index)  # type: ignore[attr-defined]
        _, link_seg, _ = wntr.metrics.topographic.valve_segments(wn.to_graph(), reduced)  # type: ignore[attr-defined]
        expected = groups(link_seg)[int(link_seg[row.link])]
        valve_id = node_ids[f"V:{row.link}:{row.node}"]
        first = isolate_burst(
            session, segment_id=_segment_id(session, dataset, row.link), with_geojson=False
        )
        second = isolate_burst(
            session,
            segment_id=_segment_id(session, dataset, row.link),
            failed_valve_ids=[valve_id],
            with_geojson=False,
        )
        assert valve_id in {v["id"] for v in first["valves_to_close"]}
        assert valve_id in {v["id"] for v in second["failed_valves_passed"]}
        assert valve_id not in {v["id"] for v in second["valves_to_close"]}
        ours = {s["code"] for s in second["isolated_segments"] if "#" not in s["code"]}
        assert ours == expected
        assert second["length_m"] >= first["length_m"]
        checked += 1
    assert checked == 15
    del graph


def _segment_id(session: Session, dataset: int, code: str) -> int:
    from sqlalchemy import text

    return int(
        session.execute(
            text("SELECT id FROM pipe_segment WHERE dataset_id = :d AND code = :c"),
            {"d": dataset, "c": code},
        ).scalar_one()
    )


def small_network(session: Session) -> tuple[int, dict[str, int], dict[str, int]]:
    """a -- b --V1-- c -- d, with a branch c -- e --V2(broken)-- f -- g --V3-- h (all JS DN200)."""
    nodes = [
        N("a", 0, 0),
        N("b", 100, 0),
        N("V1", 150, 0, kind="valve", valve_state="open"),
        N("c", 200, 0),
        N("d", 300, 0),
        N("e", 200, 100),
        N("V2", 200, 150, kind="valve", valve_state="broken"),
        N("f", 200, 200),
        N("g", 200, 300, kind="hydrant"),
        N("V3", 200, 350, kind="valve", valve_state="closed"),
        N("h", 200, 400),
    ]
    segments = [
        S("ab", "a", "b", diameter_mm=200),
        S("bV1", "b", "V1", diameter_mm=200),
        S("V1c", "V1", "c", diameter_mm=200),
        S("cd", "c", "d", diameter_mm=200),
        S("ce", "c", "e", diameter_mm=200),
        S("eV2", "e", "V2", diameter_mm=200),
        S("V2f", "V2", "f", diameter_mm=200),
        S("fg", "f", "g", diameter_mm=200),
        S("gV3", "g", "V3", diameter_mm=200),
        S("V3h", "V3", "h", diameter_mm=200),
    ]
    dataset = make_dataset(session, "small")
    node_ids, seg_ids = write_network(session, dataset, nodes, segments)
    return dataset, node_ids, seg_ids


def test_hand_made_ring_length_volume_and_point_pick(session: Session) -> None:
    dataset, node_ids, seg_ids = small_network(session)
    answer = isolate_burst(session, point=(250.0, 3.0), dataset_id=dataset)
    assert answer["burst_segment"]["code"] == "cd"
    assert [v["code"] for v in answer["valves_to_close"]] == ["V1"]
    assert [v["code"] for v in answer["valves_already_closed"]] == ["V3"]
    assert [v["code"] for v in answer["failed_valves_passed"]] == ["V2"]
    codes = {s["code"] for s in answer["isolated_segments"]}
    assert codes == {"V1c", "cd", "ce", "eV2", "V2f", "fg", "gV3"}
    length = 50 + 100 + 100 + 50 + 50 + 100 + 50
    assert answer["length_m"] == pytest.approx(length, abs=1e-6)
    assert answer["volume_m3"] == pytest.approx(length * 3.141592653589793 * 0.01, abs=1e-3)
    assert answer["affected_node_kinds"] == {"junction": 4, "hydrant": 1}
    roles = {f["properties"]["role"] for f in answer["geojson"]["features"]}
    assert roles == {"isolated", "close", "failed"}
    # V1 found stuck on site: the second call extends past it to the a-b side
    again = isolate_burst(session, segment_id=seg_ids["cd"], failed_valve_ids=[node_ids["V1"]])
    assert {s["code"] for s in again["isolated_segments"]} == codes | {"ab", "bV1"}
    assert again["valves_to_close"] == []


def test_isolation_refuses_gravity_pipes_and_bad_valves(session: Session) -> None:
    dataset, node_ids, seg_ids = small_network(session)
    sewer = make_dataset(session, "sewer")
    _, sewer_segs = write_network(
        session,
        sewer,
        [N("m1", 0, 0, utility="PS"), N("m2", 10, 0, utility="PS")],
        [S("s", "m1", "m2", utility="PS")],
    )
    with pytest.raises(InvalidInput, match="pressure networks"):
        isolate_burst(session, segment_id=sewer_segs["s"])
    with pytest.raises(InvalidInput, match="not a valve"):
        isolate_burst(session, segment_id=seg_ids["cd"], failed_valve_ids=[node_ids["c"]])
    with pytest.raises(InvalidInput, match="no pipe segment within"):
        isolate_burst(session, point=(5000.0, 5000.0), dataset_id=dataset)

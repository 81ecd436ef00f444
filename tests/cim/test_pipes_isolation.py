"""Burst-valve isolation against WNTR's valve_segments (the oracle) on Net3 and ky4.

The network and a valve layer from WNTR's ``generate_valve_layer`` go through the real importer
(``cim import pipes NET.inp --valves layer.csv``), then every link's isolated set is compared
with WNTR's segment of that link.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import wntr
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cim.errors import InvalidInput
from cim.services.pipes import isolation
from cim.services.pipes.graph import load_graph
from cim.services.pipes.isolation import isolate, isolate_burst
from importers.pipes import PipeImportOptions, import_pipes
from tests.cim.pipes_fixtures import N, S, make_dataset, write_network
from tests.cli_support import run_cim
from tests.conftest import SHARED_SAMPLES, cli_env

# how each sample is placed: Net3 has drawing coordinates, ky4 is in Kentucky South (US feet)
PLACEMENT = {"Net3.inp": ["--origin", "500000,3400000"], "ky4.inp": ["--crs", "EPSG:3547"]}


def groups(series: Any) -> dict[int, set[str]]:
    out: dict[int, set[str]] = defaultdict(set)
    for name, label in series.items():
        out[int(label)].add(str(name))
    return out


def import_with_valves(
    database_url: str, engine: Engine, tmp_path: Path, name: str, seed: int, *, via_cli: bool
) -> tuple[Any, Any, int]:
    """Import sample ``name`` with a strategic N-2 valve layer; (model, layer, dataset id)."""
    path = SHARED_SAMPLES / "pipes" / name
    wn = wntr.network.WaterNetworkModel(str(path))
    layer = wntr.network.generate_valve_layer(wn, placement_type="strategic", n=2, seed=seed)
    valves = tmp_path / f"{path.stem}_valves.csv"
    layer.to_csv(valves)  # WNTR's own format: an unnamed index column, then link,node
    if via_cli:
        done = run_cim(
            "import", "pipes", str(path), *PLACEMENT[name], "--valves", str(valves), "--json",
            env=cli_env(database_url), cwd="/",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        [summary] = json.loads(done.stdout)
        dataset = summary["dataset"]
    else:
        flag, value = PLACEMENT[name]
        options = PipeImportOptions(
            crs=value if flag == "--crs" else None,
            origin=(500000.0, 3400000.0, 0.0) if flag == "--origin" else None,
            valves=valves,
        )
        [result] = import_pipes(engine, [path], options)
        dataset = result.dataset.model_dump()
    assert dataset["counts"]["nodes_by_kind"]["valve"] == len(layer)
    assert dataset["options"]["valves"]["file"] == valves.name
    return wn, layer, int(dataset["id"])


def stored_valves(session: Session, dataset: int) -> dict[str, dict[str, Any]]:
    """Valve node code -> its id and attrs (link, node it protects)."""
    rows = session.execute(
        text("SELECT code, id, attrs FROM pipe_node WHERE dataset_id = :d AND kind = 'valve'"),
        {"d": dataset},
    )
    return {code: {"id": id_, **attrs} for code, id_, attrs in rows}


def stubs(session: Session, dataset: int) -> dict[str, str]:
    """Stub piece code (between a node and its valve) -> the node it touches."""
    rows = session.execute(
        text(
            "SELECT s.code, a.code, b.code FROM pipe_segment s"
            " JOIN pipe_node a ON a.id = s.start_node_id JOIN pipe_node b ON b.id = s.end_node_id"
            " WHERE s.dataset_id = :d AND s.attrs->>'piece' = 'stub'"
        ),
        {"d": dataset},
    )
    return {code: (a if not a.startswith("V:") else b) for code, a, b in rows}


@pytest.mark.parametrize(
    ("name", "seed", "via_cli"), [("Net3.inp", 1, True), ("ky4.inp", 7, False)]
)
def test_isolation_equals_wntr_valve_segments(
    database_url: str,
    engine: Engine,
    clean_tables: None,
    tmp_path: Path,
    name: str,
    seed: int,
    via_cli: bool,
) -> None:
    wn, layer, dataset = import_with_valves(
        database_url, engine, tmp_path, name, seed, via_cli=via_cli
    )
    node_seg, link_seg, _ = wntr.metrics.topographic.valve_segments(wn.to_graph(), layer)
    links_by_label, nodes_by_label = groups(link_seg), groups(node_seg)
    with Session(engine) as session:
        graph = load_graph(session, dataset)
        valves = stored_valves(session, dataset)
        stub_node = stubs(session, dataset)
    index = {code: i for i, code in enumerate(graph.segment_codes)}
    tested = 0
    for link_name in wn.link_name_list:
        result = isolate(graph, index[link_name], frozenset())
        # the precomputed valve zone and the walk give the same sets, segment by segment
        assert result == isolation._walk(graph, index[link_name], frozenset(), frozenset())
        codes = {graph.segment_codes[s] for s in result.segments}
        ours = codes - set(stub_node)
        label = int(link_seg[link_name])
        expected_nodes = nodes_by_label.get(label, set())
        assert ours == links_by_label[label], link_name
        assert {graph.node_codes[n] for n in result.nodes} == expected_nodes, link_name
        # a stub walked lies between a node of the segment and that node's valve
        assert all(stub_node[c] in expected_nodes for c in codes & set(stub_node)), link_name
        # every ring valve sits on a link of the segment or protects one of its nodes
        for valve in result.valves_to_close:
            stored = valves[graph.node_codes[valve]]
            assert stored["link"] in ours or stored["node"] in expected_nodes, link_name
        tested += 1
    assert tested == len(wn.link_name_list) > 100


def test_failed_valve_extends_to_next_ring_like_wntr_without_it(
    database_url: str, engine: Engine, clean_tables: None, tmp_path: Path
) -> None:
    wn, layer, dataset = import_with_valves(
        database_url, engine, tmp_path, "Net3.inp", 3, via_cli=False
    )
    with Session(engine) as session:
        valves = stored_valves(session, dataset)
        stub_codes = set(stubs(session, dataset))
        checked = 0
        for row in list(layer.itertuples())[:15]:
            reduced = layer.drop(index=row.Index)
            _, link_seg, _ = wntr.metrics.topographic.valve_segments(wn.to_graph(), reduced)
            expected = groups(link_seg)[int(link_seg[row.link])]
            valve_id = valves[f"V:{row.link}:{row.node}"]["id"]
            segment_id = _segment_id(session, dataset, row.link)
            first = isolate_burst(session, segment_id=segment_id, with_geojson=False).model_dump()
            second = isolate_burst(
                session, segment_id=segment_id, failed_valve_ids=[valve_id], with_geojson=False
            ).model_dump()
            assert valve_id in {v["id"] for v in first["valves_to_close"]}
            assert valve_id in {v["id"] for v in second["failed_valves_passed"]}
            assert valve_id not in {v["id"] for v in second["valves_to_close"]}
            ours = {s["code"] for s in second["isolated_segments"]} - stub_codes
            assert ours == expected
            assert second["length_m"] >= first["length_m"]
            checked += 1
    assert checked == 15


def _segment_id(session: Session, dataset: int, code: str) -> int:
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
    answer = isolate_burst(session, point=(250.0, 3.0), dataset_id=dataset).model_dump()
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
    again = isolate_burst(
        session, segment_id=seg_ids["cd"], failed_valve_ids=[node_ids["V1"]]
    ).model_dump()
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

"""EPANET + valve layer (``--valves``): where valves go, how pipes are cut, bad layers refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import shapely
from sqlalchemy import Engine

from cim.errors import ImportFailed, InvalidInput
from importers.pipes.valve_layer import VALVE_OFFSET_M
from tests.cli_support import run_cim
from tests.conftest import cli_env
from tests.importers.pipes_helpers import PIPES, dataset_count, nodes, run, segments

ORIGIN = (500_000.0, 3_400_000.0, 0.0)
FT = 0.3048
# Drawing coordinates (placed at ORIGIN in the storage CRS, so x/y below are exact):
# R1 -P1- J1 -P2 (5 m)- J2 -P3 (20 m east, then 40 m north via a vertex)- J3 =V1 (PRV)= J4,
# J1 -P5- J5, and P4, a loop from J5 to itself.
TINY = """[TITLE]
valve layer test network

[JUNCTIONS]
 J1  100  0
 J2  110  0
 J3  120  0
 J4  120  0
 J5  100  0

[RESERVOIRS]
 R1  150

[PIPES]
 P1  R1  J1  1000  12  100  0  Open
 P2  J1  J2  1000  12  100  0  Open
 P3  J2  J3  1000   8  100  0  Open
 P4  J5  J5  1000   8  100  0  Open
 P5  J1  J5  1000   8  100  0  Open

[VALVES]
 V1  J3  J4  8  PRV  50  0

[COORDINATES]
 R1  -10  0
 J1    0  0
 J2    5  0
 J3   25  40
 J4   25  45
 J5    0  -10

[VERTICES]
 P3  25  0

[OPTIONS]
 Units  GPM
 Headloss  H-W

[END]
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.inp"
    path.write_text(TINY)
    return path


def _layer(tmp_path: Path, text: str, name: str = "valves.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_valves_cut_the_pipes_at_the_offset_along_the_polyline(
    engine: Engine, clean_tables: None, tiny: Path, tmp_path: Path
) -> None:
    # WNTR's to_csv format: an unnamed index column first
    layer = _layer(tmp_path, ",link,node\n0,P3,J2\n1,P3,J3\n2,P2,J2\n")
    result = run(engine, tiny, origin=ORIGIN, valves=layer)
    stored = nodes(engine, result.dataset.id)
    links = segments(engine, result.dataset.id)
    x0, y0 = ORIGIN[:2]
    # P3 is 60 m long: valves 1 m from each end, the J3 one on the northward leg
    assert VALVE_OFFSET_M == 1.0
    v_j2, v_j3 = stored["V:P3:J2"], stored["V:P3:J3"]
    assert (v_j2["x"], v_j2["y"]) == pytest.approx((x0 + 6.0, y0 + 0.0), abs=1e-6)
    assert (v_j3["x"], v_j3["y"]) == pytest.approx((x0 + 25.0, y0 + 39.0), abs=1e-6)
    assert v_j2["kind"] == "valve" and v_j2["valve_state"] == "open"
    assert v_j3["attrs"] == {
        "valve_layer": "valves.csv", "line": 3, "link": "P3", "node": "J3", "offset_m": 1.0,
    }  # fmt: skip
    # ground interpolated along the pipe between J2 (110 ft) and J3 (120 ft)
    assert v_j3["ground_z"] == pytest.approx((110 + 10 * 59 / 60) * FT, abs=1e-6)
    # P2 is 5 m long: its valve sits 1/10 of it (0.5 m) from J2
    assert (stored["V:P2:J2"]["x"], stored["V:P2:J2"]["y"]) == pytest.approx(
        (x0 + 4.5, y0), abs=1e-6
    )
    # the pieces: stubs LINK#NODE between node and valve, the middle keeps the EPANET name
    ends = {code: (s["start"], s["end"]) for code, s in links.items() if code.startswith("P")}
    assert ends == {
        "P1": ("R1", "J1"),
        "P2": ("J1", "V:P2:J2"),
        "P2#J2": ("V:P2:J2", "J2"),
        "P3#J2": ("J2", "V:P3:J2"),
        "P3": ("V:P3:J2", "V:P3:J3"),
        "P3#J3": ("V:P3:J3", "J3"),
        "P4": ("J5", "J5"),
        "P5": ("J1", "J5"),
    }
    main = shapely.from_wkt(links["P3"]["wkt"])
    assert [c for xy in main.coords for c in xy[:2]] == pytest.approx(
        [x0 + 6, y0, x0 + 25, y0, x0 + 25, y0 + 39], abs=1e-6
    )
    pieces = ("P3#J2", "P3", "P3#J3")
    assert sum(shapely.from_wkt(links[c]["wkt"]).length for c in pieces) == pytest.approx(
        60.0, abs=0.01
    )  # 3D length; the pipe falls 10 ft over 60 m
    assert links["P3"]["attrs"]["source_link"] == "P3"
    assert links["P3"]["attrs"]["piece"] == "main"
    assert links["P3#J3"]["attrs"]["piece"] == "stub"
    assert links["P3#J3"]["attrs"]["epanet_type"] == "pipe"  # the link's attrs on every piece
    assert links["P3#J3"]["diameter_mm"] == pytest.approx(8 * 25.4, abs=1e-6)
    counts = result.dataset.counts
    assert counts["nodes_by_kind"]["valve"] == 4  # 3 from the layer + the PRV V1
    assert counts["source_types"]["valve_layer"] == {"valves": 3, "duplicate_rows": 0}


def test_layer_without_index_with_states_and_duplicates(
    engine: Engine, clean_tables: None, tiny: Path, tmp_path: Path
) -> None:
    layer = _layer(tmp_path, "link,node,state\nP5,J1,Closed\nP5,J5,\nP5,J1,closed\n")
    result = run(engine, tiny, origin=ORIGIN, valves=layer)
    stored = nodes(engine, result.dataset.id)
    assert stored["V:P5:J1"]["valve_state"] == "closed"
    assert stored["V:P5:J5"]["valve_state"] == "open"  # empty state: open
    assert result.dataset.counts["source_types"]["valve_layer"] == {
        "valves": 2,
        "duplicate_rows": 1,
    }
    assert result.warnings == ["valves.csv: 1 duplicate valve row(s) counted once"]


def test_the_valve_layer_is_part_of_the_source_hash(
    engine: Engine, clean_tables: None, tiny: Path, tmp_path: Path
) -> None:
    bare = run(engine, tiny, origin=ORIGIN)
    layer = _layer(tmp_path, "link,node\nP2,J1\n")
    first = run(engine, tiny, origin=ORIGIN, valves=layer)
    assert first.created and first.dataset.id != bare.dataset.id
    assert first.dataset.options["valves"]["file"] == "valves.csv"
    again = run(engine, tiny, origin=ORIGIN, valves=layer)
    assert not again.created and again.dataset.id == first.dataset.id
    layer.write_text("link,node\nP2,J2\n")  # a changed valve layer: the next version
    changed = run(engine, tiny, origin=ORIGIN, valves=layer)
    assert changed.created and changed.dataset.id == first.dataset.id
    assert changed.dataset.source_sha256 != first.dataset.source_sha256
    assert (
        changed.dataset.options["valves"]["sha256"] != (first.dataset.options["valves"]["sha256"])
    )
    assert dataset_count(engine) == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("link,node\nP2,J1\nP9,J1\n", r"1 valve\(s\) on links the network does not have: P9 "
         r"\(line\(s\) 3\)"),
        (",link,node\n0,P2,J3\n", r"not an end of their link; line 2: link P2 joins J1 and J2, "
         r"not J3"),
        ("link,junction\nP2,J1\n", r"lacks column\(s\) node; expected link,node\[,state\]"),
        ("pipe,node\nP2,J1\n", r"lacks column\(s\) link"),
        ("link,node,state\nP2,J1,half-open\n", r"line 2: valve state 'half-open'; one of open, "
         "closed, broken, inaccessible"),
        ("link,node,status\nP2,J1,open\n", r"unknown valve layer column\(s\) 'status'"),
        ("link,node\nP2,\n", r"empty link or node at line\(s\) 2"),
        ("link,node,state\nP2,J1,open\nP2,J1,broken\n", "given different states at lines 2, 3"),
        ("link,node\nV1,J3\n", "link V1 is an EPANET valve"),
        ("link,node\nP4,J5\n", "link P4 starts and ends at the same node"),
        ("", "empty valve layer"),
    ],
)  # fmt: skip
def test_bad_layers_are_refused_and_nothing_is_stored(
    engine: Engine, tiny: Path, tmp_path: Path, text: str, message: str
) -> None:
    before = dataset_count(engine)
    with pytest.raises(ImportFailed, match=r"^valves\.csv: .*" + message):
        run(engine, tiny, origin=ORIGIN, valves=_layer(tmp_path, text))
    assert dataset_count(engine) == before


def test_a_valve_layer_goes_with_one_epanet_network_only(
    engine: Engine, tiny: Path, tmp_path: Path
) -> None:
    layer = _layer(tmp_path, "link,node\nP2,J1\n")
    before = dataset_count(engine)
    with pytest.raises(
        InvalidInput, match=r"goes with exactly one EPANET .inp network; given swmm"
    ):
        run(engine, PIPES / "swmm_Example1.inp", origin=ORIGIN, valves=layer)
    with pytest.raises(InvalidInput, match=r"given epanet \(tiny.inp\) \+ epanet \(Net1.inp\)"):
        import_all(engine, [tiny, PIPES / "Net1.inp"], valves=layer)
    with pytest.raises(InvalidInput, match="no such file"):
        run(engine, tiny, origin=ORIGIN, valves=tmp_path / "missing.csv")
    assert dataset_count(engine) == before


def import_all(engine: Engine, paths: list[Path], valves: Path) -> None:
    from importers.pipes import PipeImportOptions, import_pipes

    import_pipes(engine, paths, PipeImportOptions(origin=ORIGIN, valves=valves))


def test_cli_refuses_a_valve_layer_for_gis_layers(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    layer = _layer(tmp_path, "link,node\nP2,J1\n")
    geojson = tmp_path / "lines.geojson"
    geojson.write_text(
        '{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},'
        '"geometry":{"type":"LineString","coordinates":[[0,0],[10,0]]}}]}'
    )
    before = dataset_count(engine)
    done = run_cim(
        "import", "pipes", str(geojson), "--crs", "EPSG:4547", "--valves", str(layer),
        env=cli_env(database_url), cwd="/",
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "a valve layer goes with exactly one EPANET .inp network; given gis" in done.stderr
    assert dataset_count(engine) == before

"""EPANET import (through WNTR): counts per type, elevations, coordinates, valves, bad files."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import wntr
from pyproj import Transformer
from sqlalchemy import Engine, text

from cim.errors import ImportFailed, UnsupportedCRS
from cim.services.pipes.sections import section_label
from tests.importers.pipes_helpers import PIPES, dataset_count, nodes, run, segments

ORIGIN = (500_000.0, 3_400_000.0, 0.0)


def _model(path: Path) -> wntr.network.WaterNetworkModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return wntr.network.WaterNetworkModel(str(path))


@pytest.mark.parametrize("name", ["Net1.inp", "Net3.inp"])
def test_counts_and_values_equal_wntr(engine: Engine, clean_tables: None, name: str) -> None:
    path = PIPES / name
    wn = _model(path)
    result = run(engine, path, origin=ORIGIN)
    stored = nodes(engine, result.dataset.id)
    links = segments(engine, result.dataset.id)
    kinds = [n["kind"] for n in stored.values()]
    assert kinds.count("junction") == wn.num_junctions
    assert kinds.count("tank") == wn.num_tanks
    assert kinds.count("reservoir") == wn.num_reservoirs
    types = [s["link_type"] for s in links.values()]
    assert types.count("pipe") == wn.num_pipes
    assert types.count("pump") == wn.num_pumps
    assert result.dataset.counts["pipe_segment"] == wn.num_links
    for name_, junction in wn.junctions():
        node = stored[name_]
        assert node["ground_z"] == pytest.approx(junction.elevation, abs=1e-3)
        # drawing coordinates placed at --origin in the storage CRS: x = E + x_source
        assert node["x"] == pytest.approx(ORIGIN[0] + junction.coordinates[0], abs=1e-3)
        assert node["y"] == pytest.approx(ORIGIN[1] + junction.coordinates[1], abs=1e-3)
    for name_, pipe in wn.pipes():
        link = links[name_]
        assert (link["start"], link["end"]) == (pipe.start_node_name, pipe.end_node_name)
        assert link["diameter_mm"] == pytest.approx(pipe.diameter * 1000, abs=1e-3)
        assert link["npoints"] == 2 + len(pipe.vertices)
    assert result.dataset.qc["by_rule"]["missing_node"] == 0


def test_ky4_in_kentucky_feet_transformed_by_pyproj(engine: Engine, clean_tables: None) -> None:
    path = PIPES / "ky4.inp"
    wn = _model(path)
    result = run(engine, path, crs="EPSG:3547", replace=True)
    assert result.dataset.source_crs == "EPSG:3547"
    # the reservoir has a head, not a ground: its pipe borrows the neighbours' ground
    assert set(result.dataset.counts["z_source"]) == {"default_cover", "neighbour_ground"}
    stored = nodes(engine, result.dataset.id)
    links = segments(engine, result.dataset.id)
    assert len(stored) == wn.num_nodes
    assert [s["link_type"] for s in links.values()].count("pipe") == wn.num_pipes
    assert [s["link_type"] for s in links.values()].count("pump") == wn.num_pumps
    # Oracle: pyproj directly (the storage SRID of the test database is 4547); ky4 lies
    # outside 4547's zone, so we compare against the same transform the CRS would give.
    to_4547 = Transformer.from_crs("EPSG:3547", "EPSG:4547", always_xy=True)
    names = wn.junction_name_list[:50]
    xs, ys = to_4547.transform(
        [wn.get_node(n).coordinates[0] for n in names],
        [wn.get_node(n).coordinates[1] for n in names],
    )
    got = np.array([[stored[n]["x"], stored[n]["y"]] for n in names])
    assert np.abs(got - np.column_stack([xs, ys])).max() < 1e-3
    for n in names:  # WNTR gives elevations in metres already (ft in the file)
        assert stored[n]["ground_z"] == pytest.approx(wn.get_node(n).elevation, abs=1e-3)
    pipe = wn.get_link(wn.pipe_name_list[0])
    link = links[pipe.name]
    assert link["npoints"] == 2 + len(pipe.vertices)
    # pipe top 1 m (default cover) below the ground of its start junction
    ground = wn.get_node(pipe.start_node_name).elevation
    assert link["start_top_z"] == pytest.approx(ground - 1.0, abs=1e-3)
    assert link["start_invert_z"] == pytest.approx(ground - 1.0 - pipe.diameter, abs=1e-3)
    _nominal_sizes_of_an_inch_network(engine, result.dataset.id, wn)


# ASME B36.10M NPS (inches) -> DN, as the code tables in shared/reference/wave2-facts.md §6 give it.
ASME_DN = {1: 25, 2: 50, 3: 80, 4: 100, 6: 150, 8: 200, 10: 250, 12: 300, 14: 350, 16: 400,
           18: 450, 20: 500, 24: 600, 30: 750, 36: 900}  # fmt: skip


def _nominal_sizes_of_an_inch_network(
    engine: Engine, dataset_id: int, wn: wntr.network.WaterNetworkModel
) -> None:
    """ky4's diameters are in inches: every label is a whole DN, the exact size is kept."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT code, diameter_mm, nominal_dn, section_shape FROM pipe_segment"
                " WHERE dataset_id = :d AND link_type = 'pipe'"
            ),
            {"d": dataset_id},
        ).all()
    assert len(rows) == wn.num_pipes
    decimal = [r.diameter_mm for r in rows if r.diameter_mm != round(r.diameter_mm)]
    assert decimal, "ky4 should hold converted (decimal) diameters"
    for r in rows:
        inches = wn.get_link(r.code).diameter / 0.0254
        assert r.diameter_mm == pytest.approx(inches * 25.4, abs=1e-6)  # exact size kept
        assert r.nominal_dn == ASME_DN[round(inches)]
        label = section_label(r.section_shape, r.diameter_mm, None, None)
        assert label == f"DN{ASME_DN[round(inches)]}" and "." not in label


def test_valves_become_valve_nodes(engine: Engine, clean_tables: None, tmp_path: Path) -> None:
    text = (PIPES / "Net1.inp").read_text()
    valved = text.replace(
        "[VALVES]\n",
        "[VALVES]\n V1  10  11  12  TCV  0  0\n",
    ).replace("[STATUS]\n", "[STATUS]\n V1 Closed\n")
    # Pipe 10 joins 10 and 11 in Net1; add a valve alongside it.
    path = tmp_path / "net1_valve.inp"
    path.write_text(valved)
    wn = _model(path)
    assert wn.num_valves == 1
    result = run(engine, path, origin=ORIGIN)
    stored = nodes(engine, result.dataset.id)
    links = segments(engine, result.dataset.id)
    valve = stored["V1"]
    assert valve["kind"] == "valve"
    assert valve["valve_state"] == "closed"
    assert valve["attrs"]["valve_type"] == "TCV"
    assert (links["V1:a"]["start"], links["V1:a"]["end"]) == ("10", "V1")
    assert (links["V1:b"]["start"], links["V1:b"]["end"]) == ("V1", "11")
    assert result.dataset.counts["nodes_by_kind"]["valve"] == 1


def test_bad_syntax_names_the_line_and_stores_nothing(engine: Engine) -> None:
    before = dataset_count(engine)
    with pytest.raises(ImportFailed, match=r"line 330.*\[FOO\]"):
        run(engine, PIPES / "epanet_bad_syntax.inp", origin=ORIGIN)
    assert dataset_count(engine) == before


def test_drawing_coordinates_without_origin_are_refused(engine: Engine) -> None:
    before = dataset_count(engine)
    with pytest.raises(UnsupportedCRS, match="--origin"):
        run(engine, PIPES / "Net1.inp", crs="EPSG:4547")
    assert dataset_count(engine) == before

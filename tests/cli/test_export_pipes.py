"""``cim export pipes --format epanet``: import -> export -> WNTR reads the same network.

The oracle is WNTR reading the source ``.inp``: node and link names, types, ends, diameters,
hydraulic lengths, elevations, base demands, roughness, valve settings, patterns, curves,
controls and coordinates must come back (values within 1e-6 relative). Net3 and ky4 are imported
with a generated gate-valve layer, so the pipes cut at the valves must be put back together.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import wntr
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cim.errors import InvalidInput, NotFound
from cim.services.simulation.export import export_epanet
from importers.pipes import PipeImportOptions, import_pipes
from tests.cim.test_pipes_isolation import import_with_valves
from tests.cli_support import run_cim
from tests.conftest import SHARED_SAMPLES, cli_env

REL = 1e-6


def read(path: Path) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return wntr.network.WaterNetworkModel(str(path))


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= REL * max(abs(a), abs(b), 1e-12)


def assert_same_network(source: Any, exported: Any) -> None:
    """Everything the importer keeps, element by element, within 1e-6 relative."""
    assert sorted(source.node_name_list) == sorted(exported.node_name_list)
    assert sorted(source.link_name_list) == sorted(exported.link_name_list)
    for name, node in source.nodes():
        other = exported.get_node(name)
        assert other.node_type == node.node_type, name
        assert (
            close(node.coordinates[0], other.coordinates[0])
            or abs(node.coordinates[0] - other.coordinates[0]) < 1e-3
        ), name
        assert abs(node.coordinates[1] - other.coordinates[1]) < 1e-3, name
        if node.node_type == "Reservoir":
            assert close(node.base_head, other.base_head), name
            continue
        assert close(node.elevation, other.elevation), name
        if node.node_type == "Junction":
            assert close(node.base_demand, other.base_demand), name
            assert [d.pattern_name for d in node.demand_timeseries_list] == [
                d.pattern_name for d in other.demand_timeseries_list
            ], name
        else:
            for key in ("diameter", "min_level", "max_level", "init_level"):
                assert close(getattr(node, key), getattr(other, key)), (name, key)
    for name, link in source.links():
        other = exported.get_link(name)
        assert other.link_type == link.link_type, name
        assert (other.start_node_name, other.end_node_name) == (
            link.start_node_name,
            link.end_node_name,
        ), name
        assert len(other.vertices) == len(link.vertices), name
        if link.link_type == "Pipe":
            for key in ("length", "diameter", "roughness", "minor_loss"):
                assert close(getattr(link, key), getattr(other, key)), (name, key)
            assert other.check_valve == link.check_valve, name
        if link.link_type == "Valve":
            assert other.valve_type == link.valve_type, name
            assert close(link.initial_setting, other.initial_setting), name
            assert close(link.diameter, other.diameter), name
        if link.link_type == "Pump":
            assert other.pump_type == link.pump_type, name
        assert str(other.initial_status) == str(link.initial_status), name
    assert sorted(source.pattern_name_list) == sorted(exported.pattern_name_list)
    for name, pattern in source.patterns():
        got = exported.get_pattern(name).multipliers
        assert all(close(a, b) for a, b in zip(pattern.multipliers, got, strict=True)), name
    assert sorted(source.curve_name_list) == sorted(exported.curve_name_list)
    assert len(source.control_name_list) == len(exported.control_name_list)
    assert source.options.time.hydraulic_timestep == exported.options.time.hydraulic_timestep
    assert source.options.hydraulic.headloss == exported.options.hydraulic.headloss


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "seed", "via_cli"), [("Net3.inp", 1, True), ("ky4.inp", 3, False)]
)
def test_export_equals_source(
    database_url: str,
    engine: Engine,
    clean_tables: None,
    tmp_path: Path,
    name: str,
    seed: int,
    via_cli: bool,
) -> None:
    source, _, dataset = import_with_valves(
        database_url, engine, tmp_path, name, seed, via_cli=False
    )
    out = tmp_path / f"out_{name}"
    if via_cli:
        args = ("export", "pipes", str(dataset), str(out), "--format", "epanet", "--json")
        done = run_cim(*args, env=cli_env(database_url), cwd="/")
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
    else:
        with Session(engine) as session:
            summary = export_epanet(session, dataset, out).model_dump()
    assert summary["units"] == str(source.options.hydraulic.inpfile_units)
    assert summary["pipes"] == source.num_pipes and summary["defaults"] == []
    assert_same_network(source, read(out))


def test_epanet_valves_round_trip(engine: Engine, clean_tables: None, tmp_path: Path) -> None:
    """PRV/TCV/FCV valves (stored as a valve node and two halves) come back as valve links."""
    wn = read(SHARED_SAMPLES / "pipes" / "Net1.inp")
    wn.add_junction("V1", base_demand=0.0, elevation=200.0, coordinates=(25.0, 70.0))
    wn.add_junction("V2", base_demand=0.001, elevation=210.0, coordinates=(45.0, 75.0))
    wn.add_valve("PRV1", "12", "V1", diameter=0.2, valve_type="PRV", initial_setting=35.5)
    wn.add_valve("TCV1", "V1", "V2", diameter=0.15, valve_type="TCV", initial_setting=4.25)
    wn.add_valve("FCV1", "V2", "13", diameter=0.1, valve_type="FCV", initial_setting=0.0125)
    source_path = tmp_path / "valves.inp"
    wntr.network.write_inpfile(wn, str(source_path))
    source = read(source_path)
    options = PipeImportOptions(origin=(500000.0, 3400000.0, 12.0))
    [result] = import_pipes(engine, [source_path], options)
    out = tmp_path / "valves_out.inp"
    with Session(engine) as session:
        export_epanet(session, result.dataset.id, out)
    assert_same_network(source, read(out))


def test_export_refuses_other_networks(engine: Engine, clean_tables: None, tmp_path: Path) -> None:
    options = PipeImportOptions(origin=(500000.0, 3400000.0, 0.0))
    [result] = import_pipes(engine, [SHARED_SAMPLES / "pipes" / "swmm_Example1.inp"], options)
    with Session(engine) as session:
        with pytest.raises(InvalidInput, match="not an EPANET water network"):
            export_epanet(session, result.dataset.id, tmp_path / "x.inp")
        with pytest.raises(NotFound):
            export_epanet(session, 987654, tmp_path / "x.inp")
        with pytest.raises(InvalidInput, match="flow units"):
            export_epanet(session, result.dataset.id, tmp_path / "x.inp", units="FURLONGS")

"""Shutdown impact against WNTR run directly on the source ``.inp`` (the oracle), and bad input.

Net3 and ky4 go through the real importer with a generated strategic valve layer; a burst is
isolated, its valves closed in the stored model and in WNTR's model of the source file (the
same links closed, the controls operating them removed), both run pressure-driven over 24 h:
pressures at every junction and every step agree within 1e-3 m, and so do the answer's minima.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import wntr
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cim.errors import InvalidInput, NotFound
from cim.services.simulation import hydraulics
from cim.services.simulation.epanet_model import load_model
from cim.services.simulation.shutdown import DEFAULT_SERVICE_PRESSURE_M, shutdown_impact
from importers.pipes import PipeImportOptions, import_pipes
from tests.cim.test_pipes_isolation import import_with_valves
from tests.conftest import SHARED_SAMPLES

TOLERANCE_M = 1e-3
PDD = hydraulics.PressureDemand(0.0, DEFAULT_SERVICE_PRESSURE_M, 0.5)


def oracle(path: Path, closed: list[str], engine: hydraulics.Engine) -> tuple[Any, Any]:
    """Pressures (time x junction) of WNTR on the source file, as is and with ``closed`` shut."""
    runs = []
    for shut in ([], closed):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wn = wntr.network.WaterNetworkModel(str(path))
        wn.options.hydraulic.demand_model = "PDD"
        wn.options.hydraulic.minimum_pressure = 0.0
        wn.options.hydraulic.required_pressure = DEFAULT_SERVICE_PRESSURE_M
        wn.options.hydraulic.pressure_exponent = 0.5
        wn.options.time.duration = 24 * 3600
        wn.options.time.report_timestep = wn.options.time.hydraulic_timestep
        wn.options.time.report_start = 0
        wn.options.quality.parameter = "NONE"
        for name in shut:
            wn.get_link(name).initial_status = wntr.network.LinkStatus.Closed
        for name, control in list(wn.controls()):
            if {getattr(o, "name", None) for o in control.requires()} & set(shut):
                wn.remove_control(name)
        runs.append(hydraulics.simulate(wn, engine).pressure)
    return runs[0], runs[1]


def burst_segment(session: Session, dataset: int, link: str) -> int:
    return int(
        session.execute(
            text("SELECT id FROM pipe_segment WHERE dataset_id = :d AND code = :c"),
            {"d": dataset, "c": link},
        ).scalar_one()
    )


def compare(
    session: Session, dataset: int, path: Path, burst: str, engine: hydraulics.Engine
) -> None:
    answer = shutdown_impact(
        session, segment_id=burst_segment(session, dataset, burst), engine=engine
    )
    closed = [c.link for c in answer.closed_links]
    assert closed and answer.isolation is not None
    assert len(closed) <= len(answer.isolation.valves_to_close)
    # the stored model, run the service's way, against WNTR on the source file
    stored = load_model(session, dataset)
    hydraulics.prepare(stored.wn, duration_h=24, pdd=PDD)
    before = hydraulics.simulate(stored.wn, engine).pressure
    stored.wn.reset_initial_values()
    hydraulics.close_links(stored.wn, closed)
    after = hydraulics.simulate(stored.wn, engine).pressure
    want_before, want_after = oracle(path, closed, engine)
    for got, want in ((before, want_before), (after, want_after)):
        assert list(got.index) == list(want.index)
        assert sorted(got.columns) == sorted(want.columns)
        difference = (got[want.columns] - want).abs().to_numpy().max()
        assert difference < TOLERANCE_M
    minima = pd.DataFrame({"before": want_before.min(), "after": want_after.min()})
    assert answer.nodes, "a burst isolation must change something"
    isolated = {n.code for n in answer.isolated_nodes}
    for node in answer.nodes:
        if node.code in isolated:  # cut off from every source: reported at 0 m
            assert node.after_min_m == 0.0 and node.role == "isolated"
            continue
        assert node.before_min_m == pytest.approx(minima.at[node.code, "before"], abs=TOLERANCE_M)
        assert node.after_min_m == pytest.approx(minima.at[node.code, "after"], abs=TOLERANCE_M)
    assert {n.code for n in answer.nodes if n.role == "isolated"} == isolated
    assert answer.demand.not_served_m3 > 0 and 0 < answer.demand.not_served_percent < 100
    assert answer.geojson is not None and answer.geojson["features"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "seed", "burst", "solver"),
    [
        ("Net3.inp", 1, "117", "epanet"),
        ("Net3.inp", 1, "117", "wntr"),
        ("ky4.inp", 7, "P-100", "epanet"),
    ],
)
def test_shutdown_pressures_equal_wntr_on_the_source(
    database_url: str,
    engine: Engine,
    clean_tables: None,
    tmp_path: Path,
    name: str,
    seed: int,
    burst: str,
    solver: hydraulics.Engine,
) -> None:
    _, _, dataset = import_with_valves(database_url, engine, tmp_path, name, seed, via_cli=False)
    with Session(engine) as session:
        compare(session, dataset, SHARED_SAMPLES / "pipes" / name, burst, solver)


def _import(engine: Engine, name: str) -> int:
    options = PipeImportOptions(origin=(500000.0, 3400000.0, 0.0))
    [result] = import_pipes(engine, [SHARED_SAMPLES / "pipes" / name], options)
    return int(result.dataset.id)


def _segment(session: Session, dataset: int) -> int:
    return int(
        session.execute(
            text("SELECT min(id) FROM pipe_segment WHERE dataset_id = :d"),
            {"d": dataset},
        ).scalar_one()
    )


def test_closing_a_pipe_without_valves_and_bad_input(engine: Engine, clean_tables: None) -> None:
    net1 = _import(engine, "Net1.inp")
    with Session(engine) as session:
        pipe = _segment(session, net1)
        datasets = session.execute(text("SELECT count(*) FROM dataset")).scalar_one()
        answer = shutdown_impact(session, segment_ids=[pipe], duration_h=6, with_geojson=False)
        assert [c.segment_id for c in answer.closed_links] == [pipe]
        assert answer.geojson is None and answer.hydraulic_step_s == 3600
        with pytest.raises(InvalidInput, match="has no valves"):
            shutdown_impact(session, segment_id=pipe)
        with pytest.raises(InvalidInput, match="nothing to close"):
            shutdown_impact(session, dataset_id=net1)
        with pytest.raises(InvalidInput, match="not both"):
            shutdown_impact(session, segment_id=pipe, segment_ids=[pipe])
        with pytest.raises(InvalidInput, match="duration_h"):
            shutdown_impact(session, segment_ids=[pipe], duration_h=0)
        with pytest.raises(InvalidInput, match="service_pressure_m"):
            shutdown_impact(session, segment_ids=[pipe], service_pressure_m=-1)
        with pytest.raises(NotFound):
            shutdown_impact(session, segment_ids=[10**12])
        junction = session.execute(
            text("SELECT min(id) FROM pipe_node WHERE dataset_id = :d"), {"d": net1}
        ).scalar_one()
        with pytest.raises(InvalidInput, match="is not a valve"):
            shutdown_impact(session, valve_ids=[junction])
        assert session.execute(text("SELECT count(*) FROM dataset")).scalar_one() == datasets
    swmm = _import(engine, "swmm_Example1.inp")
    with Session(engine) as session:
        segment = _segment(session, swmm)
    with Session(engine) as session, pytest.raises(InvalidInput, match="not an EPANET water"):
        shutdown_impact(session, segment_ids=[segment])


def test_a_run_that_does_not_converge_is_refused(engine: Engine, clean_tables: None) -> None:
    """EPANET stops at the first unbalanced step when told to (``UNBALANCED STOP``)."""
    net1 = _import(engine, "Net1.inp")
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE dataset SET options = jsonb_set(jsonb_set(options,"
                " '{source_model,options,hydraulic,trials}', '1'),"
                " '{source_model,options,hydraulic,unbalanced}', '\"STOP\"') WHERE id = :d"
            ),
            {"d": net1},
        )
    with Session(engine) as session:
        segment = _segment(session, net1)
    with Session(engine) as session, pytest.raises(InvalidInput, match="did not converge"):
        shutdown_impact(session, segment_ids=[segment])

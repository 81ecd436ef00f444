"""Shutdown impact (关阀停水影响): who loses water or pressure when valves and pipes are closed.

Input: a burst (segment or point: :func:`cim.services.pipes.isolation.isolate_burst` names the
valves to close, passing broken or inaccessible ones), or valve node ids and segment ids to
close. The stored EPANET network becomes a WNTR model
(:mod:`cim.services.simulation.epanet_model`, the model ``cim export pipes`` writes); a gate valve
of the ``--valves`` layer closes the link it sits on (with no demand between a valve and its
node, closing the link or only the piece beside the valve gives the same heads everywhere), a
segment closes its link, an EPANET valve node closes its valve. The model runs pressure-driven
over the period twice, as stored and with the closures; the answer compares the two.

Defaults and where they come from:

* service pressure 14 m (0.14 MPa, 0.1 MPa taken as 10 m of water as in Chinese practice):
  "管网末梢压力不得低于0.14MPa" - the network-end pressure of CJ/T 316-2009 citing CJJ 58-2007
  §3.1.3, read second-hand (unverified). Multi-storey supply asks more: 最小服务水头 10 m for one
  storey, 12 m for two, +4 m per further storey (28 m for six; 城市给水工程规划规范, unverified).
* pressure-driven demand: full demand from the service pressure up (the pressure customers are
  promised), none at 0 m, exponent 0.5 - WNTR's defaults except the required pressure, which
  WNTR sets to 0.07 m (EPANET 2.2's default, under which PDD is almost demand-driven).
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session

from cim import bounds
from cim.errors import InvalidInput, NotFound
from cim.services.pipes.geojson import feature_collection, node_features, segment_features
from cim.services.pipes.graph import load_graph
from cim.services.pipes.isolation import isolate_burst
from cim.services.pipes.models import BurstIsolation, NodeRef, ValveNode
from cim.services.pipes.scope import refuse_hidden, session_srid
from cim.services.results import Feature, FeatureCollection
from cim.services.simulation.epanet_model import StoredModel, load_model
from cim.services.simulation.hydraulics import (
    Engine,
    PressureDemand,
    Run,
    close_links,
    expected_demand,
    prepare,
    simulate,
    volume_m3,
)
from cim.services.simulation.models import (
    ClosedLink,
    DemandServed,
    NodePressure,
    PressureDemandModel,
    ShutdownImpact,
)

DEFAULT_SERVICE_PRESSURE_M = 14.0
"""0.14 MPa at the network end (CJ/T 316-2009 citing CJJ 58-2007 §3.1.3; unverified)."""
DEFAULT_DURATION_H = 24.0
MAX_DURATION_H = 168.0
PRESSURE_DROP_M = 0.1
"""A node whose pressure falls by this much at some step is reported (solver noise is ~1e-4 m)."""


def shutdown_impact(
    session: Session,
    *,
    segment_id: int | None = None,
    point: tuple[float, float] | None = None,
    dataset_id: int | None = None,
    failed_valve_ids: list[int] | None = None,
    valve_ids: list[int] | None = None,
    segment_ids: list[int] | None = None,
    duration_h: float = DEFAULT_DURATION_H,
    service_pressure_m: float = DEFAULT_SERVICE_PRESSURE_M,
    minimum_pressure_m: float = 0.0,
    engine: Engine = "epanet",
    tolerance_m: float = 50.0,
    hidden_utilities: frozenset[str] = frozenset(),
    output_crs: str | None = None,
    with_geojson: bool = True,
) -> ShutdownImpact:
    """Simulate the network with the closures and without; compare pressures and demand served.

    Give a burst (``segment_id`` or ``point``, storage CRS; ``failed_valve_ids`` are passed) or
    ``valve_ids`` and/or ``segment_ids`` to close. Nothing is stored.
    """
    _check_parameters(duration_h, service_pressure_m, minimum_pressure_m)
    refuse_hidden("JS", hidden_utilities)
    isolation = None
    if segment_id is not None or point is not None:
        if valve_ids or segment_ids:
            raise InvalidInput("give a burst (segment_id or point) or valves to close, not both")
        isolation = isolate_burst(
            session,
            segment_id=segment_id,
            point=point,
            dataset_id=dataset_id,
            failed_valve_ids=failed_valve_ids,
            tolerance_m=tolerance_m,
            with_geojson=False,
            hidden_utilities=hidden_utilities,
        )
        dataset = isolation.dataset_id
        _require_valves(session, dataset, isolation.burst_segment.id)
        valve_ids = [v.id for v in isolation.valves_to_close]
        if not valve_ids:
            raise InvalidInput(
                f"no operable valve isolates segment {isolation.burst_segment.id}: every valve "
                "around it is closed already or failed; nothing to close"
            )
    else:
        if not valve_ids and not segment_ids:
            raise InvalidInput(
                "nothing to close: give segment_id or point (burst isolation), or valve_ids "
                "and/or segment_ids"
            )
        dataset = _dataset_of(session, valve_ids or [], segment_ids or [], dataset_id)
    stored = load_model(session, dataset)
    closed = _closures(session, stored, valve_ids or [], segment_ids or [])
    pdd = PressureDemand(minimum_pressure_m, service_pressure_m, 0.5)
    before, after, removed = _runs(stored, closed, duration_h, pdd, engine)
    defaults = stored.defaults + [f"control {name} removed (it operates a closed link)"
                                  for name in removed]  # fmt: skip
    return _answer(
        session,
        stored,
        closed,
        before,
        after,
        isolation=isolation,
        duration_h=duration_h,
        pdd=pdd,
        defaults=defaults,
        output_crs=output_crs if with_geojson else None,
        with_geojson=with_geojson,
    )


def _check_parameters(duration_h: float, service_m: float, minimum_m: float) -> None:
    if not 0 < duration_h <= MAX_DURATION_H:
        raise InvalidInput(f"duration_h must be in (0, {MAX_DURATION_H:g}] hours")
    if not 0 < service_m <= 200:
        raise InvalidInput("service_pressure_m must be in (0, 200] metres")
    if not 0 <= minimum_m < service_m:
        raise InvalidInput("minimum_pressure_m must be at least 0 and below service_pressure_m")


def _require_valves(session: Session, dataset: int, segment: int) -> None:
    count = session.execute(
        text("SELECT count(*) FROM pipe_node WHERE dataset_id = :d AND kind = 'valve'"),
        {"d": dataset},
    ).scalar_one()
    if not count:
        raise InvalidInput(
            f"dataset {dataset} has no valves, so no ring isolates segment {segment}: import a "
            "valve layer (cim import pipes NET.inp --valves layer.csv) or give valves to close"
        )


def _dataset_of(
    session: Session, valve_ids: list[int], segment_ids: list[int], dataset_id: int | None
) -> int:
    """The one dataset the given nodes and segments belong to (refused when they are not)."""
    found: set[int] = set()
    for table, ids in (("pipe_node", valve_ids), ("pipe_segment", segment_ids)):
        rows = session.execute(
            text(f"SELECT id, dataset_id FROM {table} WHERE id = ANY(:ids)"), {"ids": ids}
        ).all()
        missing = sorted(set(ids) - {r[0] for r in rows})
        if missing:
            what = "node" if table == "pipe_node" else "segment"
            raise NotFound(f"{what}(s) {', '.join(map(str, missing[:5]))} do not exist")
        found |= {int(r[1]) for r in rows}
    if len(found) > 1:
        raise InvalidInput(f"the valves and segments belong to several datasets: {sorted(found)}")
    [dataset] = found
    if dataset_id is not None and dataset != dataset_id:
        raise InvalidInput(f"the valves and segments belong to dataset {dataset}, not {dataset_id}")
    return dataset


def _closures(
    session: Session, stored: StoredModel, valve_ids: list[int], segment_ids: list[int]
) -> list[ClosedLink]:
    """The model links to close, each with the valve node or segment that closes it."""
    graph = load_graph(session, stored.dataset_id)
    closed: dict[str, ClosedLink] = {}
    for valve_id in valve_ids:
        link = stored.link_of_valve.get(valve_id)
        if link is None:
            raise InvalidInput(f"node {valve_id} is not a valve of dataset {stored.dataset_id}")
        i = graph.node_index(valve_id)
        valve = ValveNode(
            id=valve_id,
            code=graph.node_codes[i],
            kind=graph.node_kind[i],
            valve_state=graph.node_valve_state[i],
        )
        closed.setdefault(link, ClosedLink(link=link, valve=valve, segment_id=None))
    for segment in segment_ids:
        link = stored.link_of_segment.get(segment)
        if link is None:
            raise InvalidInput(f"segment {segment} is not a link of the hydraulic model")
        closed.setdefault(link, ClosedLink(link=link, valve=None, segment_id=segment))
    return list(closed.values())


def _runs(
    stored: StoredModel,
    closed: list[ClosedLink],
    duration_h: float,
    pdd: PressureDemand,
    engine: Engine,
) -> tuple[Run, Run, list[str]]:
    """The run as stored and the run with the closures (the same model, reset in between)."""
    wn = stored.wn
    prepare(wn, duration_h=duration_h, pdd=pdd)
    bounds.check_deadline("shutdown: simulating the network as it is")
    before = simulate(wn, engine)
    wn.reset_initial_values()
    removed = close_links(wn, [c.link for c in closed])
    bounds.check_deadline("shutdown: simulating the network with the closures")
    after = simulate(wn, engine)
    return before, after, removed


def cut_off(wn: Any, closed: list[str]) -> set[str]:
    """Junctions with no path to a tank or reservoir once ``closed`` links are shut."""
    graph = nx.MultiGraph(wn.to_graph())
    names = set(closed)
    graph.remove_edges_from([(u, v, k) for u, v, k in graph.edges(keys=True) if k in names])
    sources = set(wn.tank_name_list) | set(wn.reservoir_name_list)
    fed: set[str] = set()
    for component in nx.connected_components(graph):
        if component & sources:
            fed |= component
    return set(wn.junction_name_list) - fed


def _answer(
    session: Session,
    stored: StoredModel,
    closed: list[ClosedLink],
    before: Run,
    after: Run,
    *,
    isolation: BurstIsolation | None,
    duration_h: float,
    pdd: PressureDemand,
    defaults: list[str],
    output_crs: str | None,
    with_geojson: bool,
) -> ShutdownImpact:
    wn = stored.wn
    service = pdd.required_pressure_m
    isolated = cut_off(wn, [c.link for c in closed])
    after_p = after.pressure.reindex(before.pressure.index).ffill()
    # a junction cut off from every tank and reservoir has no supply: pressure 0 (what the
    # engines compute for a disconnected part is not a pressure anyone gets)
    after_p[sorted(isolated)] = 0.0
    before_min, after_min = before.pressure.min(), after_p.min()
    drop = (before.pressure - after_p).max()
    table = pd.DataFrame({"before": before_min, "after": after_min, "drop": drop})
    table["role"] = None
    beyond = ~table.index.isin(list(isolated))
    below = beyond & (table["after"] < service) & (table["before"] >= service)
    table.loc[beyond & (table["drop"] >= PRESSURE_DROP_M), "role"] = "pressure_drop"
    table.loc[below, "role"] = "below_service"
    table.loc[~beyond, "role"] = "isolated"
    listed = table[table["role"].notna()].sort_values("drop", ascending=False)
    room = bounds.current().highlight_room(len(listed))
    nodes = [_pressure(stored, name, row) for name, row in listed.iloc[:room].iterrows()]
    return ShutdownImpact(
        dataset_id=stored.dataset_id,
        isolation=isolation,
        closed_links=closed,
        duration_h=duration_h,
        hydraulic_step_s=int(wn.options.time.hydraulic_timestep),
        service_pressure_m=service,
        pressure_demand_model=PressureDemandModel(
            minimum_pressure_m=pdd.minimum_pressure_m,
            required_pressure_m=pdd.required_pressure_m,
            pressure_exponent=pdd.pressure_exponent,
        ),
        isolated_nodes=[
            NodeRef(id=stored.node_id[n], code=n, kind=stored.node_kind[n])
            for n in sorted(isolated)
        ],
        below_service_nodes=[n for n in nodes if n.role == "below_service"],
        below_service_before=int((table["before"] < service).sum()),
        affected_beyond_count=int((table["role"].isin(["below_service", "pressure_drop"])).sum()),
        demand=_demand(wn, before, after, isolated),
        nodes=nodes,
        defaults=defaults,
        geojson=_outage(session, stored, closed, nodes, output_crs) if with_geojson else None,
        truncated=room < len(listed),
    )


def _pressure(stored: StoredModel, name: str, row: pd.Series) -> NodePressure:
    return NodePressure(
        id=stored.node_id[name],
        code=name,
        kind=stored.node_kind[name],
        before_min_m=round(float(row["before"]), 4),
        after_min_m=round(float(row["after"]), 4),
        max_drop_m=round(float(row["drop"]), 4),
        role=row["role"],
    )


def _demand(wn: Any, before: Run, after: Run, isolated: set[str]) -> DemandServed:
    """Demand volumes over the period; what the shutdown takes away, in m³ and % of demand.
    Cut-off junctions get nothing; negative demands (inflows) are left out."""
    expected = float(volume_m3(expected_demand(wn, before.demand.index).clip(lower=0)).sum())
    served_before = float(volume_m3(before.demand.clip(lower=0)).sum())
    delivered = after.demand.clip(lower=0)
    delivered[sorted(isolated)] = 0.0
    served_after = float(volume_m3(delivered).sum())
    lost = max(served_before - served_after, 0.0)
    return DemandServed(
        expected_m3=round(expected, 3),
        served_before_m3=round(served_before, 3),
        served_after_m3=round(served_after, 3),
        not_served_m3=round(lost, 3),
        not_served_percent=round(100.0 * lost / expected, 3) if expected > 0 else 0.0,
    )


def _outage(
    session: Session,
    stored: StoredModel,
    closed: list[ClosedLink],
    nodes: list[NodePressure],
    output_crs: str | None,
) -> FeatureCollection:
    """The map of the outage: affected nodes (role, before/after pressure, drop) and closures."""
    by_id = {n.id: n for n in nodes}
    features: list[Feature] = []
    for role in ("isolated", "below_service", "pressure_drop"):
        ids = [n.id for n in nodes if n.role == role]
        for feature in node_features(session, ids, role=role):
            node = by_id[int(feature["properties"]["id"])]
            feature["properties"] |= {
                "before_min_m": node.before_min_m,
                "after_min_m": node.after_min_m,
                "max_drop_m": node.max_drop_m,
            }
            features.append(feature)
    valves = [c.valve.id for c in closed if c.valve is not None]
    features += node_features(session, valves, role="close")
    segments = [c.segment_id for c in closed if c.segment_id is not None]
    features += segment_features(session, segments, role="closed")
    return feature_collection(features, session_srid(session), output_crs)

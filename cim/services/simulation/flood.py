"""Urban flooding (城市内涝): SWMM 5 (pyswmm) run on a stored drainage network.

The stored network becomes a SWMM ``.inp`` (:mod:`cim.services.simulation.swmm_model`) written
in a temporary folder (never the working directory) with SWMM's report and output beside it;
the rain is the model's own (``storm=None``) or a Chicago design storm from a storm-intensity
formula (:mod:`cim.services.simulation.storm`), which then replaces every rain gage: one gage
``CIM_DESIGN`` rains on every subcatchment, the run starts at the storm and ends
``tail_h`` hours after it (default :data:`DEFAULT_TAIL_H`) so the network can drain. The answer:
flooded nodes (SWMM's node flooding statistics: total volume, hours flooded, peak rate, max
depth) with the extent each volume would cover on the DEM
(:mod:`cim.services.simulation.flood_extent`), surcharged conduits, outfall volumes and the
totals; GeoJSON of the flooded nodes and extents in the requested CRS. Nothing is stored here
(:mod:`cim.services.simulation.flood_hazards` saves the extents as hazard zones).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from cim import bounds
from cim.errors import InvalidInput
from cim.services.pipes.geojson import feature_collection, node_features
from cim.services.pipes.scope import session_srid
from cim.services.results import Feature, FeatureCollection
from cim.services.simulation.flood_extent import Extent, flood_extents
from cim.services.simulation.flood_models import (
    FloodedNode,
    FloodExtentFigures,
    FloodSimulation,
    FloodTotals,
    OutfallLoad,
    SurchargedConduit,
)
from cim.services.simulation.storm import DesignStorm, raingage_line, timeseries_lines
from cim.services.simulation.swmm_model import SwmmModel, load_swmm_model

DEFAULT_TAIL_H = 2.0
MAX_TAIL_H = 48.0
DESIGN_GAGE = "CIM_DESIGN"
DESIGN_SERIES = "CIM_DESIGN_STORM"
FT3 = 0.028316846592
#: m³/s per unit of each SWMM flow unit
FLOW_M3S = {"CFS": FT3, "GPM": 6.30901964e-5, "MGD": 0.0438126364, "CMS": 1.0, "LPS": 1e-3,
            "MLD": 1 / 86.4}  # fmt: skip
STEP_ADVANCE_S = 600
"""pyswmm hands control back this often (simulated seconds) so the deadline is checked."""


@dataclass
class FloodRun:
    """A flood answer with what it came from: the SWMM input and the extents (storage CRS)."""

    answer: FloodSimulation
    extents: dict[int, Extent]  # by flooded node id
    model_text: str  # the .inp SWMM ran


def flood_simulation(
    session: Session,
    dataset_id: int,
    *,
    storm: DesignStorm | None = None,
    tail_h: float = DEFAULT_TAIL_H,
    with_extents: bool = True,
    output_crs: str | None = None,
    with_geojson: bool = True,
) -> FloodSimulation:
    """Run SWMM on drainage dataset ``dataset_id`` with its own rain or ``storm``."""
    return run_flood(
        session,
        dataset_id,
        storm=storm,
        tail_h=tail_h,
        with_extents=with_extents,
        output_crs=output_crs,
        with_geojson=with_geojson,
    ).answer


def run_flood(
    session: Session,
    dataset_id: int,
    *,
    storm: DesignStorm | None = None,
    tail_h: float = DEFAULT_TAIL_H,
    with_extents: bool = True,
    output_crs: str | None = None,
    with_geojson: bool = True,
) -> FloodRun:
    """:func:`flood_simulation`, keeping the extent polygons and the model it ran."""
    if not 0 <= tail_h <= MAX_TAIL_H:
        raise InvalidInput(f"tail_h must be in [0, {MAX_TAIL_H:g}] hours")
    model = load_swmm_model(session, dataset_id)
    if storm is not None:
        apply_storm(model, storm, tail_h=tail_h)
    else:
        _require_own_rain(model)
    bounds.check_deadline("flood: building the SWMM model")
    model_text = model.text()
    with tempfile.TemporaryDirectory(prefix="cim-swmm-") as folder:
        path = Path(folder) / "model.inp"
        path.write_text(model_text, encoding="utf-8")
        run = run_swmm(path)
    answer, extents = _answer(session, model, run, storm, with_extents, output_crs, with_geojson)
    return FloodRun(answer=answer, extents=extents, model_text=model_text)


def apply_storm(model: SwmmModel, storm: DesignStorm, *, tail_h: float) -> None:
    """Make ``storm`` the only rain: one gage on every subcatchment, the run's period."""
    if not model.sections.get("SUBCATCHMENTS"):
        raise InvalidInput(
            f"dataset {model.dataset_id} has no subcatchments and no inlet nodes to give "
            "default ones: a design storm has nowhere to fall"
        )
    model.sections["RAINGAGES"] = [raingage_line(storm, DESIGN_GAGE, DESIGN_SERIES)]
    model.sections.setdefault("TIMESERIES", [])
    model.sections["TIMESERIES"] += timeseries_lines(storm, DESIGN_SERIES, us_units=model.us_units)
    model.sections["SUBCATCHMENTS"] = [_regage(line) for line in model.sections["SUBCATCHMENTS"]]
    end_min = storm.duration_min + round(tail_h * 60)
    days, minutes = divmod(end_min, 24 * 60)
    for key, value in (
        ("START_DATE", "01/01/2000"), ("START_TIME", "00:00:00"),
        ("REPORT_START_DATE", "01/01/2000"), ("REPORT_START_TIME", "00:00:00"),
        ("END_DATE", f"01/{1 + days:02d}/2000"),
        ("END_TIME", f"{minutes // 60:02d}:{minutes % 60:02d}:00"),
    ):  # fmt: skip
        model.set_option(key, value)
    model.defaults.append(
        f"rain: design storm on gage {DESIGN_GAGE} (every subcatchment), run from the storm's "
        f"start to {tail_h:g} h after its end"
    )


def _regage(line: str) -> str:
    parts = line.split()
    return " ".join([parts[0], DESIGN_GAGE, *parts[2:]]) if len(parts) > 1 else line


def _require_own_rain(model: SwmmModel) -> None:
    for line in model.sections.get("RAINGAGES", []):
        parts = line.split()
        if len(parts) > 5 and parts[4].upper() == "FILE":
            raise InvalidInput(
                f"dataset {model.dataset_id}: rain gage {parts[0]} reads file {parts[5]}, which "
                "the import does not keep; give a design storm"
            )
    if model.sections.get("SUBCATCHMENTS") and not model.sections.get("RAINGAGES"):
        raise InvalidInput(f"dataset {model.dataset_id} has no rain gage; give a design storm")


class SwmmRun:
    """What one SWMM run reported, in the file's units (volumes ft³ or m³, flows flow units)."""

    def __init__(self) -> None:
        self.flow_units = "CFS"
        self.start = ""
        self.end = ""
        self.nodes: dict[str, dict[str, float]] = {}
        self.outfalls: dict[str, dict[str, float]] = {}
        self.conduits: dict[str, dict[str, float]] = {}
        self.runoff_error = 0.0
        self.routing_error = 0.0


def run_swmm(path: Path) -> SwmmRun:
    """Run the ``.inp`` at ``path`` with pyswmm (report and output beside it)."""
    from pyswmm import Simulation  # type: ignore[import-untyped]
    from pyswmm.links import Conduit, Link  # type: ignore[import-untyped]
    from pyswmm.nodes import Node, Outfall  # type: ignore[import-untyped]

    run = SwmmRun()
    try:
        with Simulation(str(path)) as sim:
            sim.step_advance(STEP_ADVANCE_S)
            for _ in sim:
                bounds.check_deadline("flood: running SWMM")
            run.flow_units, run.start, run.end = (
                sim.flow_units,
                str(sim.start_time),
                str(sim.end_time),
            )
            for node in _elements(sim, Node, 2):
                run.nodes[node.nodeid] = dict(node.statistics)
                if node.is_outfall():
                    node.__class__ = Outfall  # what pyswmm's Nodes(sim) does
                    stats = node.outfall_statistics
                    run.outfalls[node.nodeid] = {
                        "volume": node.cumulative_inflow,
                        "average": stats["average_flowrate"],
                        "peak": stats["peak_flowrate"],
                    }
            for link in _elements(sim, Link, 3):
                if link.is_conduit():
                    link.__class__ = Conduit
                    run.conduits[link.linkid] = {
                        k: v for k, v in link.conduit_statistics.items() if isinstance(v, float)
                    }
            run.runoff_error, run.routing_error = sim.runoff_error, sim.flow_routing_error
    except Exception as exc:  # pyswmm raises bare Exceptions carrying SWMM's error text
        raise InvalidInput(f"SWMM refused the model: {_swmm_error(exc, path)}") from None
    return run


def _elements(sim: Any, kind: Any, object_type: int) -> list[Any]:
    """pyswmm ``Node`` / ``Link`` objects of every node (SWMM object type 2) or link (3). pyswmm's
    ``Nodes(sim)`` checks each name against the whole id list (quadratic: 3 s of a 1,000-node
    run); the names come from that list here, so the objects are made without the check."""
    model = sim._model
    out = []
    for name in model.getObjectIDList(object_type):
        element = kind.__new__(kind)
        element._model = model
        if kind.__name__ == "Node":
            element._nodeid = name
        else:
            element._linkid = name
        out.append(element)
    return out


def _swmm_error(exc: Exception, path: Path) -> str:
    """The first SWMM ``ERROR`` line (from the exception or the report), one line."""
    report = path.with_suffix(".rpt")
    texts = [report.read_text(errors="replace") if report.exists() else "", str(exc)]
    for body in texts:
        for line in body.splitlines():
            if "ERROR" in line and "ERROR 200" not in line:  # 200: "errors in input file"
                return " ".join(line.replace("%s", "").split())
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def _answer(
    session: Session,
    model: SwmmModel,
    run: SwmmRun,
    storm: DesignStorm | None,
    with_extents: bool,
    output_crs: str | None,
    with_geojson: bool,
) -> tuple[FloodSimulation, dict[int, Extent]]:
    volume = FT3 if model.us_units else 1.0
    flow = FLOW_M3S.get(run.flow_units.upper(), 1.0)
    length = model.length_scale
    flooded = sorted(
        ((n, s) for n, s in run.nodes.items() if s["flooding_volume"] > 0 and n in model.node_id),
        key=lambda item: -item[1]["flooding_volume"],
    )
    room = bounds.current().highlight_room(len(flooded))
    srid = session_srid(session)
    places = _places(session, [model.node_id[n] for n, _ in flooded[:room]])
    volumes = {model.node_id[n]: s["flooding_volume"] * volume for n, s in flooded[:room]}
    extents = flood_extents(session, srid, places, volumes) if with_extents else {}
    nodes = []
    for name, stats in flooded[:room]:
        node_id = model.node_id[name]
        extent = extents.get(node_id)
        nodes.append(
            FloodedNode(
                id=node_id,
                code=name,
                kind=model.node_kind[name],
                volume_m3=round(stats["flooding_volume"] * volume, 3),
                hours_flooded=round(stats["flooding_duration"], 3),
                peak_rate_m3s=round(stats["peak_flooding_rate"] * flow, 6),
                max_depth_m=round(stats["max_depth"] * length, 3),
                extent=_figures(extent),
            )
        )
    surcharged = sorted(
        (
            SurchargedConduit(
                id=model.link_id[name],
                code=name,
                hours_surcharged=round(s.get("time_surcharged", 0.0), 3),
                hours_full_both_ends=round(s.get("time_full_flow", 0.0), 3),
                hours_capacity_limited=round(s.get("time_capacity_limited", 0.0), 3),
                peak_flow_m3s=round(s.get("peak_flow", 0.0) * flow, 6),
            )
            for name, s in run.conduits.items()
            if name in model.link_id
            and max(s.get("time_surcharged", 0.0), s.get("time_full_flow", 0.0)) > 0
        ),
        key=lambda c: -c.hours_full_both_ends - c.hours_surcharged,
    )
    outfalls = [
        OutfallLoad(
            id=model.node_id[name],
            code=name,
            kind="outfall",
            volume_m3=round(o["volume"] * volume, 3),
            average_flow_m3s=round(o["average"] * flow, 6),
            peak_flow_m3s=round(o["peak"] * flow, 6),
        )
        for name, o in run.outfalls.items()
        if name in model.node_id
    ]
    totals = FloodTotals(
        flooded_node_count=len(flooded),
        flood_volume_m3=round(sum(s["flooding_volume"] for _, s in flooded) * volume, 3),
        outfall_volume_m3=round(sum(o.volume_m3 for o in outfalls), 3),
        surcharged_conduit_count=len(surcharged),
        runoff_continuity_error_percent=round(_finite(run.runoff_error), 3),
        routing_continuity_error_percent=round(_finite(run.routing_error), 3),
    )
    geojson = _geojson(session, nodes, extents, srid, output_crs) if with_geojson else None
    answer = FloodSimulation(
        dataset_id=model.dataset_id,
        rain="model" if storm is None else "design_storm",
        storm=storm,
        start=run.start,
        end=run.end,
        flow_units=run.flow_units,
        flooded_nodes=nodes,
        surcharged_conduits=surcharged[: bounds.current().highlight_room(len(surcharged))],
        outfalls=outfalls,
        totals=totals,
        defaults=model.defaults,
        geojson=geojson,
        truncated=room < len(flooded),
    )
    return answer, extents


def _finite(value: Any) -> float:
    number = float(value or 0.0)
    return number if math.isfinite(number) else 0.0


def _places(session: Session, ids: list[int]) -> dict[int, tuple[float, float]]:
    rows = session.execute(
        text("SELECT id, ST_X(geom), ST_Y(geom) FROM pipe_node WHERE id = ANY(:ids)"),
        {"ids": ids},
    ).all()
    return {int(r[0]): (float(r[1]), float(r[2])) for r in rows}


def _figures(extent: Extent | None) -> FloodExtentFigures | None:
    if extent is None:
        return None
    return FloodExtentFigures(
        dem_dataset_id=extent.dem_dataset_id,
        area_m2=round(extent.area_m2, 2),
        water_level_m=round(extent.water_level_m, 3),
        max_depth_m=round(extent.max_depth_m, 3),
        mean_depth_m=round(extent.mean_depth_m, 3),
        reaches_window_edge=extent.reaches_window_edge,
    )


def _geojson(
    session: Session,
    nodes: list[FloodedNode],
    extents: dict[int, Extent],
    srid: int,
    output_crs: str | None,
) -> FeatureCollection:
    """Flooded nodes (role ``flooded``, with their figures) and extents (role ``flood_extent``)."""
    by_id = {n.id: n for n in nodes}
    features: list[Feature] = []
    for feature in node_features(session, list(by_id), role="flooded"):
        node = by_id[int(feature["properties"]["id"])]
        feature["properties"] |= {
            "volume_m3": node.volume_m3,
            "hours_flooded": node.hours_flooded,
            "max_depth_m": node.max_depth_m,
        }
        features.append(feature)
    for node_id, extent in extents.items():
        features.append(
            {
                "type": "Feature",
                "id": f"flood_extent.{node_id}",
                "geometry": shapely.geometry.mapping(extent.geometry),
                "properties": {
                    "role": "flood_extent",
                    "node_id": node_id,
                    "code": by_id[node_id].code,
                    "volume_m3": by_id[node_id].volume_m3,
                    "area_m2": round(extent.area_m2, 2),
                    "water_level_m": round(extent.water_level_m, 3),
                    "max_depth_m": round(extent.max_depth_m, 3),
                    "reaches_window_edge": extent.reaches_window_edge,
                },
            }
        )
    return feature_collection(features, srid, output_crs)

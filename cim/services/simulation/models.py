"""Typed answers of the simulations (network export, shutdown impact); field names are the JSON
keys the HTTP API sends. Pressures and heads are metres of water, volumes cubic metres."""

from __future__ import annotations

from typing import Literal

from cim.services.pipes.models import (
    BurstIsolation,
    ListsTruncated,
    NodeRef,
    OptionalGeojson,
    ValveNode,
)
from cim.services.results import Result


class NetworkExport(Result):
    """What ``cim export pipes`` wrote: the file, its units and the element counts."""

    dataset_id: int
    format: Literal["epanet"]
    path: str
    units: str
    nodes: int
    links: int
    junctions: int
    tanks: int
    reservoirs: int
    pipes: int
    pumps: int
    valves: int
    defaults: list[str]


class SwmmExport(Result):
    """What ``cim export pipes --format swmm`` wrote: the file, its flow units, the counts of
    each section's elements, the defaults filled in and the outside files the ``.inp`` names."""

    dataset_id: int
    format: Literal["swmm"]
    path: str
    flow_units: str
    nodes: int
    links: int
    junctions: int
    outfalls: int
    storages: int
    conduits: int
    pumps: int
    orifices: int
    weirs: int
    outlets: int
    subcatchments: int
    raingages: int
    defaults: list[str]
    external_files: list[str]  # rain and time series files the model reads; cim keeps none


class ClosedLink(Result):
    """A link of the hydraulic model closed for the shutdown, and the cim row that closed it."""

    link: str
    valve: ValveNode | None  # the valve node closed, if a valve closed it
    segment_id: int | None  # the segment asked for, if a segment closed it


class PressureDemandModel(Result):
    """WNTR's pressure-driven demand: no demand at or below ``minimum_pressure_m``, all of it at
    or above ``required_pressure_m``, ``((p - Pmin) / (Preq - Pmin)) ** exponent`` between."""

    minimum_pressure_m: float
    required_pressure_m: float
    pressure_exponent: float


class NodePressure(NodeRef):
    """One node's lowest pressure over the period before and after the closure."""

    before_min_m: float
    after_min_m: float
    max_drop_m: float  # the largest fall at one time step
    role: Literal["isolated", "below_service", "pressure_drop"]


class DemandServed(Result):
    """Demand over the period (m³): what customers ask for, and what the network serves."""

    expected_m3: float
    served_before_m3: float
    served_after_m3: float
    not_served_m3: float  # served before - served after: what the shutdown takes away
    not_served_percent: float  # of the expected demand


class ShutdownImpact(Result):
    """Who loses water or pressure when valves (and pipes) are closed (关阀停水影响)."""

    dataset_id: int
    isolation: BurstIsolation | None  # the burst isolation that named the valves, if any
    closed_links: list[ClosedLink]
    duration_h: float
    hydraulic_step_s: int
    service_pressure_m: float
    pressure_demand_model: PressureDemandModel
    isolated_nodes: list[NodeRef]  # demand nodes inside the closed ring (lose water by design)
    below_service_nodes: list[NodePressure]  # beyond the ring: above service before, below after
    below_service_before: int  # nodes already below the service pressure before the closure
    affected_beyond_count: int  # beyond the ring: nodes below service or whose pressure fell
    demand: DemandServed
    nodes: list[NodePressure]  # every node whose pressure fell, largest fall first
    defaults: list[str]
    geojson: OptionalGeojson
    truncated: ListsTruncated

"""Typed answers of the flood simulation (城市内涝); field names are the JSON keys the HTTP API
sends. Volumes in m³, depths and levels in metres, flows in m³/s, durations in hours."""

from __future__ import annotations

from typing import Literal

from cim.services.datasets import DatasetSummary
from cim.services.pipes.models import ListsTruncated, NodeRef, OptionalGeojson, Ref
from cim.services.results import Result
from cim.services.simulation.storm import DesignStorm


class FloodExtentFigures(Result):
    """Where a flooded node's volume rests on the DEM (``simulation.flood_extent``)."""

    dem_dataset_id: int
    area_m2: float
    water_level_m: float
    max_depth_m: float
    mean_depth_m: float
    reaches_window_edge: bool  # the water would run beyond the window: area a lower bound


class FloodedNode(NodeRef):
    """A node that overflowed: SWMM's node flooding statistics and the ponded extent."""

    volume_m3: float  # total flood volume over the run
    hours_flooded: float
    peak_rate_m3s: float
    max_depth_m: float  # SWMM's maximum water depth in the node
    extent: FloodExtentFigures | None  # None where no DEM covers the node


class SurchargedConduit(Ref):
    """A conduit that ran full (SWMM's conduit surcharge statistics)."""

    hours_surcharged: float  # above full normal flow
    hours_full_both_ends: float
    hours_capacity_limited: float
    peak_flow_m3s: float


class OutfallLoad(NodeRef):
    """What left the network at an outfall."""

    volume_m3: float
    average_flow_m3s: float
    peak_flow_m3s: float


class FloodTotals(Result):
    """System totals of the run."""

    flooded_node_count: int
    flood_volume_m3: float
    outfall_volume_m3: float
    surcharged_conduit_count: int
    runoff_continuity_error_percent: float
    routing_continuity_error_percent: float


class FloodSimulation(Result):
    """A SWMM run of a stored drainage network: flooded nodes, surcharged conduits, outfalls."""

    dataset_id: int
    rain: Literal["model", "design_storm"]
    storm: DesignStorm | None
    start: str
    end: str
    flow_units: str
    flooded_nodes: list[FloodedNode]  # largest volume first
    surcharged_conduits: list[SurchargedConduit]  # longest surcharge first
    outfalls: list[OutfallLoad]
    totals: FloodTotals
    defaults: list[str]
    geojson: OptionalGeojson
    truncated: ListsTruncated


class FloodHazardZone(Ref):
    """A saved flood zone (``hazard_zone`` row ``id``): the extent of flooded node ``code``."""

    node_id: int
    volume_m3: float
    area_m2: float
    max_depth_m: float


class FloodHazards(Result):
    """A flood saved as hazard zones of kind ``flood``: the hazard dataset, its zones, the flood.

    ``simulation_id`` names the run by its inputs (SWMM model, DEMs); saving the same run again
    stores nothing and answers the dataset saved first (``created`` false)."""

    simulation_id: str
    created: bool
    dataset: DatasetSummary
    zones: list[FloodHazardZone]
    flood: FloodSimulation

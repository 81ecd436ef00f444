"""Typed answers about the road network."""

from __future__ import annotations

from cim.services.results import Result


class RoadNetworkSummary(Result):
    """Counts a user can check a road network with (stored as a roads dataset's counts and QC)."""

    segments: int
    nodes: int
    length_km: float
    components: int
    largest_component_share: float | None
    """Share of the total length in the largest connected part; None for an empty network."""
    dead_ends: int

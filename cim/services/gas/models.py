"""Typed answers of the gas analyses; field names are the JSON keys the HTTP API sends.

Distances are horizontal (2D) metres in the storage CRS, elevations metres in its height datum;
``None`` where the data does not say (no well bottom surveyed, no ground height).
"""

from __future__ import annotations

from typing import Literal

from cim.services.pipes.models import BurstIsolation, OptionalGeojson
from cim.services.results import Result

SpaceLayer = Literal["pipe_node", "pipe_segment", "building"]
VerticalRelation = Literal["above", "level", "below", "unknown"]


class GasPipeRef(Result):
    """The gas pipe a space relates to (its nearest), with what makes its leak matter."""

    id: int
    code: str
    pressure: str | None
    pressure_class: str | None
    material: str | None
    year: int | None


class SpaceRisk(Result):
    """The factors of a space's risk score and their product (:mod:`cim.services.gas.risk`)."""

    distance: float
    pressure: float
    condition: float
    space: float
    volume: float
    score: float


class AdjacentSpace(Result):
    """An underground space of another class next to a gas pipe, ranked by risk (1 = first).

    ``vertical_relation``: ``above`` when the space's bottom is above the gas pipe's top,
    ``below`` when it is below the pipe's invert, ``level`` in between; ``vertical_gap_m`` is
    the clear gap (0 for ``level``)."""

    rank: int
    layer: SpaceLayer
    id: int
    code: str
    space_type: str
    utility: str | None
    kind: str | None
    distance_m: float
    bottom_z: float | None
    vertical_relation: VerticalRelation
    vertical_gap_m: float | None
    volume_m3: float
    volume_assumed: bool
    gas_pipe: GasPipeRef
    risk: SpaceRisk


class SensorSite(Result):
    """A suggested sensor site: the space and the risky gas-pipe length it alone adds."""

    layer: SpaceLayer
    id: int
    code: str
    space_type: str
    covered_weight: float


class SensorSuggestion(Result):
    """The ``k`` spaces covering the most risky gas-pipe length (MCLP, shared solver)."""

    k: int
    piece_m: float
    sites: list[SensorSite]
    covered_weight: float
    total_weight: float
    covered_share: float
    method: str
    status: str


class AdjacentSpaceReport(Result):
    """Spaces next to the gas pipes in scope, ranked; sensor sites; on an alarm, the valves."""

    radius_m: float
    as_of_year: int
    gas_pipe_count: int
    gas_length_m: float
    space_count: int
    spaces: list[AdjacentSpace]
    counts_by_type: dict[str, int]
    buildings_without_basement_data: int
    notes: list[str]
    sensors: SensorSuggestion | None = None
    isolation: BurstIsolation | None = None
    geojson: OptionalGeojson
    truncated: bool = False

"""Typed answers of the shelter analyses; field names are the JSON keys the HTTP API sends.

A plan's parameters and statistics are stored as JSONB with the plan and read back as they were
written, so they are ``TypedDict`` shapes (plain dicts): keys added by later versions
(``distance``, ``network``, the store/zones timings) are ``NotRequired`` and stay absent for a
plan stored before them. Persons are floats (split units carry fractions), distances metres in
the storage CRS, GeoJSON in WGS84.
"""

from __future__ import annotations

from typing import Literal, NotRequired

from pydantic import ConfigDict, with_config
from typing_extensions import TypedDict

from cim.services.results import Geometry, Result

Distance = Literal["euclidean", "network"]
UnusableReason = Literal["in_hazard_zone", "not_designated", "no_capacity"]
UncoveredReason = Literal["out_of_reach", "in_hazard_zone", "over_capacity"]


# --- a stored plan: parameters and statistics --------------------------------------------------


@with_config(ConfigDict(extra="allow"))
class StoredPlanParameters(TypedDict, total=False):
    """The :class:`~cim.services.shelters.inputs.PlanParameters` a plan was computed from, as
    stored (a plan from an older version lacks the fields added since)."""

    name: str | None
    shelter_datasets: list[int] | None
    population_datasets: list[int] | None
    hazard_datasets: list[int] | None
    radius_m: dict[str, float]
    area_per_person_m2: dict[str, float]
    distance: Distance
    road_datasets: list[int] | None
    access_max_m: float
    exclude_hazards: list[str] | None
    split_units: bool
    time_limit_s: float


class UnusableShelter(TypedDict):
    """Why a shelter took no one, and the hazard kinds (excluded or not designated for)."""

    name: str | None
    reason: UnusableReason
    hazards: list[str]


class SolverFigures(TypedDict):
    """How the assignment was solved: method, status, remaining MIP gap, seconds."""

    method: str
    status: str
    gap: float
    seconds: float


class PlanSeconds(TypedDict):
    """Wall-clock seconds of a plan's steps."""

    query: float
    store: NotRequired[float]
    zones: NotRequired[float]
    total: float


class RoadGraphFigures(TypedDict):
    """The road graph a network plan walked, and whether it came from the in-memory cache."""

    segments: int
    nodes: int
    cached: bool
    load_seconds: float


class DijkstraSeconds(TypedDict):
    """Seconds to join units and sites to the roads (setup) and to walk from every site."""

    setup: float
    dijkstra: float


class NetworkPairFigures(TypedDict):
    """How units and sites joined the roads (access legs in metres)."""

    units_joined: int
    units_without_road: int
    sites_without_road: int
    mean_access_m: float | None
    max_access_m: float | None
    seconds: DijkstraSeconds


class NetworkFigures(TypedDict):
    """The road network of a ``distance="network"`` plan and how units and sites joined it."""

    road_datasets: list[int]
    access_max_m: float
    graph: RoadGraphFigures
    units_joined: int
    units_without_road: int
    sites_without_road: int
    mean_access_m: float | None
    max_access_m: float | None
    seconds: DijkstraSeconds


class LevelFigures(TypedDict):
    """Service radius (m) and effective area per person (m²) a plan used for one level."""

    radius_m: float
    area_per_person_m2: float


class PlanStats(TypedDict):
    """A plan's figures: coverage, uncovered persons by reason, distances, shelters, solver."""

    distance: NotRequired[Distance]
    network: NotRequired[NetworkFigures]
    population: float
    covered: float
    uncovered: float
    uncovered_by_reason: dict[str, float]
    coverage_ratio: float | None
    person_distance_m: float
    mean_distance_m: float | None
    max_distance_m: float | None
    units: int
    split_units: int
    shelters: int
    usable_shelters: int
    unusable_shelters: dict[str, UnusableShelter]
    capacity: float
    full_shelters: int
    pairs: int
    solver: SolverFigures
    seconds: PlanSeconds
    levels: dict[str, LevelFigures]


# --- plans -------------------------------------------------------------------------------------


class ShelterLoad(Result):
    """One usable shelter of a plan: persons assigned, capacity, load ratio, zone area."""

    shelter_id: int
    name: str | None
    level: str
    population: float
    capacity: float | None
    load_ratio: float | None
    zone_area_m2: float


class PlanSummary(Result):
    """A stored plan: parameters, statistics and per-shelter load (no geometries)."""

    id: int
    name: str | None
    created_at: str | None
    parameters: StoredPlanParameters
    stats: PlanStats
    shelters: list[ShelterLoad]


class PlanListing(Result):
    """A plan in the list of plans, with its headline figures."""

    id: int
    name: str | None
    created_at: str
    coverage_ratio: float | None
    population: float | None


# --- zones and uncovered units (GeoJSON, WGS84) ------------------------------------------------


class ZoneProperties(TypedDict):
    """A service zone's shelter, the persons assigned to it and its load ratio."""

    plan_id: int
    shelter_id: int
    name: str | None
    level: str
    population: float
    capacity: float | None
    load_ratio: float | None


class ZoneFeature(TypedDict):
    """A shelter's service zone (MultiPolygon); ``id`` is the shelter id."""

    type: Literal["Feature"]
    id: int
    geometry: Geometry
    properties: ZoneProperties


class ZoneCollection(Result):
    """A plan's service zones, one per usable shelter."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[ZoneFeature]


class UncoveredProperties(TypedDict):
    """A population unit's uncovered persons and why they are uncovered."""

    plan_id: int
    unit_id: int
    code: str | None
    population: float
    uncovered: float
    reason: UncoveredReason


class UncoveredFeature(TypedDict):
    """A population unit with uncovered persons; ``id`` is the unit id."""

    type: Literal["Feature"]
    id: int
    geometry: Geometry
    properties: UncoveredProperties


class UncoveredCollection(Result):
    """A plan's population units with uncovered persons."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[UncoveredFeature]


# --- site suggestion ---------------------------------------------------------------------------


class SuggestedSite(Result):
    """A chosen site: candidate index, source shelter (candidate dataset) or None (grid),
    storage-CRS and WGS84 coordinates, demand within its reach."""

    site: int
    shelter_id: int | None
    name: str | None
    x: float
    y: float
    lon: float
    lat: float
    covers: float


class SiteSuggestion(Result):
    """The MCLP answer: the demand used, the chosen sites and the newly covered persons."""

    distance: Distance
    demand: str
    plan_id: int | None
    level: str
    radius_m: float
    k: int
    candidates: int
    pairs: int
    demand_total: float
    gain: float
    gain_ratio: float | None
    upper_bound: float
    method: str
    status: str
    solve_seconds: float
    seconds: float
    sites: list[SuggestedSite]

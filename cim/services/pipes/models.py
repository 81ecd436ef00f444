"""Typed answers of the pipe analyses; field names are the JSON keys the HTTP API sends.

Lengths and elevations are metres in the storage CRS; ``None`` where the data does not say
(no invert surveyed, no ground height). GeoJSON highlights stay plain dicts
(:class:`~cim.services.results.FeatureCollection`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, SkipValidation

from cim.services.results import Feature, FeatureCollection, NamedCrs, Result

GroundSource = Literal["terrain", "nodes"]
ClearanceKind = Literal["horizontal", "building", "vertical"]

# GeoJSON members are built by the services from PostGIS output and may hold thousands of
# features: the schema documents them, but they are not validated again (10,000 query features
# cost 90 ms to validate and nothing to pass through).
Features = Annotated[list[Feature], SkipValidation()]
Geojson = Annotated[FeatureCollection, SkipValidation()]


def _absent_if_none(value: object) -> bool:
    return value is None


#: A GeoJSON highlight left out of the answer (not ``null``) when the caller did not ask for it.
OptionalGeojson = Annotated[
    FeatureCollection | None, SkipValidation(), Field(default=None, exclude_if=_absent_if_none)
]


def _absent_if_false(value: object) -> bool:
    return value is False


#: ``true`` when a walk's lists were cut at the request's cap (``CIM_MAX_HIGHLIGHT_FEATURES``);
#: absent otherwise. Counts (``segment_count``, ``node_count``...) stay exact.
ListsTruncated = Annotated[bool, Field(default=False, exclude_if=_absent_if_false)]
#: An exact count sent only beside truncated lists (the full list says it otherwise).
CountIfTruncated = Annotated[int | None, Field(default=None, exclude_if=_absent_if_none)]


class Ref(Result):
    """A segment or node by id and code."""

    id: int
    code: str


class NodeRef(Ref):
    """A node with its kind (valve, hydrant, manhole, junction...)."""

    kind: str


class ValveNode(NodeRef):
    """A node of an isolation answer, with its stored valve state (``None`` if not a valve)."""

    valve_state: str | None


class TracedNode(NodeRef):
    """A node reached by a trace and its distance along the pipes from the start."""

    distance_m: float


class ProfileNode(NodeRef):
    """A node on a profile path: chainage and ground height."""

    chainage_m: float
    ground_z: float | None


# --- query and QC ---------------------------------------------------------------------------


class PipeCollection(Result):
    """A page of pipes as a GeoJSON FeatureCollection with OGC API counts (camelCase names)."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    crs: NamedCrs
    numberMatched: int
    numberReturned: int
    features: Features


class PipeDatasetQc(Result):
    """The quality-control findings an import stored for a pipe dataset, with its counts."""

    dataset_id: int
    name: str
    source_name: str
    status: str
    counts: dict[str, Any]
    qc: dict[str, Any]


# --- cross-section and profile --------------------------------------------------------------


class SegmentOfClass(Result):
    """A segment with its utility class and sub-class, the class's name and CJJ 61 colour."""

    segment_id: int
    code: str
    utility: str
    subclass: str | None
    utility_name: str
    colour: str


class SectionPipe(SegmentOfClass):
    """One crossing of the section line with a pipe."""

    offset_m: float
    x: float
    y: float
    section: str
    section_shape: str | None
    width_m: float
    height_m: float
    centre_z: float | None
    invert_z: float | None
    top_z: float | None
    ground_z: float | None
    ground_source: GroundSource | None
    centre_depth_m: float | None
    cover_m: float | None
    material: str | None
    owner: str | None
    pressure: str | None
    burial: str | None


class GroundPoint(Result):
    """Ground height at an offset along a section line."""

    offset_m: float
    z: float


class CrossSection(Result):
    """Pipes crossed by a line, nearest first, and the ground along it."""

    line_length_m: float
    srid: int
    ground_source: GroundSource
    pipe_count: int
    pipes: list[SectionPipe]
    ground_profile: list[GroundPoint]


class ProfileSegment(Result):
    """One segment of a profile path, oriented along the path."""

    segment_id: int
    code: str
    utility: str
    utility_name: str
    colour: str
    from_node: str
    to_node: str
    along_link_direction: bool
    section: str
    material: str | None
    chainage_from_m: float
    chainage_to_m: float
    length_m: float
    invert_from_z: float | None
    invert_to_z: float | None
    top_from_z: float | None
    top_to_z: float | None
    cover_from_m: float | None
    cover_to_m: float | None
    slope: float | None
    slope_permille: float | None
    backward_slope: bool | None


class LongitudinalProfile(Result):
    """Ground line, top/invert, cover and slope along the network path between two nodes."""

    dataset_id: int
    from_node: Ref
    to_node: Ref
    length_m: float
    nodes: list[ProfileNode]
    segments: list[ProfileSegment]
    backward_segments: list[str]


# --- clearances and clashes -----------------------------------------------------------------


class PairSide(Result):
    """One side of a clearance or clash pair: a pipe segment, or a building by name."""

    layer: Literal["pipe_segment", "building"]
    id: int
    code: str
    utility: str | None


class ElementSide(Result):
    """A building element a pipe clashes with."""

    layer: Literal["building_element"] = "building_element"
    id: int
    guid: str
    ifc_class: str
    name: str | None


class RuleRef(Result):
    """The GB 50289 rule a pair breaks."""

    id: str
    description: str
    confirmed: bool
    source: str


class Violation(Result):
    """A pair closer than GB 50289 requires."""

    kind: ClearanceKind
    a: PairSide
    b: PairSide
    rule: RuleRef
    required_m: float
    actual_m: float
    location: list[float]


class ClearanceReport(Result):
    """Every GB 50289 violation counted; the ``returned`` worst listed."""

    standard: str
    srid: int
    datasets: list[int]
    violation_count: int
    returned: int
    truncated: bool
    per_rule: dict[str, int]
    unconfirmed_rules_used: list[str]
    violations: list[Violation]


class Clash(Result):
    """Two pipes, or a pipe and a building element, closer than their outer surfaces allow."""

    kind: Literal["pipe", "building"]
    a: PairSide
    b: Annotated[PairSide | ElementSide, Field(discriminator="layer")]
    overlap_m: float
    distance_m: float
    location: list[float]


class ClashReport(Result):
    """Every clash counted; the first ``returned`` (largest overlap first) listed."""

    srid: int
    datasets: list[int]
    clash_count: int
    returned: int
    truncated: bool
    clashes: list[Clash]


# --- network walks --------------------------------------------------------------------------


class BurstIsolation(Result):
    """Valves to close for a burst and what the closure cuts off."""

    dataset_id: int
    burst_segment: Ref
    valves_to_close: list[ValveNode]
    valves_already_closed: list[ValveNode]
    failed_valves_passed: list[ValveNode]
    isolated_segments: list[Ref]
    segment_count: int
    length_m: float
    volume_m3: float
    affected_nodes: list[ValveNode]
    affected_node_kinds: dict[str, int]
    geojson: OptionalGeojson
    truncated: ListsTruncated


class NetworkTrace(Result):
    """What a trace reached: segments, nodes with distances, and where the walk ended."""

    dataset_id: int
    mode: Literal["directed", "connected_component"]
    direction: Literal["downstream", "upstream", "both"]
    direction_from: Literal["invert", "link"] | None
    segments: list[Ref]
    nodes: list[TracedNode]
    terminal_nodes: list[NodeRef]
    segment_count: int
    length_m: float
    geojson: OptionalGeojson
    node_count: CountIfTruncated
    truncated: ListsTruncated


# --- excavation -----------------------------------------------------------------------------


class ExcavatedPipe(SegmentOfClass):
    """A pipe in or near a planned cut: how it is hit, its cover and clearances."""

    owner: str | None
    material: str | None
    section: str
    status: Literal["struck", "under", "near"]
    inside_cut: bool
    length_in_zone_m: float
    min_cover_m: float | None
    top_z_max: float
    invert_z_min: float
    horizontal_clearance_m: float
    vertical_clearance_m: float | None


class OwnerToNotify(Result):
    """A utility class and owner with pipes in the zone: who to notify before digging."""

    utility: str
    utility_name: str
    colour: str
    owner: str | None
    pipes: int
    struck: int


class ExcavationImpact(Result):
    """Pipes affected by a cut, grouped by owner, with a GeoJSON highlight."""

    srid: int
    depth_m: float
    margin_m: float
    cut_area_m2: float
    ground_source: GroundSource
    pipe_count: int
    struck_count: int
    pipes: list[ExcavatedPipe]
    notify: list[OwnerToNotify]
    geojson: Geojson

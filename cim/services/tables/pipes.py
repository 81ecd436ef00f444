"""The tables of the pipe analyses: which list of each answer, which columns, in which order.

Each answer's main list comes first (a CSV holds it unless ``table=`` names another one); the
``utility_name`` column names the sub-class where there is one, else the class (CJJ 61).
"""

from __future__ import annotations

from typing import Any

from cim.services.pipes.models import (
    BurstIsolation,
    Clash,
    ClashReport,
    ClearanceReport,
    CrossSection,
    ElementSide,
    ExcavationImpact,
    LongitudinalProfile,
    NetworkTrace,
    PipeCollection,
    PipeDatasetQc,
)
from cim.services.tables.language import Cell
from cim.services.tables.spec import Column, Table, TableSpec, attr, coordinate, item, prop


def _class_of(row: Any) -> Cell:
    """The code the ``utility_name`` column names: the sub-class if any, else the class."""
    if isinstance(row, dict):
        props = row["properties"]
        code: Cell = props.get("subclass") or props.get("utility")
        return code
    named: Cell = getattr(row, "subclass", None) or row.utility
    return named


UTILITY_NAME = Column("utility_name", _class_of, "utility")

QUERY = TableSpec(
    "pipes",
    "query_pipes",
    (
        prop("segment_id", "id"),
        prop("code"),
        prop("utility"),
        UTILITY_NAME,
        prop("subclass"),
        prop("material"),
        prop("section_shape", vocabulary="section_shape"),
        prop("section"),
        prop("diameter_mm"),
        prop("width_mm"),
        prop("height_mm"),
        prop("year"),
        prop("owner"),
        prop("pressure"),
        prop("burial", vocabulary="burial"),
        prop("length_m"),
        prop("depth_m"),
    ),
)

SECTION = TableSpec(
    "pipes",
    "section_pipes",
    (
        attr("offset_m"),
        attr("segment_id"),
        attr("code"),
        attr("utility"),
        UTILITY_NAME,
        attr("subclass"),
        attr("section"),
        attr("section_shape", vocabulary="section_shape"),
        attr("width_m"),
        attr("height_m"),
        attr("centre_z"),
        attr("invert_z"),
        attr("top_z"),
        attr("ground_z"),
        attr("centre_depth_m"),
        attr("cover_m"),
        attr("material"),
        attr("owner"),
        attr("pressure"),
        attr("burial", vocabulary="burial"),
        attr("x"),
        attr("y"),
    ),
)

PROFILE_SEGMENTS = TableSpec(
    "segments",
    "profile_segments",
    (
        attr("segment_id"),
        attr("code"),
        attr("utility"),
        UTILITY_NAME,
        attr("from_node"),
        attr("to_node"),
        attr("section"),
        attr("material"),
        attr("chainage_from_m"),
        attr("chainage_to_m"),
        attr("length_m"),
        attr("invert_from_z"),
        attr("invert_to_z"),
        attr("top_from_z"),
        attr("top_to_z"),
        attr("cover_from_m"),
        attr("cover_to_m"),
        attr("slope_permille"),
        attr("backward_slope", vocabulary="boolean"),
        attr("along_link_direction", vocabulary="boolean"),
    ),
)

PROFILE_NODES = TableSpec(
    "nodes",
    "profile_nodes",
    (
        attr("node_id", "id"),
        attr("code"),
        attr("node_kind", "kind", "node_kind"),
        attr("chainage_m"),
        attr("ground_z"),
    ),
)

CLEARANCE = TableSpec(
    "violations",
    "clearance_violations",
    (
        attr("clearance_kind", "kind", "clearance_kind"),
        attr("a_id", "a.id"),
        attr("a_code", "a.code"),
        attr("a_utility", "a.utility", "utility"),
        attr("b_layer", "b.layer", "layer"),
        attr("b_id", "b.id"),
        attr("b_code", "b.code"),
        attr("b_class", "b.utility", "utility"),
        attr("rule_id", "rule.id"),
        attr("rule_description", "rule.description"),
        attr("rule_confirmed", "rule.confirmed", "boolean"),
        attr("required_m"),
        attr("actual_m"),
        coordinate("location_x", 0),
        coordinate("location_y", 1),
        coordinate("location_z", 2),
    ),
)


def _other_code(clash: Clash) -> Cell:
    """A pipe's or building's code, or a building element's GUID."""
    return clash.b.guid if isinstance(clash.b, ElementSide) else clash.b.code


def _other_class(clash: Clash) -> Cell:
    """A pipe's utility class, or a building element's IFC class."""
    return clash.b.ifc_class if isinstance(clash.b, ElementSide) else clash.b.utility


def _other_name(clash: Clash) -> Cell:
    return clash.b.name if isinstance(clash.b, ElementSide) else None


CLASHES = TableSpec(
    "clashes",
    "clashes",
    (
        attr("clash_kind", "kind", "clash_kind"),
        attr("a_id", "a.id"),
        attr("a_code", "a.code"),
        attr("a_utility", "a.utility", "utility"),
        attr("b_layer", "b.layer", "layer"),
        attr("b_id", "b.id"),
        Column("b_code", _other_code),
        Column("b_class", _other_class, "utility"),
        Column("b_name", _other_name),
        attr("overlap_m"),
        attr("clash_distance_m", "distance_m"),
        coordinate("location_x", 0),
        coordinate("location_y", 1),
        coordinate("location_z", 2),
    ),
)

NODE_COLUMNS = (attr("node_id", "id"), attr("code"), attr("node_kind", "kind", "node_kind"))
ISOLATION_VALVES = TableSpec(
    "valves",
    "isolation_valves",
    (*NODE_COLUMNS, attr("valve_state", vocabulary="valve_state")),
)
SEGMENT_REFS = (attr("segment_id", "id"), attr("code"))
ISOLATION_SEGMENTS = TableSpec("segments", "isolation_segments", SEGMENT_REFS)
TRACE_SEGMENTS = TableSpec("segments", "trace_segments", SEGMENT_REFS)
TRACE_NODES = TableSpec(
    "nodes", "trace_nodes", (*NODE_COLUMNS, attr("trace_distance_m", "distance_m"))
)

EXCAVATION_PIPES = TableSpec(
    "pipes",
    "excavation_pipes",
    (
        attr("segment_id"),
        attr("code"),
        attr("utility"),
        UTILITY_NAME,
        attr("subclass"),
        attr("impact", "status", "impact"),
        attr("inside_cut", vocabulary="boolean"),
        attr("owner"),
        attr("material"),
        attr("section"),
        attr("length_in_zone_m"),
        attr("min_cover_m"),
        attr("top_z_max"),
        attr("invert_z_min"),
        attr("horizontal_clearance_m"),
        attr("vertical_clearance_m"),
    ),
)
EXCAVATION_OWNERS = TableSpec(
    "owners",
    "excavation_owners",
    (
        attr("utility"),
        attr("utility_name", "utility", "utility"),
        attr("owner"),
        attr("pipe_count", "pipes"),
        attr("struck_count", "struck"),
    ),
)

QC_FINDINGS = TableSpec(
    "findings",
    "qc_findings",
    (
        item("qc_rule", "rule", "qc_rule"),
        item("severity", vocabulary="severity"),
        item("code"),
        item("message"),
    ),
)


def query_tables(answer: PipeCollection) -> list[Table]:
    return [QUERY.build(answer.features)]


def section_tables(answer: CrossSection) -> list[Table]:
    return [SECTION.build(answer.pipes)]


def profile_tables(answer: LongitudinalProfile) -> list[Table]:
    return [PROFILE_SEGMENTS.build(answer.segments), PROFILE_NODES.build(answer.nodes)]


def clearance_tables(answer: ClearanceReport) -> list[Table]:
    return [CLEARANCE.build(answer.violations)]


def clash_tables(answer: ClashReport) -> list[Table]:
    return [CLASHES.build(answer.clashes)]


def isolation_tables(answer: BurstIsolation) -> list[Table]:
    return [
        ISOLATION_VALVES.build(answer.valves_to_close),
        ISOLATION_SEGMENTS.build(answer.isolated_segments),
    ]


def trace_tables(answer: NetworkTrace) -> list[Table]:
    return [TRACE_SEGMENTS.build(answer.segments), TRACE_NODES.build(answer.nodes)]


def excavation_tables(answer: ExcavationImpact) -> list[Table]:
    return [EXCAVATION_PIPES.build(answer.pipes), EXCAVATION_OWNERS.build(answer.notify)]


def qc_tables(answer: PipeDatasetQc) -> list[Table]:
    """The findings the import listed (``qc.issues``; the counts per rule are in the JSON)."""
    issues = answer.qc.get("issues")
    return [QC_FINDINGS.build(issues if isinstance(issues, list) else [])]

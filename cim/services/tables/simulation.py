"""The tables of the simulations: shutdown impact (关阀停水影响) and urban flooding (城市内涝).

A shutdown answer lists the nodes whose pressure fell (first: the table a CSV holds unless
``table=`` names another), those below the service pressure, those cut off inside the closed
ring and the model links closed. A flood answer lists the flooded nodes (with the DEM extent of
each, empty where no DEM covers it), the surcharged conduits and the outfalls. Ids are cim's
(``pipe_node.id``, ``pipe_segment.id``), codes the model's names, units those of the JSON.
"""

from __future__ import annotations

from typing import Any

from cim.services.simulation.flood_models import FloodSimulation
from cim.services.simulation.models import ShutdownImpact
from cim.services.tables.language import Cell
from cim.services.tables.spec import Column, Table, TableSpec, attr


def _within(key: str, outer: str, field: str, vocabulary: str | None = None) -> Column:
    """A column read from ``item.outer.field``; empty when ``item.outer`` is ``None`` (a closed
    link without a valve, a flooded node without a DEM under it)."""

    def get(row: Any) -> Cell:
        inner = getattr(row, outer)
        value: Cell = None if inner is None else getattr(inner, field)
        return value

    return Column(key, get, vocabulary)


NODE_COLUMNS = (attr("node_id", "id"), attr("code"), attr("node_kind", "kind", "node_kind"))
PRESSURE_COLUMNS = (
    *NODE_COLUMNS,
    attr("pressure_role", "role", "pressure_role"),
    attr("before_min_m"),
    attr("after_min_m"),
    attr("max_drop_m"),
)

SHUTDOWN_NODES = TableSpec("nodes", "shutdown_nodes", PRESSURE_COLUMNS)
SHUTDOWN_BELOW_SERVICE = TableSpec("below_service", "shutdown_below_service", PRESSURE_COLUMNS)
SHUTDOWN_ISOLATED = TableSpec("isolated", "shutdown_isolated", NODE_COLUMNS)
SHUTDOWN_CLOSED = TableSpec(
    "closed",
    "shutdown_closed_links",
    (
        attr("model_link", "link"),
        _within("valve_id", "valve", "id"),
        _within("valve_code", "valve", "code"),
        _within("valve_state", "valve", "valve_state", "valve_state"),
        attr("segment_id"),
    ),
)

FLOODED_NODES = TableSpec(
    "nodes",
    "flood_nodes",
    (
        *NODE_COLUMNS,
        attr("flood_volume_m3", "volume_m3"),
        attr("hours_flooded"),
        attr("peak_rate_m3s"),
        attr("node_max_depth_m", "max_depth_m"),
        _within("extent_area_m2", "extent", "area_m2"),
        _within("water_level_m", "extent", "water_level_m"),
        _within("ponding_max_depth_m", "extent", "max_depth_m"),
        _within("ponding_mean_depth_m", "extent", "mean_depth_m"),
        _within("reaches_window_edge", "extent", "reaches_window_edge", "boolean"),
        _within("dem_dataset_id", "extent", "dem_dataset_id"),
    ),
)
SURCHARGED_CONDUITS = TableSpec(
    "conduits",
    "flood_conduits",
    (
        attr("segment_id", "id"),
        attr("code"),
        attr("hours_surcharged"),
        attr("hours_full_both_ends"),
        attr("hours_capacity_limited"),
        attr("peak_flow_m3s"),
    ),
)
OUTFALLS = TableSpec(
    "outfalls",
    "flood_outfalls",
    (
        *NODE_COLUMNS,
        attr("outfall_volume_m3", "volume_m3"),
        attr("average_flow_m3s"),
        attr("peak_flow_m3s"),
    ),
)


def shutdown_tables(answer: ShutdownImpact) -> list[Table]:
    """Nodes whose pressure fell (largest fall first), below service, cut off, links closed."""
    return [
        SHUTDOWN_NODES.build(answer.nodes),
        SHUTDOWN_BELOW_SERVICE.build(answer.below_service_nodes),
        SHUTDOWN_ISOLATED.build(answer.isolated_nodes),
        SHUTDOWN_CLOSED.build(answer.closed_links),
    ]


def flood_tables(answer: FloodSimulation) -> list[Table]:
    """Flooded nodes (largest volume first), surcharged conduits, outfalls."""
    return [
        FLOODED_NODES.build(answer.flooded_nodes),
        SURCHARGED_CONDUITS.build(answer.surcharged_conduits),
        OUTFALLS.build(answer.outfalls),
    ]

"""The tables of the gas adjacent-space analysis (燃气相邻地下空间).

The spaces to check come first (riskiest first, the table a CSV holds unless ``table=`` names
another); then the suggested sensor sites when ``sensors`` was asked, and the valves to close and
segments cut off when the answer is a gas alarm (the burst isolation's own tables). Distances and
gaps in metres, volumes in m³, the risk score and its factors as in the JSON.
"""

from __future__ import annotations

from typing import Any

from cim.services.gas.models import AdjacentSpaceReport
from cim.services.tables.language import Cell
from cim.services.tables.pipes import isolation_tables
from cim.services.tables.spec import Column, Table, TableSpec, attr


def _of(key: str, outer: str, field: str, vocabulary: str | None = None) -> Column:
    """A column read from ``item.outer.field`` (the gas pipe, the risk factors)."""

    def get(row: Any) -> Cell:
        value: Cell = getattr(getattr(row, outer), field)
        return value

    return Column(key, get, vocabulary)


GAS_SPACES = TableSpec(
    "spaces",
    "gas_adjacent_spaces",
    (
        attr("rank"),
        attr("space_type", vocabulary="space_type"),
        attr("layer", vocabulary="layer"),
        attr("space_id", "id"),
        attr("code"),
        attr("utility"),
        attr("distance_m"),
        attr("vertical_relation", vocabulary="vertical_relation"),
        attr("vertical_gap_m"),
        attr("volume_m3"),
        _of("gas_pipe_code", "gas_pipe", "code"),
        _of("gas_pressure_class", "gas_pipe", "pressure_class"),
        _of("material", "gas_pipe", "material"),
        _of("year", "gas_pipe", "year"),
        _of("risk_score", "risk", "score"),
    ),
)
SENSOR_SITES = TableSpec(
    "sensors",
    "gas_sensor_sites",
    (
        attr("space_type", vocabulary="space_type"),
        attr("layer", vocabulary="layer"),
        attr("space_id", "id"),
        attr("code"),
        attr("covered_weight"),
    ),
)


def adjacent_space_tables(answer: AdjacentSpaceReport) -> list[Table]:
    """Spaces to check; sensor sites and isolation tables when the answer has them."""
    tables = [GAS_SPACES.build(answer.spaces)]
    if answer.sensors is not None:
        tables.append(SENSOR_SITES.build(answer.sensors.sites))
    if answer.isolation is not None:
        tables += isolation_tables(answer.isolation)
    return tables

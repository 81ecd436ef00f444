"""Which tables an analysis answer has: one lookup by the answer's type, for the API and CLI."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cim.errors import InvalidInput
from cim.services.gas.models import AdjacentSpaceReport
from cim.services.pipes.models import (
    BurstIsolation,
    ClashReport,
    ClearanceReport,
    CrossSection,
    ExcavationImpact,
    LongitudinalProfile,
    NetworkTrace,
    PipeCollection,
    PipeDatasetQc,
)
from cim.services.results import Result
from cim.services.shelters.models import UncoveredCollection, ZoneCollection
from cim.services.simulation.flood_models import FloodSimulation
from cim.services.simulation.models import ShutdownImpact
from cim.services.tables import gas, pipes, shelters, simulation
from cim.services.tables.spec import Table

BUILDERS: dict[type[Result], Callable[[Any], list[Table]]] = {
    PipeCollection: pipes.query_tables,
    CrossSection: pipes.section_tables,
    LongitudinalProfile: pipes.profile_tables,
    ClearanceReport: pipes.clearance_tables,
    ClashReport: pipes.clash_tables,
    BurstIsolation: pipes.isolation_tables,
    NetworkTrace: pipes.trace_tables,
    ExcavationImpact: pipes.excavation_tables,
    PipeDatasetQc: pipes.qc_tables,
    ZoneCollection: shelters.zone_tables,
    UncoveredCollection: shelters.uncovered_tables,
    ShutdownImpact: simulation.shutdown_tables,
    FloodSimulation: simulation.flood_tables,
    AdjacentSpaceReport: gas.adjacent_space_tables,
}
"""Answer type -> its tables, the main list first."""


def tables_of(answer: Result) -> list[Table]:
    """The tables of an analysis answer (InvalidInput for an answer that is not a list)."""
    build = BUILDERS.get(type(answer))
    if build is None:
        raise InvalidInput(f"a {type(answer).__name__} answer has no table form")
    return build(answer)

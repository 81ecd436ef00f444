"""A gas alarm on one pipe: which adjacent spaces to check, and which valves isolate the pipe.

The leaking pipe is a gas segment, or the gas pipe nearest the alarm's point. The spaces to
check are its adjacent spaces, riskiest first (:func:`cim.services.gas.adjacent.adjacent_spaces`
on that one segment); the valves are the existing burst isolation (爆管关阀,
:func:`cim.services.pipes.isolation.isolate_burst`) run on the gas network, so valves found
stuck can be named and the ring extends to the next valves as it does for water.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from cim.errors import InvalidInput
from cim.services.gas.adjacent import adjacent_spaces
from cim.services.gas.gas_pipes import GAS_UTILITY
from cim.services.gas.models import AdjacentSpaceReport
from cim.services.gas.risk import DEFAULT_RADIUS_M
from cim.services.pipes.graph import nearest_segment
from cim.services.pipes.isolation import isolate_burst
from cim.services.pipes.scope import pipe_dataset_ids, refuse_hidden, session_srid


def gas_alarm(
    session: Session,
    *,
    segment_id: int | None = None,
    point: tuple[float, float] | None = None,
    dataset_id: int | None = None,
    radius_m: float = DEFAULT_RADIUS_M,
    limit: int = 1000,
    failed_valve_ids: list[int] | None = None,
    tolerance_m: float = 50.0,
    as_of_year: int | None = None,
    hidden_utilities: frozenset[str] = frozenset(),
    with_geojson: bool = True,
    output_crs: str | None = None,
) -> AdjacentSpaceReport:
    """The adjacent spaces of the leaking gas segment and the valves that isolate it."""
    refuse_hidden(GAS_UTILITY, hidden_utilities)
    if (segment_id is None) == (point is None):
        raise InvalidInput("a gas alarm needs exactly one of segment_id or point")
    if point is not None:
        segment_id = nearest_segment(
            session,
            x=point[0],
            y=point[1],
            srid=session_srid(session),
            dataset_ids=pipe_dataset_ids(session, dataset_id),
            utilities=[GAS_UTILITY],
            tolerance_m=tolerance_m,
        )
    report = adjacent_spaces(
        session,
        segment_id=segment_id,
        dataset_id=dataset_id,
        radius_m=radius_m,
        limit=limit,
        as_of_year=as_of_year,
        hidden_utilities=hidden_utilities,
        with_geojson=with_geojson,
        output_crs=output_crs,
    )
    isolation = isolate_burst(
        session,
        segment_id=segment_id,
        dataset_id=dataset_id,
        failed_valve_ids=failed_valve_ids,
        with_geojson=with_geojson,
        hidden_utilities=hidden_utilities,
        output_crs=output_crs,
    )
    return report.model_copy(update={"isolation": isolation})

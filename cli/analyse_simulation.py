"""``cim analyse pipes shutdown``: shutdown impact (关阀停水影响) from the command line.

Registered on the ``cim analyse pipes`` group by ``cli/analyse.py``. Prints a short text answer,
or the JSON the API sends with ``--json``; ``--csv FILE`` / ``--xlsx FILE`` also write its
tables to hand on, in ``--lang zh|en``; ``--at INSTANT`` simulates the network as it was then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import typer

from cli.analyse_pipes_text import (
    CsvOption,
    LangOption,
    TableOption,
    XlsxOption,
    parse_point,
    write_tables,
)
from cli.context import AtOption, emit, session_scope

if TYPE_CHECKING:
    from cim.services.simulation.models import ShutdownImpact


def shutdown(
    segment: Annotated[int | None, typer.Option(help="Burst segment id: isolate it.")] = None,
    point: Annotated[str | None, typer.Option(help="Burst location x,y instead.")] = None,
    crs: Annotated[str | None, typer.Option(help="CRS of --point (default storage).")] = None,
    failed: Annotated[
        list[int] | None, typer.Option("--failed", help="Stuck valve node id (repeatable).")
    ] = None,
    valve: Annotated[
        list[int] | None, typer.Option("--valve", help="Valve node id to close (repeatable).")
    ] = None,
    pipe: Annotated[
        list[int] | None, typer.Option("--pipe", help="Segment id to close (repeatable).")
    ] = None,
    dataset: Annotated[int | None, typer.Option("--dataset", help="Water dataset id.")] = None,
    hours: Annotated[float, typer.Option("--hours", help="Simulated period (h).")] = 24.0,
    service_pressure: Annotated[
        float, typer.Option("--service-pressure", help="Required service pressure (m).")
    ] = 14.0,
    engine: Annotated[
        Literal["epanet", "wntr"],
        typer.Option(help="EPANET 2.2 (PDA) or WNTR's WNTRSimulator (PDD)."),
    ] = "epanet",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    csv: CsvOption = None,
    xlsx: XlsxOption = None,
    lang: LangOption = "zh",
    table: TableOption = None,
    at: AtOption = None,
) -> None:
    """Shutdown impact (关阀停水影响): close a burst's valves (or given valves/pipes), simulate
    the water network pressure-driven before and after, report who loses water or pressure;
    --csv writes the nodes whose pressure fell, or --table below_service, isolated or closed."""
    from cim.services.pipes.inputs import point_to_storage
    from cim.services.pipes.scope import session_srid
    from cim.services.simulation.shutdown import shutdown_impact

    xy = parse_point(point)
    with session_scope(at=at) as session:
        result = shutdown_impact(
            session,
            segment_id=segment,
            point=point_to_storage(xy, crs, session_srid(session)),
            dataset_id=dataset,
            failed_valve_ids=failed,
            valve_ids=valve,
            segment_ids=pipe,
            duration_h=hours,
            service_pressure_m=service_pressure,
            engine=engine,
            with_geojson=as_json,
        )
    emit(result.model_dump(), as_json=as_json, text=shutdown_text(result))
    write_tables(result, csv, xlsx, lang, table)


def shutdown_text(result: ShutdownImpact) -> str:
    """A few lines for people: closures, who is cut off or under pressure, demand lost."""
    demand = result.demand
    lines = [
        f"dataset {result.dataset_id}: {len(result.closed_links)} link(s) closed "
        f"({', '.join(c.link for c in result.closed_links[:10])}), {result.duration_h:g} h, "
        f"service pressure {result.service_pressure_m:g} m",
        f"cut off: {len(result.isolated_nodes)} node(s); below service pressure beyond them: "
        f"{len(result.below_service_nodes)}; affected beyond them: {result.affected_beyond_count}"
        f" (already below before: {result.below_service_before})",
        f"demand not served: {demand.not_served_m3:,.1f} m³ of {demand.expected_m3:,.1f} m³ "
        f"({demand.not_served_percent:.2f} %)",
    ]
    for node in result.nodes[:15]:
        lines.append(
            f"  {node.code:<12} {node.role:<14} min {node.before_min_m:8.2f} -> "
            f"{node.after_min_m:8.2f} m (drop up to {node.max_drop_m:.2f} m)"
        )
    if len(result.nodes) > 15:
        lines.append(f"  ... {len(result.nodes) - 15} more (--json for all)")
    return "\n".join(lines)

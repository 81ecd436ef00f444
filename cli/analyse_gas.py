"""``cim analyse gas adjacent``: underground spaces next to gas pipes (燃气相邻地下空间).

Registered as the ``cim analyse gas`` group by ``cli/analyse.py``. Prints a ranked text table
(rank, space, type, distance, vertical relation, gas pipe, pressure class, risk), the suggested
sensor sites with ``--sensors K`` and, with ``--alarm``, the valves that isolate the leaking
pipe; or the JSON the API sends with ``--json``. Geometries are WKT, GeoJSON text or a GeoJSON
file in the storage CRS unless ``--crs`` names another one. ``--at INSTANT`` answers on the
networks as they were then, as ``at`` does on the API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

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
    from cim.services.gas.models import AdjacentSpaceReport

app = typer.Typer(help="Gas lifeline: adjacent underground spaces, sensor sites, alarms.")


@app.command("adjacent")
def adjacent(
    segment: Annotated[int | None, typer.Option(help="One gas segment id.")] = None,
    point: Annotated[str | None, typer.Option(help="The gas pipe nearest x,y.")] = None,
    area: Annotated[str | None, typer.Option(help="Polygon: WKT, GeoJSON or file.")] = None,
    dataset: Annotated[int | None, typer.Option("--dataset", help="Gas dataset id.")] = None,
    radius: Annotated[float, typer.Option(help="Search radius, m (unverified default).")] = 5.0,
    limit: Annotated[int, typer.Option(help="Spaces listed at most.")] = 1000,
    sensors: Annotated[int, typer.Option(help="Suggest this many sensor sites.")] = 0,
    piece: Annotated[float, typer.Option(help="Gas-pipe piece length for sensors, m.")] = 10.0,
    as_of: Annotated[int | None, typer.Option(help="Year pipe ages count to.")] = None,
    alarm: Annotated[bool, typer.Option(help="Gas alarm: also the valves to close.")] = False,
    failed: Annotated[list[int] | None, typer.Option(help="Valve id found stuck (repeat).")] = None,
    crs: Annotated[str | None, typer.Option(help="CRS of --point / --area.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    csv: CsvOption = None,
    xlsx: XlsxOption = None,
    lang: LangOption = "zh",
    table: TableOption = None,
    at: AtOption = None,
) -> None:
    """Wells, chambers, utility tunnels and known basements within --radius of the gas pipes
    (all, --area, --segment or --point), ranked by risk; --sensors K suggests sensor sites;
    --alarm (one segment or point) adds the isolation valves."""
    from cim.services.gas.adjacent import adjacent_spaces
    from cim.services.gas.alarm import gas_alarm
    from cim.services.pipes.inputs import geometry_to_storage, point_to_storage
    from cim.services.pipes.scope import session_srid
    from cli.analyse_pipes import _geometry

    with session_scope(at=at) as session:
        srid = session_srid(session)
        common: dict[str, Any] = {
            "segment_id": segment,
            "point": point_to_storage(parse_point(point), crs, srid),
            "dataset_id": dataset,
            "radius_m": radius,
            "limit": limit,
            "as_of_year": as_of,
            "with_geojson": as_json,
        }
        if alarm:
            result = gas_alarm(session, failed_valve_ids=failed, **common)
        else:
            polygon = None if area is None else _geometry(area)
            result = adjacent_spaces(
                session,
                area=geometry_to_storage(polygon, crs, srid, what="area"),
                sensors=sensors,
                piece_m=piece,
                **common,
            )
    write_tables(result, csv, xlsx, lang, table)
    emit(result.model_dump(mode="json"), as_json=as_json, text=adjacent_text(result))


def adjacent_text(result: AdjacentSpaceReport) -> str:
    """The ranked table, the totals, then sensor sites and alarm valves when asked for."""
    lines = [
        f"{'rank':>4}  {'space':<14} {'type':<15} {'dist m':>6}  {'vertical':<14} "
        f"{'gas pipe':<12} {'pressure':<10} {'risk':>7}"
    ]
    for s in result.spaces:
        gap = "" if s.vertical_gap_m is None else f" {s.vertical_gap_m:.2f} m"
        vertical = f"{s.vertical_relation}{gap}"
        lines.append(
            f"{s.rank:>4}  {s.code[:14]:<14} {s.space_type:<15} {s.distance_m:>6.2f}  "
            f"{vertical:<14} {s.gas_pipe.code[:12]:<12} {s.gas_pipe.pressure_class or '?':<10} "
            f"{s.risk.score:>7.3f}"
        )
    lines.append(
        f"{result.space_count} spaces within {result.radius_m:g} m of {result.gas_pipe_count} "
        f"gas pipes ({result.gas_length_m:,.1f} m); {result.buildings_without_basement_data} "
        "buildings in reach without basement data"
        + (f"; first {len(result.spaces)} listed" if result.truncated else "")
    )
    if result.sensors is not None:
        sites = ", ".join(f"{s.code} ({s.space_type})" for s in result.sensors.sites)
        lines.append(
            f"sensor sites (k={result.sensors.k}): {sites or '-'}; cover "
            f"{result.sensors.covered_share:.1%} of the risk-weighted gas length "
            f"({result.sensors.method}, {result.sensors.status})"
        )
    if result.isolation is not None:
        valves = ", ".join(v.code for v in result.isolation.valves_to_close) or "-"
        lines.append(
            f"alarm on {result.isolation.burst_segment.code}: close {valves}; check the spaces "
            f"above, riskiest first"
        )
    lines += [f"note: {note}" for note in result.notes]
    return "\n".join(lines)

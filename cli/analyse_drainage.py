"""``cim analyse drainage flood``: urban flooding (城市内涝) from the command line.

Registered as the ``cim analyse drainage`` group by ``cli/analyse.py``. Prints a short text
answer, or the JSON the API sends with ``--json``; ``--csv FILE`` / ``--xlsx FILE`` also write
its tables to hand on, in ``--lang zh|en``. ``--save-hazards NAME`` also stores the flood's
extents as a hazard dataset (what ``POST /analysis/drainage/flood/hazards`` does; its JSON is
then that route's answer). ``--at INSTANT`` runs on the network as it was then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cli.analyse_pipes_text import CsvOption, LangOption, TableOption, XlsxOption, write_tables
from cli.context import AtOption, emit, session_scope

if TYPE_CHECKING:
    from cim.services.simulation.flood_models import FloodHazards, FloodSimulation

app = typer.Typer(help="Drainage network simulations (SWMM).", no_args_is_help=True)


@app.command("flood")
def flood(
    dataset: Annotated[int, typer.Argument(help="Drainage (SWMM) dataset id.")],
    return_period: Annotated[
        float | None,
        typer.Option(
            "--return-period",
            help="Design storm return period P (a); omit for the model's own rain.",
        ),
    ] = None,
    duration: Annotated[int, typer.Option("--duration", help="Storm duration (min).")] = 120,
    peak: Annotated[float, typer.Option("--peak", help="Peak position r (0-1).")] = 0.4,
    step: Annotated[int, typer.Option("--step", help="Storm time step (min).")] = 5,
    formula: Annotated[
        str, typer.Option("--formula", help="Storm-intensity formula name.")
    ] = "shenzhen-2024-central",
    tail: Annotated[float, typer.Option("--tail", help="Hours simulated after the storm.")] = 2.0,
    extents: Annotated[bool, typer.Option(help="Spread flood volumes over the DEM.")] = True,
    crs: Annotated[str | None, typer.Option(help="CRS of the JSON GeoJSON.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    csv: CsvOption = None,
    xlsx: XlsxOption = None,
    lang: LangOption = "zh",
    table: TableOption = None,
    save_hazards: Annotated[
        str | None,
        typer.Option(
            "--save-hazards",
            metavar="NAME",
            help="Also store the flood extents as hazard dataset NAME (kind flood).",
        ),
    ] = None,
    at: AtOption = None,
) -> None:
    """Run SWMM on a stored drainage network with its own rain or a Chicago design storm; report
    flooded nodes (volume, hours, depth, DEM extent), surcharged conduits and outfalls; --csv
    writes the flooded nodes, or --table conduits or outfalls; --save-hazards NAME stores the
    extents as hazard zones a shelter plan can exclude."""
    from cim.services.simulation.flood import flood_simulation
    from cim.services.simulation.flood_hazards import save_flood_hazards
    from cim.services.simulation.storm import chicago_storm, formula_named

    storm = None
    if return_period is not None:
        storm = chicago_storm(
            formula_named(formula),
            return_period=return_period,
            duration_min=duration,
            peak_ratio=peak,
            step_min=step,
        )
    if save_hazards is not None:
        if not extents:
            raise typer.BadParameter("--save-hazards stores the extents: drop --no-extents")
        with session_scope(at=at) as session:  # commits the hazard dataset when all went well
            saved = save_flood_hazards(
                session, dataset, name=save_hazards, storm=storm, tail_h=tail, output_crs=crs,
                with_geojson=as_json,
            )  # fmt: skip
        text = f"{flood_text(saved.flood)}\n{saved_text(saved)}"
        emit(saved.model_dump(), as_json=as_json, text=text)
        write_tables(saved.flood, csv, xlsx, lang, table)
        return
    with session_scope(at=at) as session:
        result = flood_simulation(
            session,
            dataset,
            storm=storm,
            tail_h=tail,
            with_extents=extents,
            output_crs=crs,
            with_geojson=as_json,
        )
    emit(result.model_dump(), as_json=as_json, text=flood_text(result))
    write_tables(result, csv, xlsx, lang, table)


def saved_text(saved: FloodHazards) -> str:
    """One line: the hazard dataset the flood was saved as (or found saved before)."""
    area = sum(z.area_m2 for z in saved.zones)
    how = "saved as" if saved.created else "already saved as"
    return (
        f'{how} hazard dataset {saved.dataset.id} "{saved.dataset.name}": '
        f"{len(saved.zones)} flood zone(s), {area:,.0f} m² ({saved.simulation_id})"
    )


def flood_text(result: FloodSimulation) -> str:
    """A few lines for people: the rain, the totals, the worst flooded nodes."""
    storm = result.storm
    rain = (
        "the model's own rain"
        if storm is None
        else f"design storm {storm.formula} P={storm.return_period_a:g} a, "
        f"{storm.duration_min} min, r={storm.peak_ratio:g}: {storm.total_mm:.1f} mm, "
        f"peak {storm.peak_intensity_mm_h:.1f} mm/h"
    )
    totals = result.totals
    lines = [
        f"dataset {result.dataset_id}: {rain}; {result.start} to {result.end}",
        f"flooded nodes: {totals.flooded_node_count}, {totals.flood_volume_m3:,.1f} m³; "
        f"surcharged conduits: {totals.surcharged_conduit_count}; outfalls: "
        f"{totals.outfall_volume_m3:,.1f} m³",
    ]
    for node in result.flooded_nodes[:15]:
        extent = (
            f", extent {node.extent.area_m2:,.0f} m² up to {node.extent.max_depth_m:.2f} m deep"
            if node.extent
            else ""
        )
        lines.append(
            f"  {node.code:<14} {node.volume_m3:10,.1f} m³ {node.hours_flooded:6.2f} h{extent}"
        )
    if len(result.flooded_nodes) > 15:
        lines.append(f"  ... {len(result.flooded_nodes) - 15} more (--json for all)")
    lines += [f"  default: {d}" for d in result.defaults]
    return "\n".join(lines)

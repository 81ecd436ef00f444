"""``cim analyse shelters plan|show|list|zones|uncovered|suggest``: shelter zoning.

``zones`` and ``uncovered`` also write their rows to hand on: ``--csv FILE`` / ``--xlsx FILE``
with headers and names in ``--lang zh|en``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from cli.analyse_pipes_text import CsvOption, LangOption, XlsxOption, write_tables
from cli.context import console, emit, session_scope

if TYPE_CHECKING:
    from cim.services.shelters.models import PlanSummary, UncoveredCollection, ZoneCollection

app = typer.Typer(
    help="Shelter zoning: optimal capacitated zones, uncovered report, new-site suggestion.",
    no_args_is_help=True,
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
DistanceOption = Annotated[
    str,
    typer.Option(
        help="'euclidean' (straight line) or 'network' (along the imported roads, "
        "`cim import roads`)."
    ),
]
RoadsOption = Annotated[
    list[int] | None, typer.Option(help="Road dataset id for --distance network (repeat).")
]
AccessOption = Annotated[
    float,
    typer.Option(
        help="--distance network: farther than this (m) from every road = off the network."
    ),
]


def _metric(value: str) -> Literal["euclidean", "network"]:
    from cim.errors import InvalidInput

    if value not in ("euclidean", "network"):
        raise InvalidInput(f"--distance is 'euclidean' or 'network', not {value!r}")
    return "network" if value == "network" else "euclidean"


def _level_values(values: list[str] | None, option: str) -> dict[str, float]:
    from cim.errors import InvalidInput

    out: dict[str, float] = {}
    for item in values or []:
        level, _, number = item.partition("=")
        try:
            out[level.strip()] = float(number)
        except ValueError:
            raise InvalidInput(f"{option} wants LEVEL=NUMBER, got {item!r}") from None
    return out


def _plan_text(plan: PlanSummary) -> str:
    stats = plan.stats
    reasons = ", ".join(f"{k} {v:,.0f}" for k, v in stats["uncovered_by_reason"].items())
    lines = [
        f"{'shelter':>8}  {'level':<9} {'population':>10} {'capacity':>9} {'load':>6}  name",
        *(
            f"{s.shelter_id:>8}  {s.level:<9} {s.population:>10,.0f} "
            f"{s.capacity or 0:>9,.0f} {(s.load_ratio or 0):>6.2f}  {s.name or ''}"
            for s in plan.shelters
        ),
        f"plan {plan.id}: {stats['covered']:,.0f} of {stats['population']:,.0f} persons "
        f"covered ({(stats['coverage_ratio'] or 0):.1%}); uncovered: {reasons}; "
        f"mean distance {stats['mean_distance_m'] or 0:,.0f} m "
        f"({stats.get('distance', 'euclidean')}); "
        f"{stats['usable_shelters']}/{stats['shelters']} shelters usable; solver "
        f"{stats['solver']['method']} {stats['solver']['status']} in {stats['seconds']['total']} s",
    ]
    return "\n".join(lines)


@app.command("plan")
def plan(
    name: Annotated[str | None, typer.Option(help="A label for the plan.")] = None,
    radius: Annotated[
        list[str] | None, typer.Option(help="Service radius override LEVEL=METRES (repeat).")
    ] = None,
    area: Annotated[
        list[str] | None, typer.Option(help="Area per person override LEVEL=M2 (repeat).")
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(help="Hazard kind that makes a shelter unusable (repeat); default: all."),
    ] = None,
    no_exclude: Annotated[bool, typer.Option(help="Exclude no hazard kind.")] = False,
    whole_units: Annotated[
        bool, typer.Option(help="Never split a unit across shelters (MIP; slower).")
    ] = False,
    shelters: Annotated[list[int] | None, typer.Option(help="Shelter dataset id (repeat).")] = None,
    population: Annotated[
        list[int] | None, typer.Option(help="Population dataset id (repeat).")
    ] = None,
    hazards: Annotated[list[int] | None, typer.Option(help="Hazard dataset id (repeat).")] = None,
    time_limit: Annotated[float, typer.Option(help="Solver time limit, s (whole units).")] = 60.0,
    distance: DistanceOption = "euclidean",
    roads: RoadsOption = None,
    access_max: AccessOption = 500.0,
    as_json: JsonOption = False,
) -> None:
    """Compute and store a plan: every resident to a usable shelter in reach with room."""
    from cim.services.shelters.plan import PlanParameters, create_plan

    params = PlanParameters(
        name=name,
        radius_m=_level_values(radius, "--radius"),
        area_per_person_m2=_level_values(area, "--area"),
        exclude_hazards=[] if no_exclude else exclude,
        split_units=not whole_units,
        shelter_datasets=shelters,
        population_datasets=population,
        hazard_datasets=hazards,
        time_limit_s=time_limit,
        distance=_metric(distance),
        road_datasets=roads,
        access_max_m=access_max,
    )
    with session_scope() as session, console.status("planning...") as status:
        result = create_plan(session, params=params, progress=lambda m: status.update(m))
    emit(result.model_dump(mode="json"), as_json=as_json, text=_plan_text(result))


@app.command("show")
def show(
    plan_id: Annotated[int | None, typer.Argument(help="Plan id (default: the latest).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Show a stored plan: statistics and per-shelter load."""
    from cim.services.shelters.plan import latest_plan_id, plan_summary

    with session_scope() as session:
        result = plan_summary(session, plan_id=plan_id or latest_plan_id(session))
    emit(result.model_dump(mode="json"), as_json=as_json, text=_plan_text(result))


@app.command("list")
def list_(as_json: JsonOption = False) -> None:
    """List stored plans, newest first."""
    from cim.services.shelters.plan import list_plans

    with session_scope() as session:
        rows = list_plans(session)
    lines = [
        f"{r.id:>5}  {r.created_at[:19]}  {(r.coverage_ratio or 0):>6.1%}  {r.name or ''}"
        for r in rows
    ]
    emit(
        [r.model_dump(mode="json") for r in rows],
        as_json=as_json,
        text="\n".join(lines) if lines else "no plans yet",
    )


@app.command("suggest")
def suggest(
    k: Annotated[int, typer.Option("-k", "--k", help="How many new shelters.")] = 1,
    level: Annotated[str, typer.Option(help="Level of the new shelters.")] = "short",
    radius: Annotated[float | None, typer.Option(help="Radius override (m).")] = None,
    plan_id: Annotated[int | None, typer.Option("--plan", help="Plan (default latest).")] = None,
    all_population: Annotated[
        bool, typer.Option("--all-population", help="Cover everyone, not a plan's uncovered.")
    ] = False,
    candidates: Annotated[
        int | None, typer.Option(help="Shelters dataset of candidate sites (default: grid).")
    ] = None,
    grid: Annotated[float | None, typer.Option(help="Grid spacing (m), default radius/2.")] = None,
    distance: DistanceOption = "euclidean",
    roads: RoadsOption = None,
    access_max: AccessOption = 500.0,
    as_json: JsonOption = False,
) -> None:
    """Choose k new shelter sites maximising the newly covered population (MCLP)."""
    from cim.services.shelters.suggest import SuggestParameters, suggest_sites

    params = SuggestParameters(
        k=k,
        level=level,
        radius_m=radius,
        plan_id=plan_id,
        demand="all" if all_population else "uncovered",
        candidate_dataset=candidates,
        grid_spacing_m=grid,
        distance=_metric(distance),
        road_datasets=roads,
        access_max_m=access_max,
    )
    with session_scope() as session, console.status("choosing sites..."):
        result = suggest_sites(session, params=params)
    lines = [
        f"  site {s.site}: {s.lon:.6f}, {s.lat:.6f}  covers {s.covers:,.0f}"
        + (f"  ({s.name})" if s.name else "")
        for s in result.sites
    ]
    lines.append(
        f"{len(result.sites)} site(s) of {result.candidates} candidates newly cover "
        f"{result.gain:,.0f} of {result.demand_total:,.0f} persons ({result.demand}); "
        f"{result.method} {result.status}"
    )
    emit(result.model_dump(mode="json"), as_json=as_json, text="\n".join(lines))


OutputOption = Annotated[
    Path | None,
    typer.Option("--geojson", help="Write the GeoJSON FeatureCollection (WGS84) to this file."),
]
PlanArgument = Annotated[int | None, typer.Argument(help="Plan id (default: the latest).")]


def _emit_geojson(
    collection: ZoneCollection | UncoveredCollection,
    lines: list[str],
    path: Path | None,
    as_json: bool,
) -> None:
    """Print the collection (``--json``) or ``lines``; write it to ``path`` if given."""
    data = collection.model_dump(mode="json")
    text = "\n".join(lines)
    if path is not None:
        path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        text += f"\nwrote {len(collection.features)} feature(s) to {path}"
    emit(data, as_json=as_json, text=text)


@app.command("zones")
def zones(
    plan_id: PlanArgument = None,
    geojson: OutputOption = None,
    csv: CsvOption = None,
    xlsx: XlsxOption = None,
    lang: LangOption = "zh",
    as_json: JsonOption = False,
) -> None:
    """A plan's service zones: per shelter its population, capacity and load ratio."""
    from cim.services.shelters.plan import latest_plan_id
    from cim.services.shelters.zones import zone_features

    with session_scope() as session:
        collection = zone_features(session, plan_id=plan_id or latest_plan_id(session))
    write_tables(collection, csv, xlsx, lang)
    rows = [f["properties"] for f in collection.features]
    lines = [
        f"{'shelter':>8}  {'population':>10} {'capacity':>9} {'load':>6}  name",
        *(
            f"{p['shelter_id']:>8}  {p['population'] or 0:>10,.0f} {p['capacity'] or 0:>9,.0f} "
            f"{p['load_ratio'] or 0:>6.2f}  {p['name'] or ''}"
            for p in rows
        ),
    ]
    _emit_geojson(collection, lines, geojson, as_json)


@app.command("uncovered")
def uncovered(
    plan_id: PlanArgument = None,
    geojson: OutputOption = None,
    csv: CsvOption = None,
    xlsx: XlsxOption = None,
    lang: LangOption = "zh",
    as_json: JsonOption = False,
) -> None:
    """A plan's uncovered population: each unit with its uncovered persons and the reason."""
    from cim.services.shelters.plan import latest_plan_id
    from cim.services.shelters.zones import uncovered_features

    with session_scope() as session:
        collection = uncovered_features(session, plan_id=plan_id or latest_plan_id(session))
    write_tables(collection, csv, xlsx, lang)
    rows = [f["properties"] for f in collection.features]
    by_reason: dict[str, float] = {}
    for p in rows:
        by_reason[p["reason"]] = by_reason.get(p["reason"], 0.0) + float(p["uncovered"] or 0)
    lines = [
        f"{'unit':>8}  {'code':<16} {'uncovered':>9}  reason",
        *(
            f"{p['unit_id']:>8}  {p['code'] or ''!s:<16} {p['uncovered'] or 0:>9,.0f}  "
            f"{p['reason']}"
            for p in rows
        ),
        f"{len(rows)} unit(s), {sum(by_reason.values()):,.0f} persons uncovered: "
        + (", ".join(f"{k} {v:,.0f}" for k, v in sorted(by_reason.items())) or "none"),
    ]
    _emit_geojson(collection, lines, geojson, as_json)

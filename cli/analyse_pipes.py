"""``cim analyse pipes ...``: the underground-network analyses on the command line.

Geometries are WKT, GeoJSON text, or a path to a GeoJSON file, in the storage CRS unless
``--crs`` names another one. Every command prints a short text answer, or JSON with ``--json``;
``--csv FILE`` / ``--xlsx FILE`` also write its table(s) to hand on, in ``--lang zh|en``;
``--at INSTANT`` answers on the networks as they were then (earlier versions of re-imported
datasets), as ``at`` does on the API.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from cli.analyse_pipes_text import (
    CsvOption,
    LangOption,
    TableOption,
    XlsxOption,
    clashes_text,
    clearance_text,
    excavation_text,
    isolation_text,
    parse_point,
    profile_text,
    query_text,
    section_text,
    trace_text,
    write_tables,
)
from cli.context import AtOption, console, emit, session_scope

if TYPE_CHECKING:
    from cim.services.pipes.models import (
        CrossSection,
        LongitudinalProfile,
    )
    from cim.services.results import Result

app = typer.Typer(
    help="Pipe network: query, cross-section, profile, GB 50289 clearances, clashes, "
    "burst isolation, trace, excavation impact, QC.",
    no_args_is_help=True,
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
DatasetOption = Annotated[
    int | None, typer.Option("--dataset", help="Pipe dataset id (default all).")
]
CrsOption = Annotated[str | None, typer.Option(help="CRS of the given geometry (default storage).")]
AreaOption = Annotated[
    str | None, typer.Option(help="Only pipes in this polygon (default city-wide).")
]
SvgOption = Annotated[Path | None, typer.Option("--svg", help="Also write the chart as SVG here.")]
ChartT = TypeVar("ChartT", "CrossSection", "LongitudinalProfile")
ResultT = TypeVar("ResultT", bound="Result")


def _geometry(value: str) -> Any:
    """WKT, GeoJSON text or a GeoJSON file (Feature/FeatureCollection: its first geometry)."""
    path = Path(value)
    text = path.read_text(encoding="utf-8") if len(value) < 4096 and path.is_file() else value
    if text.lstrip().startswith("{"):
        data = json.loads(text)
        if data.get("type") == "FeatureCollection":
            data = data["features"][0]
        return data.get("geometry", data)
    return text


def _emit(result: Result, as_json: bool, text: str | None = None) -> None:
    """Print a typed answer: as JSON with ``--json`` (the keys the API sends), else ``text``."""
    emit(result.model_dump(), as_json=as_json, text=text)


def _on_geometry(
    service: Callable[..., ResultT],
    name: str,
    value: str | None,
    crs: str | None,
    at: str | None,
    **options: Any,
) -> ResultT:
    """Run ``service`` at ``at`` (None: now) with the geometry argument ``name`` (WKT, GeoJSON
    or file, in ``crs``) moved into the storage CRS, and the other ``options`` as given."""
    with session_scope(at=at) as session:
        return service(session, **{name: _storage(session, value, crs, name)}, **options)


def _storage(session: Any, value: str | None, crs: str | None, what: str) -> Any:
    from cim.services.pipes.inputs import geometry_to_storage
    from cim.services.pipes.scope import session_srid

    if value is None:
        return None
    return geometry_to_storage(_geometry(value), crs, session_srid(session), what=what)


@app.command("query")
def query(
    bbox: Annotated[str | None, typer.Option(help="minx,miny,maxx,maxy (storage CRS).")] = None,
    polygon: Annotated[str | None, typer.Option(help="Polygon: WKT, GeoJSON or file.")] = None,
    line: Annotated[str | None, typer.Option(help="Line to buffer: WKT, GeoJSON or file.")] = None,
    buffer: Annotated[float, typer.Option(help="Buffer around --line (m).")] = 0.0,
    utility: Annotated[list[str] | None, typer.Option(help="Class or sub-class (repeat).")] = None,
    material: Annotated[list[str] | None, typer.Option(help="Material (repeat).")] = None,
    diameter_min: Annotated[float | None, typer.Option(help="mm")] = None,
    diameter_max: Annotated[float | None, typer.Option(help="mm")] = None,
    year_min: int | None = None,
    year_max: int | None = None,
    depth_min: Annotated[float | None, typer.Option(help="Cover to the pipe top, m.")] = None,
    depth_max: Annotated[float | None, typer.Option(help="Cover to the pipe top, m.")] = None,
    limit: int = 1000,
    dataset: DatasetOption = None,
    crs: CrsOption = None,
    csv: CsvOption = None,
    xlsx: XlsxOption = None,
    lang: LangOption = "zh",
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pipes within a bbox / polygon / buffer of a line, filtered; GeoJSON with --json."""
    from cim.errors import InvalidInput
    from cim.services.pipes.query import query_pipes

    box = None
    if bbox is not None:
        try:
            minx, miny, maxx, maxy = (float(v) for v in bbox.split(","))
        except ValueError:
            raise InvalidInput("--bbox wants minx,miny,maxx,maxy") from None
        box = (minx, miny, maxx, maxy)
    with session_scope(at=at) as session:
        result = query_pipes(
            session,
            bbox=box,
            polygon=_storage(session, polygon, crs, "polygon"),
            line=_storage(session, line, crs, "line"),
            buffer_m=buffer,
            dataset_id=dataset,
            utilities=utility,
            materials=material,
            diameter_min_mm=diameter_min,
            diameter_max_mm=diameter_max,
            year_min=year_min,
            year_max=year_max,
            depth_min_m=depth_min,
            depth_max_m=depth_max,
            limit=limit,
        )
    write_tables(result, csv, xlsx, lang)
    _emit(result, as_json, query_text(result))


@app.command("section")
def section(
    line: Annotated[str, typer.Argument(help="Section line: WKT, GeoJSON or file.")],
    utility: Annotated[list[str] | None, typer.Option(help="Only these classes.")] = None,
    dataset: DatasetOption = None,
    crs: CrsOption = None,
    svg: SvgOption = None,
    csv: CsvOption = None,
    xlsx: XlsxOption = None,
    lang: LangOption = "zh",
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cross-section (横断面): every pipe crossed by the line, depth, size, colour; ground."""
    from cim.services.pipes.section import cross_section, section_svg

    result = _on_geometry(
        cross_section, "line", line, crs, at, dataset_id=dataset, utilities=utility
    )
    _write_svg(svg, section_svg, result, lang)
    write_tables(result, csv, xlsx, lang)
    _emit(result, as_json, section_text(result))


def _write_svg(
    path: Path | None, draw: Callable[[ChartT, str], str], result: ChartT, lang: str
) -> None:
    """Write the chart of ``result`` (its words in ``lang``) to ``path`` when --svg asked."""
    if path is not None:
        path.write_text(draw(result, lang), encoding="utf-8")
        console.print(f"wrote {path}")


@app.command("profile")
def profile(
    from_node: Annotated[int, typer.Argument(help="Start node id.")],
    to_node: Annotated[int, typer.Argument(help="End node id.")],
    svg: SvgOption = None,
    csv: CsvOption = None,
    xlsx: XlsxOption = None,
    lang: LangOption = "zh",
    table: TableOption = None,
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """Longitudinal profile (纵断面) along the network path between two nodes; --csv writes
    the segments, or the nodes with --table nodes."""
    from cim.services.pipes.profile import longitudinal_profile, profile_svg

    with session_scope(at=at) as session:
        result = longitudinal_profile(session, from_node_id=from_node, to_node_id=to_node)
    _write_svg(svg, profile_svg, result, lang)
    write_tables(result, csv, xlsx, lang, table)
    _emit(result, as_json, profile_text(result))


def pair_check(
    ctx: typer.Context,
    area: AreaOption = None,
    kind: Annotated[
        list[str] | None,
        typer.Option(help="clearance: horizontal, building, vertical; clashes: pipe, building."),
    ] = None,
    limit: Annotated[int, typer.Option(help="List at most this many (all are counted).")] = 1000,
    dataset: DatasetOption = None,
    crs: CrsOption = None,
    csv: CsvOption = None,
    xlsx: XlsxOption = None,
    lang: LangOption = "zh",
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """The two pair checks, one command body: ``clearance`` and ``clashes`` (default all kinds)."""
    options: dict[str, Any] = {"limit": limit, "dataset_id": dataset}
    if kind:
        options["kinds"] = tuple(kind)
    if ctx.info_name == "clearance":
        from cim.services.pipes.clearance import check_clearances

        console.print("checking clearances (GiST candidate pairs)...")
        report = _on_geometry(check_clearances, "area", area, crs, at, **options)
        write_tables(report, csv, xlsx, lang)
        _emit(report, as_json, clearance_text(report))
    else:
        from cim.services.pipes.clash import detect_clashes

        clashes = _on_geometry(detect_clashes, "area", area, crs, at, **options)
        write_tables(clashes, csv, xlsx, lang)
        _emit(clashes, as_json, clashes_text(clashes))


app.command(
    "clearance", help="GB 50289-2016 clearance check: pairs closer than the standard requires."
)(pair_check)
app.command("clashes", help="3D clashes: pipe-pipe and pipe-building element.")(pair_check)


@app.command("isolate")
def isolate(
    segment: Annotated[int | None, typer.Option(help="Burst segment id.")] = None,
    point: Annotated[str | None, typer.Option(help="Burst location x,y.")] = None,
    failed: Annotated[list[int] | None, typer.Option(help="Valve id found stuck (repeat).")] = None,
    dataset: DatasetOption = None,
    crs: CrsOption = None,
    csv: CsvOption = None,
    xlsx: XlsxOption = None,
    lang: LangOption = "zh",
    table: TableOption = None,
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """Burst-valve isolation (爆管关阀): valves to close, what is cut off; --csv writes the
    valves to close, or the isolated segments with --table segments."""
    from cim.services.pipes.inputs import point_to_storage
    from cim.services.pipes.isolation import isolate_burst
    from cim.services.pipes.scope import session_srid

    xy = parse_point(point)
    with session_scope(at=at) as session:
        result = isolate_burst(
            session,
            segment_id=segment,
            point=point_to_storage(xy, crs, session_srid(session)),
            dataset_id=dataset,
            failed_valve_ids=failed,
            with_geojson=as_json,
        )
    write_tables(result, csv, xlsx, lang, table)
    _emit(result, as_json, isolation_text(result))


@app.command("trace")
def trace(
    node: Annotated[int | None, typer.Option(help="Start node id.")] = None,
    segment: Annotated[int | None, typer.Option(help="Start segment id.")] = None,
    direction: Annotated[str, typer.Option(help="downstream, upstream or both.")] = "downstream",
    direction_from: Annotated[str, typer.Option(help="invert or link.")] = "invert",
    stop_at_valves: bool = False,
    stop_at_class_change: bool = False,
    max_distance: Annotated[float | None, typer.Option(help="m along the pipes.")] = None,
    csv: CsvOption = None,
    xlsx: XlsxOption = None,
    lang: LangOption = "zh",
    table: TableOption = None,
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """Trace downstream/upstream (gravity) or the connected component (pressure); --csv
    writes the segments, or the nodes with --table nodes."""
    from cim.services.pipes.trace import trace as run_trace

    with session_scope(at=at) as session:
        result = run_trace(
            session,
            node_id=node,
            segment_id=segment,
            direction=direction,  # type: ignore[arg-type]
            direction_from=direction_from,  # type: ignore[arg-type]
            stop_at_valves=stop_at_valves,
            stop_at_class_change=stop_at_class_change,
            max_distance_m=max_distance,
            with_geojson=as_json,
        )
    write_tables(result, csv, xlsx, lang, table)
    _emit(result, as_json, trace_text(result))


@app.command("excavation")
def excavation(
    polygon: Annotated[str, typer.Argument(help="Cut polygon: WKT, GeoJSON or file.")],
    depth: Annotated[float, typer.Option(help="Excavation depth below ground (m).")],
    margin: Annotated[float, typer.Option(help="Search margin around the cut (m).")] = 1.0,
    dataset: DatasetOption = None,
    crs: CrsOption = None,
    csv: CsvOption = None,
    xlsx: XlsxOption = None,
    lang: LangOption = "zh",
    table: TableOption = None,
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """Excavation impact: pipes in or near the cut, cover, clearance, owners to notify; --csv
    writes the pipes, or the owners with --table owners."""
    from cim.services.pipes.excavation import excavation_impact

    result = _on_geometry(
        excavation_impact,
        "polygon",
        polygon,
        crs,
        at,
        depth_m=depth,
        margin_m=margin,
        dataset_id=dataset,
    )
    write_tables(result, csv, xlsx, lang, table)
    _emit(result, as_json, excavation_text(result))


@app.command("qc")
def qc(
    dataset: Annotated[int, typer.Argument(help="Pipe dataset id.")],
    csv: CsvOption = None,
    xlsx: XlsxOption = None,
    lang: LangOption = "zh",
    as_json: JsonOption = False,
) -> None:
    """The QC report stored by the import of a pipe dataset; --csv/--xlsx list its findings."""
    from cim.services.pipes.qc import dataset_qc

    with session_scope() as session:
        result = dataset_qc(session, dataset_id=dataset)
    write_tables(result, csv, xlsx, lang)
    _emit(result, as_json)

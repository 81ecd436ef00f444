"""``cim analyse pipes ...``: the underground-network analyses on the command line.

Geometries are WKT, GeoJSON text, or a path to a GeoJSON file, in the storage CRS unless
``--crs`` names another one. Every command prints a short text answer, or JSON with ``--json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.context import console, emit, session_scope

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
SvgOption = Annotated[Path | None, typer.Option("--svg", help="Also write the chart as SVG here.")]


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
    with session_scope() as session:
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
    lines = []
    for p in (f["properties"] for f in result["features"]):
        size = p["diameter_mm"] or p["width_mm"] or ""
        depth = "" if p["depth_m"] is None else p["depth_m"]
        lines.append(
            f"{p['id']:>8}  {p['code']:<20} {p['utility']:<3} {p['material'] or '':<5} "
            f"{size:>6} {depth}"
        )
    lines.append(f"{result['numberMatched']} pipes match, {result['numberReturned']} shown")
    emit(result, as_json=as_json, text="\n".join(lines))


@app.command("section")
def section(
    line: Annotated[str, typer.Argument(help="Section line: WKT, GeoJSON or file.")],
    utility: Annotated[list[str] | None, typer.Option(help="Only these classes.")] = None,
    dataset: DatasetOption = None,
    crs: CrsOption = None,
    svg: SvgOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cross-section (横断面): every pipe crossed by the line, depth, size, colour; ground."""
    from cim.services.pipes.section import cross_section, section_svg

    with session_scope() as session:
        result = cross_section(
            session,
            line=_storage(session, line, crs, "line"),
            dataset_id=dataset,
            utilities=utility,
        )
    if svg is not None:
        svg.write_text(section_svg(result), encoding="utf-8")
        console.print(f"wrote {svg}")
    lines = [
        f"{p['offset_m']:>8.2f} m  {p['code']:<16} {p['utility']:<3} {p['section']:<10} "
        f"top {p['top_z']}  invert {p['invert_z']}  cover {p['cover_m']}"
        for p in result["pipes"]
    ]
    lines.append(f"{result['pipe_count']} pipes crossed along {result['line_length_m']} m")
    emit(result, as_json=as_json, text="\n".join(lines))


@app.command("profile")
def profile(
    from_node: Annotated[int, typer.Argument(help="Start node id.")],
    to_node: Annotated[int, typer.Argument(help="End node id.")],
    svg: SvgOption = None,
    as_json: JsonOption = False,
) -> None:
    """Longitudinal profile (纵断面) along the network path between two nodes."""
    from cim.services.pipes.profile import longitudinal_profile, profile_svg

    with session_scope() as session:
        result = longitudinal_profile(session, from_node_id=from_node, to_node_id=to_node)
    if svg is not None:
        svg.write_text(profile_svg(result), encoding="utf-8")
        console.print(f"wrote {svg}")
    lines = [
        f"{s['chainage_from_m']:>9.2f}  {s['code']:<16} {s['section']:<10} invert "
        f"{s['invert_from_z']} -> {s['invert_to_z']}  slope {s['slope_permille']}‰  cover "
        f"{s['cover_from_m']}/{s['cover_to_m']}{'  BACKWARD' if s['backward_slope'] else ''}"
        for s in result["segments"]
    ]
    lines.append(
        f"{len(result['segments'])} segments, {result['length_m']} m, "
        f"{len(result['backward_segments'])} backward"
    )
    emit(result, as_json=as_json, text="\n".join(lines))


def _pairs_text(rows: list[dict[str, Any]], total: int, noun: str) -> str:
    lines = [
        f"{r['a']['code']:<16} {r['b'].get('code') or r['b'].get('guid')!s:<16} "
        + (
            f"{r['rule']['id']:<16} required {r['required_m']} actual {r['actual_m']}"
            if "rule" in r
            else f"overlap {r['overlap_m']} m"
        )
        + f"  at {r['location']}"
        for r in rows
    ]
    lines.append(f"{total} {noun}")
    return "\n".join(lines)


@app.command("clearance")
def clearance(
    area: Annotated[str | None, typer.Option(help="Only this polygon (default city-wide).")] = None,
    kind: Annotated[list[str] | None, typer.Option(help="horizontal, building, vertical.")] = None,
    limit: int = 1000,
    dataset: DatasetOption = None,
    crs: CrsOption = None,
    as_json: JsonOption = False,
) -> None:
    """GB 50289-2016 clearance check: pairs closer than the standard requires."""
    from cim.services.pipes.clearance import check_clearances

    with session_scope() as session:
        console.print("checking clearances (GiST candidate pairs)...")
        result = check_clearances(
            session,
            dataset_id=dataset,
            area=_storage(session, area, crs, "area"),
            kinds=tuple(kind or ("horizontal", "building", "vertical")),
            limit=limit,
        )
    emit(
        result,
        as_json=as_json,
        text=_pairs_text(result["violations"], result["violation_count"], "violations"),
    )


@app.command("clashes")
def clashes(
    area: Annotated[str | None, typer.Option(help="Only this polygon (default all).")] = None,
    kind: Annotated[list[str] | None, typer.Option(help="pipe, building.")] = None,
    limit: int = 1000,
    dataset: DatasetOption = None,
    crs: CrsOption = None,
    as_json: JsonOption = False,
) -> None:
    """3D clashes: pipe-pipe and pipe-building element."""
    from cim.services.pipes.clash import detect_clashes

    with session_scope() as session:
        result = detect_clashes(
            session,
            dataset_id=dataset,
            area=_storage(session, area, crs, "area"),
            kinds=tuple(kind or ("pipe", "building")),
            limit=limit,
        )
    emit(
        result,
        as_json=as_json,
        text=_pairs_text(result["clashes"], result["clash_count"], "clashes"),
    )


@app.command("isolate")
def isolate(
    segment: Annotated[int | None, typer.Option(help="Burst segment id.")] = None,
    point: Annotated[str | None, typer.Option(help="Burst location x,y.")] = None,
    failed: Annotated[list[int] | None, typer.Option(help="Valve id found stuck (repeat).")] = None,
    dataset: DatasetOption = None,
    crs: CrsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Burst-valve isolation (爆管关阀): valves to close, what is cut off."""
    from cim.errors import InvalidInput
    from cim.services.pipes.inputs import point_to_storage
    from cim.services.pipes.isolation import isolate_burst
    from cim.services.pipes.scope import session_srid

    xy = None
    if point is not None:
        try:
            px, py = (float(v) for v in point.split(","))
        except ValueError:
            raise InvalidInput("--point wants x,y") from None
        xy = (px, py)
    with session_scope() as session:
        result = isolate_burst(
            session,
            segment_id=segment,
            point=point_to_storage(xy, crs, session_srid(session)),
            dataset_id=dataset,
            failed_valve_ids=failed,
            with_geojson=as_json,
        )
    text = (
        f"close {len(result['valves_to_close'])} valves: "
        f"{', '.join(v['code'] for v in result['valves_to_close']) or '-'}; "
        f"{result['segment_count']} segments, {result['length_m']} m, {result['volume_m3']} m3 "
        f"isolated; {len(result['affected_nodes'])} nodes affected; "
        f"{len(result['failed_valves_passed'])} failed valves passed"
    )
    emit(result, as_json=as_json, text=text)


@app.command("trace")
def trace(
    node: Annotated[int | None, typer.Option(help="Start node id.")] = None,
    segment: Annotated[int | None, typer.Option(help="Start segment id.")] = None,
    direction: Annotated[str, typer.Option(help="downstream, upstream or both.")] = "downstream",
    direction_from: Annotated[str, typer.Option(help="invert or link.")] = "invert",
    stop_at_valves: bool = False,
    stop_at_class_change: bool = False,
    max_distance: Annotated[float | None, typer.Option(help="m along the pipes.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Trace downstream/upstream (gravity) or the connected component (pressure)."""
    from cim.services.pipes.trace import trace as run_trace

    with session_scope() as session:
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
    text = (
        f"{result['mode']} {result['direction']}: {result['segment_count']} segments, "
        f"{result['length_m']} m; ends at "
        f"{', '.join(n['code'] for n in result['terminal_nodes'][:20]) or '-'}"
    )
    emit(result, as_json=as_json, text=text)


@app.command("excavation")
def excavation(
    polygon: Annotated[str, typer.Argument(help="Cut polygon: WKT, GeoJSON or file.")],
    depth: Annotated[float, typer.Option(help="Excavation depth below ground (m).")],
    margin: Annotated[float, typer.Option(help="Search margin around the cut (m).")] = 1.0,
    dataset: DatasetOption = None,
    crs: CrsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Excavation impact: pipes in or near the cut, cover, clearance, owners to notify."""
    from cim.services.pipes.excavation import excavation_impact

    with session_scope() as session:
        result = excavation_impact(
            session,
            polygon=_storage(session, polygon, crs, "polygon"),
            depth_m=depth,
            margin_m=margin,
            dataset_id=dataset,
        )
    lines = [
        f"{p['status']:<7} {p['code']:<16} {p['utility']:<3} cover {p['min_cover_m']} "
        f"h {p['horizontal_clearance_m']} v {p['vertical_clearance_m']} owner {p['owner'] or '-'}"
        for p in result["pipes"]
    ]
    lines.append(
        f"{result['pipe_count']} pipes affected, {result['struck_count']} struck; notify: "
        + (", ".join(f"{n['utility']}/{n['owner'] or '?'}" for n in result["notify"]) or "nobody")
    )
    emit(result, as_json=as_json, text="\n".join(lines))


@app.command("qc")
def qc(
    dataset: Annotated[int, typer.Argument(help="Pipe dataset id.")], as_json: JsonOption = False
) -> None:
    """The QC report stored by the import of a pipe dataset."""
    from cim.services.pipes.qc import dataset_qc

    with session_scope() as session:
        result = dataset_qc(session, dataset_id=dataset)
    emit(result, as_json=as_json)

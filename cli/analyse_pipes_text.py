"""Text answers of ``cim analyse pipes``: one formatter per typed result (``--json`` aside),
and the ``--csv``/``--xlsx``/``--lang`` files every list analysis (pipes and shelters) writes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.context import console

if TYPE_CHECKING:
    from cim.services.pipes.models import (
        BurstIsolation,
        ClashReport,
        ClearanceReport,
        CrossSection,
        ElementSide,
        ExcavationImpact,
        LongitudinalProfile,
        NetworkTrace,
        PairSide,
        PipeCollection,
    )
    from cim.services.results import Result


def query_text(result: PipeCollection) -> str:
    lines = []
    for p in (f["properties"] for f in result.features):
        depth = "" if p["depth_m"] is None else p["depth_m"]
        lines.append(
            f"{p['id']:>8}  {p['code']:<20} {p['utility']:<3} {p['material'] or '':<5} "
            f"{p.get('section') or '':>9} {depth}"
        )
    lines.append(f"{result.numberMatched} pipes match, {result.numberReturned} shown")
    return "\n".join(lines)


def section_text(result: CrossSection) -> str:
    lines = [
        f"{p.offset_m:>8.2f} m  {p.code:<16} {p.utility:<3} {p.section:<10} "
        f"top {p.top_z}  invert {p.invert_z}  cover {p.cover_m}"
        for p in result.pipes
    ]
    lines.append(f"{result.pipe_count} pipes crossed along {result.line_length_m} m")
    return "\n".join(lines)


def profile_text(result: LongitudinalProfile) -> str:
    lines = [
        f"{s.chainage_from_m:>9.2f}  {s.code:<16} {s.section:<10} invert "
        f"{s.invert_from_z} -> {s.invert_to_z}  slope {s.slope_permille}‰  cover "
        f"{s.cover_from_m}/{s.cover_to_m}{'  BACKWARD' if s.backward_slope else ''}"
        for s in result.segments
    ]
    lines.append(
        f"{len(result.segments)} segments, {result.length_m} m, "
        f"{len(result.backward_segments)} backward"
    )
    return "\n".join(lines)


def clearance_text(result: ClearanceReport) -> str:
    lines = [
        f"{r.a.code:<16} {_side_label(r.b):<16} {r.rule.id:<16} "
        f"required {r.required_m} actual {r.actual_m}  at {r.location}"
        for r in result.violations
    ]
    lines.append(f"{result.violation_count} violations")
    return "\n".join(lines)


def _side_label(side: PairSide | ElementSide) -> str:
    """The other side of a pair as the text names it: a pipe's or building's code, or an
    element's GUID."""
    if side.layer == "building_element":
        return str(side.guid)
    return str(side.code or None)


def clashes_text(result: ClashReport) -> str:
    lines = [
        f"{r.a.code:<16} {_side_label(r.b):<16} overlap {r.overlap_m} m  at {r.location}"
        for r in result.clashes
    ]
    lines.append(f"{result.clash_count} clashes")
    return "\n".join(lines)


def isolation_text(result: BurstIsolation) -> str:
    return (
        f"close {len(result.valves_to_close)} valves: "
        f"{', '.join(v.code for v in result.valves_to_close) or '-'}; "
        f"{result.segment_count} segments, {result.length_m} m, {result.volume_m3} m3 "
        f"isolated; {len(result.affected_nodes)} nodes affected; "
        f"{len(result.failed_valves_passed)} failed valves passed"
    )


def trace_text(result: NetworkTrace) -> str:
    return (
        f"{result.mode} {result.direction}: {result.segment_count} segments, "
        f"{result.length_m} m; ends at "
        f"{', '.join(n.code for n in result.terminal_nodes[:20]) or '-'}"
    )


def excavation_text(result: ExcavationImpact) -> str:
    lines = [
        f"{p.status:<7} {p.code:<16} {p.utility:<3} cover {p.min_cover_m} "
        f"h {p.horizontal_clearance_m} v {p.vertical_clearance_m} owner {p.owner or '-'}"
        for p in result.pipes
    ]
    lines.append(
        f"{result.pipe_count} pipes affected, {result.struck_count} struck; notify: "
        + (", ".join(f"{n.utility}/{n.owner or '?'}" for n in result.notify) or "nobody")
    )
    return "\n".join(lines)


def _language(value: str) -> str:
    """``--lang``: a language there is a file for (checked before the analysis runs)."""
    from cim.services.tables.language import languages

    if value not in languages():
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(languages())}")
    return value


CsvOption = Annotated[
    Path | None,
    typer.Option("--csv", help="Also write the table as CSV (UTF-8 with BOM, for Excel) here."),
]
XlsxOption = Annotated[
    Path | None, typer.Option("--xlsx", help="Also write the tables as an xlsx workbook here.")
]
LangOption = Annotated[
    str,
    typer.Option(
        "--lang", callback=_language, help="Words of --csv/--xlsx/--svg: zh (default) or en."
    ),
]
TableOption = Annotated[
    str | None,
    typer.Option("--table", help="--csv of an answer with several tables: which one."),
]


def write_tables(
    result: Result,
    csv_path: Path | None,
    xlsx_path: Path | None,
    lang: str,
    table: str | None = None,
) -> None:
    """Write the answer's tables where ``--csv`` / ``--xlsx`` asked (headers in ``lang``)."""
    if csv_path is None and xlsx_path is None:
        return
    from cim.services.tables.catalog import tables_of
    from cim.services.tables.spec import pick
    from cim.services.tables.writers import to_csv, to_xlsx

    tables = tables_of(result)
    if csv_path is not None:
        chosen = pick(tables, table)
        csv_path.write_bytes(to_csv(chosen, lang))
        console.print(f"wrote {len(chosen.rows)} row(s) to {csv_path}")
    if xlsx_path is not None:
        xlsx_path.write_bytes(to_xlsx(tables, lang))
        console.print(f"wrote {len(tables)} sheet(s) to {xlsx_path}")


def parse_point(point: str | None) -> tuple[float, float] | None:
    """``--point x,y`` as a pair (None when not given); anything else is an InvalidInput."""
    from cim.errors import InvalidInput

    if point is None:
        return None
    try:
        x, y = (float(v) for v in point.split(","))
    except ValueError:
        raise InvalidInput("--point wants x,y") from None
    return x, y

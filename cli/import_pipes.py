"""``cim import pipes FILE...``: CJJ 61 tables, GIS layers, EPANET or SWMM into the 3D network."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cim.errors import InvalidInput
from cli.context import console, emit, engine_scope
from importers.registry import PIPES, PipeOptions


def _origin(value: str | None) -> tuple[float, float, float] | None:
    if value is None:
        return None
    try:
        parts = [float(v) for v in value.split(",")]
    except ValueError:
        raise InvalidInput(f"--origin {value!r}: expected E,N or E,N,H (numbers)") from None
    if len(parts) not in (2, 3):
        raise InvalidInput(f"--origin {value!r}: expected E,N or E,N,H")
    return (parts[0], parts[1], parts[2] if len(parts) == 3 else 0.0)


def command(
    files: Annotated[
        list[Path],
        typer.Argument(help=PIPES.files_help),
    ],
    format: Annotated[
        str | None, typer.Option("--format", help="cjj61 | gis | epanet | swmm (default: guess).")
    ] = None,
    utility: Annotated[
        str | None,
        typer.Option("--utility", help="CJJ 61 class or sub-class code (JS, PS, YS, RQ ...)."),
    ] = None,
    crs: Annotated[
        str | None, typer.Option("--crs", help="Source CRS (EPSG:xxxx); overrides the file's.")
    ] = None,
    origin: Annotated[
        str | None,
        typer.Option("--origin", help="E,N[,H]: add to local plane coordinates (and heights)."),
    ] = None,
    mapping: Annotated[
        Path | None, typer.Option("--mapping", help="YAML mapping of headers and vocabularies.")
    ] = None,
    default_cover: Annotated[
        float,
        typer.Option("--default-cover", help="Cover (m) to the pipe top where no depth is known."),
    ] = 1.0,
    strict: Annotated[
        bool, typer.Option("--strict", help="Refuse the import when QC finds errors.")
    ] = False,
    replace: Annotated[
        bool, typer.Option("--replace", help="Re-import files already in (replaces them).")
    ] = False,
    valves: Annotated[
        Path | None,
        typer.Option(
            "--valves",
            help="EPANET: isolation valve layer CSV (link,node[,state]; WNTR's valve layer).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Import underground pipe networks, one dataset per network, with a CJJ 61 QC report."""
    options = PipeOptions(
        format=format, utility=utility, crs=crs, origin=_origin(origin), mapping=mapping,
        default_cover=default_cover, strict=strict, replace=replace, valves=valves,
    )  # fmt: skip
    with engine_scope() as engine, console.status("importing pipes...") as status:
        results = PIPES.run(engine, files, options, lambda stage, _, __: status.update(stage))
    lines: list[str] = []
    for result in results:
        dataset, counts, qc = result.dataset, result.dataset.counts, result.dataset.qc
        verb = "imported" if result.created else "already imported (use --replace)"
        lines.append(
            f"{verb}: dataset {dataset.id} {dataset.name}: "
            f"{counts.get('pipe_node', 0)} nodes, {counts.get('pipe_segment', 0)} segments, "
            f"QC {qc.get('errors', 0)} error(s)"
            + "".join(f", {rule} {n}" for rule, n in (qc.get("by_rule") or {}).items() if n)
        )
        lines += [f"warning: {w}" for w in result.warnings]
    emit([r.to_dict() for r in results], as_json=as_json, text="\n".join(lines))

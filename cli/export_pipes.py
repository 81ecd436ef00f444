"""``cim export pipes DATASET FILE --format epanet|swmm``: a stored network written back as a file.

The EPANET export goes through WNTR (``cim.services.simulation.export``), the SWMM export
through the model the flood simulation runs (``cim.services.simulation.export_swmm``): the
original names, links, sections and options of the imported ``.inp`` and the coordinates in its
source CRS, so EPANET/WNTR or SWMM/pyswmm can run what cim stores. The file is written beside
the target and renamed, so an error leaves nothing half-written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from cli.context import emit, session_scope

app = typer.Typer(help="Export stored data as files (pipe networks as EPANET or SWMM .inp).")
ExportFormat = Literal["epanet", "swmm"]


@app.command("pipes")
def pipes(
    dataset: Annotated[
        int, typer.Argument(help="Pipe dataset id (imported from an EPANET or SWMM .inp).")
    ],
    path: Annotated[Path, typer.Argument(help="The file to write (.inp).", dir_okay=False)],
    format_: Annotated[
        ExportFormat,
        typer.Option("--format", help="epanet (water, .inp) or swmm (drainage, SWMM 5 .inp)."),
    ] = "epanet",
    units: Annotated[
        str | None,
        typer.Option(help="EPANET flow units (GPM, LPS...); default the source's. EPANET only."),
    ] = None,
    default_subcatchments: Annotated[
        bool,
        typer.Option(
            "--default-subcatchments",
            help="SWMM only: a network stored without subcatchments gets the flood "
            "simulation's stand-ins (one per inlet node).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Write a pipe dataset as the hydraulic model of its import (EPANET or SWMM .inp)."""
    if format_ == "swmm":
        _swmm(dataset, path, units, default_subcatchments, as_json)
        return
    from cim.errors import InvalidInput
    from cim.services.simulation.export import export_epanet

    if default_subcatchments:
        raise InvalidInput("--default-subcatchments is for --format swmm")
    with session_scope() as session:
        done = export_epanet(session, dataset, path, units=units)
    emit(
        done.model_dump(),
        as_json=as_json,
        text=(
            f"wrote {done.path} ({done.format}, {done.units}): {done.junctions} junctions, "
            f"{done.tanks} tanks, {done.reservoirs} reservoirs, {done.pipes} pipes, "
            f"{done.pumps} pumps, {done.valves} valves"
            + "".join(f"\n  default: {d}" for d in done.defaults)
        ),
    )


def _swmm(
    dataset: int, path: Path, units: str | None, default_subcatchments: bool, as_json: bool
) -> None:
    from cim.errors import InvalidInput
    from cim.services.simulation.export_swmm import export_swmm

    if units is not None:
        raise InvalidInput("--units is for --format epanet; a SWMM export keeps the source's")
    with session_scope() as session:
        done = export_swmm(session, dataset, path, default_subcatchments=default_subcatchments)
    emit(
        done.model_dump(),
        as_json=as_json,
        text=(
            f"wrote {done.path} ({done.format}, {done.flow_units}): {done.junctions} junctions, "
            f"{done.outfalls} outfalls, {done.storages} storage units, {done.conduits} conduits, "
            f"{done.links - done.conduits} other links, {done.subcatchments} subcatchments, "
            f"{done.raingages} rain gages"
            + "".join(f"\n  default: {d}" for d in done.defaults)
            + "".join(f"\n  needs beside it (not kept by cim): {f}" for f in done.external_files)
        ),
    )

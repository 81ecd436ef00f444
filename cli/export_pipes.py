"""``cim export pipes DATASET FILE --format epanet``: a stored network written back as a file.

The EPANET export goes through WNTR (``cim.services.simulation.export``): the original names,
links, valves, demands, patterns, curves, controls and options of the imported ``.inp`` and the
coordinates in its source CRS, so EPANET or WNTR can run what cim stores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from cli.context import emit, session_scope

app = typer.Typer(help="Export stored data as files (pipe networks as EPANET .inp).")
ExportFormat = Literal["epanet"]


@app.command("pipes")
def pipes(
    dataset: Annotated[int, typer.Argument(help="Pipe dataset id (imported from EPANET .inp).")],
    path: Annotated[Path, typer.Argument(help="The file to write (.inp).", dir_okay=False)],
    format_: Annotated[
        ExportFormat, typer.Option("--format", help="File format: epanet (.inp).")
    ] = "epanet",
    units: Annotated[
        str | None, typer.Option(help="EPANET flow units (GPM, LPS...); default the source's.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Write a pipe dataset as an EPANET .inp through WNTR (hydraulic model of the import)."""
    from cim.services.simulation.export import export_epanet

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

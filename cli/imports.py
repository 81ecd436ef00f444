"""``cim import <kind> ...``: one command per dataset kind of ``importers.registry``.

The one-vector-file kinds (shelters, population, hazards, roads) get commands made from their
registry entries; terrain, pipes and ifc have modules of their own (progress bars, many files).
"""

from __future__ import annotations

import typer

from cli import (
    import_buildings,
    import_ifc,
    import_pipes,
    import_pointcloud,
    import_shelters,
    import_terrain,
)
from importers.registry import VECTOR_IMPORTERS

app = typer.Typer(
    help="Import source files into the database (one dataset per file).", no_args_is_help=True
)
for entry in VECTOR_IMPORTERS:
    app.command(entry.kind)(import_shelters.vector_command(entry))
app.command("terrain")(import_terrain.command)
app.command("pipes")(import_pipes.command)
app.command("ifc")(import_ifc.command)
app.command("buildings")(import_buildings.command)
app.command("pointcloud")(import_pointcloud.command)

"""``cim import <kind> ...``: one command per source kind, each in a module of its own.

Register a command here with one line; the group is shown only when it has commands.
"""

from __future__ import annotations

import typer

from cli import import_ifc, import_pipes, import_shelters, import_terrain

app = typer.Typer(
    help="Import source files into the database (one dataset per file).", no_args_is_help=True
)
app.command("shelters")(import_shelters.shelters)
app.command("population")(import_shelters.population)
app.command("hazards")(import_shelters.hazards)
app.command("roads")(import_shelters.roads)
app.command("terrain")(import_terrain.command)
app.command("pipes")(import_pipes.command)
app.command("ifc")(import_ifc.command)

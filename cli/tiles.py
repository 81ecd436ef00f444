"""``cim tiles ...``: build 3D Tiles and terrain tiles from the database.

Register commands here; `cli.main` loads this module when one of them runs.
"""

from __future__ import annotations

import typer

from cli import tiles_build

app = typer.Typer(
    help="Build tilesets (3D Tiles, quantized-mesh terrain) into CIM_DATA_DIR/tiles.",
    no_args_is_help=True,
)
app.command("build")(tiles_build.command)

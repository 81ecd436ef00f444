"""``cim demo``: start the embedded database, migrate, load the sample city, serve.

Each step that exists runs; the sample-city import and tile build join as their importers land.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cim.db.connect import server_versions
from cli.context import console, engine_scope, load_settings
from cli.serve import serve


def demo(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="Prepare only; do not serve.")
    ] = False,
) -> None:
    """Prepare the demo city and serve it."""
    settings = load_settings()
    with engine_scope(settings) as engine:
        versions = server_versions(engine)
    console.print(
        f"[green]database ready[/green]: PostgreSQL {versions['postgresql']}, "
        f"PostGIS {versions['postgis']} ({settings.data_dir})"
    )
    if no_serve:
        return
    serve(host=host, port=port, workers=1, reload=False)

"""Entry point of the ``cim`` command: registers every command group.

A group appears once it has commands that work; each group lives in a module of its own.
"""

from __future__ import annotations

import typer
from pydantic import ValidationError

from cim.config import CimSettings
from cim.logs import configure_logging
from cli import analyse, datasets, db, export_pipes, imports, jobs, keys, sensors, simulate, tiles
from cli.demo import demo
from cli.errors import run_guarded
from cli.serve import serve
from cli.worker import worker

app = typer.Typer(
    name="cim",
    help="cim - City Information Model service: terrain, BIM buildings and underground utilities.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db.app, name="db")
app.add_typer(datasets.app, name="datasets")
app.add_typer(keys.app, name="keys")
app.add_typer(jobs.app, name="jobs")
app.add_typer(export_pipes.app, name="export")
app.add_typer(sensors.app, name="sensors")
app.add_typer(simulate.app, name="simulate")
# Groups whose commands arrive with later work appear only once they have some.
for group, name in ((imports.app, "import"), (tiles.app, "tiles"), (analyse.app, "analyse")):
    if group.registered_commands or group.registered_groups:
        app.add_typer(group, name=name)
app.command("serve")(serve)
app.command("demo")(demo)
app.command("worker")(worker)


def main() -> None:
    """Console-script entry: run the app, mapping cim errors to one line and an exit code."""
    setup_logging()
    run_guarded(lambda: app(standalone_mode=True))


def setup_logging() -> None:
    """Log lines as the server writes them (``CIM_LOG_FORMAT``, ``CIM_LOG_LEVEL``); with a bad
    setting, the defaults (the command that loads the settings reports it in one line)."""
    try:
        settings = CimSettings()
    except ValidationError:
        settings = CimSettings.model_construct()
    configure_logging(settings.log_level, settings.log_format)

"""``cim analyse ...``: the pipe-network and shelter analyses from the command line.

Register commands here; `cli.main` loads this module when one of them runs.
"""

from __future__ import annotations

import typer

from cli import (
    analyse_drainage,
    analyse_gas,
    analyse_pipes,
    analyse_shelters,
    analyse_shutdown_plans,
    analyse_simulation,
)

app = typer.Typer(
    help="Analyses: pipe network (one map) and disaster-shelter zoning.", no_args_is_help=True
)
app.add_typer(analyse_shelters.app, name="shelters")
app.add_typer(analyse_pipes.app, name="pipes")
app.add_typer(analyse_drainage.app, name="drainage")
app.add_typer(analyse_gas.app, name="gas")
analyse_pipes.app.command("shutdown")(analyse_simulation.shutdown)
analyse_pipes.app.add_typer(analyse_shutdown_plans.app, name="shutdowns")

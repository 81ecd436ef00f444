"""``cim sensors``: upkeep of the sensor observations (retention of the raw month partitions)."""

from __future__ import annotations

from typing import Annotated

import typer

from cim.services.sensors.retention import drop_old_partitions
from cli.context import console, session_scope

app = typer.Typer(help="Sensor observations: retention.", no_args_is_help=True)


@app.command("retention")
def retention(
    months: Annotated[
        int, typer.Option(min=1, help="Keep the raw observations of the last N months.")
    ],
) -> None:
    """Drop the month partitions of raw observations older than N months (whole months: the
    current month minus N is the oldest kept). Hourly and daily roll-ups are kept, so charts
    over older periods still answer."""
    with session_scope() as session:
        result = drop_old_partitions(session=session, months=months)
    dropped = ", ".join(result.dropped_partitions) or "none"
    console.print(
        f"kept observations from {result.cutoff:%Y-%m-%d}; dropped partitions: {dropped}; "
        f"{result.default_rows_deleted} older rows deleted from the default partition"
    )

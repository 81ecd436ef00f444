"""``cim import <kind> ...``: one command per source kind, each in a module of its own.

Register a command here with one line; the group is shown only when it has commands.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Import source files into the database (one dataset per file).", no_args_is_help=True
)

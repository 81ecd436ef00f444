"""The ``cim`` command line: a Typer composition root over cim, importers and tiles."""

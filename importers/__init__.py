"""Importers: source files -> cim.db rows. One module per source format, chosen by dataset kind
in ``importers.registry`` (by the CLI and the API jobs alike); imports cim only."""

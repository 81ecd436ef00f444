"""Importers: source files -> cim.db rows. One module per source format; imports cim only."""

"""Buildings across sources: how BIM (IFC) buildings and city-model blocks relate."""

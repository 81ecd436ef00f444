"""Underground pipe analyses: query, sections, clearances, clashes, isolation, trace, excavation."""

"""OGC API Features over cim's tables: collections, items, CQL2 filters, CRS and extents."""

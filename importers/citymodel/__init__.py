"""City models (CityJSON 1.0/1.1/2.0 and CityJSONSeq) into ``building`` + ``building_surface``.

Modules: ``cityjson`` reads files and streams, ``buildings`` walks geometries and triangulates
faces (``triangulate``), ``placement`` handles the CRS, ``rows`` derives footprints and heights,
``writer`` COPYs the rows and ``importer`` ties them into one all-or-nothing import.
"""

from importers.citymodel.importer import import_buildings

__all__ = ["import_buildings"]

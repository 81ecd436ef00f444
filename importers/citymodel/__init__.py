"""City models (CityJSON, CityJSONSeq, CityGML 2.0/3.0, footprints) into ``building`` + surfaces.

Modules: ``cityjson`` reads files and streams, ``citygml`` streams CityGML (``gml_geometry``
walks its polygons), ``buildings`` walks CityJSON geometries, ``triangulate`` triangulates faces
for both, ``placement`` handles the CRS, ``rows`` derives footprints and heights, ``writer``
COPYs the rows, ``footprints`` extrudes footprint layers to LOD1 blocks and ``importer`` ties
them into one all-or-nothing import.
"""

from importers.citymodel.importer import import_buildings

__all__ = ["import_buildings"]

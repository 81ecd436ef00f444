"""``?lod=N`` on the ``buildings`` collection: city-model buildings with their 3D geometry.

The ``buildings`` collection answers 2D footprints (with base/top heights as properties), which
is what GIS tools draw. A client that wants the city model itself asks for a Level of Detail:
``lod=2`` answers, for each building that has LoD 2 faces (``building_surface``), a
``MultiPolygon`` with Z of those faces (the triangles, roof, walls and ground together; the
finest ``2.x`` when the source has several), and leaves out buildings without that LoD (IFC
buildings have none). ``lod=2.2`` asks for exactly that LoD. Filters, ``bbox``, sorting and
paging work as for the plain collection; ``bbox`` tests the footprint (indexed).
"""

from __future__ import annotations

import re
from dataclasses import replace

from sqlalchemy import and_, exists, func, or_, select, true
from sqlalchemy.sql.elements import ColumnElement

from cim.db.models import BuildingSurface
from cim.errors import InvalidInput
from cim.services.ogc.specs import CollectionSpec

LOD_PATTERN = re.compile(r"^[0-4](\.[0-3])?$")
LOD_COLLECTION = "buildings"


def _lod_matches(lod_column: ColumnElement[str], lod: str) -> ColumnElement[bool]:
    if "." in lod:
        return lod_column == lod
    return or_(lod_column == lod, lod_column.like(f"{lod}.%"))


def with_lod(spec: CollectionSpec, lod: str) -> CollectionSpec:
    """The ``buildings`` spec whose geometry is the faces of LoD ``lod`` (see the module doc)."""
    if spec.id != LOD_COLLECTION:
        raise InvalidInput(f"lod applies to the {LOD_COLLECTION} collection only")
    if not LOD_PATTERN.match(lod):
        raise InvalidInput("lod must be a Level of Detail such as 1, 2 or 2.2")
    surface = BuildingSurface.__table__.alias("lod_surface")
    finest = BuildingSurface.__table__.alias("lod_finest")
    building_id = spec.id_column
    chosen_lod = (
        select(func.max(finest.c.lod))
        .where(finest.c.building_id == building_id, _lod_matches(finest.c.lod, lod))
        .correlate_except(finest)
        .scalar_subquery()
    )
    dumped = func.ST_Dump(surface.c.geom).table_valued("geom").alias("lod_faces")
    faces = (
        select(func.ST_Multi(func.ST_Collect(dumped.c.geom)))
        .select_from(surface.join(dumped, true()))
        .where(surface.c.building_id == building_id, surface.c.lod == chosen_lod)
        .scalar_subquery()
    )
    has_lod = exists().where(surface.c.building_id == building_id, _lod_matches(surface.c.lod, lod))
    base = has_lod if spec.base_filter is None else and_(spec.base_filter, has_lod)
    return replace(
        spec,
        geom=faces,
        index_geom=spec.geom,
        base_filter=base,
        is_3d=False,  # the z range of a bbox would need the faces; bbox tests the footprint
        variant=f"lod={lod}",
    )

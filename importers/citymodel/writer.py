"""COPY placed buildings into ``building`` and ``building_surface``, a batch at a time.

Building ids are reserved from the sequence before each batch is copied, so the surface rows can
name their building without a round trip per row; a batch bounds the memory of a long
CityJSONSeq stream.
"""

from __future__ import annotations

import json
from typing import Any

import shapely
from sqlalchemy.orm import Session

from cim.db.copy import copy_rows, reserve_ids
from importers.citymodel.rows import PlacedBuilding, building_facts

BATCH_BUILDINGS = 2000
BUILDING_COLUMNS = (
    "id",
    "dataset_id",
    "guid",
    "name",
    "footprint",
    "base_z",
    "top_z",
    "attrs",
    "source_id",
    "lods",
    "height",
    "storeys",
    "function",
    "year",
)
SURFACE_COLUMNS = ("dataset_id", "building_id", "lod", "semantic", "triangle_count", "geom")


class BuildingWriter:
    """Buffers placed buildings and writes them with COPY inside the import's transaction."""

    def __init__(self, session: Session, dataset_id: int, srid: int) -> None:
        self.session = session
        self.dataset_id = dataset_id
        self.srid = srid
        self.pending: list[PlacedBuilding] = []
        self.buildings = 0
        self.surfaces = 0
        self.triangles = 0

    def add(self, buildings: list[PlacedBuilding]) -> None:
        """Queue ``buildings``; write when a batch is full."""
        self.pending.extend(buildings)
        if len(self.pending) >= BATCH_BUILDINGS:
            self.flush()

    def flush(self) -> None:
        """Write every queued building and its surfaces."""
        if not self.pending:
            return
        ids = reserve_ids(self.session, table="building", count=len(self.pending))
        rows = [self._building_row(i, b) for i, b in zip(ids, self.pending, strict=True)]
        copy_rows(self.session, table="building", columns=BUILDING_COLUMNS, rows=rows)
        surfaces = [
            row
            for building_id, building in zip(ids, self.pending, strict=True)
            for row in self._surface_rows(building_id, building)
        ]
        copy_rows(self.session, table="building_surface", columns=SURFACE_COLUMNS, rows=surfaces)
        self.buildings += len(rows)
        self.surfaces += len(surfaces)
        self.pending = []

    def _building_row(self, building_id: int, building: PlacedBuilding) -> list[Any]:
        source = building.source
        attrs = dict(source.attributes)
        if source.parent is not None:
            attrs["parent"] = source.parent
        facts = building_facts(building)
        name = source.attributes.get("name")
        return [
            building_id,
            self.dataset_id,
            source.source_id,
            name if isinstance(name, str) else None,
            self._ewkb(building.footprint),
            building.base_z,
            building.top_z,
            json.dumps(attrs, ensure_ascii=False),
            source.source_id,
            _text_array(sorted(building.lods)),
            facts["height"],
            facts["storeys"],
            facts["function"],
            facts["year"],
        ]

    def _surface_rows(self, building_id: int, building: PlacedBuilding) -> list[list[Any]]:
        rows = []
        for (lod, semantic), triangles in sorted(
            building.surfaces.items(), key=lambda item: (item[0][0], item[0][1] or "")
        ):
            mesh = shapely.multipolygons(shapely.polygons(triangles))
            rows.append(
                [self.dataset_id, building_id, lod, semantic, len(triangles), self._ewkb(mesh)]
            )
            self.triangles += len(triangles)
        return rows

    def _ewkb(self, geometry: shapely.Geometry | None) -> str | None:
        if geometry is None:
            return None
        return str(
            shapely.to_wkb(shapely.set_srid(geometry, self.srid), hex=True, include_srid=True)
        )


def _text_array(values: list[str]) -> str:
    """A PostgreSQL text[] literal for COPY: ``{"1","2.2"}``."""
    quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + ",".join(quoted) + "}"

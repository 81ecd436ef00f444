"""Which tables are versioned, and how a feature is recognised across versions (its stable key).

A feature keeps its row id from version to version when its key matches: that is what lets a
sensor, a stored analysis or a tile keep pointing at "the same valve" after the survey is redone.
Keys per kind (documented in the README):

* pipes — nodes by (utility class, node code), segments by (utility class, segment code).
* shelters — a shelter by its name (the layer has no site code column).
* population — a unit by its code (census block / GEOID).
* buildings (city models) — a building by its city-model id (CityJSON object id, CityGML
  gml:id, the footprint layer's id field); its surfaces by (building, LoD, semantic class).
* ifc — the building, its storeys and its elements by their IFC GlobalId.

Two rows of one version with the same key are told apart by their order in the source; a NULL
in a key matches a NULL (a surface without semantics, a shelter without a name).
Not versioned, for want of a stable key column: hazards (only a kind; zones have no id) and
roads (segments are cut at junctions by the import: no source id survives). Re-importing them,
terrain or point clouds adds a dataset beside the old one.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Table

from cim.db.models import (
    Building,
    BuildingElement,
    BuildingStorey,
    BuildingSurface,
    PipeNode,
    PipeSegment,
    PopulationUnit,
    Shelter,
)


@dataclass(frozen=True)
class VersionedTable:
    """A feature table of a versioned kind: its stable key and its references to other tables."""

    table: Table
    key: tuple[str, ...]
    references: tuple[tuple[str, str], ...] = ()
    """(column, referenced table) pairs: remapped to the matched ids of the referenced table."""
    label: str | None = None
    """The column a diff names a feature by (its ``code``)."""
    group: str | None = None
    """The column a diff counts changes by (the utility class of pipes)."""

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def geometry_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.table.columns if c.type.__class__.__name__ == "Geometry")

    @property
    def text_compared_columns(self) -> tuple[str, ...]:
        """Columns compared as text: PostGIS's ``box3d`` has no equality operator."""
        return tuple(c.name for c in self.table.columns if c.type.__class__.__name__ == "Box3D")

    @property
    def shape(self) -> str | None:
        """The geometry a diff shows and measures, and ``feature_history.geom`` indexes."""
        return next((g for g in ("geom", "footprint") if g in self.geometry_columns), None)

    @property
    def content_columns(self) -> tuple[str, ...]:
        """Every column a version may change (not the id, dataset or validity)."""
        fixed = {"id", "dataset_id", "valid_from"}
        return tuple(c.name for c in self.table.columns if c.name not in fixed)


def _table(model: type[object]) -> Table:
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


BUILDING = VersionedTable(_table(Building), key=("guid",), label="guid")
"""IFC and city-model buildings alike: ``guid`` is the GlobalId or the city-model id."""

VERSIONED: dict[str, tuple[VersionedTable, ...]] = {
    "pipes": (
        VersionedTable(_table(PipeNode), key=("utility", "code"), label="code", group="utility"),
        VersionedTable(
            _table(PipeSegment),
            key=("utility", "code"),
            references=(("start_node_id", "pipe_node"), ("end_node_id", "pipe_node")),
            label="code",
            group="utility",
        ),
    ),
    "shelters": (VersionedTable(_table(Shelter), key=("name",), label="name"),),
    "population": (VersionedTable(_table(PopulationUnit), key=("code",), label="code"),),
    "buildings": (
        BUILDING,
        VersionedTable(
            _table(BuildingSurface),
            key=("building_id", "lod", "semantic"),
            references=(("building_id", "building"),),
            label="semantic",
        ),
    ),
    "ifc": (
        BUILDING,
        VersionedTable(
            _table(BuildingStorey),
            key=("guid",),
            references=(("building_id", "building"),),
            label="guid",
        ),
        VersionedTable(
            _table(BuildingElement),
            key=("guid",),
            references=(("building_id", "building"), ("storey_id", "building_storey")),
            label="guid",
        ),
    ),
}
"""Versioned tables per dataset kind, referenced tables first."""

VERSIONED_TABLES: dict[str, VersionedTable] = {
    spec.name: spec for specs in VERSIONED.values() for spec in specs
}


def is_versioned(kind: str) -> bool:
    return kind in VERSIONED

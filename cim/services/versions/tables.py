"""Which tables are versioned, and how a feature is recognised across versions (its stable key).

A feature keeps its row id from version to version when its key matches: that is what lets a
sensor, a stored analysis or a tile keep pointing at "the same valve" after the survey is redone.
Keys per kind (documented in the README):

* pipes — nodes by (utility class, node code), segments by (utility class, segment code). Two
  rows of one version with the same key are told apart by their order in the source.

Kinds not listed here are not versioned yet: re-importing them adds a dataset beside the old one.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Table

from cim.db.models import PipeNode, PipeSegment


@dataclass(frozen=True)
class VersionedTable:
    """A feature table of a versioned kind: its stable key and its references to other tables."""

    table: Table
    key: tuple[str, ...]
    references: tuple[tuple[str, str], ...] = ()
    """(column, referenced table) pairs: remapped to the matched ids of the referenced table."""

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def geometry_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.table.columns if c.type.__class__.__name__ == "Geometry")

    @property
    def content_columns(self) -> tuple[str, ...]:
        """Every column a version may change (not the id, dataset or validity)."""
        fixed = {"id", "dataset_id", "valid_from"}
        return tuple(c.name for c in self.table.columns if c.name not in fixed)


VERSIONED: dict[str, tuple[VersionedTable, ...]] = {
    "pipes": (
        VersionedTable(PipeNode.__table__, key=("utility", "code")),  # type: ignore[arg-type]
        VersionedTable(
            PipeSegment.__table__,  # type: ignore[arg-type]
            key=("utility", "code"),
            references=(("start_node_id", "pipe_node"), ("end_node_id", "pipe_node")),
        ),
    ),
}
"""Versioned tables per dataset kind, referenced tables first."""

VERSIONED_TABLES: dict[str, VersionedTable] = {
    spec.name: spec for specs in VERSIONED.values() for spec in specs
}


def is_versioned(kind: str) -> bool:
    return kind in VERSIONED

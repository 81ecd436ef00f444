"""COPY buildings into ``building`` and ``building_surface``, a batch at a time (binary COPY).

Building ids are reserved from the sequence before each batch is copied, so the surface rows can
name their building without a round trip per row; a batch bounds the memory of a long
CityJSONSeq stream. Rows are encoded column by column (:mod:`importers.citymodel.binary_rows`)
and sent with binary COPY, with the per-row foreign-key triggers off when that is safe
(:func:`cim.db.copy.skip_row_triggers`; the references are checked once at :meth:`finish`).
City models arrive as :class:`PlacedBuilding` s (:meth:`add`);
footprint layers hand over whole :class:`BuildingBatch` es of arrays (:meth:`add_batch`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import text
from sqlalchemy.orm import Session

from cim.db.copy import (
    copy_binary,
    defer_indexes,
    rebuild_indexes,
    refresh_statistics,
    reserve_id_array,
    restore_row_triggers,
    skip_row_triggers,
)
from cim.errors import ImportFailed
from importers.citymodel.binary_rows import geometry_ewkb, text_arrays, tuples_with_mesh
from importers.citymodel.rows import PlacedBuilding, building_facts
from importers.pipes.binary_columns import bigints, floats, integers, jsonb, texts, tuples

BATCH_BUILDINGS = 2000
SURFACES_PER_BLOCK = 3
"""``building_surface`` rows of an extruded block: its roof, floor and walls."""
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
SURFACE_COLUMNS = (
    "dataset_id", "building_id", "lod", "semantic", "triangle_count",
    "min_x", "min_y", "min_z", "max_x", "max_y", "max_z", "geom",
)  # fmt: skip
SURFACE_STATISTICS = ("dataset_id", "building_id", "lod", "semantic", "triangle_count")
"""The surface columns an import gathers statistics on (not the boxes and triangles)."""
Floats = npt.NDArray[np.float64]


@dataclass
class SurfaceRows:
    """``building_surface`` rows of a batch: row i belongs to building ``building[i]`` (its
    index in the batch) and holds the next ``sizes[i]`` triangles of ``triangles``."""

    building: npt.NDArray[np.int64]
    lod: list[str]
    semantic: list[str | None]
    sizes: npt.NDArray[np.int64]
    triangles: Floats


@dataclass
class BuildingBatch:
    """The column values of a batch of buildings (NaN is NULL in the float columns)."""

    source_ids: list[str]
    names: list[str | None]
    footprints: npt.NDArray[np.object_]
    base_z: Floats
    top_z: Floats
    attrs: list[dict[str, Any]]
    lods: list[tuple[str, ...]]
    height: Floats
    storeys: Floats
    function: list[str | None]
    year: Floats
    surfaces: SurfaceRows

    def __len__(self) -> int:
        return len(self.source_ids)


@dataclass(frozen=True)
class EncodedBatch:
    """A batch as binary COPY data: its ``building`` and ``building_surface`` tuples."""

    buildings: npt.NDArray[np.uint8]
    surfaces: npt.NDArray[np.uint8] | None
    building_count: int
    surface_count: int
    triangle_count: int


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
        self.bulk: bool | None = None
        self.deferred: list[str] | None = None
        self.pool = np.zeros(0, dtype=np.int64)
        """Building ids drawn ahead for an announced bulk load (:meth:`expect`)."""

    def expect(self, buildings: int) -> None:
        """Announce a bulk load of about ``buildings`` (before its first batch): the secondary
        indexes of both tables are dropped when rebuilding them at :meth:`finish` is cheaper
        than maintaining them row by row (:func:`cim.db.copy.defer_indexes`: the tables hold
        fewer rows than the load adds). At 1M footprints into empty tables that is the
        footprints' R-tree built once, by sorting, instead of a million insertions.

        The ids of those buildings are drawn now, in one step when the indexes were deferred
        (the tables are then held exclusively): :meth:`reserve` hands them out without the
        database, so a pipeline's reader need not wait for the connection while the previous
        batch is being copied (:meth:`ready_ids`)."""
        if self.deferred is None:
            self.deferred = defer_indexes(
                self.session, "building", new_rows=buildings
            ) + defer_indexes(
                self.session, "building_surface", new_rows=buildings * SURFACES_PER_BLOCK
            )
            if self.bulk is None:
                self.bulk = skip_row_triggers(self.session, ("building", "building_surface"))
            self.pool = reserve_id_array(self.session, table="building", count=buildings)

    def ready_ids(self, count: int) -> bool:
        """Whether :meth:`reserve` can hand out ``count`` ids without using the session."""
        return len(self.pool) >= count

    def add(self, buildings: list[PlacedBuilding]) -> None:
        """Queue ``buildings``; write when a batch is full."""
        self.pending.extend(buildings)
        if len(self.pending) >= BATCH_BUILDINGS:
            self.flush()

    def flush(self) -> None:
        """Write every queued building and its surfaces."""
        if self.pending:
            batch = placed_batch(self.pending)
            self.pending = []
            self.add_batch(batch)

    def finish(self) -> None:
        """Write what is queued; per-row triggers back on, every reference checked and the
        planner's statistics refreshed (the tiler reads the new rows right after the commit)."""
        self.flush()
        rebuild_indexes(self.session, self.deferred or [])
        self.deferred = []
        if self.bulk:
            restore_row_triggers(self.session)
            self._check_references()
        self.bulk = None
        refresh_statistics(
            self.session,
            {"building": self.buildings, "building_surface": self.surfaces},
            {"building_surface": SURFACE_STATISTICS},
        )

    def add_batch(self, batch: BuildingBatch) -> None:
        """Write ``batch`` now (after anything queued, so ids keep the order of arrival)."""
        self.flush()
        if len(batch):
            self.copy(self.encode(batch, self.reserve(len(batch))))

    def reserve(self, count: int) -> npt.NDArray[np.int64]:
        """Building ids for the next ``count`` buildings (row triggers off from now on when
        that is safe): drawn ahead by :meth:`expect` while they last, else from the sequence."""
        if len(self.pool) >= count:
            ids, self.pool = self.pool[:count], self.pool[count:]
            return ids
        if self.bulk is None:
            self.bulk = skip_row_triggers(self.session, ("building", "building_surface"))
        return reserve_id_array(self.session, table="building", count=count)

    def encode(self, batch: BuildingBatch, ids: npt.NDArray[np.int64]) -> EncodedBatch:
        """The COPY data of ``batch`` with these building ids (uses no connection, so a
        pipeline may encode one batch while the previous one is copied)."""
        guids = texts(batch.source_ids)
        columns = [
            bigints(ids),
            bigints(np.full(len(batch), self.dataset_id)),
            guids,
            texts(batch.names),
            geometry_ewkb(batch.footprints, self.srid),
            floats(batch.base_z),
            floats(batch.top_z),
            jsonb(batch.attrs),
            guids,
            text_arrays(batch.lods),
            floats(batch.height),
            integers(batch.storeys),
            texts(batch.function),
            integers(batch.year),
        ]
        surfaces = batch.surfaces
        mesh = None
        if len(surfaces.sizes):
            prefix = [
                bigints(np.full(len(surfaces.sizes), self.dataset_id)),
                bigints(ids[surfaces.building]),
                texts(surfaces.lod),
                texts(surfaces.semantic),
                integers(surfaces.sizes),
                *(floats(bound) for bound in surface_boxes(surfaces.triangles, surfaces.sizes).T),
            ]
            mesh = tuples_with_mesh(prefix, surfaces.triangles, surfaces.sizes, self.srid)
        return EncodedBatch(
            tuples(columns), mesh, len(batch), len(surfaces.sizes), len(surfaces.triangles)
        )

    def copy(self, encoded: EncodedBatch) -> None:
        """COPY an encoded batch (buildings, then their surfaces)."""
        copy_binary(
            self.session, table="building", columns=BUILDING_COLUMNS, chunks=[encoded.buildings]
        )
        if encoded.surfaces is not None:
            copy_binary(
                self.session,
                table="building_surface",
                columns=SURFACE_COLUMNS,
                chunks=[encoded.surfaces],
            )
        self.buildings += encoded.building_count
        self.surfaces += encoded.surface_count
        self.triangles += encoded.triangle_count

    def _check_references(self) -> None:
        """The foreign keys the skipped triggers would have checked, for the whole dataset at
        once: the dataset exists, and every surface names a building of this dataset. By
        ranges when the dataset's building ids are contiguous (they are unless another session
        drew from the sequence meanwhile), else by a join (hash or merge: see pipes.writer)."""
        resolved = self.session.execute(
            text(
                "WITH b AS (SELECT min(id) AS lo, max(id) AS hi, count(*) AS rows"
                "  FROM building WHERE dataset_id = :d),"
                " s AS (SELECT min(building_id) AS lo, max(building_id) AS hi"
                "  FROM building_surface WHERE dataset_id = :d)"
                " SELECT EXISTS (SELECT 1 FROM dataset WHERE id = :d)"
                "  AND (s.lo IS NULL OR (b.hi - b.lo + 1 = b.rows AND s.lo >= b.lo"
                "  AND s.hi <= b.hi)) FROM b, s"
            ),
            {"d": self.dataset_id},
        ).scalar()
        if resolved:
            return
        nestloop = self.session.execute(text("SELECT current_setting('enable_nestloop')")).scalar()
        self.session.execute(text("SELECT set_config('enable_nestloop', 'off', true)"))
        missing = self.session.execute(
            text(
                "SELECT (SELECT count(*) FROM building_surface s LEFT JOIN building b"
                "  ON b.id = s.building_id AND b.dataset_id = :d"
                "  WHERE s.dataset_id = :d AND b.id IS NULL)"
                " + 1 - (SELECT count(*) FROM dataset WHERE id = :d)"
            ),
            {"d": self.dataset_id},
        ).scalar()
        self.session.execute(
            text("SELECT set_config('enable_nestloop', :v, true)"), {"v": nestloop}
        )
        if missing:
            raise ImportFailed(f"internal error: {missing} dangling reference(s) after COPY")


def surface_boxes(triangles: Floats, sizes: npt.NDArray[np.int64]) -> Floats:
    """(rows, 6) min x, y, z and max x, y, z of each row's next ``sizes[i]`` triangles (NaN,
    stored as NULL, for a row without triangles).

    Examples
    --------
    >>> t = np.array([[[0, 0, 0], [1, 0, 0], [0, 1, 5]], [[2, 2, 2], [3, 2, 2], [2, 3, 2]]])
    >>> surface_boxes(t.astype(float), np.array([1, 0, 1])).tolist()[::2]
    [[0.0, 0.0, 0.0, 1.0, 1.0, 5.0], [2.0, 2.0, 2.0, 3.0, 3.0, 2.0]]
    """
    boxes = np.full((len(sizes), 6), np.nan)
    filled = sizes > 0
    if filled.any():
        starts = (np.cumsum(sizes) - sizes)[filled]
        # per triangle first (three element-wise passes beat a reduction over its 3 corners)
        low = np.minimum(np.minimum(triangles[:, 0], triangles[:, 1]), triangles[:, 2])
        high = np.maximum(np.maximum(triangles[:, 0], triangles[:, 1]), triangles[:, 2])
        boxes[filled, :3] = np.minimum.reduceat(low, starts)
        boxes[filled, 3:] = np.maximum.reduceat(high, starts)
    return boxes


def placed_batch(buildings: list[PlacedBuilding]) -> BuildingBatch:
    """The columns of placed buildings: facts from their attributes, surfaces sorted by
    (LoD, semantic class) within each building."""
    facts = [building_facts(b) for b in buildings]
    attrs = []
    for building in buildings:
        source = building.source
        values = dict(source.attributes)
        if source.parent is not None:
            values["parent"] = source.parent
        attrs.append(values)
    building_of: list[int] = []
    lods: list[str] = []
    semantics: list[str | None] = []
    blocks: list[Floats] = []
    for index, building in enumerate(buildings):
        for (lod, semantic), triangles in sorted(
            building.surfaces.items(), key=lambda item: (item[0][0], item[0][1] or "")
        ):
            building_of.append(index)
            lods.append(lod)
            semantics.append(semantic)
            blocks.append(triangles)
    names = [b.source.attributes.get("name") for b in buildings]
    return BuildingBatch(
        source_ids=[b.source.source_id for b in buildings],
        names=[n if isinstance(n, str) else None for n in names],
        footprints=np.array([b.footprint for b in buildings], dtype=object),
        base_z=_floats([b.base_z for b in buildings]),
        top_z=_floats([b.top_z for b in buildings]),
        attrs=attrs,
        lods=[tuple(sorted(b.lods)) for b in buildings],
        height=_floats([f["height"] for f in facts]),
        storeys=_floats([f["storeys"] for f in facts]),
        function=[f["function"] for f in facts],
        year=_floats([f["year"] for f in facts]),
        surfaces=SurfaceRows(
            building=np.asarray(building_of, dtype=np.int64),
            lod=lods,
            semantic=semantics,
            sizes=np.array([len(b) for b in blocks], dtype=np.int64),
            triangles=np.concatenate(blocks) if blocks else np.zeros((0, 3, 3)),
        ),
    )


def _floats(values: list[Any]) -> Floats:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)

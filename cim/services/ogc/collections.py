"""The OGC API Features collections over cim's tables: ids, properties, queryables, extents.

Every table-backed layer is one collection; a collection appears once its table has rows.
Pipes get one collection per utility class present (``pipes_JS``...), found with a loose index
scan on ``pipe_segment.utility`` so it stays cheap on large networks. The list is cached for
``CimSettings.collection_cache_seconds`` because items requests look it up every time.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field, replace

from sqlalchemy import exists, func, literal_column, select, text
from sqlalchemy.orm import Session

from cim.services.ogc.specs import CollectionSpec, collection_specs

UTILITY_PATTERN = re.compile(r"^[A-Z0-9]{1,8}$")


Box = tuple[float, float, float, float]
"""(xmin, ymin, xmax, ymax) in the storage CRS."""


@dataclass(frozen=True)
class ClassExtent:
    """The extent of one utility class's rows in a collection of every class."""

    utility: str
    box: Box
    z_range: tuple[float, float] | None


@dataclass(frozen=True)
class CollectionInfo:
    """A collection present in the database, with its extent in the storage CRS.

    Collections of every utility class (``pipe_nodes``, ``pipe_segments``) also keep the extent
    of each class, so the extent without the hidden classes (what anonymous callers are shown:
    a gas network's extent is sensitive too) needs no other scan.
    """

    spec: CollectionSpec
    extent: Box | None
    z_range: tuple[float, float] | None = None
    class_extents: tuple[ClassExtent, ...] = ()

    def without(self, hidden: frozenset[str]) -> CollectionInfo:
        """This collection as seen by a caller who may not see the ``hidden`` classes."""
        if not hidden or not self.class_extents:
            return self
        kept = tuple(c for c in self.class_extents if c.utility.upper() not in hidden)
        box, z = _union(kept)
        return replace(self, extent=box, z_range=z, class_extents=kept)


def _union(parts: tuple[ClassExtent, ...]) -> tuple[Box | None, tuple[float, float] | None]:
    """The box (and height range) around the extents of ``parts``."""
    if not parts:
        return None, None
    box = (
        min(p.box[0] for p in parts),
        min(p.box[1] for p in parts),
        max(p.box[2] for p in parts),
        max(p.box[3] for p in parts),
    )
    lows = [p.z_range for p in parts if p.z_range is not None]
    z = (min(r[0] for r in lows), max(r[1] for r in lows)) if lows else None
    return box, z


def present_utilities(session: Session) -> list[str]:
    """Distinct ``pipe_segment.utility`` values by a loose index scan (fast on big tables)."""
    rows = session.execute(
        text(
            "WITH RECURSIVE u(v) AS ("
            " SELECT min(utility) FROM pipe_segment"
            " UNION ALL"
            " SELECT (SELECT min(utility) FROM pipe_segment WHERE utility > u.v)"
            " FROM u WHERE u.v IS NOT NULL)"
            " SELECT v FROM u WHERE v IS NOT NULL"
        )
    )
    return [str(v) for (v,) in rows if UTILITY_PATTERN.match(str(v))]


def _class_extents(session: Session, spec: CollectionSpec) -> tuple[ClassExtent, ...]:
    """The extent of each utility class of ``spec`` (one class for ``pipes_<code>``, one row
    for a collection without classes), in one grouped scan."""
    extent = func.ST_3DExtent(spec.geom)
    group = spec.utility_column if spec.utility_column is not None else literal_column("''")
    query = select(
        group,
        func.ST_XMin(extent),
        func.ST_YMin(extent),
        func.ST_XMax(extent),
        func.ST_YMax(extent),
        func.ST_ZMin(extent),
        func.ST_ZMax(extent),
    ).select_from(spec.source)
    if spec.base_filter is not None:
        query = query.where(spec.base_filter)
    if spec.utility_column is not None:
        query = query.group_by(spec.utility_column)
    rows = session.execute(query).all()
    return tuple(
        ClassExtent(
            utility=str(row[0] or ""),
            box=(float(row[1]), float(row[2]), float(row[3]), float(row[4])),
            z_range=(float(row[5]), float(row[6])) if spec.is_3d and row[5] is not None else None,
        )
        for row in rows
        if row[1] is not None
    )


def discover(session: Session) -> dict[str, CollectionInfo]:
    """Every collection with rows, in a stable order, with extents (storage CRS)."""
    specs = collection_specs(present_utilities(session))
    found: dict[str, CollectionInfo] = {}
    for spec in specs:
        probe = exists(
            select(literal_column("1"))
            .select_from(spec.source)
            .where(spec.base_filter if spec.base_filter is not None else literal_column("true"))
        )
        if not session.scalar(select(probe)):
            continue
        per_class = _class_extents(session, spec)
        box, z = _union(per_class)
        classes = per_class if spec.utility_column is not None else ()
        found[spec.id] = CollectionInfo(spec=spec, extent=box, z_range=z, class_extents=classes)
    return found


def data_signature(session: Session) -> str:
    """A cheap fingerprint of everything the collection list depends on: the datasets (rows
    never change once ready; imports and deletes change this list) and the shelter plans (the
    ``shelter_zones`` collection shows the newest). Reading it costs a scan of two small tables,
    where :func:`discover` scans every geometry (seconds on a million pipes)."""
    return str(
        session.execute(
            text(
                "SELECT md5(coalesce((SELECT string_agg(id || ':' || status || ':' ||"
                " coalesce(ready_at::text, ''), ',' ORDER BY id) FROM dataset), '')"
                " || '|' || (SELECT count(*) || ':' || coalesce(max(id), 0) FROM shelter_plan))"
            )
        ).scalar_one()
    )


@dataclass
class CollectionCatalog:
    """A cache of :func:`discover`, safe to share between request threads.

    Every ``ttl_seconds`` one request checks :func:`data_signature`; only when the data changed
    does it run :func:`discover` again (extents are full scans: run every few seconds by every
    worker, they kept a loaded server's database busy - ``bench/load.py``). While one request
    refreshes, the others keep using the previous list (stale-while-revalidate).
    """

    ttl_seconds: float
    _value: dict[str, CollectionInfo] | None = None
    _signature: str | None = None
    _at: float = 0.0
    _refreshing: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _first: threading.Lock = field(default_factory=threading.Lock)

    def get(self, session: Session) -> dict[str, CollectionInfo]:
        with self._lock:
            value = self._value
            fresh = value is not None and time.monotonic() - self._at < self.ttl_seconds
            if fresh and value is not None:
                return value
            if value is not None and self._refreshing:
                return value  # another request is refreshing it
            self._refreshing = True
        try:
            if value is None:
                with self._first:  # the very first list: compute it once, the others wait
                    with self._lock:
                        if self._value is not None and self.ttl_seconds > 0:
                            return self._value
                    signature = data_signature(session)
                    value = discover(session)
            else:
                signature = data_signature(session)
                if signature != self._signature:
                    value = discover(session)
            with self._lock:
                self._value, self._signature, self._at = value, signature, time.monotonic()
            return value
        finally:
            with self._lock:
                self._refreshing = False

    def invalidate(self) -> None:
        with self._lock:
            self._value = None

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
from dataclasses import dataclass, field

from sqlalchemy import exists, func, literal_column, select, text
from sqlalchemy.orm import Session

from cim.services.ogc.specs import CollectionSpec, collection_specs

UTILITY_PATTERN = re.compile(r"^[A-Z0-9]{1,8}$")


@dataclass(frozen=True)
class CollectionInfo:
    """A collection present in the database, with its extent in the storage CRS."""

    spec: CollectionSpec
    extent: tuple[float, float, float, float] | None
    z_range: tuple[float, float] | None = None


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


def _extent(
    session: Session, spec: CollectionSpec
) -> tuple[tuple[float, float, float, float] | None, tuple[float, float] | None]:
    query = select(
        func.ST_XMin(func.ST_3DExtent(spec.geom)),
        func.ST_YMin(func.ST_3DExtent(spec.geom)),
        func.ST_XMax(func.ST_3DExtent(spec.geom)),
        func.ST_YMax(func.ST_3DExtent(spec.geom)),
        func.ST_ZMin(func.ST_3DExtent(spec.geom)),
        func.ST_ZMax(func.ST_3DExtent(spec.geom)),
    ).select_from(spec.source)
    if spec.base_filter is not None:
        query = query.where(spec.base_filter)
    row = session.execute(query).one()
    if row[0] is None:
        return None, None
    box = (float(row[0]), float(row[1]), float(row[2]), float(row[3]))
    z = (float(row[4]), float(row[5])) if spec.is_3d and row[4] is not None else None
    return box, z


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
        box, z = _extent(session, spec)
        found[spec.id] = CollectionInfo(spec=spec, extent=box, z_range=z)
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

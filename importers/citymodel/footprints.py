"""Footprints (GeoJSON, GeoPackage, Shapefile) -> extruded LOD1 blocks for ``import_buildings``.

Each polygon (or multipolygon) becomes a block from ``base`` to ``base + height``: its roof and
floor triangulated with the project's earcut triangulation (holes kept), and one quad (two
triangles) per ring edge as walls; semantic classes RoofSurface, GroundSurface, WallSurface.
The YAML mapping (as for shelters and roads, see ``importers.vector_table``) names the fields::

    id: BLDG_ID                     # stable source id (default: row number)
    height: HEIGHT                  # metres; or
    floors: FLOORS                  # floors x storey_height (default 3.0 m)
    storey_height: 3.2
    base: BASE_Z                    # optional; else the finest DEM at the centroid, else 0
    function: USE
    year: BUILT

A row whose height (and floors) is missing or not positive, or whose polygon has no area, is
skipped and counted in the QC report; a mapping with neither ``height`` nor ``floors``, a
non-polygon geometry, a value that is not a number, a file without CRS (and no ``--crs``) or a
file outside the storage CRS's area refuses the whole import.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import CRS
from sqlalchemy import text
from sqlalchemy.orm import Session

from cim.errors import InvalidInput
from cim.services.terrain import heights_in_storage
from importers.citymodel.extrusion import LOD, block_surfaces, extrude
from importers.citymodel.placement import AreaCheck
from importers.citymodel.rows import attribute_facts
from importers.citymodel.writer import BuildingBatch, BuildingWriter, EncodedBatch
from importers.vector_table import (
    VectorTable,
    is_missing,
    load_mapping,
    numeric_array,
    read_vector_chunks,
    to_floats,
)

__all__ = ["FootprintTally", "extrude", "is_footprint_file", "write_footprints"]

FOOTPRINT_SUFFIXES = {".geojson", ".gpkg", ".shp", ".fgb"}
DEFAULT_STOREY_HEIGHT_M = 3.0
ID_NAMES = ("id", "fid", "gml_id", "identificatie")
CHUNK_ROWS = 50_000
"""Footprints read, extruded and copied at a time (memory is bounded by a few chunks)."""
AHEAD = 2
"""Chunks read ahead of the one being copied."""


def is_footprint_file(path: Path) -> bool:
    """Whether ``path`` is a footprint layer (by extension) rather than a city model."""
    return path.suffix.lower() in FOOTPRINT_SUFFIXES


@dataclass
class FootprintTally:
    """What a footprint import counts for the result and the QC report."""

    footprints: int = 0
    skipped_no_height: int = 0
    skipped_degenerate: int = 0
    base_from_field: int = 0
    base_from_terrain: int = 0
    base_zero_no_terrain: int = 0


@dataclass
class _Rows:
    """The kept rows of one chunk, before their bases are known (NaN: no base field)."""

    ids: list[str] = field(default_factory=list)
    attributes: list[dict[str, Any]] = field(default_factory=list)
    footprints: list[int] = field(default_factory=list)
    heights: list[float] = field(default_factory=list)
    bases: list[float] = field(default_factory=list)


def write_footprints(
    session: Session,
    path: Path,
    mapping_path: Path | None,
    crs: str | None,
    srid: int,
    tally: FootprintTally,
    writer: BuildingWriter,
) -> str:
    """Read ``path`` a chunk at a time, extrude its footprints and hand them to ``writer``;
    the file's CRS. A bad value or a file outside the storage CRS's area refuses the import
    (the caller's transaction then stores nothing)."""
    mapping = load_mapping(mapping_path)
    if "height" not in mapping and "floors" not in mapping:
        raise InvalidInput(
            f"{path.name}: footprints need a mapping (--mapping) naming a height or floors field"
        )
    area = AreaCheck(CRS.from_epsg(srid), srid)
    label, offset = "", 0
    extent = _terrain_extent(session)
    chunks = read_vector_chunks(path, storage_srid=srid, mapping=mapping, crs=crs, rows=CHUNK_ROWS)
    # Three stages overlap: this thread reads and checks chunk k + 2 while an encoder thread
    # extrudes and encodes chunk k + 1 and a copier thread copies chunk k. The session is used
    # by one thread at a time (``lock``: terrain bases and ids here when they need it, COPY
    # there); at most AHEAD chunks are in flight, and an error waits for both threads before
    # it propagates.
    lock = threading.Lock()
    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="footprint-encoder") as encoder,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="footprint-copier") as copier,
    ):
        in_flight: deque[Future[None]] = deque()
        for table in chunks:
            label = table.source_crs
            if not len(table):
                continue
            if offset == 0 and len(table) == CHUNK_ROWS:  # a bulk load: how big?
                with lock:
                    writer.expect(_feature_count(path, CHUNK_ROWS))
            kinds = set(shapely.get_type_id(table.geoms).tolist()) - {3, 6}
            if kinds:
                raise InvalidInput(f"{path.name}: footprints must be Polygons or MultiPolygons")
            area.add(shapely.get_coordinates(table.geoms))
            footprints = _polygonal(table.geoms)
            rows = _chunk_rows(table, mapping, path, offset, footprints, tally)
            offset += len(table)
            kept = footprints[np.asarray(rows.footprints, dtype=np.int64)]
            # No terrain to sample and ids drawn ahead: no need to wait for the connection.
            offline = extent is None and writer.ready_ids(len(rows.bases))
            with nullcontext() if offline else lock:
                base = _bases(session, rows, kept, extent, tally)
                ids = writer.reserve(len(base)) if len(base) else None
            if ids is None:
                continue
            encoded = encoder.submit(_encode, writer, rows, kept, base, ids)
            in_flight.append(copier.submit(_copy, writer, encoded, lock))
            while len(in_flight) > AHEAD:
                in_flight.popleft().result()
        while in_flight:
            in_flight.popleft().result()
    if offset == 0:
        raise InvalidInput(f"{path.name}: no features to import")
    area.finish()
    return label


def _feature_count(path: Path, at_least: int) -> int:
    """The features of ``path`` as its driver reports them without a scan (at least
    ``at_least``, which is also the answer when the driver does not know)."""
    import pyogrio

    try:
        features = int(pyogrio.read_info(path)["features"])
    except Exception:  # the chunks that follow report an unreadable file properly
        features = -1
    return max(features, at_least)


def _chunk_rows(
    table: VectorTable,
    mapping: dict[str, Any],
    path: Path,
    offset: int,
    footprints: npt.NDArray[np.object_],
    tally: FootprintTally,
) -> _Rows:
    """Validate one chunk (row numbers in messages count from ``offset``), counting skips.

    Numbers are converted a column at a time (:func:`to_floats`); only the per-building dicts
    are built row by row."""
    numbers = offset + np.arange(len(table), dtype=np.int64)
    heights = _heights(table, mapping, numbers)
    ids = table.column("id", ID_NAMES)
    bases = table.column("base")
    functions, years = table.column("function"), table.column("year")
    attrs = table.attrs(table.used_fields({k: () for k in ("id", "height", "floors", "base")}))
    floors = table.column("floors")
    flat = shapely.is_empty(footprints) | (shapely.area(footprints) <= 0)
    tall = np.flatnonzero(heights > 0)  # NaN (no height) is not
    tally.skipped_no_height += len(table) - len(tall)
    base = to_floats([bases[i] for i in tall], what="base", rows=numbers[tall])
    solid = ~flat[tall]
    tally.skipped_degenerate += int((~solid).sum())
    kept = tall[solid]
    storeys = _ints([floors[i] for i in kept])
    built = _ints([years[i] for i in kept])
    rows = _Rows(
        footprints=kept.tolist(), heights=heights[kept].tolist(), bases=base[solid].tolist()
    )
    for k, i in enumerate(rows.footprints):
        function = functions[i]
        facts = {
            "storeysAboveGround": storeys[k],
            "function": None if is_missing(function) else str(function),
            "yearOfConstruction": built[k],
        }
        rows.attributes.append({**attrs[i], **{n: v for n, v in facts.items() if v is not None}})
        rows.ids.append(str(ids[i]) if not is_missing(ids[i]) else f"{path.stem}/{offset + i + 1}")
    return rows


def _heights(
    table: VectorTable, mapping: dict[str, Any], rows: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """Per row, the height: the height field, else floors x storey height (NaN if neither)."""
    storey = mapping.get("storey_height", DEFAULT_STOREY_HEIGHT_M)
    if isinstance(storey, bool) or not isinstance(storey, int | float) or storey <= 0:
        raise InvalidInput(f"mapping storey_height must be a positive number of metres: {storey!r}")
    missing = np.full(len(table), np.nan)
    given = (
        to_floats(table.column("height"), what="height", rows=rows)
        if "height" in mapping
        else missing
    )
    floors = (
        to_floats(table.column("floors"), what="floors", rows=rows)
        if "floors" in mapping
        else missing
    )
    return np.where(np.isnan(given), floors * float(storey), given)


def _ints(values: list[Any]) -> list[int | None]:
    """:func:`_int` of each value, a column at a time when no value is a string."""
    numbers = numeric_array(values)
    if numbers is None:
        return [_int(value) for value in values]
    whole, finite = np.trunc(numbers).tolist(), np.isfinite(numbers).tolist()
    return [int(v) if ok else None for v, ok in zip(whole, finite, strict=True)]


def _int(value: Any) -> int | None:
    """``int(float(value))``; None when missing or not a finite number (these facts are
    informative: a bad one is left out, not refused)."""
    try:
        return None if is_missing(value) else int(float(value))
    except (TypeError, ValueError, OverflowError):
        return None


def _polygonal(geoms: npt.NDArray[np.object_]) -> npt.NDArray[np.object_]:
    """``geoms`` as valid MultiPolygons (an invalid ring is repaired, its polygonal part kept;
    a row with no polygonal part left is an empty MultiPolygon)."""
    geoms = geoms.copy()
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        geoms[invalid] = shapely.make_valid(geoms[invalid])
    parts, index = shapely.get_parts(geoms, return_index=True)
    polygon = shapely.get_type_id(parts) == 3
    found: npt.NDArray[np.object_] = np.full(len(geoms), None, dtype=object)
    shapely.multipolygons(parts[polygon], indices=index[polygon], out=found)
    empty = shapely.is_missing(found)
    found[empty] = shapely.from_wkt("MULTIPOLYGON EMPTY")
    return found


def _terrain_extent(session: Session) -> tuple[float, float, float, float] | None:
    """The bounding box of every terrain raster (storage CRS), None without terrain: centroids
    outside it have no DEM height, so they are not sent to the server."""
    row = session.execute(
        text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)"
            " FROM (SELECT ST_Extent(ST_Envelope(rast)) AS e FROM terrain_raster) AS q"
        )
    ).one()
    return None if row[0] is None else (row[0], row[1], row[2], row[3])


def _bases(
    session: Session,
    rows: _Rows,
    kept: npt.NDArray[np.object_],
    extent: tuple[float, float, float, float] | None,
    tally: FootprintTally,
) -> npt.NDArray[np.float64]:
    """Bases: the field, else the finest DEM at the centroid, else 0."""
    base = np.asarray(rows.bases, dtype=np.float64)
    missing = np.flatnonzero(np.isnan(base))
    tally.base_from_field += len(base) - len(missing)
    terrain = np.full(len(missing), np.nan)
    if len(missing) and extent is not None:
        centroids = shapely.centroid(kept[missing])
        x, y = shapely.get_x(centroids), shapely.get_y(centroids)
        west, south, east, north = extent
        near = np.flatnonzero((x >= west) & (x <= east) & (y >= south) & (y <= north))
        sampled = heights_in_storage(session, x[near], y[near])
        terrain[near] = [np.nan if z is None else z for z, _ in sampled]
    found = ~np.isnan(terrain)
    tally.base_from_terrain += int(found.sum())
    tally.base_zero_no_terrain += int((~found).sum())
    base[missing] = np.where(found, terrain, 0.0)
    tally.footprints += len(base)
    return base


def _encode(
    writer: BuildingWriter,
    rows: _Rows,
    kept: npt.NDArray[np.object_],
    base: npt.NDArray[np.float64],
    ids: npt.NDArray[np.int64],
) -> EncodedBatch:
    return writer.encode(_batch(rows, kept, base), ids)


def _copy(writer: BuildingWriter, encoded: Future[EncodedBatch], lock: threading.Lock) -> None:
    batch = encoded.result()
    with lock:
        writer.copy(batch)


def _batch(
    rows: _Rows, kept: npt.NDArray[np.object_], base: npt.NDArray[np.float64]
) -> BuildingBatch:
    """The building rows of a chunk and their extruded blocks."""
    top = base + np.asarray(rows.heights, dtype=np.float64)
    names = [a.get("name") for a in rows.attributes]
    facts = [attribute_facts(a, b, t) for a, b, t in zip(rows.attributes, base, top, strict=True)]
    return BuildingBatch(
        source_ids=rows.ids,
        names=[n if isinstance(n, str) else None for n in names],
        footprints=kept,
        base_z=base,
        top_z=top,
        attrs=rows.attributes,
        lods=[(LOD,)] * len(base),
        height=np.array([f["height"] for f in facts], dtype=np.float64),
        storeys=np.array([np.nan if f["storeys"] is None else f["storeys"] for f in facts]),
        function=[f["function"] for f in facts],
        year=np.array([np.nan if f["year"] is None else f["year"] for f in facts]),
        surfaces=block_surfaces(kept, base, top),
    )

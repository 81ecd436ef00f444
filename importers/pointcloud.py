"""LAS/LAZ point clouds -> one ``pointcloud`` dataset: point and class counts, extent, CRS.

A point cloud keeps no rows in PostGIS (millions of points per file would only be copied to be
tiled again): the dataset row holds what is known about it (points, ASPRS classes, extent in the
storage CRS, source CRS) and the source files are kept, byte for byte, under
``CIM_DATA_DIR/pointclouds/<sha256>.<las|laz>`` (paths in ``dataset.options.files``), so the
``pointcloud`` tiles layer (:mod:`tiles.pointcloud`, py3dtiles) can be rebuilt at any time.
Deleting the dataset leaves its stored files behind (the same file imported again reuses them).

Every file is read chunk by chunk (``laspy.open(...).chunk_iterator``), so memory stays bounded
by one chunk whatever the size of the cloud; a file that is not LAS/LAZ, is cut short, holds no
point or has no CRS (and no ``--crs``) is refused with one line and nothing is stored.

Coordinates and heights:

* the CRS is the file's (GeoTIFF keys or WKT VLR); ``--crs`` wins over it (as for terrain and
  IFC), with a warning when the file said something else;
* heights (LAS Z) are taken in the unit of the vertical CRS when the file's CRS is compound,
  else in the unit of its projected axes (LAS files in US state plane feet carry heights in
  feet), else in metres; ``height_factor`` (metres per unit) is recorded for the tiler;
* a cloud whose centre lies far outside the storage CRS's area of use is refused, like city
  models and IFC.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pyproj import CRS
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cim.crs import crs_label, parse_crs, transformer
from cim.db.connect import storage_srid
from cim.db.models import Dataset
from cim.errors import InvalidInput, UnsupportedCRS
from cim.services.datasets import DatasetSource
from importers.base import ImportResult, WriteOutcome, run_import
from importers.citymodel.placement import check_area_of_use, horizontal_part

SUFFIXES = (".las", ".laz")
CHUNK_POINTS = 1_000_000
"""Points read at a time (about 100 MB of arrays at most): the memory bound of an import."""
STORE_FOLDER = "pointclouds"
"""Folder of ``CIM_DATA_DIR`` where the source files are kept for the tiler."""

ASPRS_CLASSES = {
    0: "Created, never classified",
    1: "Unclassified",
    2: "Ground",
    3: "Low Vegetation",
    4: "Medium Vegetation",
    5: "High Vegetation",
    6: "Building",
    7: "Low Point (noise)",
    8: "Model Key-point",
    9: "Water",
    10: "Rail",
    11: "Road Surface",
    12: "Overlap",
    13: "Wire - Guard (Shield)",
    14: "Wire - Conductor (Phase)",
    15: "Transmission Tower",
    16: "Wire-structure Connector",
    17: "Bridge Deck",
    18: "High Noise",
}
"""ASPRS LAS 1.4 (R15) classification codes; 8 and 12 as named by LAS 1.2/1.3."""

Progress = Callable[[int, int], None]
"""Called with (points read, points in all files) while the files are surveyed."""

_READ_ERRORS: tuple[type[Exception], ...] = (ValueError, OSError, EOFError, RuntimeError)


def class_name(code: int) -> str:
    """The ASPRS name of a classification code.

    Examples
    --------
    >>> class_name(2), class_name(40), class_name(100)
    ('Ground', 'Reserved 40', 'User defined 100')
    """
    if code in ASPRS_CLASSES:
        return ASPRS_CLASSES[code]
    return f"Reserved {code}" if code < 64 else f"User defined {code}"


@dataclass
class CloudFile:
    """What one LAS/LAZ file holds, read through once."""

    path: Path
    crs: CRS | None
    points: int
    classes: npt.NDArray[np.int64]
    """Points per classification code (256 counters)."""
    mins: npt.NDArray[np.float64]
    maxs: npt.NDArray[np.float64]
    rgb_max: int | None
    """Largest colour component, None when the point format has no colour."""
    version: str
    point_format: int


def survey(path: Path, progress: Callable[[int], None] | None = None) -> CloudFile:
    """Read ``path`` chunk by chunk: counts, classes, bounds, colour depth; InvalidInput if it
    is not a LAS/LAZ file, is cut short or holds no point."""
    import laspy
    from laspy.errors import LaspyException

    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    if path.suffix.lower() not in SUFFIXES:
        raise InvalidInput(f"{path.name}: not a .las or .laz file")
    try:
        with laspy.open(path) as reader:
            header = reader.header
            declared = int(header.point_count)
            cloud = CloudFile(
                path=path,
                crs=_file_crs(header, path),
                points=0,
                classes=np.zeros(256, dtype=np.int64),
                mins=np.full(3, np.inf),
                maxs=np.full(3, -np.inf),
                rgb_max=0 if "red" in header.point_format.dimension_names else None,
                version=str(header.version),
                point_format=int(header.point_format.id),
            )
            if declared > 0:
                for chunk in reader.chunk_iterator(CHUNK_POINTS):
                    _add_chunk(cloud, chunk)
                    if progress is not None:
                        progress(len(chunk))
    except (LaspyException, *_READ_ERRORS) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInput(f"{path.name}: not a readable LAS/LAZ file ({message})") from None
    if declared == 0 or cloud.points == 0:
        raise InvalidInput(f"{path.name}: the file holds no point")
    if cloud.points != declared:
        raise InvalidInput(
            f"{path.name}: the header announces {declared:,} points, the file holds "
            f"{cloud.points:,} (truncated?)"
        )
    return cloud


def _file_crs(header: Any, path: Path) -> CRS | None:
    try:
        found = header.parse_crs()
    except Exception as exc:  # laspy/pyproj raise many kinds on a malformed CRS record
        raise InvalidInput(f"{path.name}: the file's CRS record cannot be read ({exc})") from None
    return found if isinstance(found, CRS) else None


def _add_chunk(cloud: CloudFile, chunk: Any) -> None:
    xyz = [np.asarray(chunk.x), np.asarray(chunk.y), np.asarray(chunk.z)]
    if len(xyz[0]) == 0:
        return
    cloud.points += len(xyz[0])
    cloud.mins = np.minimum(cloud.mins, [float(axis.min()) for axis in xyz])
    cloud.maxs = np.maximum(cloud.maxs, [float(axis.max()) for axis in xyz])
    codes = np.asarray(chunk.classification, dtype=np.int64)
    cloud.classes += np.bincount(codes, minlength=256)[:256]
    if cloud.rgb_max is not None:
        top = max(int(np.max(chunk[band])) for band in ("red", "green", "blue"))
        cloud.rgb_max = max(cloud.rgb_max, top)


def resolve_crs(clouds: list[CloudFile], override: str | None) -> tuple[CRS, list[str]]:
    """The CRS of the dataset: ``override`` (``--crs``) if given, else the files' one CRS."""
    warnings: list[str] = []
    if override:
        chosen = parse_crs(override)
        for cloud in clouds:
            if cloud.crs is not None and not cloud.crs.equals(chosen, ignore_axis_order=True):
                warnings.append(
                    f"{cloud.path.name} declares {crs_label(cloud.crs)}; --crs {override} "
                    "is used instead"
                )
        return chosen, warnings
    for cloud in clouds:
        if cloud.crs is None:
            raise InvalidInput(f"{cloud.path.name}: the file names no CRS; pass --crs EPSG:x")
    first = clouds[0]
    assert first.crs is not None
    for cloud in clouds[1:]:
        assert cloud.crs is not None
        if not cloud.crs.equals(first.crs, ignore_axis_order=True):
            raise InvalidInput(
                f"{first.path.name} ({crs_label(first.crs)}) and {cloud.path.name} "
                f"({crs_label(cloud.crs)}) have different CRSs; import them as separate datasets"
            )
    return first.crs, warnings


def height_factor(crs: CRS) -> float:
    """Metres per unit of the LAS Z values under ``crs`` (see the module docstring).

    Examples
    --------
    >>> height_factor(CRS.from_epsg(2994))  # Oregon GIC Lambert (ft)
    0.3048
    >>> height_factor(CRS.from_epsg(32610)), height_factor(CRS.from_epsg(4326))
    (1.0, 1.0)
    """
    if crs.is_compound:
        for sub in crs.sub_crs_list:
            if sub.is_vertical:
                return float(sub.axis_info[0].unit_conversion_factor)
    axes = crs.axis_info
    if len(axes) == 3:
        return float(axes[2].unit_conversion_factor)
    horizontal = horizontal_part(crs)
    if horizontal.is_projected:
        return float(horizontal.axis_info[0].unit_conversion_factor)
    return 1.0


def storage_extent(
    crs: CRS, srid: int, mins: npt.NDArray[np.float64], maxs: npt.NDArray[np.float64]
) -> list[float]:
    """``[xmin, ymin, zmin, xmax, ymax, zmax]`` in the storage CRS, heights in metres."""
    horizontal = horizontal_part(crs)
    corners = np.array([mins[:2], maxs[:2]], dtype=np.float64)
    check_area_of_use(horizontal, srid, corners)
    bounds = transformer(horizontal, srid).transform_bounds(
        float(mins[0]), float(mins[1]), float(maxs[0]), float(maxs[1]), densify_pts=21
    )
    if not all(np.isfinite(bounds)):
        raise UnsupportedCRS(
            f"the point cloud cannot be transformed from {crs_label(crs)} to EPSG:{srid}"
        )
    factor = height_factor(crs)
    xmin, ymin, xmax, ymax = (round(float(v), 3) for v in bounds)
    return [xmin, ymin, round(mins[2] * factor, 3), xmax, ymax, round(maxs[2] * factor, 3)]


def store_file(path: Path, folder: Path, combined: Any = None) -> Path:
    """Copy ``path`` to ``folder/<sha256><suffix>`` (temp file + rename: a reader never sees
    half a file) and return where; ``combined`` (a hashlib object) is fed the same bytes. A file
    already stored is not written again."""
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    handle, temporary = tempfile.mkstemp(prefix=".incoming-", dir=folder)
    try:
        with os.fdopen(handle, "wb") as out, open(path, "rb") as source:
            for block in iter(lambda: source.read(1 << 20), b""):
                digest.update(block)
                if combined is not None:
                    combined.update(block)
                out.write(block)
        stored = folder / f"{digest.hexdigest()}{path.suffix.lower()}"
        if stored.is_file() and stored.stat().st_size == path.stat().st_size:
            os.unlink(temporary)
        else:
            os.chmod(temporary, 0o644)
            os.replace(temporary, stored)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return stored


def _counts(clouds: list[CloudFile], extent: list[float]) -> dict[str, Any]:
    classes = np.sum([cloud.classes for cloud in clouds], axis=0)
    return {
        "points": int(sum(cloud.points for cloud in clouds)),
        "files": len(clouds),
        "classes": [
            {"code": int(code), "name": class_name(int(code)), "points": int(classes[code])}
            for code in np.flatnonzero(classes)
        ],
        "extent": extent,
    }


def import_pointcloud(
    engine: Engine,
    paths: list[Path],
    *,
    data_dir: Path,
    crs: str | None = None,
    name: str | None = None,
    replace: bool = False,
    progress: Progress | None = None,
) -> ImportResult:
    """Import LAS/LAZ ``paths`` as one ``pointcloud`` dataset (all or nothing).

    ``data_dir`` is ``CIM_DATA_DIR``: the files are kept in its ``pointclouds/`` folder.
    """
    if not paths:
        raise InvalidInput("pointcloud: give at least one .las or .laz file")
    paths = [Path(path) for path in paths]
    clouds = _survey_all(paths, progress)
    source_crs, warnings = resolve_crs(clouds, crs)
    srid = storage_srid(engine)
    extent = storage_extent(
        source_crs,
        srid,
        np.min([c.mins for c in clouds], axis=0),
        np.max([c.maxs for c in clouds], axis=0),
    )
    # One read of each file both stores it and gives the dataset's sha256 (of all the files'
    # bytes in the order given, as ``file_sha256`` computes it for the other importers).
    combined = hashlib.sha256()
    stored = [store_file(path, Path(data_dir) / STORE_FOLDER, combined) for path in paths]
    rgb = [cloud.rgb_max for cloud in clouds if cloud.rgb_max is not None]
    options: dict[str, Any] = {
        "crs": crs,
        "files": [str(path) for path in stored],
        # a CRS without an EPSG code (autzen's WKT) is kept whole for the tiler
        "crs_wkt": None if source_crs.to_epsg() else source_crs.to_wkt(),
        "height_factor": height_factor(source_crs),
        # 8-bit colours written where LAS wants 16-bit (both samples): scaled up for the tiler
        "color_scale": 256 if rgb and 0 < max(rgb) < 256 else None,
    }
    source = DatasetSource(
        kind="pointcloud",
        name=name or paths[0].name,
        source_name=", ".join(path.name for path in paths),
        source_sha256=combined.hexdigest(),
        source_crs=crs_label(source_crs),
        options=options,
    )
    counts = _counts(clouds, extent)
    qc = {
        "files": [
            {"name": c.path.name, "points": c.points, "las": c.version, "format": c.point_format}
            for c in clouds
        ]
    }

    def write(session: Session, dataset: Dataset) -> WriteOutcome:
        return WriteOutcome(counts=counts, qc=qc, warnings=warnings)

    return run_import(engine, source=source, write=write, replace=replace)


def _survey_all(paths: list[Path], progress: Progress | None) -> list[CloudFile]:
    total = sum(_declared_points(path) for path in paths)
    done = 0

    def advance(points: int) -> None:
        nonlocal done
        done += points
        if progress is not None:
            progress(done, total)

    return [survey(path, advance) for path in paths]


def _declared_points(path: Path) -> int:
    """The header's point count (0 when unreadable: :func:`survey` then says why)."""
    import laspy

    try:
        with laspy.open(path) as reader:
            return int(reader.header.point_count)
    except Exception:  # survey() reports the problem with the file's name
        return 0

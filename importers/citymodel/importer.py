"""``import_buildings``: CityJSON / CityJSONSeq / CityGML files -> one ``buildings`` dataset.

Each file is read chunk by chunk (:mod:`importers.citymodel.cityjson`), its Building and
BuildingPart objects triangulated (:mod:`~importers.citymodel.buildings`), moved to the storage
CRS (:mod:`~importers.citymodel.placement`) and copied (:mod:`~importers.citymodel.writer`),
all inside ``run_import``'s transaction: any bad file leaves nothing behind. CityGML 2.0/3.0
files (``.gml``, ``.xml``) are streamed by :mod:`~importers.citymodel.citygml` into the same
buildings, rows and writer. Footprint layers (``.geojson``, ``.gpkg``, ``.shp``, ``.fgb``) with a
YAML ``mapping`` are extruded to LOD1 blocks by :mod:`~importers.citymodel.footprints`; the
mapping file is part of the source identity (sha256), as for the other mapped importers.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cim.crs import crs_label
from cim.db.connect import storage_srid
from cim.db.models import Dataset
from cim.errors import InvalidInput
from cim.services.datasets import DatasetSource, file_sha256, source_names
from importers.base import ImportResult, WriteOutcome, run_import
from importers.citymodel.buildings import CityBuilding, Tally, chunks_buildings
from importers.citymodel.citygml import horizontal_crs_text, is_citygml, read_citygml
from importers.citymodel.cityjson import Chunk, read_citymodel
from importers.citymodel.footprints import FootprintTally, is_footprint_file, write_footprints
from importers.citymodel.placement import AreaCheck, source_crs
from importers.citymodel.rows import place_buildings
from importers.citymodel.writer import BuildingWriter

SEQUENCE_BATCH_FEATURES = 2000
"""CityJSONSeq features triangulated and placed together."""
GML_BATCH_BUILDINGS = 500
"""CityGML buildings moved to the storage CRS together (memory stays bounded by a batch)."""
BuildingProgress = Callable[[int], None]
"""Called with the number of buildings read so far."""


def import_buildings(
    engine: Engine,
    paths: list[Path],
    *,
    crs: str | None = None,
    name: str | None = None,
    replace: bool = False,
    progress: BuildingProgress | None = None,
    mapping: Path | None = None,
) -> ImportResult:
    """Import the buildings of CityJSON (``.city.json``), CityJSONSeq (``.city.jsonl``),
    CityGML 2.0/3.0 (``.gml``, ``.xml``) files and footprint layers (with ``mapping``)."""
    if not paths:
        raise InvalidInput("buildings: give at least one CityJSON or CityGML file")
    for path in paths:
        if not path.is_file():
            raise InvalidInput(f"{path}: no such file")
    srid = storage_srid(engine)
    joined = ", ".join(path.name for path in paths)
    source = DatasetSource(
        kind="buildings",
        name=name or paths[0].name,
        source_name=joined,
        source_sha256=file_sha256(*paths, *([Path(mapping)] if mapping else [])),
        options={"crs": crs, "mapping": str(mapping) if mapping else None},
    )

    def write(session: Session, dataset: Dataset) -> WriteOutcome:
        with cyclic_gc_paused():
            return write_all(session, dataset)

    def write_all(session: Session, dataset: Dataset) -> WriteOutcome:
        writer = BuildingWriter(session, dataset.id, srid)
        tally = Tally()
        footprints = FootprintTally()
        labels = []
        for path in paths:
            if is_footprint_file(path):
                labels.append(
                    write_footprints(session, path, mapping, crs, srid, footprints, writer)
                )
                continue
            write_file = _write_citygml if is_citygml(path) else _write_file
            labels.append(write_file(path, crs, srid, writer, tally, progress))
        writer.finish()
        if writer.buildings == 0:
            raise InvalidInput(f"{source_names(joined)}: no Building or BuildingPart objects")
        return _outcome(writer, tally, sorted(set(labels) - {""}), footprints)

    return run_import(engine, source=source, write=write, replace=replace)


def _write_file(
    path: Path,
    crs: str | None,
    srid: int,
    writer: BuildingWriter,
    tally: Tally,
    progress: BuildingProgress | None,
) -> str:
    header, chunks = read_citymodel(path)
    horizontal = source_crs(header.reference_system, crs, path.name)
    area = AreaCheck(horizontal, srid)
    # A CityJSONSeq line is one building: lines are triangulated and moved to the storage CRS
    # a batch at a time (one call for all their faces, one pyproj call), memory bounded by it.
    for batch in batched(chunks, SEQUENCE_BATCH_FEATURES):
        vertices = [chunk.vertices[:, :2] for chunk in batch if len(chunk.vertices)]
        if vertices:
            area.add(np.concatenate(vertices))
        buildings = chunks_buildings(header, list(batch), tally)
        writer.add(place_buildings(buildings, horizontal, srid))
        if progress is not None:
            progress(tally.buildings + tally.building_parts)
    area.finish()
    return crs_label(horizontal)


def _write_citygml(
    path: Path,
    crs: str | None,
    srid: int,
    writer: BuildingWriter,
    tally: Tally,
    progress: BuildingProgress | None,
) -> str:
    """Stream one CityGML file; its CRS is fixed by the first member that has buildings."""
    horizontal = None
    area: AreaCheck | None = None
    batch: list[CityBuilding] = []
    for member in read_citygml(path, tally):
        if horizontal is None:
            named = member.srs_name or crs
            if not named:
                raise InvalidInput(f"{path.name}: the file names no CRS (srsName); pass --crs")
            horizontal = source_crs(horizontal_crs_text(named), None, path.name)
            area = AreaCheck(horizontal, srid)
        assert area is not None
        xy = [
            t[:, :, :2].reshape(-1, 2)
            for b in member.buildings
            for ts in b.surfaces.values()
            for t in ts
        ]
        if xy:
            area.add(np.concatenate(xy))
        # Members are placed in batches: one pyproj call per batch, not per building.
        batch.extend(member.buildings)
        if len(batch) >= GML_BATCH_BUILDINGS:
            writer.add(place_buildings(batch, horizontal, srid))
            batch = []
            if progress is not None:
                progress(tally.buildings + tally.building_parts)
    if horizontal is None or area is None:
        return ""
    writer.add(place_buildings(batch, horizontal, srid))
    area.finish()
    return crs_label(horizontal)


def _outcome(
    writer: BuildingWriter, tally: Tally, labels: list[str], footprints: FootprintTally
) -> WriteOutcome:
    rejected = sum(tally.rejected.values())
    warnings = []
    if rejected:
        warnings.append(
            f"{rejected} of {tally.faces} faces left out ({tally.rejected['degenerate']} "
            f"degenerate, {tally.rejected['non_planar']} non-planar)"
        )
    if tally.skipped_geometries:
        warnings.append(
            f"geometries of unsupported types left out: {dict(tally.skipped_geometries)}"
        )
    qc: dict[str, object] = {}
    if footprints.footprints or footprints.skipped_no_height or footprints.skipped_degenerate:
        qc = {
            "footprints": footprints.footprints,
            "skipped_no_height": footprints.skipped_no_height,
            "skipped_degenerate": footprints.skipped_degenerate,
            "base_from_field": footprints.base_from_field,
            "base_from_terrain": footprints.base_from_terrain,
            "base_zero_no_terrain": footprints.base_zero_no_terrain,
        }
        if footprints.skipped_no_height:
            warnings.append(f"{footprints.skipped_no_height} footprints without height skipped")
        if footprints.skipped_degenerate:
            warnings.append(f"{footprints.skipped_degenerate} footprints without area skipped")
        if footprints.base_zero_no_terrain:
            warnings.append(f"{footprints.base_zero_no_terrain} footprints on no DEM: base 0")
    return WriteOutcome(
        counts={
            "buildings": tally.buildings + footprints.footprints,
            "building_parts": tally.building_parts,
            "surfaces": writer.surfaces,
            "triangles": writer.triangles,
        },
        qc={
            "faces": tally.faces,
            "degenerate_faces": tally.rejected["degenerate"],
            "non_planar_faces": tally.rejected["non_planar"],
            "other_objects": dict(tally.skipped_objects),
            "unsupported_geometries": dict(tally.skipped_geometries),
            **qc,
        },
        warnings=warnings,
        source_crs=", ".join(labels),
    )


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a city is read, then one collection.

    Why: parsing allocates millions of small dicts and lists that reference counting frees
    (they hold no cycles); each allocation burst triggered collections that walked every live
    object, and parsing a CityJSONSeq line cost 80 us instead of 9 us.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        gc.collect()


def batched(items: Iterable[Chunk], size: int) -> Iterator[tuple[Chunk, ...]]:
    """``items`` in tuples of ``size`` (the last one shorter); itertools.batched of 3.12."""
    iterator = iter(items)
    while batch := tuple(islice(iterator, size)):
        yield batch

"""``cim import ifc``: buildings, storeys and elements (mesh, psets, colour) from IFC into PostGIS.

Steps: open the file (``.ifc`` or ``.ifczip``) -> resolve the placement (``georef``) ->
triangulate every product with the geometry iterator (``geometry``) -> move the vertices
world metres -> placement CRS -> storage CRS in one pyproj call -> write ``building``,
``building_storey`` and ``building_element`` rows with COPY inside ``run_import``'s single
transaction. Everything that can fail on the file happens before the transaction opens.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from cim.config import DEFAULT_IFCZIP_MAX_EXPANDED_BYTES
from cim.crs import crs_label
from cim.db.connect import storage_srid
from cim.db.models import Dataset
from cim.errors import ImportFailed, InvalidInput, NotFound
from cim.services.datasets import DatasetSource, DatasetSummary, dataset_summary, file_sha256
from importers.base import ImportResult, WriteOutcome, run_import
from importers.ifc.archive import ARCHIVE_SUFFIXES, extract_ifc_member, open_step
from importers.ifc.encoding import EarlyEncoder, move_to_storage
from importers.ifc.facts import ProductFacts
from importers.ifc.geometry import body_candidates, default_threads
from importers.ifc.georef import (
    Flags,
    check_model_extent,
    resolve_placement,
)
from importers.ifc.meshes import element_meshes
from importers.ifc.workers import Workers
from importers.ifc.writer import Progress, Writer

SKIPPED_SHOWN = 50
"""How many skipped GUIDs a warning names (all are kept in the dataset's QC report)."""


@dataclass
class IfcImport:
    """An import's result plus what ``--json`` shows about the IFC side."""

    result: ImportResult
    georef: dict[str, Any] = field(default_factory=dict)

    @property
    def georef_source(self) -> str | None:
        """How the model was placed (the ``source`` of the dataset's transform)."""
        source = (self.result.dataset.transform or {}).get("source")
        return None if source is None else str(source)

    def to_dict(self) -> dict[str, Any]:
        data = self.result.to_dict()
        qc, counts = self.result.dataset.qc, self.result.dataset.counts
        data["georef_source"] = self.georef_source
        data["elements_by_class"] = counts.get("elements_by_class", {})
        data["skipped_guids"] = qc.get("skipped_guids", [])
        return data


def open_ifc(path: Path, *, max_expanded_bytes: int = DEFAULT_IFCZIP_MAX_EXPANDED_BYTES) -> Any:
    """The parsed file (``.ifc``, or the one ``.ifc`` of an ``.ifczip``); ImportFailed when it
    cannot be read whole (truncated, parse errors, an unsafe or too large archive)."""
    if not path.is_file():
        raise NotFound(f"{path}: no such file")
    if path.suffix.lower() not in ARCHIVE_SUFFIXES:
        return open_step(path, path.name)
    with tempfile.TemporaryDirectory(prefix="cim-ifczip-") as folder:
        member = extract_ifc_member(path, Path(folder), max_expanded_bytes)
        return open_step(member, path.name)


def import_ifc(
    engine: Engine,
    path: Path,
    *,
    flags: Flags | None = None,
    name: str | None = None,
    replace: bool = False,
    threads: int | None = None,
    progress: Progress | None = None,
    max_expanded_bytes: int = DEFAULT_IFCZIP_MAX_EXPANDED_BYTES,
) -> IfcImport:
    """Import one IFC file as a dataset of kind ``ifc`` (all or nothing).

    An ``.ifczip`` whose ``.ifc`` expands past ``max_expanded_bytes`` is refused.
    """
    flags = flags or Flags()
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"{path}: no such file")
    sha256 = file_sha256(path)
    existing = _existing(engine, sha256) if not replace else None
    if existing is not None:
        return IfcImport(ImportResult(dataset=existing, created=False))
    srid = storage_srid(engine)
    ifc = open_ifc(path, max_expanded_bytes=max_expanded_bytes)
    _require_content(ifc, path)
    placement = resolve_placement(ifc, flags=flags, storage_srid=srid)
    facts = ProductFacts(ifc)
    with Workers(ifc, threads or default_threads()) as workers:
        encoder = EarlyEncoder(workers, placement, srid, facts.outline_group)
        meshes = element_meshes(
            ifc,
            workers,
            on_product=facts.add,
            on_meshes=encoder.add,
            progress=(lambda percent: progress("geometry", percent, 100)) if progress else None,
        )
        skipped = sorted(
            product.GlobalId
            for product_id, product in body_candidates(ifc).items()
            if product_id not in meshes
        )
        if not meshes and not ifc.by_type("IfcBuilding"):
            raise ImportFailed(
                f"{path.name}: no element could be triangulated and no building found"
            )
        check_model_extent(placement, encoder.extent, srid)
        move_to_storage(
            [m for m in meshes.values() if m.product_id not in encoder.converted], placement, srid
        )
        warnings = list(placement.warnings)
        if skipped:
            shown = ", ".join(skipped[:SKIPPED_SHOWN])
            more = (
                f" and {len(skipped) - SKIPPED_SHOWN} more" if len(skipped) > SKIPPED_SHOWN else ""
            )
            warnings.append(
                f"{len(skipped)} elements skipped, their geometry failed: {shown}{more}"
            )

        def write(session: Session, dataset: Dataset) -> WriteOutcome:
            writer = Writer(session, dataset.id, ifc, placement, srid, progress, facts, encoder)
            counts = writer.write(meshes)
            counts["skipped"] = len(skipped)
            return WriteOutcome(
                counts=counts,
                qc={"skipped_guids": skipped, "warnings": warnings},
                warnings=warnings,
                source_crs=crs_label(placement.crs),
                transform=placement.record(),
            )

        source = _source(ifc, path, flags, name, sha256)
        result = run_import(engine, source=source, write=write, replace=replace)
    return IfcImport(result, georef=placement.record())


def _source(ifc: Any, path: Path, flags: Flags, name: str | None, sha256: str) -> DatasetSource:
    return DatasetSource(
        kind="ifc",
        name=name or path.stem,
        source_name=path.name,
        source_sha256=sha256,
        options={
            "crs": flags.crs,
            "origin": list(flags.origin) if flags.origin else None,
            "rotation": flags.rotation,
            "schema": ifc.schema,
        },
    )


def _existing(engine: Engine, sha256: str) -> DatasetSummary | None:
    with Session(engine) as session:
        dataset = session.scalars(
            select(Dataset).where(
                Dataset.kind == "ifc", Dataset.source_sha256 == sha256, Dataset.status == "ready"
            )
        ).first()
        return dataset_summary(dataset) if dataset is not None else None


def _require_content(ifc: Any, path: Path) -> None:
    spatial = ifc.by_type("IfcProject") or ifc.by_type("IfcSpatialStructureElement")
    products = [p for p in ifc.by_type("IfcProduct") if not p.is_a("IfcOpeningElement")]
    if not spatial and not products:
        raise ImportFailed(
            f"{path.name}: no spatial structure (IfcProject/IfcSite/IfcBuilding) and no elements"
        )
    if not products:
        raise ImportFailed(f"{path.name}: no building elements to import")


def parse_origin(text: str) -> tuple[float, ...]:
    """``E,N[,H]`` -> floats; InvalidInput otherwise."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise InvalidInput(f"--origin {text!r}: expected E,N[,H] numbers") from None
    if len(values) not in (2, 3) or not all(np.isfinite(values)):
        raise InvalidInput(f"--origin {text!r}: expected E,N[,H] numbers")
    return values

"""``cim import pipes``: detect formats, group files into networks, check, place and write each.

One dataset per network: a CJJ 61 point+line pair (or one workbook), all GIS layers given
together, or one EPANET/SWMM file. Each is written with ``run_import`` in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyproj import CRS
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cim.crs import crs_label, parse_crs
from cim.db.connect import storage_srid
from cim.db.models import Dataset
from cim.errors import ImportFailed, InvalidInput
from cim.faults import pause_point
from cim.services.datasets import DatasetSource, file_sha256
from importers.base import ImportResult, WriteOutcome, run_import
from importers.pipes import cjj61, epanet, gis, qc, swmm, valve_layer
from importers.pipes.mapping import Mapping, load_mapping
from importers.pipes.network import Network, Placement
from importers.pipes.topology import place, sample_terrain
from importers.pipes.writer import write_network

FORMATS = ("cjj61", "gis", "epanet", "swmm")
GIS_SUFFIXES = {".geojson", ".json", ".gpkg", ".shp", ".fgb"}
Progress = Callable[[str], None]


@dataclass
class PipeImportOptions:
    """Everything ``cim import pipes`` takes besides the files."""

    format: str | None = None
    utility: str | None = None
    crs: str | None = None
    origin: tuple[float, float, float] | None = None
    mapping: Path | None = None
    default_cover: float = 1.0
    strict: bool = False
    replace: bool = False
    valves: Path | None = None  # EPANET: WNTR valve layer CSV (link,node[,state])
    extra: dict[str, Any] = field(default_factory=dict)


def detect_format(path: Path) -> str:
    """cjj61 / gis / epanet / swmm from the suffix (and the sections of an .inp file)."""
    suffix = path.suffix.lower()
    if suffix in cjj61.CSV_SUFFIXES | cjj61.XLSX_SUFFIXES:
        return "cjj61"
    if suffix in GIS_SUFFIXES:
        return "gis"
    if suffix == ".inp":
        head = path.read_text(encoding="utf-8", errors="replace").upper()
        if "[CONDUITS]" in head or "[OUTFALLS]" in head or "[SUBCATCHMENTS]" in head:
            return "swmm"
        return "epanet"
    raise InvalidInput(
        f"{path.name}: unsupported pipe file type {suffix or '(no suffix)'}; cim reads CJJ 61 "
        "tables (.csv, .xlsx), GIS layers (.geojson, .gpkg, .shp), EPANET and SWMM (.inp)"
    )


def group_files(paths: list[Path], fmt: str | None) -> list[tuple[str, list[Path]]]:
    """(format, files) per network, in the order given."""
    groups: dict[tuple[str, str], list[Path]] = {}
    for path in paths:
        if not path.is_file():
            raise InvalidInput(f"{path}: no such file")
        kind = fmt or detect_format(path)
        if kind not in FORMATS:
            raise InvalidInput(f"unknown format {kind!r}; one of {', '.join(FORMATS)}")
        if kind == "cjj61" and path.suffix.lower() in cjj61.CSV_SUFFIXES:
            key = cjj61.group_key(path)
        elif kind == "gis":
            key = "gis"
        else:
            key = str(path)
        groups.setdefault((kind, key), []).append(path)
    return [(kind, files) for (kind, _), files in groups.items()]


def read_network(
    kind: str, files: list[Path], *, placement: Placement, mapping: Mapping, utility: str | None
) -> Network:
    """Read one group of files with the reader of its format."""
    if kind == "cjj61":
        return cjj61.read_cjj61(files, placement=placement, mapping=mapping, utility=utility)
    if kind == "gis":
        return gis.read_gis(files, placement=placement, mapping=mapping, utility=utility)
    if len(files) != 1:
        raise InvalidInput(f"{kind}: one .inp file per network")
    if kind == "epanet":
        return epanet.read_epanet(files[0], placement=placement, utility=utility)
    return swmm.read_swmm(files[0], placement=placement, utility=utility)


def import_pipes(
    engine: Engine,
    paths: list[Path],
    options: PipeImportOptions,
    progress: Progress | None = None,
) -> list[ImportResult]:
    """Import every network in ``paths``; each is all-or-nothing, refused ones raise."""
    mapping = load_mapping(options.mapping)
    crs: CRS | None = parse_crs(options.crs) if options.crs else None
    placement = Placement(storage_srid=storage_srid(engine), crs=crs, origin=options.origin)
    groups = group_files(paths, options.format)
    _check_valves(options.valves, groups)
    results = []
    for kind, files in groups:
        name = " + ".join(p.name for p in files)
        if progress:
            progress(f"reading {name} ({kind})")
        pause_point("parse")
        network = read_network(
            kind, files, placement=placement, mapping=mapping, utility=options.utility
        )
        if options.valves is not None:
            network = valve_layer.add_valve_layer(network, options.valves)
        results.append(_write(engine, kind, files, network, placement, options, progress))
    return results


def _check_valves(valves: Path | None, groups: list[tuple[str, list[Path]]]) -> None:
    """A valve layer goes with exactly one EPANET network."""
    if valves is None:
        return
    if not valves.is_file():
        raise InvalidInput(f"--valves {valves}: no such file")
    kinds = [kind for kind, _ in groups]
    if kinds != ["epanet"]:
        given = " + ".join(f"{kind} ({', '.join(p.name for p in files)})" for kind, files in groups)
        raise InvalidInput(
            f"--valves {valves.name}: a valve layer goes with exactly one EPANET .inp network; "
            f"given {given}"
        )


def _write(
    engine: Engine,
    kind: str,
    files: list[Path],
    network: Network,
    placement: Placement,
    options: PipeImportOptions,
    progress: Progress | None,
) -> ImportResult:
    valves = options.valves
    # the valve layer is part of the source: the network with a layer is another dataset, and a
    # changed layer of the same name is its next version (cim.services.versions)
    name = " + ".join(p.name for p in [*files, *([valves] if valves else [])])
    clean, issues = qc.check_source(network)
    if options.strict and issues:
        _refuse(name, issues)

    def write(session: Session, dataset: Dataset) -> WriteOutcome:
        ground = sample_terrain(session, placement.storage_srid)
        if progress:
            progress(f"placing {len(clean.segments):,} segments in 3D")
        placed = place(clean, default_cover=options.default_cover, ground=ground)
        all_issues = issues + qc.check_placed(placed)
        if options.strict and all_issues:
            _refuse(name, all_issues)
        if progress:
            progress(f"writing {len(placed.nodes):,} nodes and {len(placed.segments):,} segments")
        nodes, segments = write_network(
            session, dataset_id=dataset.id, srid=placement.storage_srid, placed=placed
        )
        counts = {
            "pipe_node": nodes,
            "pipe_segment": segments,
            "nodes_by_kind": _tally(placed.nodes["kind"]),
            "segments_by_type": _tally(placed.segments["link_type"]),
            "utilities": _tally(placed.segments["utility"]) or _tally(placed.nodes["utility"]),
            "skipped_segments": len(network.segments) - len(clean.segments),
            "skipped_nodes": len(network.nodes) - len(clean.nodes),
            "z_source": placed.z_sources,
            "source_types": network.counts_by_type,
        }
        warnings = list(network.warnings)
        if placed.z_sources.get("no_ground"):
            warnings.append(
                f"{placed.z_sources['no_ground']} segment end(s) had no elevation, depth or "
                f"ground: placed {options.default_cover} m below height 0"
            )
        return WriteOutcome(
            counts=counts,
            qc=qc.report(all_issues),
            warnings=warnings,
            source_crs=network.source_crs,
        )

    source = DatasetSource(
        kind="pipes",
        name=name,
        source_name=", ".join(str(p) for p in files),
        # the valve layer is part of the source (and of the name, see above)
        source_sha256=file_sha256(*sorted(files), *([valves] if valves else [])),
        source_crs=network.source_crs,
        transform=_transform(placement, network),
        options={
            "format": kind,
            "utility": options.utility,
            "crs": options.crs,
            "origin": list(options.origin) if options.origin else None,
            "mapping": str(options.mapping) if options.mapping else None,
            "default_cover": options.default_cover,
            "strict": options.strict,
            "valves": (
                {"file": valves.name, "path": str(valves), "sha256": file_sha256(valves)}
                if valves
                else None
            ),
            "source_model": network.model or None,
        },
    )
    return run_import(engine, source=source, write=write, replace=options.replace)


def _transform(placement: Placement, network: Network) -> dict[str, Any]:
    return {
        "to": f"EPSG:{placement.storage_srid}",
        "from": network.source_crs,
        "origin": list(placement.origin) if placement.origin else None,
        "units": network.units,
    }


def _tally(series: Any) -> dict[str, int]:
    counts = series.dropna().astype(str).value_counts()
    return {str(k): int(v) for k, v in sorted(counts.items())}


def _refuse(name: str, issues: list[qc.Issue]) -> None:
    by_rule: dict[str, int] = {}
    for issue in issues:
        by_rule[issue.rule] = by_rule.get(issue.rule, 0) + 1
    listed = "; ".join(i.message for i in issues[:5])
    raise ImportFailed(
        f"{name}: --strict refuses the import: {len(issues)} QC error(s) ("
        + ", ".join(f"{k} {v}" for k, v in by_rule.items())
        + f"): {listed}"
    )


def source_crs_label(crs: CRS) -> str:
    """The label stored on the dataset for a reader's CRS."""
    return crs_label(crs)

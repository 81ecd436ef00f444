"""Dataset kind -> importer: the one table the ``cim import`` commands and the API jobs choose from.

Each :class:`Importer` names its options model (what an API job stores and a command gathers;
pydantic, unknown keys ignored), the files it takes, its one-line help, and ``run``: the import
called the same way from both composition roots, ``run(engine, paths, options, progress)``.
The terrain, pipe and IFC importers (rasterio, pandas, ifcopenshell) are imported inside
``run`` so ``cim --help`` stays fast; the vector ones cost nothing the CLI has not loaded.

Examples
--------
>>> importer("roads").options(noding="vertices").noding
'vertices'
>>> importer("lidar")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
cim.errors.InvalidInput: unknown dataset kind 'lidar'; one of terrain, pipes, ifc, shelters, ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from sqlalchemy import Engine

from cim.config import DEFAULT_IFCZIP_MAX_EXPANDED_BYTES
from cim.errors import InvalidInput
from importers.base import ImportResult
from importers.roads import import_roads
from importers.shelters import import_hazards, import_population, import_shelters

if TYPE_CHECKING:
    from importers.ifc import IfcImport

Progress = Callable[[str, int, int], None]
"""``(stage, done, total)`` as an import goes; ``total`` is 0 where a stage is not counted."""


def origin_from_text(value: Any) -> Any:
    """``"E,N[,H]"`` (an API form field) -> ``(E, N, H)``; tuples from the CLI pass through."""
    if not isinstance(value, str):
        return value
    if not value:
        return None
    try:
        parts = [float(v) for v in value.split(",")]
    except ValueError:
        raise InvalidInput("origin must be E,N[,H]") from None
    if len(parts) not in (2, 3):
        raise InvalidInput("origin must be E,N[,H]")
    return (parts[0], parts[1], parts[2] if len(parts) == 3 else 0.0)


class ImportOptions(BaseModel):
    """Options every importer takes: the dataset name, the source CRS, replace a same file."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str | None = None
    crs: str | None = None
    replace: bool = False


class VectorOptions(ImportOptions):
    """One vector file into one table, its fields mapped by an optional YAML file."""

    mapping: Path | None = None


class RoadOptions(VectorOptions):
    """A road line layer: how lines are cut into network edges."""

    noding: str = Field(
        "intersections",
        description="Where lines are cut into network edges: 'intersections' (wherever lines "
        "touch or cross) or 'vertices' (only at shared vertices, OSM style).",
    )


class PipeOptions(ImportOptions):
    """Pipe networks (see ``importers.pipes.PipeImportOptions``); ``name`` is not used."""

    format: str | None = None
    utility: str | None = None
    origin: Annotated[tuple[float, float, float] | None, BeforeValidator(origin_from_text)] = None
    mapping: Path | None = None
    default_cover: float = 1.0
    strict: bool = False
    valves: Path | None = None


class BuildingOptions(ImportOptions):
    """City models; footprint layers (.geojson .gpkg .shp .fgb) need a YAML field ``mapping``."""

    mapping: Path | None = None


class PointcloudOptions(ImportOptions):
    """LAS/LAZ point clouds; ``data_dir`` (``CIM_DATA_DIR``, where the files are kept for the
    tiler) is given by the composition root, else read from the environment's settings."""

    data_dir: Path | None = None


class IfcOptions(ImportOptions):
    """An IFC model: where it goes (``crs``, ``origin``, ``rotation``) and kernel processes."""

    origin: Annotated[tuple[float, ...] | None, BeforeValidator(origin_from_text)] = None
    rotation: float | None = None
    threads: int | None = None
    max_expanded_bytes: int = Field(
        DEFAULT_IFCZIP_MAX_EXPANDED_BYTES,
        description="Largest size the .ifc of an .ifczip may expand to "
        "(CimSettings.ifczip_max_expanded_bytes).",
    )


class Summary(Protocol):
    """What every import answers: its JSON summary (``--json``, the job's result)."""

    def to_dict(self) -> dict[str, Any]: ...


OptionsT = TypeVar("OptionsT", bound=ImportOptions)
SummaryT = TypeVar("SummaryT", bound=Summary)


@dataclass(frozen=True)
class Importer(Generic[OptionsT, SummaryT]):
    """How to import one dataset kind."""

    kind: str
    summary: str
    """One line: what it imports (the help of ``cim import <kind>``)."""
    files_help: str
    """What the file argument may be."""
    options: type[OptionsT]
    run: Callable[[Engine, list[Path], OptionsT, Progress], list[SummaryT]]


def _one(paths: list[Path], message: str) -> Path:
    if len(paths) != 1:
        raise InvalidInput(message)
    return paths[0]


def _terrain(
    engine: Engine, paths: list[Path], options: ImportOptions, progress: Progress
) -> list[ImportResult]:
    from importers.terrain import import_terrain

    path = _one(paths, "terrain: upload one raster file")
    result = import_terrain(
        engine,
        path,
        crs=options.crs,
        name=options.name,
        replace=options.replace,
        progress=lambda done, total: progress("tiles", done, total),
    )
    return [result]


def _pipes(
    engine: Engine, paths: list[Path], options: PipeOptions, progress: Progress
) -> list[ImportResult]:
    from importers.pipes import PipeImportOptions, import_pipes

    pipe_options = PipeImportOptions(**options.model_dump(exclude={"name"}))
    # Pipes report stages, not counts: each stage is shown as half way.
    return import_pipes(engine, paths, pipe_options, progress=lambda stage: progress(stage, 1, 2))


def _ifc(
    engine: Engine, paths: list[Path], options: IfcOptions, progress: Progress
) -> list[IfcImport]:
    from importers.ifc import Flags, import_ifc

    path = _one(paths, "ifc: upload one .ifc file")
    result = import_ifc(
        engine,
        path,
        flags=Flags(crs=options.crs, origin=options.origin, rotation=options.rotation),
        name=options.name,
        replace=options.replace,
        threads=options.threads,
        progress=progress,
        max_expanded_bytes=options.max_expanded_bytes,
    )
    return [result]


def _buildings(
    engine: Engine, paths: list[Path], options: BuildingOptions, progress: Progress
) -> list[ImportResult]:
    from importers.citymodel import import_buildings

    result = import_buildings(
        engine,
        paths,
        crs=options.crs,
        name=options.name,
        replace=options.replace,
        progress=lambda done: progress("buildings", done, 0),
        mapping=options.mapping,
    )
    return [result]


def _pointcloud(
    engine: Engine, paths: list[Path], options: PointcloudOptions, progress: Progress
) -> list[ImportResult]:
    from cim.config import CimSettings
    from importers.pointcloud import import_pointcloud

    result = import_pointcloud(
        engine,
        paths,
        data_dir=options.data_dir or CimSettings().data_dir,
        crs=options.crs,
        name=options.name,
        replace=options.replace,
        progress=lambda done, total: progress("points", done, total),
    )
    return [result]


def _vector(
    function: Callable[..., ImportResult],
) -> Callable[[Engine, list[Path], VectorOptions, Progress], list[ImportResult]]:
    def run(
        engine: Engine, paths: list[Path], options: VectorOptions, progress: Progress
    ) -> list[ImportResult]:
        path = _one(paths, "upload one vector file (GeoJSON, GeoPackage, zipped Shapefile)")
        return [function(engine, path, **options.model_dump())]

    return run


VECTOR_FILES = "GeoJSON, GeoPackage, Shapefile or CSV with lon/lat columns."
TERRAIN = Importer(
    "terrain",
    "Import a DEM: reprojected to the storage CRS (bilinear) and stored as 256x256 tiles.",
    "DEM file (GeoTIFF, COG, any GDAL raster).",
    ImportOptions,
    _terrain,
)
PIPES = Importer(
    "pipes",
    "Import underground pipe networks, one dataset per network, with a CJJ 61 QC report.",
    "CJJ 61 tables (JS_POINT.csv JS_LINE.csv, .xlsx), GIS layers (.geojson .gpkg .shp), "
    "EPANET or SWMM .inp files.",
    PipeOptions,
    _pipes,
)
IFC = Importer(
    "ifc",
    "Import buildings, storeys and elements (meshes, property sets, colours) from IFC.",
    "An .ifc or .ifczip file (IFC2X3, IFC4, IFC4X3).",
    IfcOptions,
    _ifc,
)
SHELTERS = Importer(
    "shelters",
    "Import shelters: name, level, site polygon or point, capacity or effective area.",
    VECTOR_FILES,
    VectorOptions,
    _vector(import_shelters),
)
POPULATION = Importer(
    "population",
    "Import population units (polygons or points) with a population field.",
    VECTOR_FILES,
    VectorOptions,
    _vector(import_population),
)
HAZARDS = Importer(
    "hazards",
    "Import hazard zones (polygons) with a kind: flood, fault, landslide, fire ...",
    VECTOR_FILES,
    VectorOptions,
    _vector(import_hazards),
)
ROADS = Importer(
    "roads",
    "Import a road network (LineStrings) for along-road distances in shelter plans.",
    "GeoJSON, GeoPackage or Shapefile of road lines.",
    RoadOptions,
    _vector(import_roads),
)
BUILDINGS = Importer(
    "buildings",
    "Import city-model buildings (CityJSON, CityJSONSeq, CityGML, footprints): footprints, "
    "heights, LoD surfaces.",
    "CityJSON 1.0/1.1/2.0 (.city.json), CityJSONSeq (.city.jsonl), CityGML 2.0/3.0 (.gml, "
    ".xml) or footprint layers (.geojson .gpkg .shp, with --mapping) extruded to LOD1 blocks; "
    "one dataset for all the files given.",
    BuildingOptions,
    _buildings,
)
POINTCLOUD = Importer(
    "pointcloud",
    "Import LAS/LAZ point clouds: point and class counts, extent and CRS; the files are kept "
    "for the pointcloud tiles layer (py3dtiles).",
    "LAS or LAZ files (.las .laz), one dataset for all the files given (one CRS).",
    PointcloudOptions,
    _pointcloud,
)

IMPORTERS: dict[str, Importer[Any, Any]] = {
    entry.kind: entry
    for entry in (TERRAIN, PIPES, IFC, SHELTERS, POPULATION, HAZARDS, ROADS, BUILDINGS, POINTCLOUD)
}
"""Every importer by dataset kind, in the order the API lists them."""
VECTOR_IMPORTERS: tuple[Importer[Any, ImportResult], ...] = (SHELTERS, POPULATION, HAZARDS, ROADS)
"""The one-vector-file importers (the inputs of shelter zoning), which share one CLI shape."""


def importer(kind: str) -> Importer[Any, Any]:
    """The importer of ``kind``; InvalidInput naming the kinds there are."""
    entry = IMPORTERS.get(kind)
    if entry is None:
        raise InvalidInput(f"unknown dataset kind {kind!r}; one of {', '.join(IMPORTERS)}")
    return entry

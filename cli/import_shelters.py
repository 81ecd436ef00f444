"""``cim import shelters|population|hazards|roads FILE``: the inputs of disaster-shelter zoning."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.context import console, emit, engine_scope

FileArgument = Annotated[
    Path, typer.Argument(help="GeoJSON, GeoPackage, Shapefile or CSV with lon/lat columns.")
]
MappingOption = Annotated[
    Path | None,
    typer.Option("--mapping", help="YAML mapping of field names and value vocabularies."),
]
CrsOption = Annotated[
    str | None, typer.Option("--crs", help="Source CRS when the file declares none (EPSG:xxxx).")
]
NameOption = Annotated[
    str | None, typer.Option("--name", help="Dataset name (default: file stem).")
]
ReplaceOption = Annotated[
    bool, typer.Option("--replace", help="Re-import a file that is already in (replaces it).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _import(
    kind: str,
    runner: Callable[..., Any],
    file: Path,
    mapping: Path | None,
    crs: str | None,
    name: str | None,
    replace: bool,
    as_json: bool,
) -> None:
    with engine_scope() as engine, console.status(f"importing {kind} from {file.name}..."):
        result = runner(engine, file, mapping=mapping, crs=crs, name=name, replace=replace)
    summary = result.to_dict()
    dataset = summary["dataset"]
    counts = ", ".join(
        f"{k}={v}" for k, v in (dataset.get("counts") or {}).items() if not isinstance(v, dict)
    )
    verb = "imported" if result.created else "already imported (use --replace)"
    lines = [f"{verb}: dataset {dataset['id']} {dataset['name']} ({kind}; {counts})"]
    lines += [f"warning: {w}" for w in result.warnings]
    emit(summary, as_json=as_json, text="\n".join(lines))


def shelters(
    file: FileArgument,
    mapping: MappingOption = None,
    crs: CrsOption = None,
    name: NameOption = None,
    replace: ReplaceOption = False,
    as_json: JsonOption = False,
) -> None:
    """Import shelters: name, level, site polygon or point, capacity or effective area."""
    from importers.shelters import import_shelters

    _import("shelters", import_shelters, file, mapping, crs, name, replace, as_json)


def population(
    file: FileArgument,
    mapping: MappingOption = None,
    crs: CrsOption = None,
    name: NameOption = None,
    replace: ReplaceOption = False,
    as_json: JsonOption = False,
) -> None:
    """Import population units (polygons or points) with a population field."""
    from importers.shelters import import_population

    _import("population", import_population, file, mapping, crs, name, replace, as_json)


def hazards(
    file: FileArgument,
    mapping: MappingOption = None,
    crs: CrsOption = None,
    name: NameOption = None,
    replace: ReplaceOption = False,
    as_json: JsonOption = False,
) -> None:
    """Import hazard zones (polygons) with a kind: flood, fault, landslide, fire ..."""
    from importers.shelters import import_hazards

    _import("hazards", import_hazards, file, mapping, crs, name, replace, as_json)


def roads(
    file: Annotated[Path, typer.Argument(help="GeoJSON, GeoPackage or Shapefile of road lines.")],
    mapping: MappingOption = None,
    crs: CrsOption = None,
    name: NameOption = None,
    replace: ReplaceOption = False,
    noding: Annotated[
        str,
        typer.Option(
            help="Where lines are cut into network edges: 'intersections' (wherever lines "
            "touch or cross) or 'vertices' (only at shared vertices, OSM style)."
        ),
    ] = "intersections",
    as_json: JsonOption = False,
) -> None:
    """Import a road network (LineStrings) for along-road distances in shelter plans."""
    from functools import partial

    from importers.roads import import_roads

    _import(
        "roads", partial(import_roads, noding=noding), file, mapping, crs, name, replace, as_json
    )

"""``cim import shelters|population|hazards|roads FILE``: the inputs of disaster-shelter zoning.

The four commands are made from their ``importers.registry`` entries by :func:`vector_command`:
the file argument, the shared options below, then one option per field that the entry's
options model adds to ``VectorOptions`` (roads: ``--noding``).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.context import console, emit, engine_scope
from importers.registry import Importer, VectorOptions

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
KIND = inspect.Parameter.POSITIONAL_OR_KEYWORD


def vector_command(entry: Importer[Any, Any]) -> Any:
    """The ``cim import <kind>`` command of a one-vector-file importer."""

    def command(**values: Any) -> None:
        file: Path = values.pop("file")
        as_json: bool = values.pop("as_json")
        _import(entry, file, entry.options(**values), as_json)

    command.__doc__ = entry.summary
    command.__signature__ = _signature(entry)  # type: ignore[attr-defined]
    command.__annotations__ = {}  # typer reads the signature, whose annotations are objects
    return command


def _signature(entry: Importer[Any, Any]) -> inspect.Signature:
    def option(name: str, annotation: Any, default: Any) -> inspect.Parameter:
        return inspect.Parameter(name, KIND, default=default, annotation=annotation)

    extra = [
        option(
            name, Annotated[field.annotation, typer.Option(help=field.description)], field.default
        )
        for name, field in entry.options.model_fields.items()
        if name not in VectorOptions.model_fields
    ]
    file = Annotated[Path, typer.Argument(help=entry.files_help)]
    return inspect.Signature(
        [
            inspect.Parameter("file", KIND, annotation=file),
            option("mapping", MappingOption, None),
            option("crs", CrsOption, None),
            option("name", NameOption, None),
            option("replace", ReplaceOption, False),
            *extra,
            option("as_json", JsonOption, False),
        ]
    )


def _import(entry: Importer[Any, Any], file: Path, options: VectorOptions, as_json: bool) -> None:
    with engine_scope() as engine, console.status(f"importing {entry.kind} from {file.name}..."):
        [result] = entry.run(engine, [file], options, lambda stage, done, total: None)
    dataset = result.dataset
    counts = ", ".join(f"{k}={v}" for k, v in dataset.counts.items() if not isinstance(v, dict))
    verb = "imported" if result.created else "already imported (use --replace)"
    lines = [f"{verb}: dataset {dataset.id} {dataset.name} ({entry.kind}; {counts})"]
    lines += [f"warning: {w}" for w in result.warnings]
    emit(result.to_dict(), as_json=as_json, text="\n".join(lines))

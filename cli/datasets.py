"""``cim datasets list|show|delete`` (and ``history|diff|purge``): what has been imported."""

from __future__ import annotations

from typing import Annotated

import typer

from cim.services import datasets as dataset_service
from cli import datasets_versions
from cli.context import emit, session_scope

app = typer.Typer(
    help="Imported datasets: list, show (with QC report), delete; versions: history, diff, purge.",
    no_args_is_help=True,
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@app.command("list")
def list_(
    kind: Annotated[str | None, typer.Option(help="Only datasets of this kind.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List ready datasets, newest first."""
    with session_scope() as session:
        rows = [
            dataset_service.dataset_summary(d)
            for d in dataset_service.list_datasets(session, kind=kind)
        ]
    lines = [f"{r.id:>5}  {r.kind:<10} {r.name:<40} {r.source_name}" for r in rows]
    emit(
        [r.model_dump(mode="json") for r in rows],
        as_json=as_json,
        text="\n".join(lines) if lines else "no datasets yet",
    )


@app.command()
def show(
    dataset_id: Annotated[int, typer.Argument(help="Dataset id.")], as_json: JsonOption = False
) -> None:
    """Show one dataset: source, CRS, counts and QC report."""
    with session_scope() as session:
        summary = dataset_service.dataset_summary(
            dataset_service.get_dataset(session, dataset_id=dataset_id)
        )
    emit(summary.model_dump(mode="json"), as_json=as_json)


@app.command()
def delete(
    dataset_id: Annotated[int, typer.Argument(help="Dataset id.")], as_json: JsonOption = False
) -> None:
    """Delete a dataset and every row of it."""
    with session_scope() as session:
        dataset = dataset_service.delete_dataset(session, dataset_id=dataset_id)
        result = {"deleted": dataset.id, "kind": dataset.kind, "name": dataset.name}
    emit(result, as_json=as_json, text=f"deleted dataset {dataset_id} ({result['name']})")


datasets_versions.register(app)

"""``cim datasets history|diff|purge``: the versions of a dataset and what changed between them.

A re-import of a versioned dataset (pipes, shelters, population, city models, IFC: same name, or
``--replace``) is its next version; see ``cim.services.versions``. These commands read the list,
compare two versions and drop history older than a date.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.context import emit, session_scope

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
DatasetArg = Annotated[int, typer.Argument(help="Dataset id.")]


def history(dataset_id: DatasetArg, as_json: JsonOption = False) -> None:
    """The versions of a dataset, oldest first, with what each changed."""
    from cim.services.versions.history import list_versions

    with session_scope() as session:
        found = list_versions(session, dataset_id)
    lines = []
    for v in found.versions:
        changed = ", ".join(
            f"{table} +{c['added']} -{c['removed']} ~{c['changed']}"
            for table, c in v.changes.items()
        )
        mark = " (current)" if v.current else ""
        when = v.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        lines.append(f"v{v.version}{mark}  {when}  {v.source_name}  {changed or 'first import'}")
    emit(found.model_dump(mode="json"), as_json=as_json, text="\n".join(lines))


def diff(
    dataset_id: DatasetArg,
    from_version: Annotated[
        int | None, typer.Option("--from", min=1, help="Default: the version before --to.")
    ] = None,
    to_version: Annotated[
        int | None, typer.Option("--to", min=1, help="Default: the current version.")
    ] = None,
    geojson: Annotated[
        Path | None, typer.Option("--geojson", help="Write the changes as GeoJSON (EPSG:4326).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Features added, removed and changed between two versions; under each change, the old and
    new value of each attribute (``~ L2 diameter_mm 400 → 500``)."""
    import json

    from cim.services.pipes.scope import session_srid
    from cim.services.versions.diff import dataset_diff

    with session_scope() as session:
        found = dataset_diff(
            session,
            dataset_id=dataset_id,
            srid=session_srid(session),
            from_version=from_version,
            to_version=to_version,
            output_crs="EPSG:4326" if geojson else None,
        )
    if geojson is not None:
        geojson.write_text(json.dumps(found.geojson, ensure_ascii=False), encoding="utf-8")
    lines = [
        f"dataset {dataset_id}: v{found.from_version} -> v{found.to_version}: "
        f"{found.totals['added']} added, {found.totals['removed']} removed, "
        f"{found.totals['changed']} changed"
    ]
    for f in found.features:
        what = ", ".join(f.attributes)
        moved = f" moved {f.moved_m:g} m" if f.moved_m else ""
        lines.append(f"  {f.state:<8} {f.table:<13} {f.code or f.id}  {what}{moved}".rstrip())
        lines += [
            f"    ~ {f.code or f.id} {name} {_shown(c['from'])} → {_shown(c['to'])}"
            for name, c in f.changes.items()
        ]
    emit(found.model_dump(mode="json", exclude={"geojson"}), as_json=as_json, text="\n".join(lines))


def _shown(value: Any) -> str:
    """An attribute value for people: text as it is, anything else as JSON (``null``: none)."""
    import json

    if isinstance(value, str) and value.strip() == value and value:
        return value
    return json.dumps(value, ensure_ascii=False)


def purge(
    before: Annotated[
        datetime, typer.Option("--before", help="Drop history that ended before this date.")
    ],
    as_json: JsonOption = False,
) -> None:
    """Drop feature history (and version entries) older than a date; current data stays."""
    from cim.services.versions.history import purge_history

    moment = before if before.tzinfo is not None else before.replace(tzinfo=UTC)
    with session_scope() as session:
        report = purge_history(session, before=moment)
    emit(
        report.model_dump(mode="json"),
        as_json=as_json,
        text=f"dropped {report.history_rows} history rows and {report.versions} version entries",
    )


def register(app: typer.Typer) -> None:
    """Add the version commands to ``cim datasets``."""
    app.command("history")(history)
    app.command("diff")(diff)
    app.command("purge")(purge)

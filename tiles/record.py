"""The freshness record of built layers (``tileset`` rows): which dataset versions each holds.

A layer whose recorded spec and versions equal the current ones is not rebuilt.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, Row, text

from tiles.manifest import Stamp

UPSERT = text(
    "INSERT INTO tileset (layer, spec, dataset_versions, stats, built_at) "
    "VALUES (:layer, :spec, CAST(:versions AS jsonb), CAST(:stats AS jsonb), now()) "
    "ON CONFLICT (layer) DO UPDATE SET spec = excluded.spec, "
    "dataset_versions = excluded.dataset_versions, stats = excluded.stats, "
    "built_at = excluded.built_at"
)


@dataclass
class BuildResult:
    """What one layer build did; ``status`` is built | up-to-date | empty.

    ``mode`` says how a built layer was made: ``full`` (every tile written) or ``incremental``
    (only ``tiles_rewritten`` of ``tiles`` written, the others kept from the previous build);
    ``full_reason`` says why a build that could have been incremental was not.
    ``rewritten_keys`` lists the tiles an incremental build rewrote (empty after a full one).
    """

    layer: str
    status: str
    spec: str
    path: str
    features: int = 0
    tiles: int = 0
    triangles: int = 0
    bytes: int = 0
    largest_tile_bytes: int = 0
    seconds: float = 0.0
    mode: str = "full"
    tiles_rewritten: int = 0
    full_reason: str = ""
    rewritten_keys: list[str] = field(default_factory=list)
    dataset_versions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def version_of(row: Row[Any]) -> str:
    """``sha256@ready_at`` of a dataset row: changes whenever the dataset is imported again."""
    return f"{row.source_sha256}@{row.ready_at.isoformat() if row.ready_at else ''}"


def dataset_versions(engine: Engine, kinds: tuple[str, ...]) -> dict[str, str]:
    """``{dataset id: sha256@ready_at}`` of the ready datasets a layer is built from."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT id, source_sha256, ready_at FROM dataset "
                "WHERE kind = ANY(:kinds) AND status = 'ready' ORDER BY id"
            ),
            {"kinds": list(kinds)},
        ).all()
    return {str(r.id): version_of(r) for r in rows}


def read_stamp(engine: Engine, kinds: tuple[str, ...]) -> Stamp:
    """The current version number of every ready dataset of ``kinds``.

    Read *before* a build reads its features: a version committed in between is then in the
    tiles and also newer than the stamp, so the next refresh looks at it again (harmless)
    rather than never.
    """
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT d.id, coalesce(max(v.version), 0) AS version FROM dataset d "
                "LEFT JOIN dataset_version v ON v.dataset_id = d.id "
                "WHERE d.kind = ANY(:kinds) AND d.status = 'ready' GROUP BY d.id"
            ),
            {"kinds": list(kinds)},
        ).all()
    return Stamp({str(r.id): int(r.version) for r in rows})


def recorded(engine: Engine, layer: str) -> tuple[str, dict[str, Any]] | None:
    """The spec and dataset versions of the last build of ``layer``, if there was one."""
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT spec, dataset_versions FROM tileset WHERE layer = :layer"),
            {"layer": layer},
        ).first()
    return None if row is None else (str(row.spec), dict(row.dataset_versions))


def record(engine: Engine, result: BuildResult) -> None:
    """Record a finished build (an empty layer has no row)."""
    stats = {k: v for k, v in result.to_dict().items() if k not in {"dataset_versions", "path"}}
    with engine.begin() as connection:
        if result.status == "empty":
            connection.execute(text("DELETE FROM tileset WHERE layer = :l"), {"l": result.layer})
            return
        save(connection, result.layer, result.spec, result.dataset_versions, stats)


def save(
    connection: Connection,
    layer: str,
    spec: str,
    versions: dict[str, str],
    stats: dict[str, Any],
) -> None:
    """Insert or replace the row of ``layer``."""
    connection.execute(
        UPSERT,
        {
            "layer": layer,
            "spec": spec,
            "versions": json.dumps(versions),
            "stats": json.dumps(stats),
        },
    )

"""What a pipe analysis may look at: the storage SRID, the ready pipe datasets, hidden classes;
and the database plumbing the analyses share (rows of text queries, JIT off)."""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import Row, text
from sqlalchemy.orm import Session

from cim import bounds
from cim.db.migrate import recorded_srid
from cim.db.models import Dataset
from cim.errors import AuthenticationRequired, ConfigError, InvalidInput, NotFound
from cim.services.datasets import held_classes
from cim.services.pipes.inputs import ewkt, parse_polygon

#: A row of a text query, any number of columns.
AnyRow = Row[*tuple[Any, ...]]


def session_srid(session: Session) -> int:
    """The storage SRID recorded in the database of ``session``."""
    srid = recorded_srid(session.connection())
    if srid is None:
        raise ConfigError("the database has no cim schema yet: run `cim db upgrade`")
    return srid


def pipe_dataset_ids(session: Session, dataset_id: int | None) -> list[int]:
    """The ready pipe datasets an analysis looks at: the one asked for, or all of them."""
    if dataset_id is not None:
        kind = session.execute(
            text("SELECT kind FROM dataset WHERE id = :id AND status = 'ready'"), {"id": dataset_id}
        ).scalar_one_or_none()
        if kind is None:
            raise NotFound(f"dataset {dataset_id} does not exist or is not ready")
        if kind != "pipes":
            raise InvalidInput(f"dataset {dataset_id} is a {kind} dataset, not pipes")
        return [dataset_id]
    rows = session.execute(
        text("SELECT id FROM dataset WHERE kind = 'pipes' AND status = 'ready' ORDER BY id")
    ).scalars()
    return [int(r) for r in rows]


def listed_datasets(session: Session, datasets: list[int], hidden: frozenset[str]) -> list[int]:
    """The datasets an answer may name to a caller who may not see ``hidden`` classes: a pipe
    dataset holding one is restricted as a whole (its id tells that it exists), though the
    analysis still looks at its public classes."""
    if not hidden:
        return datasets
    shown = []
    for dataset_id in datasets:
        dataset = session.get(Dataset, dataset_id)
        if dataset is not None and not held_classes(session, dataset) & hidden:
            shown.append(dataset_id)
    return shown


def refuse_hidden(utility: str, hidden: frozenset[str]) -> None:
    """AuthenticationRequired when an anonymous caller asks about a sensitive class (gas, power)."""
    if utility.upper() in hidden:
        raise AuthenticationRequired(
            f"{utility} pipes are sensitive: send an API key to analyse them"
        )


def no_jit(session: Session) -> None:
    """Turn JIT off for this transaction: PostGIS cost estimates make PostgreSQL JIT-compile
    these short queries, which costs seconds and saves nothing (measured in bench/analysis)."""
    session.execute(text("SET LOCAL jit = off"))


class AreaScope(NamedTuple):
    """What a city-wide check (clearance, clashes) looks at: storage SRID, datasets, area."""

    srid: int
    datasets: list[int]
    area_ewkt: str | None


def area_scope(session: Session, dataset_id: int | None, area: Any, limit: int) -> AreaScope:
    """Check ``limit`` (at least 1, within the analysis cap) and resolve the scope of a check."""
    if limit < 1:
        raise InvalidInput("limit must be at least 1")
    bounds.current().check_limit(limit)
    srid = session_srid(session)
    datasets = pipe_dataset_ids(session, dataset_id)
    area_ewkt = ewkt(parse_polygon(area, what="area"), srid) if area is not None else None
    return AreaScope(srid, datasets, area_ewkt)

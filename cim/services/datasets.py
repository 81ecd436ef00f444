"""Dataset lifecycle: created ``loading``, rows written, marked ``ready`` - in one transaction.

The caller owns the transaction (``importers.base.run_import`` opens it), so a failure or a
killed process leaves nothing behind. Re-importing the same file (same kind and sha256) is a
no-op unless ``replace`` is asked for. For versioned kinds (:mod:`cim.services.versions`) a
re-import of the same dataset name, or a ``replace`` of the same file, writes the rows under a
staging dataset and folds them into the existing dataset as its next version; other kinds are
replaced by deleting the old dataset first. Deleting a dataset cascades to every row that
references it, all its versions and history included.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PureWindowsPath
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from cim.db.models import DATASET_KINDS, Dataset
from cim.errors import InvalidInput, NotFound
from cim.services.buildings.supersede import link_bim_to_blocks
from cim.services.graph_cache import GraphCache
from cim.services.results import Result
from cim.services.versions.history import fold_into, record_first_version
from cim.services.versions.tables import is_versioned


def file_sha256(*paths: Path) -> str:
    """sha256 of one file, or of several files read in the given order."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


@dataclass
class DatasetSource:
    """What is known about a source before its rows are written."""

    kind: str
    name: str
    source_name: str
    source_sha256: str
    source_crs: str | None = None
    transform: dict[str, Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class DatasetStart:
    """Result of :func:`begin_dataset`: the row, and whether rows must now be written."""

    dataset: Dataset
    created: bool
    replaced_id: int | None = None
    previous: Dataset | None = None
    """The dataset the new rows become the next version of (versioned kinds)."""


def begin_dataset(session: Session, *, source: DatasetSource, replace: bool) -> DatasetStart:
    """Insert a ``loading`` dataset, or return the existing one when the file is already in.

    Takes a transaction-scoped advisory lock on the file hash, so two imports of the same file
    at once cannot both write it.
    """
    if source.kind not in DATASET_KINDS:
        raise InvalidInput(
            f"unknown dataset kind {source.kind!r}; one of {', '.join(DATASET_KINDS)}"
        )
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"{source.kind}:{source.source_sha256}"},
    )
    existing = session.scalars(
        select(Dataset)
        .where(Dataset.kind == source.kind, Dataset.source_sha256 == source.source_sha256)
        .order_by(Dataset.id)
    ).first()
    replaced_id = None
    previous = None
    if existing is not None:
        if not replace:
            return DatasetStart(dataset=existing, created=False)
        if is_versioned(source.kind):
            previous = existing
        else:
            replaced_id = existing.id
            session.delete(existing)
            session.flush()
    elif is_versioned(source.kind):
        previous = _same_name(session, source)
    dataset = Dataset(
        kind=source.kind,
        name=source.name,
        source_name=source.source_name,
        source_sha256=source.source_sha256,
        source_crs=source.source_crs,
        transform=source.transform,
        options=source.options,
        status="loading",
        counts={},
        qc={},
    )
    session.add(dataset)
    session.flush()
    return DatasetStart(dataset=dataset, created=True, replaced_id=replaced_id, previous=previous)


def _same_name(session: Session, source: DatasetSource) -> Dataset | None:
    """The ready dataset of the same kind and name, locked against a concurrent re-import."""
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"version:{source.kind}:{source.name}"},
    )
    return session.scalars(
        select(Dataset)
        .where(Dataset.kind == source.kind, Dataset.name == source.name)
        .where(Dataset.status == "ready")
        .order_by(Dataset.id.desc())
        .with_for_update()
    ).first()


def complete_dataset(
    session: Session,
    *,
    dataset: Dataset,
    counts: dict[str, Any],
    qc: dict[str, Any] | None = None,
    source_crs: str | None = None,
    transform: dict[str, Any] | None = None,
    previous: Dataset | None = None,
) -> Dataset:
    """Record counts and QC and mark the dataset ``ready`` (inside the caller's transaction).

    Buildings from IFC and from city models are linked here (BIM supersedes the block, see
    :mod:`cim.services.buildings.supersede`); ``counts.superseded_blocks`` says how many.
    With ``previous`` the rows become that dataset's next version, which is returned.
    """
    if dataset.kind in ("ifc", "buildings"):
        linked = link_bim_to_blocks(session, dataset_id=dataset.id)
        if linked:
            counts = {**counts, "superseded_blocks": linked}
    dataset.counts = counts
    dataset.qc = qc or {}
    if source_crs is not None:
        dataset.source_crs = source_crs
    if transform is not None:
        dataset.transform = transform
    dataset.status = "ready"
    dataset.ready_at = datetime.now(UTC)
    session.flush()
    if previous is not None:
        return fold_into(session, previous=previous, staging=dataset)
    record_first_version(session, dataset)
    return dataset


def list_datasets(
    session: Session, *, kind: str | None = None, hidden_utilities: frozenset[str] = frozenset()
) -> list[Dataset]:
    """Every ready dataset, newest first, optionally of one kind; without the datasets holding
    pipes of a ``hidden_utilities`` class (what anonymous callers may not see)."""
    query = select(Dataset).where(Dataset.status == "ready").order_by(Dataset.id.desc())
    if kind is not None:
        query = query.where(Dataset.kind == kind)
    found = list(session.scalars(query))
    return [d for d in found if not held_classes(session, d) & hidden_utilities]


def get_dataset(
    session: Session, *, dataset_id: int, hidden_utilities: frozenset[str] = frozenset()
) -> Dataset:
    """One dataset by id, or :class:`NotFound` - also when it holds pipes of a
    ``hidden_utilities`` class, so anonymous callers cannot tell it exists."""
    dataset = session.get(Dataset, dataset_id)
    if dataset is None or held_classes(session, dataset) & hidden_utilities:
        raise NotFound(f"dataset {dataset_id} does not exist")
    return dataset


_held: GraphCache[frozenset[str]] = GraphCache(size=1024)
"""Utility classes per ready pipe dataset: ready rows never change, so neither does this."""


def held_classes(session: Session, dataset: Dataset) -> frozenset[str]:
    """The utility classes of a pipe dataset's segments and nodes (empty for other kinds).

    A pipe dataset holding a sensitive class is restricted as a whole, even beside public
    classes: its name, extent and counts describe the sensitive network too. Read once per
    ready dataset and process (a scan of the dataset's rows), then cached.
    """
    if dataset.kind != "pipes":
        return frozenset()
    if dataset.status != "ready" or dataset.ready_at is None:
        return _read_classes(session, dataset.id)
    key = ("held_classes", dataset.id, dataset.ready_at)
    held, _ = _held.get_or_build(key, session, lambda: _read_classes(session, dataset.id))
    return held


def _read_classes(session: Session, dataset_id: int) -> frozenset[str]:
    rows = session.execute(
        text(
            "SELECT DISTINCT utility FROM pipe_segment WHERE dataset_id = :id"
            " UNION SELECT DISTINCT utility FROM pipe_node WHERE dataset_id = :id"
        ),
        {"id": dataset_id},
    ).scalars()
    return frozenset(str(utility).upper() for utility in rows)


def sensitive_class_counts(
    session: Session, *, dataset_id: int, classes: frozenset[str]
) -> dict[str, int]:
    """Pipe segments of each of ``classes`` in a dataset (classes with none left out)."""
    if not classes:
        return {}
    rows = session.execute(
        text(
            "SELECT upper(utility), count(*) FROM pipe_segment"
            " WHERE dataset_id = :id AND utility = ANY(:classes) GROUP BY 1 ORDER BY 1"
        ),
        {"id": dataset_id, "classes": sorted(classes)},
    ).all()
    return {str(row[0]): int(row[1]) for row in rows}


def delete_dataset(session: Session, *, dataset_id: int) -> Dataset:
    """Delete a dataset and, through ON DELETE CASCADE, every row of it."""
    dataset = get_dataset(session, dataset_id=dataset_id)
    session.delete(dataset)
    session.flush()
    return dataset


def count_datasets(session: Session) -> int:
    """Number of dataset rows in any status."""
    return int(session.scalar(select(func.count()).select_from(Dataset)) or 0)


class DatasetSummary(Result):
    """A dataset as the CLI and the API show it: source, CRS, counts and QC report."""

    id: int
    kind: str
    name: str
    status: str
    source_name: str
    source_sha256: str
    source_crs: str | None
    transform: dict[str, Any] | None
    options: dict[str, Any]
    counts: dict[str, Any]
    qc: dict[str, Any]
    imported_at: str | None
    """ISO 8601, as stored (``+00:00``)."""
    ready_at: str | None


#: Option keys that hold file paths (importers store where the source was): shown as names.
PATH_OPTIONS = frozenset({"mapping", "path", "file", "files"})


def file_name(path: str) -> str:
    """The last part of a POSIX or Windows path: the server's folders are never shown."""
    return PureWindowsPath(path).name or path


def source_names(source_name: str) -> str:
    """``source_name`` (one path, or several joined by ``, ``) as file names only."""
    return ", ".join(file_name(part) for part in source_name.split(", "))


def _names_only(value: Any, key: str | None = None) -> Any:
    """Options with every path of a :data:`PATH_OPTIONS` key cut to its file name."""
    if isinstance(value, dict):
        return {k: _names_only(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_names_only(v, key) for v in value]
    if isinstance(value, str) and key in PATH_OPTIONS:
        return file_name(value)
    return value


def dataset_summary(dataset: Dataset) -> DatasetSummary:
    """The summary of ``dataset`` shown by the CLI and the API (file names, never paths)."""
    return DatasetSummary(
        id=dataset.id,
        kind=dataset.kind,
        name=dataset.name,
        status=dataset.status,
        source_name=source_names(dataset.source_name),
        source_sha256=dataset.source_sha256,
        source_crs=dataset.source_crs,
        transform=dataset.transform,
        options=_names_only(dataset.options),
        counts=dataset.counts,
        qc=dataset.qc,
        imported_at=dataset.imported_at.isoformat() if dataset.imported_at else None,
        ready_at=dataset.ready_at.isoformat() if dataset.ready_at else None,
    )

"""The version list of a dataset: recording a version, reading the list, purging old history.

Every dataset has version 1 from its first import. A re-import of a versioned kind (see
:mod:`.tables`) folds the new rows in with :func:`.merge.merge_version` and records the next
version with what it changed. ``purge`` drops history rows that ended before a date (and the
version entries no longer readable); the current state is never touched.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from cim.db.models import Dataset, DatasetVersion, FeatureHistory
from cim.errors import NotFound
from cim.services.buildings.supersede import link_bim_to_blocks
from cim.services.results import Result
from cim.services.versions.merge import merge_version


class VersionSummary(BaseModel):
    """One version of a dataset as the API and CLI show it."""

    version: int
    created_at: datetime
    source_name: str
    source_sha256: str
    counts: dict[str, Any]
    changes: dict[str, Any]
    current: bool


class VersionList(Result):
    """``GET /datasets/{id}/versions``: the versions of a dataset, oldest first."""

    dataset_id: int
    versions: list[VersionSummary]


def record_first_version(session: Session, dataset: Dataset) -> None:
    """Version 1 of a new dataset, valid from the import's transaction time (``now()``)."""
    session.add(
        DatasetVersion(
            dataset_id=dataset.id,
            version=1,
            created_at=func.now(),
            source_name=dataset.source_name,
            source_sha256=dataset.source_sha256,
            counts=dataset.counts,
            changes={},
        )
    )
    session.flush()


def fold_into(session: Session, *, previous: Dataset, staging: Dataset) -> Dataset:
    """Make the freshly written ``staging`` dataset the next version of ``previous``.

    ``previous`` takes the new source's name, hash, counts and QC; ``staging`` is deleted once
    empty. Returns ``previous``.
    """
    changes = merge_version(
        session, kind=previous.kind, dataset_id=previous.id, staging_id=staging.id
    )
    number = session.scalar(
        select(func.coalesce(func.max(DatasetVersion.version), 0)).where(
            DatasetVersion.dataset_id == previous.id
        )
    )
    for name in ("source_name", "source_sha256", "source_crs", "transform", "options"):
        setattr(previous, name, getattr(staging, name))
    previous.counts = staging.counts
    previous.qc = staging.qc
    previous.ready_at = staging.ready_at
    session.add(
        DatasetVersion(
            dataset_id=previous.id,
            version=int(number or 0) + 1,
            created_at=func.now(),
            source_name=staging.source_name,
            source_sha256=staging.source_sha256,
            counts=staging.counts,
            changes=changes,
        )
    )
    session.delete(staging)
    session.flush()
    if previous.kind in UNLINK_SQL:
        _relink(session, previous)
    return previous


UNLINK_SQL = {
    "ifc": "UPDATE building SET superseded_by = NULL"
    " WHERE superseded_by IN (SELECT id FROM building WHERE dataset_id = :dataset)",
    "buildings": "UPDATE building SET superseded_by = NULL"
    " WHERE dataset_id = :dataset AND superseded_by IS NOT NULL",
}
"""The BIM-supersedes-block links a new version of an IFC or city model dataset recomputes."""


def _relink(session: Session, dataset: Dataset) -> None:
    """Link the blocks and IFC buildings of the new version afresh.

    The links were made on the staging rows (:func:`cim.services.datasets.complete_dataset`);
    a staging IFC building dropped as unchanged cleared its blocks' links (``ON DELETE SET
    NULL``), and a building moved off its block must let it go. Links are derived data: they
    are rewritten in place, not kept in the history.
    """
    session.execute(text(UNLINK_SQL[dataset.kind]), {"dataset": dataset.id})
    link_bim_to_blocks(session, dataset_id=dataset.id)


def list_versions(session: Session, dataset_id: int) -> VersionList:
    rows = session.scalars(
        select(DatasetVersion)
        .where(DatasetVersion.dataset_id == dataset_id)
        .order_by(DatasetVersion.version)
    ).all()
    if not rows:
        raise NotFound(f"dataset {dataset_id} does not exist")
    last = rows[-1].version
    return VersionList(
        dataset_id=dataset_id,
        versions=[
            VersionSummary(
                version=row.version,
                created_at=row.created_at,
                source_name=row.source_name,
                source_sha256=row.source_sha256,
                counts=row.counts,
                changes=row.changes,
                current=row.version == last,
            )
            for row in rows
        ],
    )


def version_time(session: Session, dataset_id: int, version: int) -> datetime:
    """When ``version`` of a dataset became current (NotFound for an unknown version)."""
    created = session.scalar(
        select(DatasetVersion.created_at).where(
            DatasetVersion.dataset_id == dataset_id, DatasetVersion.version == version
        )
    )
    if created is None:
        raise NotFound(f"dataset {dataset_id} has no version {version}")
    return created


class PurgeReport(Result):
    """What ``cim datasets purge --before`` dropped."""

    before: datetime
    history_rows: int
    versions: int


def purge_history(session: Session, *, before: datetime) -> PurgeReport:
    """Drop history that ended before ``before``, and version entries older than the version
    current at ``before`` (the data of those versions is no longer readable)."""
    rows = session.execute(delete(FeatureHistory).where(FeatureHistory.valid_to <= before))
    versions = session.execute(
        text(
            """
            DELETE FROM dataset_version v
            WHERE v.created_at < :before AND EXISTS (
                SELECT 1 FROM dataset_version later
                WHERE later.dataset_id = v.dataset_id AND later.version > v.version
                  AND later.created_at <= :before)
            """
        ),
        {"before": before},
    )
    return PurgeReport(
        before=before,
        history_rows=int(rows.rowcount or 0),  # type: ignore[attr-defined]
        versions=int(versions.rowcount or 0),  # type: ignore[attr-defined]
    )

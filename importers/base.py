"""The one way an importer writes: a dataset and all its rows in a single transaction.

Why: a bad file, a crash or a SIGKILL in the middle of an import must leave nothing behind.
``run_import`` opens the transaction, creates the ``loading`` dataset (or finds the same file
already imported), lets the format-specific ``write`` callback add rows (COPY for bulk), marks
the dataset ``ready`` and commits. Any exception rolls everything back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from cim.db.models import Dataset
from cim.errors import ImportFailed
from cim.faults import pause_point
from cim.services.datasets import (
    DatasetSource,
    DatasetSummary,
    begin_dataset,
    complete_dataset,
    dataset_summary,
)


@dataclass
class WriteOutcome:
    """What a format's ``write`` callback reports back after writing its rows."""

    counts: dict[str, Any]
    qc: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    source_crs: str | None = None
    transform: dict[str, Any] | None = None


@dataclass
class ImportResult:
    """The summary an import prints (``--json``) and an import job stores."""

    dataset: DatasetSummary
    created: bool
    replaced_id: int | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset.model_dump(mode="json"),
            "created": self.created,
            "replaced_id": self.replaced_id,
            "warnings": self.warnings,
        }


Writer = Callable[[Session, Dataset], WriteOutcome]


def run_import(
    engine: Engine, *, source: DatasetSource, write: Writer, replace: bool = False
) -> ImportResult:
    """Import ``source`` with ``write`` in one transaction; the same file again is a no-op."""
    try:
        with Session(engine, expire_on_commit=False) as session, session.begin():
            start = begin_dataset(session, source=source, replace=replace)
            if not start.created:
                return ImportResult(dataset=dataset_summary(start.dataset), created=False)
            pause_point("write")
            outcome = write(session, start.dataset)
            dataset = complete_dataset(
                session,
                dataset=start.dataset,
                counts=outcome.counts,
                qc=outcome.qc,
                source_crs=outcome.source_crs,
                transform=outcome.transform,
                previous=start.previous,
            )
            session.refresh(dataset)
            summary = dataset_summary(dataset)
            pause_point("commit")  # everything written, the COMMIT not yet sent
    except (DBAPIError, psycopg.Error) as exc:
        # COPY goes through psycopg directly, so its errors arrive unwrapped.
        original = exc.orig if isinstance(exc, DBAPIError) and exc.orig else exc
        message = str(original).strip().splitlines()[0]
        raise ImportFailed(
            f"{source.source_name}: the database refused the data: {message}"
        ) from exc
    return ImportResult(
        dataset=summary, created=True, replaced_id=start.replaced_id, warnings=outcome.warnings
    )

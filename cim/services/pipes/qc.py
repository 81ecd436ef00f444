"""The quality-control report an import stored for a pipe dataset, with its counts."""

from __future__ import annotations

from sqlalchemy.orm import Session

from cim.errors import InvalidInput
from cim.services.datasets import get_dataset, source_names
from cim.services.pipes.models import PipeDatasetQc


def dataset_qc(
    session: Session, *, dataset_id: int, hidden_utilities: frozenset[str] = frozenset()
) -> PipeDatasetQc:
    """The QC report the import stored for a pipe dataset, with its counts; NotFound when it
    holds a ``hidden_utilities`` class. The source is named by its file name, never its path."""
    dataset = get_dataset(session, dataset_id=dataset_id, hidden_utilities=hidden_utilities)
    if dataset.kind != "pipes":
        raise InvalidInput(f"dataset {dataset_id} is a {dataset.kind} dataset, not pipes")
    return PipeDatasetQc(
        dataset_id=dataset.id,
        name=dataset.name,
        source_name=source_names(dataset.source_name),
        status=dataset.status,
        counts=dataset.counts,
        qc=dataset.qc,
    )

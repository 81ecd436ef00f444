"""Versions of a dataset: the list, and the difference between two of them.

A re-import of a versioned dataset (pipes, shelters, population, city models, IFC) is its next
version (``cim.services.versions``); ``GET /datasets/{id}/versions`` lists them and
``GET /datasets/{id}/diff`` compares two, with a GeoJSON of the changes for the viewer. Read like
the dataset itself: a dataset holding sensitive classes is not found without a key. Reading a
past state of any collection is the OGC ``datetime`` parameter on ``/collections/{id}/items``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.auth import HiddenDep
from api.bounds import BOUNDED
from api.deps import ReadSessionDep
from api.ogc import PROBLEMS
from api.sessions import ReleasingRoute
from cim.services.datasets import get_dataset
from cim.services.pipes.scope import session_srid
from cim.services.versions.diff import DatasetDiff, dataset_diff
from cim.services.versions.history import VersionList, list_versions

router = APIRouter(route_class=ReleasingRoute, tags=["datasets"], responses=PROBLEMS)

DatasetId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.get(
    "/datasets/{dataset_id}/versions", summary="Versions of a dataset", response_model=VersionList
)
def versions(dataset_id: DatasetId, session: ReadSessionDep, hidden: HiddenDep) -> VersionList:
    """Every version, oldest first: when, from which source, its counts and what it changed."""
    get_dataset(session, dataset_id=dataset_id, hidden_utilities=hidden)
    return list_versions(session, dataset_id)


@router.get(
    "/datasets/{dataset_id}/diff",
    summary="What changed between two versions",
    response_model=DatasetDiff,
    dependencies=BOUNDED,
)
def diff(
    dataset_id: DatasetId,
    session: ReadSessionDep,
    hidden: HiddenDep,
    from_version: Annotated[
        int | None, Query(alias="from", ge=1, le=2**31 - 1, description="Default: to - 1.")
    ] = None,
    to_version: Annotated[
        int | None, Query(alias="to", ge=1, le=2**31 - 1, description="Default: the current.")
    ] = None,
    geojson_crs: Annotated[
        str | None, Query(max_length=64, description="CRS of the GeoJSON (default storage).")
    ] = None,
) -> DatasetDiff:
    """Features added, removed and changed (which attributes, with their old and new values in
    ``changes``, keys inside ``attrs`` as ``attrs.<key>``; geometry moved by how many metres,
    shape changed), counted per table and utility class, and a GeoJSON of them."""
    get_dataset(session, dataset_id=dataset_id, hidden_utilities=hidden)
    return dataset_diff(
        session,
        dataset_id=dataset_id,
        srid=session_srid(session),
        from_version=from_version,
        to_version=to_version,
        output_crs=geojson_crs,
    )

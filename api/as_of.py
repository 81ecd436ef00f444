"""``at``: run an analysis on the networks as they were at an instant (``cim.services.versions``).

A router-level dependency: it shares the route's read session (FastAPI resolves a dependency
once per request) and makes that transaction read the versioned tables as of ``at``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from api.deps import ReadSessionDep
from cim.errors import InvalidInput
from cim.services.versions.as_of import read_as_of
from cim.services.versions.timetravel import parse_datetime

AT_HELP = (
    "Answer on the data as it was at this instant (RFC 3339, e.g. 2026-06-30T00:00:00Z): "
    "earlier versions of re-imported datasets are read from their history"
)


def read_at(
    session: ReadSessionDep,
    at: Annotated[str | None, Query(max_length=64, description=AT_HELP)] = None,
) -> None:
    """With ``at``, the request's read session reads the past (see the module doc)."""
    if at is None:
        return
    start, end = parse_datetime(at)
    if start is None or start != end:
        raise InvalidInput("at is one instant, not an interval")
    read_as_of(session, start)


AT = [Depends(read_at)]
"""``dependencies=`` of a router whose analyses take ``at``."""

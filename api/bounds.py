"""The bounds of the analysis routes (:mod:`cim.bounds`) for one request: caps from settings and
one deadline, stopped when the time is up or the client disconnects.

The analysis routes are sync: they run in a worker thread while this request's task waits. A
small watcher task sleeps until the deadline (polling for a disconnect meanwhile) and then
interrupts the deadline: the statement in flight is cancelled (``cim.bounds.statements_bounded``
wired in the session dependencies) and the next step of a Python loop raises. Either way the
answer is 503 with ``Retry-After`` (``api.errors``); nobody reads it after a disconnect.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import Depends, Request

from api.deps import SettingsDep
from cim.bounds import Bounds, Deadline, activate

POLL_SECONDS = 0.25
"""How often the watcher asks whether the client is still there."""


async def analysis_bounds(request: Request, settings: SettingsDep) -> AsyncIterator[Bounds]:
    """Make this request's bounds current (the route's worker thread inherits them)."""
    timeout_ms = settings.analysis_timeout_ms or settings.statement_timeout_ms
    deadline = Deadline(timeout_ms / 1000)
    bounds = Bounds(
        deadline=deadline,
        max_limit=settings.max_analysis_limit,
        max_area_m2=settings.max_analysis_area_m2,
        max_highlight=settings.max_highlight_features,
    )
    activate(bounds)
    watcher = asyncio.create_task(_watch(request, deadline))
    try:
        yield bounds
    finally:
        watcher.cancel()


async def _watch(request: Request, deadline: Deadline) -> None:
    """Interrupt ``deadline`` when it passes or when the client goes away, whichever is first."""
    while True:
        await asyncio.sleep(max(0.0, min(POLL_SECONDS, deadline.remaining())))
        if deadline.remaining() <= 0:
            await anyio.to_thread.run_sync(deadline.interrupt)  # cancelling blocks on a socket
            return
        if await request.is_disconnected():
            await anyio.to_thread.run_sync(deadline.cancel, "the client disconnected")
            return


AnalysisBoundsDep = Annotated[Bounds, Depends(analysis_bounds)]
BOUNDED = [Depends(analysis_bounds)]
"""``dependencies=`` of a router or route whose requests are analyses."""

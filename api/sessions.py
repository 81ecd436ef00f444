"""Give a request's database connections back as soon as its route returns, in the route's thread.

FastAPI runs each synchronous dependency and the route on a worker thread, one hop at a time,
and a session dependency's exit (the commit that returns the connection to the pool) is a hop
of its own. On a loaded server that hop waits its turn for a thread while the request still
holds its connection: under ``bench/load.py`` the pools ran dry (30 connections a process,
most of them idle in a request waiting for a thread) and requests failed with 503 after
waiting 30 s for one. So every session a request opens is recorded here, and
:class:`ReleasingRoute` commits them on the route's own thread right after the route returns,
before the answer is sent (as ``scope="function"`` promised). The dependency's exit then has
nothing left to do but close. A route that raises is rolled back by the dependency as before.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Receive, Scope, Send

_sessions: ContextVar[list[Session] | None] = ContextVar("cim_request_sessions", default=None)


def track(session: Session) -> None:
    """Record ``session`` as one of the current request's (no-op outside a request)."""
    opened = _sessions.get()
    if opened is not None:
        opened.append(session)


def release_sessions() -> None:
    """Commit every session of the current request that is in a transaction (returning its
    connection to the pool)."""
    for session in _sessions.get() or ():
        if session.in_transaction():
            session.commit()


class RequestSessions:
    """ASGI middleware: a fresh list of sessions per request, seen by the worker threads (each
    hop runs in a copy of the request's context, which shares the list)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = _sessions.set([])
        try:
            await self.app(scope, receive, send)
        finally:
            _sessions.reset(token)


def _releasing(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(endpoint)
    def run(*args: Any, **kwargs: Any) -> Any:
        result = endpoint(*args, **kwargs)
        release_sessions()
        return result

    return run


class ReleasingRoute(APIRoute):
    """An APIRoute whose synchronous endpoint commits the request's sessions when it returns."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            endpoint = _releasing(endpoint)
        super().__init__(path, endpoint, **kwargs)

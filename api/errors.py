"""The only place that knows HTTP: CimError subclasses -> status codes, as problem+json.

Tracebacks are logged for 5xx only and never sent to a client.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg.errors import QueryCanceled
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from cim.errors import (
    AnalysisTimeout,
    AuthenticationRequired,
    CimError,
    ConfigError,
    DatabaseUnavailable,
    ImportFailed,
    InvalidInput,
    NotFound,
    PermissionDenied,
    TilingError,
)

logger = logging.getLogger("cim.api")

STATUS_CODES: dict[type[CimError], int] = {
    InvalidInput: 400,
    AuthenticationRequired: 401,
    PermissionDenied: 403,
    NotFound: 404,
    ImportFailed: 422,
    TilingError: 500,
    ConfigError: 500,
    DatabaseUnavailable: 503,
    AnalysisTimeout: 503,  # the request's deadline passed (or its client left): retry, narrower
}
PROBLEM_JSON = "application/problem+json"


def status_for(error: CimError) -> int:
    """HTTP status for ``error``: the most specific class in :data:`STATUS_CODES`, else 500."""
    for cls in type(error).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    return 500


def problem(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An RFC 9457 problem+json response."""
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


async def _cim_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CimError)
    status = status_for(exc)
    if isinstance(exc, AnalysisTimeout):  # load, not a fault: one line, no traceback
        logger.warning("%s %s: %s", request.method, request.url.path, exc)
    elif status >= 500:
        logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    headers = {"Retry-After": "2"} if status == 503 else None
    return problem(status, type(exc).__name__, str(exc), headers)


OUTAGE_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})
"""Admin shutdown, crash shutdown, cannot connect now: the server is going or not yet up."""


def is_outage(exc: DBAPIError) -> bool:
    """Whether a database error means the database cannot be reached (not a bad statement):
    the connection broke or was refused (no SQLSTATE: libpq's own error), a connection
    exception (class 08), a shutting-down server or exhausted resources (class 53)."""
    state = getattr(exc.orig, "sqlstate", None)
    if exc.connection_invalidated:
        return True
    if state is None:
        return isinstance(exc, OperationalError | InterfaceError)
    return state.startswith(("08", "53")) or state in OUTAGE_SQLSTATES


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """Only an outage claims one; a timeout says so; the caller's bad value is a 400."""
    assert isinstance(exc, DBAPIError)
    where = f"{request.method} {request.url.path}"
    state = getattr(exc.orig, "sqlstate", None) or ""
    if isinstance(exc.orig, QueryCanceled):
        # The per-request statement timeout fired: the database is up, the request too heavy.
        logger.warning("statement timeout on %s", where)
        return problem(
            503,
            "QueryTimeout",
            "the query took longer than the statement timeout; narrow the request "
            "(a smaller bbox, a lower limit, a more selective filter)",
        )
    if is_outage(exc):
        logger.warning("database unavailable on %s: %s", where, exc.orig)
        return problem(
            503,
            "DatabaseUnavailable",
            "the database is unavailable; retry shortly",
            {"Retry-After": "2"},
        )
    if state.startswith("40"):  # serialization failure, deadlock: retrying succeeds
        logger.warning("transaction conflict on %s: %s", where, exc.orig)
        return problem(
            503, "DatabaseConflict", "a concurrent change conflicted; retry", {"Retry-After": "1"}
        )
    if state.startswith("22") or isinstance(exc, DataError):
        # Data exception: the database (or the driver, for a NUL byte, before sending) refused
        # a value the caller sent (an out-of-range number, a division by zero in a filter).
        return problem(400, "InvalidInput", "a value in the request cannot be used (invalid data)")
    if state == "42501":
        # The server's own role lacks a privilege (e.g. SELECT on a read replica): a deployment
        # fault an operator must fix, not the caller's; the service cannot answer until then.
        logger.error("database refused this server's role on %s: %s", where, exc.orig)
        return problem(
            503,
            "DatabaseRefused",
            "the database refused this server access; an operator must fix it",
        )
    logger.error("%s failed", where, exc_info=exc)
    return problem(500, "InternalError", "internal error; the server log has the details")


async def _pool_exhausted(request: Request, exc: Exception) -> JSONResponse:
    # Every pooled connection stayed busy for the pool timeout: overloaded, not down.
    logger.warning("no database connection free on %s %s", request.method, request.url.path)
    return problem(
        503,
        "DatabaseBusy",
        "every database connection is busy; retry shortly",
        {"Retry-After": "2"},
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return problem(exc.status_code, "HTTPError", str(exc.detail), dict(exc.headers or {}))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(part) for part in first.get("loc", ()))
    return problem(400, "InvalidInput", f"{where}: {first.get('msg')}")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return problem(500, "InternalError", "internal error; the server log has the details")


def add_exception_handlers(app: FastAPI) -> None:
    """Install every handler on ``app``."""
    app.add_exception_handler(CimError, _cim_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(PoolTimeout, _pool_exhausted)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)

"""App-wide concerns from settings: OpenAPI 3.0, CORS, request guards, timeouts, the read engine,
the request threads and a warm connection pool."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from sqlalchemy import Engine, event
from sqlalchemy.exc import SQLAlchemyError
from starlette.middleware.cors import CORSMiddleware

from api.analysis_proxy import AnalysisProcesses, FromApiWorker
from api.bulkhead import Bulkhead
from api.middleware import BodySizeLimit
from api.openapi import install_openapi30
from api.ratelimit import AnonymousRateLimit
from api.sessions import RequestSessions
from api.telemetry import RequestTelemetry
from cim.config import CimSettings
from cim.db.engine import make_engine

ANSWER_MARGIN_S = 30.0
"""How much longer than an analysis's deadline an API worker waits for its answer."""


def configure(app: FastAPI, settings: CimSettings) -> None:
    """Install the OpenAPI 3.0 document, CORS (when origins are set), the hand-over of analyses
    to their processes (when ``analysis_socket`` is set), the body size limit, the bulkhead of
    heavy analyses, the anonymous rate limit and, outermost, the request telemetry (request id,
    access log line, metrics)."""
    install_openapi30(app)
    origins = settings.cors_origin_list
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "HEAD", "POST", "DELETE", "OPTIONS"],
            allow_headers=[
                "Authorization",
                "X-API-Key",
                "Content-Type",
                "If-None-Match",
                "X-Request-ID",
            ],
            expose_headers=["ETag", "Last-Modified", "Content-Crs", "Location", "X-Request-ID"],
            max_age=600,
        )
    app.add_middleware(RequestSessions)
    if settings.analysis_socket is not None:
        app.add_middleware(
            AnalysisProcesses,
            socket_path=str(settings.analysis_socket),
            answer_timeout_s=analysis_timeout_s(settings) + ANSWER_MARGIN_S,
        )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        Bulkhead,
        concurrency=settings.heavy_concurrency,
        queue=settings.heavy_queue,
        queue_seconds=settings.heavy_queue_seconds,
        analysis_concurrency=settings.analysis_concurrency,
        analysis_queue=settings.analysis_queue,
    )
    app.add_middleware(  # a refused caller costs the least
        AnonymousRateLimit,
        per_minute=settings.anonymous_rate_per_minute,
        key_cache_seconds=settings.api_key_cache_seconds,
    )
    app.add_middleware(RequestTelemetry)  # outermost: sees (and times) every answer


def configure_analysis_process(app: FastAPI, settings: CimSettings) -> None:
    """The middleware of an analysis process (``api.analysis_proxy``): its API workers already
    applied the rate limit, the bulkhead lanes and the body size limit before handing the
    request over; here the caller's address is taken from them, and the request telemetry
    logs the analysis under the same request id."""
    install_openapi30(app)
    app.add_middleware(RequestSessions)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(FromApiWorker)
    app.add_middleware(RequestTelemetry)


def renice_local_backends(engine: Engine) -> None:
    """Give this engine's database backends this process's CPU priority, when the database
    runs on this machine (``cim serve``'s embedded one, or a local server of the same user).

    An analysis's SQL runs in its PostgreSQL backend, not in the niced analysis process;
    without this, a section's query took the cores from items requests like before. Only a
    backend reached over a Unix socket or loopback whose process is really ``postgres`` is
    touched; anywhere else (a remote database, no permission) nothing happens.
    """

    @event.listens_for(engine, "connect")
    def _renice(dbapi_connection: Any, connection_record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid(), host(inet_server_addr())")
            pid, address = cursor.fetchone()
        dbapi_connection.commit()
        if address not in (None, "127.0.0.1", "::1"):
            return
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() != "postgres":
                return
            os.setpriority(os.PRIO_PROCESS, pid, os.getpriority(os.PRIO_PROCESS, 0))
        except OSError:  # not Linux, another user's server, or the backend just went
            return

    engine.dispose()  # connections opened before the listener was set get it on reopening


def analysis_timeout_s(settings: CimSettings) -> float:
    """The deadline of one analysis request, in seconds (``api.bounds``)."""
    return (settings.analysis_timeout_ms or settings.statement_timeout_ms) / 1000


def apply_statement_timeout(engine: Engine, timeout_ms: int) -> None:
    """Every connection of the API's pool gets ``statement_timeout`` (no extra round trip)."""

    @event.listens_for(engine, "connect")
    def _set_timeout(dbapi_connection: Any, connection_record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET statement_timeout = {int(timeout_ms)}")
        dbapi_connection.commit()

    engine.dispose()  # connections opened before the listener existed have no timeout


def open_read_engine(settings: CimSettings, primary: Engine) -> Engine:
    """The engine of read-only routes: ``CIM_READ_DATABASE_URL`` when set, else ``primary``.

    A replica is not migrated or checked here (it follows the primary); it gets the same
    statement timeout, and its sessions are read-only so a misrouted write fails loudly.
    """
    if settings.read_database_url is None:
        return primary
    engine = make_engine(settings.read_database_url, pool_size=10)
    apply_statement_timeout(engine, settings.statement_timeout_ms)

    @event.listens_for(engine, "connect")
    def _read_only(dbapi_connection: Any, connection_record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET default_transaction_read_only = on")
        dbapi_connection.commit()

    return engine


def size_thread_pool(settings: CimSettings) -> None:
    """Bound the threads that run synchronous routes and dependencies.

    Starlette runs every ``def`` route and dependency in anyio's default pool of 40 threads.
    On a loaded server forty threads take turns at the GIL in no fair order and a request that
    needs a dozen hops waits at each: ``bench/api.py`` measured items p99 at 6x p50 (440 ms
    against tipg's 250 ms). A few threads, queued FIFO by the limiter, halve the tail and
    raise the rate. Each heavy analysis the bulkhead lets in holds one thread for its whole
    run, so those come on top and cannot starve the fast path.
    """
    limiter = anyio.to_thread.current_default_thread_limiter()
    limiter.total_tokens = settings.request_threads + settings.heavy_concurrency


def warm_pool(engine: Engine, connections: int) -> None:
    """Open ``connections`` database connections now, so the first requests after start-up do
    not each pay for a connection (their latency was the bench's worst). Quietly does nothing
    while the database is down: requests answer 503 until it is back."""
    try:
        opened = [engine.connect() for _ in range(connections)]
    except SQLAlchemyError:
        return
    for connection in opened:
        connection.close()

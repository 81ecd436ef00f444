"""``create_app(settings)``: the FastAPI application, its lifespan-managed state and routers."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import Engine

from api.analysis_proxy import wait_for_analysis_processes
from api.draining import watch_for_shutdown
from api.errors import add_exception_handlers
from api.jobs import JobRunner
from api.mqtt import SensorRuntime
from api.routers import (
    alarms,
    analysis_gas,
    analysis_pipes,
    datasets,
    features,
    health,
    jobs,
    metrics,
    shelters,
    shutdown_plans,
    simulation,
    sta,
    terrain,
    tiles,
    versions,
    viewer,
)
from api.setup import (
    apply_statement_timeout,
    configure,
    configure_analysis_process,
    open_read_engine,
    renice_local_backends,
    size_thread_pool,
    warm_pool,
)
from cim import __version__
from cim.config import CimSettings
from cim.db.connect import database_url, open_database, storage_srid
from cim.db.engine import make_engine
from cim.errors import DatabaseUnavailable
from cim.processes import die_with_parent
from cim.services.ogc.collections import CollectionCatalog

logger = logging.getLogger("cim.api")

ROUTERS = [
    health.router,
    metrics.router,
    viewer.router,
    features.router,
    datasets.router,
    jobs.router,
    versions.router,
    tiles.router,
    shelters.router,
    analysis_pipes.router,
    analysis_gas.router,
    simulation.router,
    shutdown_plans.router,
    terrain.router,
    sta.router,
    alarms.router,
]
"""Every router of the API; a new domain adds its router module here."""


def create_app(settings: CimSettings) -> FastAPI:
    """Build the app; its state is made in the lifespan and disposed on shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        open_state(app, settings)
        size_thread_pool(settings)
        warm_pool(app.state.read_engine, settings.request_threads)
        if settings.analysis_socket is not None:
            await wait_for_analysis_processes(str(settings.analysis_socket))
        # endless responses (the alarm stream) end when the process is asked to stop
        app.state.stopping = watch_for_shutdown(asyncio.get_running_loop())
        # the alarm stream, MQTT ingestion (api.mqtt)
        app.state.sensors = SensorRuntime(app.state.engine, settings)
        app.state.sensors.start()
        try:
            yield
        finally:
            app.state.sensors.close()
            close_state(app)

    app = FastAPI(
        title="cim",
        version=__version__,
        description="City Information Model service: terrain, buildings and underground utilities.",
        lifespan=lifespan,
        openapi_url="/api",
        docs_url="/api.html",
        redoc_url=None,
    )
    app.state.settings = settings
    add_exception_handlers(app)
    configure(app, settings)
    for router in ROUTERS:
        app.include_router(router)
    return app


def create_analysis_app(settings: CimSettings, nice: int = 0) -> FastAPI:
    """The app of the analysis processes (``api.analysis_proxy``): the same routes, reached
    only by the API workers through a private socket; no job worker, no sensor streams.
    Its process runs ``nice`` steps below its priority from its startup on."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if nice:
            os.nice(nice)  # before the connections: their backends take this priority
        open_engines(app, settings)
        for engine in {app.state.engine, app.state.read_engine}:
            renice_local_backends(engine)  # their SQL yields the cores like their Python
        size_thread_pool(settings)
        warm_pool(app.state.read_engine, settings.analysis_concurrency)
        try:
            yield
        finally:
            close_state(app)

    app = FastAPI(title="cim analyses", version=__version__, lifespan=lifespan, openapi_url=None)
    app.state.settings = settings
    add_exception_handlers(app)
    configure_analysis_process(app, settings)
    for router in ROUTERS:
        app.include_router(router)
    return app


def create_app_from_env() -> FastAPI:
    """uvicorn factory (``cim serve``): settings from ``CIM_*`` environment variables."""
    die_with_supervisor()
    return create_app(CimSettings())


def create_analysis_app_from_env() -> FastAPI:
    """uvicorn factory of the analysis processes (``cli.analysis_processes``)."""
    die_with_supervisor()
    settings = CimSettings()
    return create_analysis_app(settings, nice=settings.analysis_nice)


def die_with_supervisor() -> None:
    """In a uvicorn worker (a multiprocessing child of its supervisor): be asked to stop
    (SIGTERM: uvicorn's graceful shutdown) when the supervisor dies, even by SIGKILL. uvicorn
    does not arrange it: an orphaned worker would go on holding the port, the database's
    connections and ``cim serve``'s output. Nothing happens in a single-process server."""
    supervisor = multiprocessing.parent_process()
    if supervisor is not None and not die_with_parent(signal.SIGTERM, supervisor.pid):
        raise SystemExit(0)  # the supervisor died while this worker started


def open_state(app: FastAPI, settings: CimSettings) -> None:
    """Everything requests share, on ``app.state``: the engines (primary and read), the storage
    SRID, the collection catalog (:func:`open_engines`) and the job runner (its own engine and
    worker thread)."""
    engine = open_engines(app, settings)
    catalog = app.state.catalog
    app.state.job_runner = JobRunner.for_database(
        engine.url.render_as_string(hide_password=False),
        settings.data_dir / "uploads",
        on_finished=catalog.invalidate,
        # server-side options win over the request's: an .ifczip's expansion cap, and where
        # point clouds are kept (this app's data dir, not whatever the environment says)
        import_options={
            "max_expanded_bytes": settings.ifczip_max_expanded_bytes,
            "data_dir": settings.data_dir,
        },
        tiles_dir=settings.tiles_dir,
        sensitive=settings.sensitive_utility_set,
        run_jobs=settings.serve_jobs,
        refresh_tiles=settings.tiles_refresh_after_import,
    )
    app.state.job_runner.sweep_orphaned_uploads()
    app.state.job_runner.start()  # this process's job worker (api.jobs)


def open_engines(app: FastAPI, settings: CimSettings) -> Engine:
    """The engines (primary and read), the storage SRID and the collection catalog on
    ``app.state``; the primary engine."""
    try:
        engine = open_database(settings, pool_size=10)
        srid: int | None = storage_srid(engine)
    except DatabaseUnavailable as exc:
        # A worker (re)started while the database is down must still come up and answer
        # 503 + Retry-After until the database is back, not take the whole server down.
        logger.warning("starting without the database (%s); answering 503 until it is back", exc)
        engine = make_engine(database_url(settings, start=False), pool_size=10)
        srid = None  # read by the first request that needs it (``api.ogc.srid_of``)
    apply_statement_timeout(engine, settings.statement_timeout_ms)
    app.state.engine = engine
    app.state.read_engine = open_read_engine(settings, engine)
    app.state.storage_srid = srid
    app.state.catalog = CollectionCatalog(ttl_seconds=settings.collection_cache_seconds)
    app.state.job_runner = None
    return engine


def close_state(app: FastAPI) -> None:
    """Dispose what :func:`open_state` opened: the job runner's engine, then the pools."""
    state = app.state
    if state.job_runner is not None:
        state.job_runner.close()
    if state.read_engine is not state.engine:
        state.read_engine.dispose()
    state.engine.dispose()

"""``create_app(settings)``: the FastAPI application, its lifespan-managed engine and routers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.errors import add_exception_handlers
from api.routers import (
    analysis_pipes,
    datasets,
    features,
    health,
    shelters,
    terrain,
    tiles,
    viewer,
)
from api.setup import apply_statement_timeout, configure, open_read_engine
from cim import __version__
from cim.config import CimSettings
from cim.db.connect import database_url, open_database
from cim.db.engine import make_engine
from cim.errors import DatabaseUnavailable

logger = logging.getLogger("cim.api")

ROUTERS = [
    health.router,
    viewer.router,
    features.router,
    datasets.router,
    tiles.router,
    shelters.router,
    analysis_pipes.router,
    terrain.router,
]
"""Every router of the API; a new domain adds its router module here."""


def create_app(settings: CimSettings) -> FastAPI:
    """Build the app; the engine is made in the lifespan and disposed on shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            engine = open_database(settings, pool_size=10)
        except DatabaseUnavailable as exc:
            # A worker (re)started while the database is down must still come up and answer
            # 503 + Retry-After until the database is back, not take the whole server down.
            logger.warning(
                "starting without the database (%s); answering 503 until it is back", exc
            )
            engine = make_engine(database_url(settings, start=False), pool_size=10)
        apply_statement_timeout(engine, settings.statement_timeout_ms)
        app.state.engine = engine
        app.state.read_engine = open_read_engine(settings, engine)
        try:
            yield
        finally:
            if app.state.read_engine is not engine:
                app.state.read_engine.dispose()
            engine.dispose()

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


def create_app_from_env() -> FastAPI:
    """uvicorn factory (``cim serve``): settings from ``CIM_*`` environment variables."""
    return create_app(CimSettings())

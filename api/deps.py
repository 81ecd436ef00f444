"""Request dependencies: settings, a database session per request and the app's shared state."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.jobs import JobRunner
from api.sessions import track
from cim.bounds import statements_bounded
from cim.config import CimSettings
from cim.services.ogc.collections import CollectionCatalog


async def get_settings(request: Request) -> CimSettings:
    settings: CimSettings = request.app.state.settings
    return settings


async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_read_engine(request: Request) -> Engine:
    """The engine of read-only queries: the read replica when ``CIM_READ_DATABASE_URL`` is set,
    else the primary (see ``api.main``)."""
    engine: Engine = request.app.state.read_engine
    return engine


async def get_catalog(request: Request) -> CollectionCatalog:
    """The collection catalog made in the lifespan (``api.main.open_state``)."""
    catalog: CollectionCatalog = request.app.state.catalog
    return catalog


async def get_job_runner(request: Request) -> JobRunner:
    """The import job runner made in the lifespan (``api.main.open_state``)."""
    runner: JobRunner = request.app.state.job_runner
    return runner


def get_session(request: Request) -> Iterator[Session]:
    """A session whose transaction commits when the route returns and rolls back on error."""
    with Session(request.app.state.engine) as session, session.begin(), statements_bounded(session):
        track(session)  # committed on the route's thread when it returns (api.sessions)
        yield session


def get_read_session(request: Request) -> Iterator[Session]:
    """A session on the read engine for routes that only read (OGC items, tiles, analyses).

    Writes through it fail on a replica; routes that also write (the audit log) take a
    :data:`SessionDep` beside it. Reads may lag the primary by the replica's delay.
    """
    with (
        Session(request.app.state.read_engine) as session,
        session.begin(),
        statements_bounded(session),  # an analysis' deadline cancels its statement in flight
    ):
        track(session)
        yield session


SettingsDep = Annotated[CimSettings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
# scope="function": the transaction ends when the route returns, *before* the answer is sent.
# FastAPI's default for yield dependencies ("request") runs the exit code after the response
# has gone out, so a client could read a 201 and then not find what it created (or a failed
# commit could follow a success answer). Streaming routes open their own connection.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
ReadEngineDep = Annotated[Engine, Depends(get_read_engine)]
ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]
CatalogDep = Annotated[CollectionCatalog, Depends(get_catalog)]
JobRunnerDep = Annotated[JobRunner, Depends(get_job_runner)]

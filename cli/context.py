"""Shared CLI plumbing: settings, the database engine, ``--at`` and printing results (--json)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cim.config import CimSettings
from cim.db.connect import open_database
from cim.errors import ConfigError, InvalidInput

console = Console(stderr=True)
"""Progress and human-readable notes go to stderr so --json output on stdout stays clean."""


def load_settings() -> CimSettings:
    """Settings from the environment; a bad value is a one-line ConfigError, not a traceback."""
    try:
        return CimSettings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]).upper()
        raise ConfigError(f"CIM_{field}: {first['msg']}") from None


@contextmanager
def engine_scope(settings: CimSettings | None = None) -> Iterator[Engine]:
    """An engine on a migrated database, disposed afterwards."""
    engine = open_database(settings or load_settings())
    try:
        yield engine
    finally:
        engine.dispose()


AtOption = Annotated[
    str | None,
    typer.Option(
        "--at",
        metavar="INSTANT",
        help="Answer on the data as it was at this instant (RFC 3339, e.g. "
        "2026-06-30T00:00:00Z): earlier versions of re-imported datasets are read from history.",
    ),
]
"""``--at`` of the analyses the API offers ``at`` on; pass it to :func:`session_scope`."""


def instant(at: str | None) -> datetime | None:
    """``--at`` as an aware datetime (None without it); not one instant is InvalidInput (exit 2)."""
    from cim.services.versions.timetravel import parse_datetime

    if at is None:
        return None
    try:
        start, end = parse_datetime(at)
    except InvalidInput as error:
        raise InvalidInput(f"--at: {error}") from None
    if start is None or start != end:
        raise InvalidInput(f"--at {at!r} is an interval; give one instant (2026-06-30T00:00:00Z)")
    return start


@contextmanager
def session_scope(
    settings: CimSettings | None = None, *, at: str | None = None
) -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on any error; with ``at``
    it reads the versioned tables as they were then (``cim.services.versions.as_of``)."""
    moment = instant(at)  # a bad --at fails before any connection is made
    with engine_scope(settings) as engine, Session(engine) as session, session.begin():
        if moment is not None:
            from cim.services.versions.as_of import read_as_of

            read_as_of(session, moment)
        yield session


def emit(result: Any, *, as_json: bool, text: str | None = None) -> None:
    """Print ``result`` as JSON on stdout, or ``text`` (default: the JSON, indented) for people."""
    if as_json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False, default=str) + "\n")
    else:
        print(
            text
            if text is not None
            else json.dumps(result, ensure_ascii=False, indent=2, default=str)
        )

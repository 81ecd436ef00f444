"""Shared CLI plumbing: settings, the database engine and printing results (text or --json)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cim.config import CimSettings
from cim.db.connect import open_database
from cim.errors import ConfigError

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


@contextmanager
def session_scope(settings: CimSettings | None = None) -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on any error."""
    with engine_scope(settings) as engine, Session(engine) as session, session.begin():
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

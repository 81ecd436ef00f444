"""Fixtures of the API tests: the committed fixture city and API keys of each role."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cim.services.access import create_key
from tests.api.features_fixtures import City, insert_city


@pytest.fixture(scope="module")
def city(engine: Engine) -> Iterator[City]:
    """The fixture city, committed for the module (servers in subprocesses read it too)."""
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM dataset"))
    inserted = insert_city(engine)
    yield inserted
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM dataset"))


@pytest.fixture(scope="module")
def keys(engine: Engine) -> Iterator[dict[str, str]]:
    """A secret per role: reader, analyst, admin (deleted afterwards)."""
    secrets: dict[str, str] = {}
    ids = []
    with Session(engine) as session, session.begin():
        for role in ("reader", "analyst", "admin"):
            key, secret = create_key(session, name=f"test {role}", role=role)
            secrets[role] = secret
            ids.append(key.id)
    yield secrets
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM api_key WHERE id = ANY(:ids)"), {"ids": ids})

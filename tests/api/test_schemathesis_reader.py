"""Property-based API tests with a reader key: the run of ``test_schemathesis.py`` again, as a
caller who may read the sensitive classes (its own module so pytest-xdist runs it beside the
anonymous one)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from sqlalchemy import Engine

from tests.api.features_fixtures import City
from tests.api.fuzzing import MIN_CASES, OPERATIONS, fuzz, seed_bodies
from tests.api.server import cim_serve


@pytest.fixture(scope="module")
def served(
    database_url: str, city: City, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with cim_serve(
        database_url, tmp_path_factory.mktemp("fuzz-reader"), CIM_COLLECTION_CACHE_SECONDS="600"
    ) as base:
        yield base


@pytest.mark.slow
def test_generated_requests_conform_with_a_reader_key(
    served: str, keys: dict[str, str], engine: Engine, city: City
) -> None:
    schema = schemathesis.openapi.from_url(f"{served}/api").include(path_regex=OPERATIONS)
    seeds = seed_bodies(engine, city.dataset_id)
    headers = {"X-API-Key": keys["reader"]}
    run = fuzz(schema, headers=headers, per_operation=30, seeds=seeds)
    assert len(run.labels) >= MIN_CASES, f"only {len(run.labels)} generated cases ran"
    assert run.hostile_query and run.hostile_body, "no hostile numbers were sent"
    assert run.seeded == set(seeds), "some operations never started from a valid body"

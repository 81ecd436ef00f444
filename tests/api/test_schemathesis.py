"""Property-based API tests, anonymous: schemathesis generates requests from ``/api``.

Runs against a real ``cim serve`` on the fixture city, over the OGC, dataset, job, analysis
and terrain operations, with hostile numbers in query values and JSON bodies
(:mod:`tests.api.fuzzing`). At least 500 cases; none may get a 5xx or an answer the document
does not describe. ``test_schemathesis_reader.py`` runs the same with a reader key.
"""

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
    # The data does not change during the run, so the collection list may be cached.
    with cim_serve(
        database_url, tmp_path_factory.mktemp("fuzz"), CIM_COLLECTION_CACHE_SECONDS="600"
    ) as base:
        yield base


@pytest.mark.slow
def test_generated_requests_conform_anonymous(served: str, engine: Engine, city: City) -> None:
    schema = schemathesis.openapi.from_url(f"{served}/api").include(path_regex=OPERATIONS)
    seeds = seed_bodies(engine, city.dataset_id)
    run = fuzz(schema, headers={}, per_operation=30, seeds=seeds)
    assert len(run.labels) >= MIN_CASES, f"only {len(run.labels)} generated cases ran"
    assert {"limit", "bbox"} <= run.hostile_query, "no hostile numbers were sent in queries"
    assert {"tolerance_m", "depth_m", "step"} <= run.hostile_body, "no hostile body numbers"
    assert run.seeded == set(seeds), "some operations never started from a valid body"
    assert run.paths >= {
        "/collections/{collection_id}/items",
        "/collections/{collection_id}/items/{feature_id}",
        "/datasets",
        "/jobs/{job_id}",
        "/analysis/pipes/isolation",
        "/analysis/pipes/excavation",
        "/analysis/pipes/clearance",
        "/terrain/elevation",
    }

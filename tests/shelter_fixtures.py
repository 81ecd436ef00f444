"""Shared fixtures for the shelter-zoning tests: metric databases for Cambridge MA and SF.

The default test database stores EPSG:4547 (China); Cambridge and San Francisco lie far outside
it, so these tests use their own databases in Massachusetts Mainland (EPSG:26986) and UTM 10N.
Import them into a test module with ``from tests.shelter_fixtures import ...  # noqa: F401``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from cim.db.engine import make_engine
from importers.shelters import import_hazards, import_population, import_shelters
from tests.conftest import REPO, SHARED_SAMPLES, migrated_database

SHELTER_SAMPLES = SHARED_SAMPLES / "shelters"
MAPPINGS = REPO / "data" / "samples"
CAMBRIDGE_SRID = 26986
SF_SRID = 32610


def _engine(server_url: str, name: str, srid: int) -> Engine:
    return make_engine(migrated_database(server_url, name, srid=srid))


@pytest.fixture(scope="session")
def cambridge_engine(server_url: str) -> Iterator[Engine]:
    """A database in EPSG:26986 with the Cambridge shelters, blocks and flood zones imported."""
    engine = _engine(server_url, "cim_test_cambridge", CAMBRIDGE_SRID)
    import_shelters(
        engine,
        SHELTER_SAMPLES / "cambridge_EmergencyShelters.geojson",
        mapping=MAPPINGS / "cambridge_shelters.yaml",
    )
    import_population(
        engine,
        SHELTER_SAMPLES / "cambridge_Blocks2000_population.geojson",
        mapping=MAPPINGS / "cambridge_population.yaml",
    )
    import_hazards(
        engine,
        SHELTER_SAMPLES / "cambridge_FEMA_FloodPlains100Year.geojson",
        mapping=MAPPINGS / "cambridge_flood.yaml",
    )
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def sf_engine(server_url: str) -> Iterator[Engine]:
    """A database in UTM 10N (EPSG:32610) with the spopt San Francisco tracts and 16 sites."""
    engine = _engine(server_url, "cim_test_sf", SF_SRID)
    import_population(
        engine,
        SHELTER_SAMPLES / "spopt_SF_demand_205_tracts.csv",
        mapping=MAPPINGS / "sf_demand.yaml",
    )
    import_shelters(
        engine,
        SHELTER_SAMPLES / "spopt_SF_candidate_sites_16.csv",
        mapping=MAPPINGS / "sf_candidate_sites.yaml",
    )
    yield engine
    engine.dispose()


def dataset_ids(engine: Engine, kind: str) -> list[int]:
    with engine.connect() as conn:
        return [
            int(r[0])
            for r in conn.execute(
                text("SELECT id FROM dataset WHERE kind = :k ORDER BY id"), {"k": kind}
            )
        ]


def sample(name: str) -> Path:
    return SHELTER_SAMPLES / name

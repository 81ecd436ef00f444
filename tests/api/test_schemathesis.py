"""Property-based API tests: schemathesis generates requests from the OpenAPI 3.0 at ``/api``.

Runs against a real ``cim serve`` on the fixture city; a quarter of the query values are
replaced by negative, non-finite or out-of-range numbers; every case must get a response that
is not a 5xx and that conforms to the document (status code, content type,
schema). At least 500 cases run over the OGC, dataset and job endpoints.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.features_fixtures import City
from tests.api.server import cim_serve

MINE = r"^/($|conformance|collections|datasets|jobs)"
MIN_CASES = 500
HOSTILE_NUMBERS = st.sampled_from(
    ["-1", "-0", "NaN", "Infinity", "-Infinity", "1e309", "-1e309", "9223372036854775808",
     "-9223372036854775809", "0,NaN,1,Infinity", "-1,-1,-1,-1"]
)  # fmt: skip
"""Replacements for query values: negative, non-finite and out-of-range numbers (and bboxes)."""
NUMERIC = {"limit", "offset", "bbox"}


@pytest.fixture(scope="module")
def served(
    database_url: str, city: City, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    # The data does not change during the run, so the collection list may be cached.
    with cim_serve(
        database_url, tmp_path_factory.mktemp("fuzz"), CIM_COLLECTION_CACHE_SECONDS="600"
    ) as base:
        yield base


@pytest.fixture(scope="module")
def api_schema(served: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{served}/api").include(path_regex=MINE)


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_generated_requests_conform(api_schema: schemathesis.BaseSchema) -> None:
    """Each operation gets up to 70 generated cases (fewer when its inputs are exhausted)."""
    labels: list[str] = []
    hostile: list[str] = []
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy(), data=st.data())
        @settings(
            max_examples=50,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            phases=[Phase.explicit, Phase.generate],
        )
        def run(case: schemathesis.Case, data: st.DataObject) -> None:
            labels.append(case.operation.label)
            if case.query is None:
                case.query = {}
            # Declared numeric parameters the generator left out may turn hostile too, so
            # every run sends them (the assertion below), whatever the random seed.
            declared = {p.name for p in case.operation.iter_parameters() if p.location == "query"}
            for name in sorted(NUMERIC & declared - set(case.query)):
                if data.draw(st.integers(0, 3)) == 0:
                    case.query[name] = data.draw(HOSTILE_NUMBERS)
                    hostile.append(name)
            for name in list(case.query):
                if data.draw(st.integers(0, 3)) == 0:  # a quarter of the values turn hostile
                    case.query[name] = data.draw(HOSTILE_NUMBERS)
                    hostile.append(name)
            case.call_and_validate(checks=CHECKS, timeout=30)

        run()
    print(f"{len(labels)} generated cases")
    assert len(labels) >= MIN_CASES, f"only {len(labels)} generated cases ran"
    assert {"limit", "bbox"} <= set(hostile), "no hostile numbers were sent"
    assert {label.split()[1] for label in labels} >= {
        "/collections/{collection_id}/items",
        "/collections/{collection_id}/items/{feature_id}",
        "/datasets",
        "/jobs/{job_id}",
    }

"""The schemathesis run shared by the anonymous and the reader-key fuzzing tests.

schemathesis generates requests from the OpenAPI 3.0 at ``/api`` for the OGC, dataset, job,
analysis and terrain operations; a quarter of the query values and of the numbers in JSON
bodies are replaced by negative, non-finite or out-of-range ones (non-finite numbers in a JSON
body are sent as the strings ``"NaN"``/``"Infinity"``, which pydantic's lax mode would turn into
floats). Every answer must not be a 5xx and must conform to the document (status code,
content type, schema).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

OPERATIONS = r"^/($|conformance|collections|datasets|jobs|analysis|terrain)"
MIN_CASES = 500
HOSTILE_QUERY = st.sampled_from(
    ["-1", "-0", "NaN", "Infinity", "-Infinity", "1e309", "-1e309", "9223372036854775808",
     "-9223372036854775809", "0,NaN,1,Infinity", "-1,-1,-1,-1"]
)  # fmt: skip
"""Replacements for query values: negative, non-finite and out-of-range numbers (and bboxes)."""
HOSTILE_JSON = st.sampled_from(
    [-1, -0.0, -1e308, 1e308, 2**63, -(2**63) - 1, "NaN", "Infinity", "-Infinity", "1e309"]
)
"""Replacements for numbers in JSON bodies."""
NUMERIC = {"limit", "offset", "bbox", "x", "y", "tolerance_m", "margin_m"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@dataclass
class FuzzRun:
    """What one run sent: the operation label of each case and where hostile numbers went."""

    labels: list[str] = field(default_factory=list)
    hostile_query: set[str] = field(default_factory=set)
    hostile_body: set[str] = field(default_factory=set)

    @property
    def paths(self) -> set[str]:
        return {label.split()[1] for label in self.labels}


def _hostile_body(value: Any, data: st.DataObject, run: FuzzRun, name: str = "") -> Any:
    """``value`` with a quarter of its numbers (at any depth) replaced by hostile ones."""
    if isinstance(value, dict):
        return {k: _hostile_body(v, data, run, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_hostile_body(v, data, run, name) for v in value]
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and data.draw(st.integers(0, 3)) == 0:
        run.hostile_body.add(name)
        return data.draw(HOSTILE_JSON)
    return value


def _hostile_query(case: schemathesis.Case, data: st.DataObject, run: FuzzRun) -> None:
    if case.query is None:
        case.query = {}
    # Declared numeric parameters the generator left out may turn hostile too, so every run
    # sends them, whatever the random seed.
    declared = {p.name for p in case.operation.iter_parameters() if p.location == "query"}
    for name in sorted(NUMERIC & declared - set(case.query)):
        if data.draw(st.integers(0, 3)) == 0:
            case.query[name] = data.draw(HOSTILE_QUERY)
            run.hostile_query.add(name)
    for name in list(case.query):
        if data.draw(st.integers(0, 3)) == 0:  # a quarter of the values turn hostile
            case.query[name] = data.draw(HOSTILE_QUERY)
            run.hostile_query.add(name)


def fuzz(
    schema: schemathesis.BaseSchema, *, headers: dict[str, str], per_operation: int
) -> FuzzRun:
    """Up to ``per_operation`` cases for each operation (fewer when its inputs are exhausted)."""
    run = FuzzRun()
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy(), data=st.data())
        @settings(
            max_examples=per_operation,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            phases=[Phase.explicit, Phase.generate],
        )
        def one(case: schemathesis.Case, data: st.DataObject) -> None:
            run.labels.append(case.operation.label)
            _hostile_query(case, data, run)
            if isinstance(case.body, dict | list):
                case.body = _hostile_body(case.body, data, run)
            case.call_and_validate(headers=headers, checks=CHECKS, timeout=30)

        one()
    print(f"{len(run.labels)} generated cases")
    return run

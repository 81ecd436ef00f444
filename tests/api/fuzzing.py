"""The schemathesis run shared by the anonymous and the reader-key fuzzing tests.

schemathesis generates requests from the OpenAPI 3.0 at ``/api`` for the OGC, dataset, job,
analysis and terrain operations; a quarter of the query values and of the numbers in JSON
bodies are replaced by negative, non-finite or out-of-range ones (non-finite numbers in a JSON
body are sent as the strings ``"NaN"``/``"Infinity"``, which pydantic's lax mode would turn into
floats). Random ids and geometries rarely reach past the first lookup, so the analysis and terrain
operations are also swept from valid requests on the fixture city (:func:`seed_bodies`), each
of their numbers replaced in turn by each hostile value. Every answer must not be a 5xx and must
conform to the document (status code, content type, schema).
"""

from __future__ import annotations

import copy
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
from sqlalchemy import Engine, text

OPERATIONS = r"^/($|conformance|collections|datasets|jobs|analysis|terrain)"
MIN_CASES = 500
HOSTILE_QUERY = st.sampled_from(
    ["-1", "-0", "NaN", "Infinity", "-Infinity", "1e309", "-1e309", "9223372036854775808",
     "-9223372036854775809", "0,NaN,1,Infinity", "-1,-1,-1,-1"]
)  # fmt: skip
"""Replacements for query values: negative, non-finite and out-of-range numbers (and bboxes)."""
HOSTILE_JSON_VALUES = (
    -1, -0.0, -1e308, 1e308, 2**63, -(2**63) - 1, "NaN", "Infinity", "-Infinity", "1e309"
)  # fmt: skip
"""Replacements for numbers in JSON bodies."""
HOSTILE_JSON = st.sampled_from(HOSTILE_JSON_VALUES)
NUMERIC = {"limit", "offset", "bbox", "x", "y", "tolerance_m", "margin_m"}
Seeds = dict[str, list[dict[str, Any]]]
"""Valid request bodies per operation path."""

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
    seeded: set[str] = field(default_factory=set)

    @property
    def paths(self) -> set[str]:
        return {label.split()[1] for label in self.labels}


def seed_bodies(engine: Engine, dataset_id: int) -> Seeds:
    """Valid bodies of the analysis and terrain operations on the fixture city (storage CRS)."""
    from tests.api.features_fixtures import X0, Y0

    with engine.connect() as conn:
        ids = dict(
            conn.execute(
                text(
                    "SELECT utility, min(id) FROM pipe_segment WHERE dataset_id = :d "
                    "GROUP BY utility"
                ),
                {"d": dataset_id},
            ).all()
        )
        node = conn.execute(
            text("SELECT min(id) FROM pipe_node WHERE dataset_id = :d"), {"d": dataset_id}
        ).scalar_one()
    area = {
        "type": "Polygon",
        "coordinates": [[[X0 - 10, Y0 - 10], [X0 + 300, Y0 - 10], [X0 + 300, Y0 + 40],
                         [X0 - 10, Y0 + 40], [X0 - 10, Y0 - 10]]],
    }  # fmt: skip
    across = {"type": "LineString", "coordinates": [[X0 + 30, Y0 - 20], [X0 + 30, Y0 + 40]]}
    along = [[X0, Y0], [X0 + 200, Y0 + 5]]
    return {
        "/analysis/pipes/query": [
            {"bbox": [X0 - 10, Y0 - 10, X0 + 300, Y0 + 40], "limit": 10, "diameter_min_mm": 100},
            {"line": across, "buffer_m": 20, "depth_min_m": 0.5, "year_min": 2000},
        ],
        "/analysis/pipes/section": [{"line": across}],
        "/analysis/pipes/clearance": [{"area": area, "limit": 10}, {"limit": 5}],
        "/analysis/pipes/clashes": [{"area": area, "limit": 10}],
        "/analysis/pipes/isolation": [
            {"segment_id": ids["JS"], "tolerance_m": 50.0},
            {"point": [X0 + 30, Y0 + 1], "tolerance_m": 5.0, "dataset_id": dataset_id},
        ],
        "/analysis/pipes/trace": [
            {"segment_id": ids["PS"], "max_distance_m": 100.0},
            {"node_id": node, "direction": "both", "max_distance_m": 50.0},
        ],
        "/analysis/pipes/excavation": [{"polygon": area, "depth_m": 2.0, "margin_m": 1.0}],
        "/terrain/elevation": [
            {"points": [[X0, Y0], [X0 + 10, Y0 + 10]]},
            {"type": "MultiPoint", "coordinates": [[X0, Y0, 1.0]]},
        ],
        "/terrain/profile": [{"line": along, "step": 10.0}, {"line": along, "samples": 5}],
    }


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


def _number_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Where the numbers of a JSON value are (keys and indices from the top)."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _number_paths(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _number_paths(v, (*path, i))]
    return [path] if isinstance(value, int | float) and not isinstance(value, bool) else []


def _sweep(
    operation: Any, valid: list[dict[str, Any]], headers: dict[str, str], run: FuzzRun
) -> None:
    """Each valid body with each of its numbers, one at a time, replaced by each hostile value:
    every hostile number reaches the code behind the first lookup, whatever the random seed."""
    for body in valid:
        for path in _number_paths(body):
            for hostile in HOSTILE_JSON_VALUES:
                changed = copy.deepcopy(body)
                parent = changed
                for key in path[:-1]:
                    parent = parent[key]
                parent[path[-1]] = hostile
                case = operation.Case(body=changed, media_type="application/json")
                run.labels.append(operation.label)
                run.hostile_body.add(str(next(k for k in reversed(path) if isinstance(k, str))))
                run.seeded.add(operation.path)
                case.call_and_validate(headers=headers, checks=CHECKS, timeout=30)


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
    schema: schemathesis.BaseSchema,
    *,
    headers: dict[str, str],
    per_operation: int,
    seeds: Seeds,
) -> FuzzRun:
    """Up to ``per_operation`` generated cases for each operation (fewer when its inputs are
    exhausted), then the sweep of :func:`_sweep` over ``seeds``."""
    run = FuzzRun()
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.method.upper() == "POST" and operation.path in seeds:
            _sweep(operation, seeds[operation.path], headers, run)

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

"""Diff ``changes`` inside a JSONB column: a key of ``attrs`` changed, added and removed.

The survey is the hand-made one of :mod:`tests.version_fixtures` with a 备注 (remarks) column,
which the CJJ 61 importer keeps in ``attrs``; the second survey edits only the remarks, so the
expected ``attrs.备注`` values are the ones written here.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cim.services.versions.diff import dataset_diff
from tests.importers.pipes_helpers import run
from tests.version_fixtures import LINES_V1, POINTS_V1, survey

REMARKS_V1 = {"W1": "旧井盖", "W2": "", "W3": "渗水", "W4": "完好"}
REMARKS_V2 = {"W1": "新井盖", "W2": "加盖", "W3": "", "W4": "完好"}


def _with_remarks(remarks: dict[str, str]) -> list[list[str]]:
    header, *rows = POINTS_V1
    return [[*header, "备注"], *([*row, remarks[row[0]]] for row in rows)]


def test_changed_keys_inside_attrs_come_one_by_one(
    engine: Engine, clean_tables: None, tmp_path: Path
) -> None:
    first = run(
        engine, *survey(tmp_path / "v1", _with_remarks(REMARKS_V1), LINES_V1), crs="EPSG:4547"
    )
    run(engine, *survey(tmp_path / "v2", _with_remarks(REMARKS_V2), LINES_V1), crs="EPSG:4547")
    with Session(engine) as session:
        diff = dataset_diff(session, dataset_id=first.dataset.id, srid=4547)
    got = {f.code: (f.state, f.attributes, f.changes) for f in diff.features}
    key = "attrs.备注"
    assert got == {
        "W1": ("changed", ["attrs"], {key: {"from": "旧井盖", "to": "新井盖"}}),
        "W2": ("changed", ["attrs"], {key: {"from": None, "to": "加盖"}}),  # empty: not kept
        "W3": ("changed", ["attrs"], {key: {"from": "渗水", "to": None}}),
    }
    assert diff.totals == {"added": 0, "removed": 0, "changed": 3}
    properties = {f["properties"]["code"]: f["properties"] for f in diff.geojson["features"]}
    assert properties["W1"]["changes"] == {key: {"from": "旧井盖", "to": "新井盖"}}

"""Versions: a re-import of a pipe survey is version 2; version 1 stays readable; diff counts.

The fixture is a hand-made CJJ 61 table pair whose second survey moves one well by 3 m, changes
one pipe's diameter, removes a pipe and its end well, and adds a well and a pipe — so the
expected changes are known by construction.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, text

from tests.importers.pipes_helpers import run
from tests.version_fixtures import (
    CHANGES,
    LINES_V1,
    LINES_V2,
    POINTS_V1,
    POINTS_V2,
    survey,
)


def _codes(engine: Engine, table: str, dataset_id: int) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(f"SELECT code, id FROM {table} WHERE dataset_id = :d"), {"d": dataset_id}
        ).all()
    return {code: fid for code, fid in rows}


def test_reimport_is_version_two_sharing_unchanged_rows(
    engine: Engine, clean_tables: None, tmp_path: Path
) -> None:
    first = run(engine, *survey(tmp_path / "v1", POINTS_V1, LINES_V1), crs="EPSG:4547")
    dataset_id = first.dataset.id
    nodes_v1 = _codes(engine, "pipe_node", dataset_id)
    segments_v1 = _codes(engine, "pipe_segment", dataset_id)

    second = run(engine, *survey(tmp_path / "v2", POINTS_V2, LINES_V2), crs="EPSG:4547")
    assert second.created and second.dataset.id == dataset_id
    with engine.connect() as conn:
        datasets = conn.execute(text("SELECT count(*) FROM dataset")).scalar_one()
        versions = conn.execute(
            text("SELECT version, changes FROM dataset_version WHERE dataset_id = :d ORDER BY 1"),
            {"d": dataset_id},
        ).all()
        history = conn.execute(
            text("SELECT table_name, count(*) FROM feature_history GROUP BY 1 ORDER BY 1")
        ).all()
    assert datasets == 1
    assert [v for v, _ in versions] == [1, 2]
    assert versions[1][1] == {
        "pipe_node": {"added": 1, "removed": 1, "changed": 1, "unchanged": 2},
        "pipe_segment": {"added": 1, "removed": 1, "changed": 2, "unchanged": 0},
    }
    # only what changed or went is kept: W2, W4; L1 (its end moved), L2, L3
    assert history == [("pipe_node", 2), ("pipe_segment", 3)]

    nodes_v2 = _codes(engine, "pipe_node", dataset_id)
    segments_v2 = _codes(engine, "pipe_segment", dataset_id)
    assert set(nodes_v2) == {"W1", "W2", "W3", "W5"}
    assert {c: nodes_v2[c] for c in ("W1", "W2", "W3")} == {
        c: nodes_v1[c] for c in ("W1", "W2", "W3")
    }  # ids are stable across versions
    assert set(segments_v2) == {"L1", "L2", "L4"}
    assert segments_v2["L2"] == segments_v1["L2"]
    with engine.connect() as conn:
        ends = conn.execute(
            text(
                "SELECT s.code, a.code, b.code FROM pipe_segment s"
                " JOIN pipe_node a ON a.id = s.start_node_id"
                " JOIN pipe_node b ON b.id = s.end_node_id WHERE s.dataset_id = :d ORDER BY 1"
            ),
            {"d": dataset_id},
        ).all()
        diameter = conn.execute(
            text("SELECT diameter_mm FROM pipe_segment WHERE code = 'L2'")
        ).scalar_one()
    assert ends == [("L1", "W1", "W2"), ("L2", "W2", "W3"), ("L4", "W3", "W5")]
    assert diameter == 500


def test_same_file_again_is_still_a_noop(
    engine: Engine, clean_tables: None, tmp_path: Path
) -> None:
    paths = survey(tmp_path / "v1", POINTS_V1, LINES_V1)
    first = run(engine, *paths, crs="EPSG:4547")
    again = run(engine, *paths, crs="EPSG:4547")
    assert not again.created and again.dataset.id == first.dataset.id
    replaced = run(engine, *paths, crs="EPSG:4547", replace=True)
    assert replaced.created and replaced.dataset.id == first.dataset.id
    with engine.connect() as conn:
        changes = conn.execute(
            text("SELECT changes FROM dataset_version WHERE version = 2")
        ).scalar_one()
        kept = conn.execute(text("SELECT count(*) FROM feature_history")).scalar_one()
    assert changes["pipe_segment"] == {"added": 0, "removed": 0, "changed": 0, "unchanged": 3}
    assert kept == 0


def test_deleting_a_dataset_removes_every_version(
    engine: Engine, clean_tables: None, tmp_path: Path
) -> None:
    run(engine, *survey(tmp_path / "v1", POINTS_V1, LINES_V1), crs="EPSG:4547")
    run(engine, *survey(tmp_path / "v2", POINTS_V2, LINES_V2), crs="EPSG:4547")
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM dataset"))
        left = [
            conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("dataset_version", "feature_history", "pipe_node", "pipe_segment")
        ]
    assert left == [0, 0, 0, 0]


def test_diff_and_time_travel_read_version_one(
    engine: Engine, clean_tables: None, tmp_path: Path
) -> None:
    from sqlalchemy.orm import Session

    from cim.services.ogc.crs import parse_ogc_crs
    from cim.services.ogc.features import query_items
    from cim.services.ogc.models import ItemsQuery
    from cim.services.ogc.specs import collection_specs
    from cim.services.versions.diff import dataset_diff
    from cim.services.versions.history import version_time
    from cim.services.versions.timetravel import spec_at

    first = run(engine, *survey(tmp_path / "v1", POINTS_V1, LINES_V1), crs="EPSG:4547")
    run(engine, *survey(tmp_path / "v2", POINTS_V2, LINES_V2), crs="EPSG:4547")
    dataset_id = first.dataset.id
    with Session(engine) as session:
        diff = dataset_diff(session, dataset_id=dataset_id, srid=4547)
        got = {(f.table, f.code): (f.state, f.attributes, f.moved_m) for f in diff.features}
        changes = {f.code: f.changes for f in diff.features if f.changes}
        t1 = version_time(session, dataset_id, 1)
        specs = {s.id: s for s in collection_specs(["PS"])}
        query = ItemsQuery(limit=100, crs=parse_ogc_crs(None, 4547))
        then = query_items(
            session, spec=spec_at(specs["pipe_segments"], (t1, t1)), query=query,
            storage_srid=4547,
        )  # fmt: skip
        now = query_items(session, spec=specs["pipe_segments"], query=query, storage_srid=4547)
    assert diff.totals == {"added": 2, "removed": 2, "changed": 3}
    top = ["end_top_z", "length_m", "nominal_dn", "start_top_z"]  # DN500 sits higher
    assert got == {
        ("pipe_node", "W2"): ("changed", ["geom"], 3.0),
        ("pipe_node", "W4"): ("removed", [], None),
        ("pipe_node", "W5"): ("added", [], None),
        ("pipe_segment", "L1"): ("changed", ["length_m", "geom"], 3.0),  # its end moved 3 m
        ("pipe_segment", "L2"): ("changed", [*sorted(["diameter_mm", *top]), "geom"], 3.0),
        ("pipe_segment", "L3"): ("removed", [], None),
        ("pipe_segment", "L4"): ("added", [], None),
    }
    assert diff.summary["pipe_segment"] == {"PS": {"added": 1, "removed": 1, "changed": 2}}
    assert changes == CHANGES
    assert list(changes["L2"]["diameter_mm"]) == ["from", "to"]
    assert len(diff.geojson["features"]) == 7
    assert then.number_matched == 3 and '"L3"' in then.features and '"L4"' not in then.features
    assert now.number_matched == 3 and '"L4"' in now.features and '"L3"' not in now.features
    assert '"diameter_mm":400' in then.features.replace(" ", "")


def test_read_as_of_shadows_prepared_statements_and_leaves_nothing(
    engine: Engine, clean_tables: None, tmp_path: Path
) -> None:
    from sqlalchemy.orm import Session

    from cim.services.versions.as_of import read_as_of
    from cim.services.versions.history import version_time

    first = run(engine, *survey(tmp_path / "v1", POINTS_V1, LINES_V1), crs="EPSG:4547")
    run(engine, *survey(tmp_path / "v2", POINTS_V2, LINES_V2), crs="EPSG:4547")
    codes = text("SELECT string_agg(code, ',' ORDER BY code) FROM pipe_segment")
    with Session(engine) as session:
        for _ in range(8):  # psycopg prepares a statement run 5 times on a connection
            assert session.execute(codes).scalar_one() == "L1,L2,L4"
        session.commit()
        t1 = version_time(session, first.dataset.id, 1)
        read_as_of(session, t1)
        assert session.execute(codes).scalar_one() == "L1,L2,L3"
        session.commit()  # drops the views
        assert session.execute(codes).scalar_one() == "L1,L2,L4"
        views = session.execute(
            text("SELECT count(*) FROM pg_views WHERE schemaname LIKE 'pg_temp%'")
        ).scalar_one()
        assert views == 0

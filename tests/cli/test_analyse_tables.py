"""``--csv FILE`` / ``--xlsx FILE`` / ``--lang`` of ``cim analyse`` (in-process,
``tests.cli_support``): the files hold the rows ``--json`` prints."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from tests.cim.pipes_fixtures import N, S, make_dataset, write_network
from tests.cli_support import run_cim
from tests.conftest import cli_env


def run(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cim("analyse", *args, env=cli_env(database_url))


def read_csv(path: Path) -> list[list[str]]:
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


@pytest.mark.slow
def test_pipe_commands_write_csv_and_xlsx(
    engine: Engine, database_url: str, clean_tables: None, tmp_path: Path
) -> None:
    with Session(engine) as session, session.begin():
        water = make_dataset(session, "water")
        _, seg_ids = write_network(
            session,
            water,
            [
                N("a", 0, 0),
                N("V1", 50, 0, kind="valve", valve_state="open"),
                N("b", 100, 0),
                N("c", 200, 0),
            ],
            [S("aV1", "a", "V1"), S("V1b", "V1", "b"), S("bc", "b", "c")],
        )
    valves, book = tmp_path / "valves.csv", tmp_path / "isolation.xlsx"
    done = run(
        database_url, "pipes", "isolate", "--segment", str(seg_ids["bc"]),
        "--csv", str(valves), "--xlsx", str(book), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert read_csv(valves) == [
        ["节点ID", "编号", "节点类型", "阀门状态"],
        *[[str(v["id"]), v["code"], "阀门", "开启"] for v in answer["valves_to_close"]],
    ]
    workbook = load_workbook(book)
    assert workbook.sheetnames == ["需关闭阀门", "停水管段"]
    segments = list(workbook["停水管段"].iter_rows(min_row=2, values_only=True))
    assert segments == [(s["id"], s["code"]) for s in answer["isolated_segments"]]

    english = tmp_path / "segments.csv"
    done = run(
        database_url, "pipes", "isolate", "--segment", str(seg_ids["bc"]),
        "--csv", str(english), "--table", "segments", "--lang", "en",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert read_csv(english) == [
        ["Segment ID", "Code"],
        *[[str(s["id"]), s["code"]] for s in answer["isolated_segments"]],
    ]
    pipes, drawing = tmp_path / "section.csv", tmp_path / "section.svg"
    done = run(
        database_url, "pipes", "section", "LINESTRING (150 -10, 150 10)",
        "--csv", str(pipes), "--svg", str(drawing), "--lang", "en",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert read_csv(pipes)[1][:3] == ["10.0", str(seg_ids["bc"]), "bc"]
    assert "Cross-section: 1 pipe(s)" in drawing.read_text(encoding="utf-8")
    bad = run(database_url, "pipes", "qc", str(water), "--csv", str(valves), "--lang", "fr")
    assert bad.returncode == 2 and "'fr' is not one of en, zh" in bad.stderr


@pytest.mark.slow
def test_shelter_zones_and_uncovered_write_csv_and_xlsx(
    cambridge_engine: Engine, tmp_path: Path
) -> None:
    from cim.services.shelters.plan import PlanParameters, create_plan

    url = cambridge_engine.url.render_as_string(hide_password=False)
    with Session(cambridge_engine) as session, session.begin():
        plan = create_plan(session, params=PlanParameters(radius_m={"short": 900}))
    try:
        zones, uncovered = tmp_path / "zones.xlsx", tmp_path / "uncovered.csv"
        done = run(url, "shelters", "zones", str(plan.id), "--xlsx", str(zones), "--json")
        assert done.returncode == 0, done.stderr
        features = json.loads(done.stdout)["features"]
        rows = list(load_workbook(zones)["避难服务区"].iter_rows(min_row=2, values_only=True))
        assert [(r[0], r[3]) for r in rows] == [
            (f["properties"]["shelter_id"], f["properties"]["population"]) for f in features
        ]
        done = run(url, "shelters", "uncovered", str(plan.id), "--csv", str(uncovered),
                   "--lang", "en", "--json")  # fmt: skip
        assert done.returncode == 0, done.stderr
        units = json.loads(done.stdout)["features"]
        table = read_csv(uncovered)
        assert table[0][0] == "Unit ID" and len(table) == len(units) + 1
        assert [row[0] for row in table[1:]] == [str(u["properties"]["unit_id"]) for u in units]
    finally:
        with cambridge_engine.begin() as conn:
            conn.execute(text("DELETE FROM shelter_plan"))

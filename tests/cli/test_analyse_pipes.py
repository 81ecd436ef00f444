"""``cim analyse pipes ...`` (in-process, ``tests.cli_support``) against the test database
(committed network)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from tests.cim.pipes_fixtures import N, S, make_dataset, write_network
from tests.cli_support import run_cim
from tests.conftest import cli_env


def run(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cim("analyse", "pipes", *args, env=cli_env(database_url))


def test_cli_analyses(
    engine: Engine, database_url: str, clean_tables: None, tmp_path: Path
) -> None:
    with Session(engine) as session, session.begin():
        water = make_dataset(session, "water", qc={"duplicates": 0})
        node_ids, seg_ids = write_network(
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
    isolated = json.loads(
        run(database_url, "isolate", "--segment", str(seg_ids["bc"]), "--json").stdout
    )
    assert [v["code"] for v in isolated["valves_to_close"]] == ["V1"] and isolated[
        "length_m"
    ] == 150.0
    text = run(database_url, "isolate", "--point", "150,1", "--dataset", str(water)).stdout
    assert text.startswith("close 1 valves: V1; 2 segments, 150.0 m")
    svg = tmp_path / "section.svg"
    section = run(
        database_url, "section", "LINESTRING (150 -10, 150 10)", "--svg", str(svg), "--json"
    )
    assert [p["code"] for p in json.loads(section.stdout)["pipes"]] == ["bc"]
    assert svg.read_text().startswith("<svg")
    profile = run(database_url, "profile", str(node_ids["a"]), str(node_ids["c"]))
    assert "3 segments, 200.0 m, 0 backward" in profile.stdout
    cut = tmp_path / "cut.geojson"
    cut.write_text(
        json.dumps(
            {"type": "Polygon", "coordinates": [[[90, -5], [110, -5], [110, 5], [90, 5], [90, -5]]]}
        )
    )
    dug = run(database_url, "excavation", str(cut), "--depth", "3")
    assert "2 pipes affected, 2 struck" in dug.stdout
    assert json.loads(run(database_url, "qc", str(water), "--json").stdout)["qc"] == {
        "duplicates": 0
    }
    bad = run(database_url, "excavation", "POINT (0 0)", "--depth", "3")
    assert bad.returncode == 2 and "cim: error:" in bad.stderr

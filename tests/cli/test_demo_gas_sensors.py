"""``cim demo`` loads the generated gas network and the demo sensors, once.

Oracles: the generator's files (rows of the CJJ 61 tables, Things of the sensor set) and its
geometry - every telecom and drainage manhole is a copy of a water point shifted 2 m and 4 m
from the gas copy of the same point, so each lies within the 5 m adjacent-space radius of a
gas node: the analysis finds exactly all of them.
"""

from __future__ import annotations

import csv
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cim.db.engine import make_engine
from cim.services.gas.adjacent import adjacent_spaces
from cli.demo_manifest import DEFAULT_MANIFEST, load_manifest
from tests.cli_support import run_cim
from tests.conftest import CIM, cli_env, make_world_readable_tempdir, migrated_database

SAMPLES = DEFAULT_MANIFEST.parent
GAS = SAMPLES / "demo_gas"
SENSORS = SAMPLES / "demo_ky4_sensors.json"
CLASSES = ("RQ", "TX", "PS")
TABLES = [f"{c}_{t}.csv" for c in CLASSES for t in ("POINT", "LINE")]
DEMO_SRID = 32616


def rows(name: str) -> list[dict[str, str]]:
    with open(GAS / name, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def manifest(folder: Path) -> Path:
    """The demo manifest's gas and sensor steps alone (no terrain, tiles or other layers)."""
    path = folder / "demo.yaml"
    steps = "".join(
        f"  - kind: pipes\n    files: [{GAS / f'{c}_POINT.csv'}, {GAS / f'{c}_LINE.csv'}]\n"
        "    args: [--crs, 'EPSG:32616']\n"
        for c in CLASSES
    )
    path.write_text(
        f"name: gas demo\nsrid: {DEMO_SRID}\nimports:\n{steps}sensors:\n  - file: {SENSORS}\n",
        encoding="utf-8",
    )
    return path


def counts(engine: Engine) -> dict[str, int]:
    queries = {
        "datasets": "SELECT count(*) FROM dataset",
        "gas_segments": "SELECT count(*) FROM pipe_segment WHERE utility = 'RQ'",
        "things": "SELECT count(*) FROM sensor_thing",
        "datastreams": "SELECT count(*) FROM sensor_datastream",
        "observations": "SELECT count(*) FROM sensor_observation",
        "rules": "SELECT count(*) FROM sensor_alarm_rule",
        "alarms": "SELECT count(*) FROM sensor_alarm",
        "located": "SELECT count(DISTINCT thing_id) FROM sensor_thing_location",
    }
    with engine.connect() as connection:
        return {k: int(connection.execute(text(q)).scalar_one()) for k, q in queries.items()}


@pytest.fixture(scope="module")
def demo_db(server_url: str) -> Iterator[tuple[Engine, dict[str, str], Path]]:
    url = migrated_database(server_url, "cim_demo_gas", srid=DEMO_SRID)
    engine = make_engine(url)
    folder = make_world_readable_tempdir("cim-demo-gas-")
    try:
        yield engine, cli_env(url, CIM_DATA_DIR=str(folder)), manifest(folder)
    finally:
        engine.dispose()


def run_demo(env: dict[str, str], path: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [CIM, "demo", "--no-serve", "--json", "--manifest", str(path)],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    steps: list[dict[str, Any]] = json.loads(result.stdout.strip().splitlines()[-1])["steps"]
    return steps


def test_the_demo_manifest_names_the_gas_layer_and_the_sensors() -> None:
    plan = load_manifest()
    pairs = {frozenset(s.all_files) for s in plan.imports if s.kind == "pipes"}
    for c in CLASSES:
        assert frozenset({GAS / f"{c}_POINT.csv", GAS / f"{c}_LINE.csv"}) in pairs
    assert [s.file for s in plan.sensors] == [SENSORS]
    made = {out for step in plan.generate for out in step.outputs}
    assert {GAS / name for name in TABLES} | {SENSORS} <= made


def test_gas_network_and_sensors_load_once(demo_db: tuple[Engine, dict[str, str], Path]) -> None:
    engine, env, path = demo_db
    sensor_set = json.loads(SENSORS.read_text(encoding="utf-8"))
    streams = sum(len(t["Datastreams"]) for t in sensor_set["things"])
    backlog = sensor_set["backlog"]
    per_stream = backlog["days"] * 24 * 60 // backlog["step_minutes"]

    steps = run_demo(env, path)
    assert [s["status"] for s in steps] == ["imported"] * 4, steps
    first = counts(engine)
    assert first["datasets"] == len(CLASSES)
    assert first["gas_segments"] == len(rows("RQ_LINE.csv")) == 131
    assert first["things"] == len(sensor_set["things"]) == first["located"] == 19
    assert first["datastreams"] == streams
    assert first["observations"] == streams * per_stream
    assert first["rules"] == len(sensor_set["rules"]) == 3
    assert first["alarms"] == 0  # the backlog is normal; the live feed's leak raises one

    with Session(engine) as session:
        report = adjacent_spaces(session, with_geojson=False, limit=10_000)
    wells = len(rows("TX_POINT.csv")) + len(rows("PS_POINT.csv"))
    assert report.gas_pipe_count == first["gas_segments"]
    assert report.space_count == wells == 220
    assert report.counts_by_type == {"drainage_well": 110, "telecom_well": 110}

    again = run_demo(env, path)
    assert [s["status"] for s in again] == ["unchanged"] * 4, again
    assert counts(engine) == first


def test_a_broken_step_is_reported_and_the_others_still_run(
    demo_db: tuple[Engine, dict[str, str], Path], tmp_path: Path
) -> None:
    """Each step's error line and exit status, as the console script gives them; the steps
    after a failed one run; the demo exits 4 naming every failed step; nothing of them is kept."""
    engine, env, _ = demo_db
    (tmp_path / "dem.tif").write_bytes(b"not a raster")
    (tmp_path / "shelters.geojson").write_text('{"type": "FeatureCollection", "features": [')
    path = tmp_path / "demo.yaml"
    path.write_text(
        f"name: broken\nsrid: {DEMO_SRID}\nimports:\n"
        f"  - kind: terrain\n    file: {tmp_path / 'dem.tif'}\n    args: [--crs, 'EPSG:32616']\n"
        f"  - kind: pipes\n    files: [{GAS / 'RQ_POINT.csv'}, {GAS / 'RQ_LINE.csv'}]\n"
        "    args: [--crs, 'EPSG:32616']\n"
        f"  - kind: shelters\n    file: {tmp_path / 'shelters.geojson'}\n",
        encoding="utf-8",
    )
    result = run_cim("demo", "--no-serve", "--json", "--manifest", str(path), env=env)
    assert result.returncode == 4, result.stderr[-3000:]
    steps = json.loads(result.stdout.strip().splitlines()[-1])["steps"]
    assert [(s["step"], s["status"], s.get("exit")) for s in steps] == [
        ("import terrain", "failed", 4),
        ("import pipes", steps[1]["status"], None),
        ("import shelters", "failed", 4),
    ]
    assert steps[1]["status"] in ("imported", "unchanged")
    errors = [line for line in result.stderr.splitlines() if line.startswith("cim: error:")]
    assert len(errors) == 3 and "dem.tif" in errors[0] and "shelters.geojson" in errors[1]
    assert errors[2] == (
        "cim: error: 2 demo step(s) failed: import terrain dem.tif, import shelters "
        "shelters.geojson"
    )
    with engine.connect() as connection:
        kinds = connection.execute(text("SELECT DISTINCT kind FROM dataset")).scalars().all()
    assert set(kinds) <= {"pipes", "sensors"}

"""Flood simulation against SWMM run directly on the source ``.inp`` (the oracle), and bad input.

Example 1 (US units, its own rain) and Bellinge (SI, storage-node manholes, a rain file that is
not kept, so a design storm substituted in both runs) go through the real importer; the model is
rebuilt from the database and run with pyswmm; every node's flood volume must equal pyswmm on
the original file within 1 %, with the same set of flooded nodes.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pyswmm import Nodes, Simulation  # type: ignore[import-untyped]
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cim.errors import InvalidInput, NotFound
from cim.services.simulation.flood import flood_simulation
from cim.services.simulation.storm import FORMULAS, chicago_storm, timeseries_lines
from cim.services.simulation.swmm_model import load_swmm_model
from tests.conftest import SHARED_SAMPLES
from tests.importers.pipes_helpers import run

PIPES = SHARED_SAMPLES / "pipes"
ORIGIN = (500_000.0, 3_400_000.0, 0.0)


def oracle(path: Path, folder: Path) -> dict[str, float]:
    """Flood volume per node of pyswmm on ``path`` (its own units: ft³ or m³)."""
    copy = folder / path.name
    if copy != path:
        shutil.copy(path, copy)
    with Simulation(str(copy)) as sim:
        for _ in sim:
            pass
        return {n.nodeid: n.statistics["flooding_volume"] for n in Nodes(sim)}


def flooded(volumes: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in volumes.items() if v > 0}


def compare(answer: Any, expected: dict[str, float], to_m3: float) -> None:
    got = {n.code: n.volume_m3 for n in answer.flooded_nodes}
    assert set(got) == set(flooded(expected))
    for code, volume in got.items():
        assert volume == pytest.approx(expected[code] * to_m3, rel=0.01)


@pytest.fixture
def example1(engine: Engine, clean_tables: None) -> int:
    return run(engine, PIPES / "swmm_Example1.inp", origin=ORIGIN).dataset.id


@pytest.fixture
def bellinge(engine: Engine, clean_tables: None) -> int:
    return run(engine, PIPES / "swmm_bellinge_small.inp", crs="EPSG:32632").dataset.id


def test_example1_own_rain_equals_swmm(engine: Engine, example1: int, tmp_path: Path) -> None:
    expected = oracle(PIPES / "swmm_Example1.inp", tmp_path)
    assert flooded(expected)  # node 10 floods in Example 1
    with Session(engine) as session:
        answer = flood_simulation(session, example1)
    compare(answer, expected, 0.028316846592)
    assert answer.rain == "model" and answer.storm is None
    assert answer.flow_units == "CFS"
    assert [c.code for c in answer.surcharged_conduits] == ["6"]
    assert answer.surcharged_conduits[0].hours_surcharged == pytest.approx(2.8, abs=0.01)
    [outfall] = answer.outfalls
    assert outfall.code == "18" and outfall.volume_m3 == pytest.approx(1.914e6 * 0.0037854, 0.01)
    assert answer.flooded_nodes[0].extent is None  # no DEM here
    assert answer.geojson is not None
    [feature] = answer.geojson["features"]
    assert feature["properties"]["role"] == "flooded"


def test_rebuilt_model_keeps_every_section(engine: Engine, example1: int) -> None:
    with Session(engine) as session:
        model = load_swmm_model(session, example1)
    for section in ("OPTIONS", "RAINGAGES", "TIMESERIES", "SUBCATCHMENTS", "SUBAREAS",
                    "INFILTRATION", "POLYGONS", "EVAPORATION", "REPORT", "POLLUTANTS"):  # fmt: skip
        assert model.sections.get(section), section
    assert len(model.sections["JUNCTIONS"]) == 13 and len(model.sections["CONDUITS"]) == 13
    junction_9 = next(ln for ln in model.sections["JUNCTIONS"] if ln.split()[0] == "9")
    assert [float(v) for v in junction_9.split()[1:3]] == pytest.approx([1000, 3])
    assert not model.defaults


def _bellinge_with_storm(tmp_path: Path, storm: Any) -> Path:
    """The source file with its rain file replaced by the storm (text edit, for the oracle)."""
    source = (PIPES / "swmm_bellinge_small.inp").read_text()
    gage = f"1 INTENSITY 0:{storm.step_min:02d} 1.0 TIMESERIES STORM"
    series = "\n".join(timeseries_lines(storm, "STORM", us_units=False))
    source = re.sub(r"^1\s+INTENSITY.*storm\.dat.*$", gage, source, flags=re.M)
    source = source.replace("[SUBCATCHMENTS]", f"[TIMESERIES]\n{series}\n\n[SUBCATCHMENTS]")
    for key, value in (("END_DATE", "01/01/2000"), ("END_TIME", "04:00:00")):
        source = re.sub(rf"^{key}\s+.*$", f"{key} {value}", source, flags=re.M)
    path = tmp_path / "bellinge_storm.inp"
    path.write_text(source)
    return path


def test_bellinge_design_storm_equals_swmm(engine: Engine, bellinge: int, tmp_path: Path) -> None:
    storm = chicago_storm(
        FORMULAS["shenzhen-2024-central"], return_period=10, duration_min=120, step_min=5
    )
    expected = oracle(_bellinge_with_storm(tmp_path, storm), tmp_path)
    assert len(flooded(expected)) >= 2
    with Session(engine) as session:
        answer = flood_simulation(session, bellinge, storm=storm, tail_h=2.0)
    compare(answer, expected, 1.0)
    assert answer.rain == "design_storm" and answer.storm is not None
    assert answer.end.endswith("04:00:00")
    assert answer.totals.flood_volume_m3 == pytest.approx(sum(flooded(expected).values()), rel=0.01)


def test_bellinge_own_rain_file_is_refused(engine: Engine, bellinge: int) -> None:
    with Session(engine) as session, pytest.raises(InvalidInput, match=r"storm\.dat"):
        flood_simulation(session, bellinge)


def _bowl(path: Path, centre: tuple[float, float], ground: float) -> None:
    """A 1 m DEM (EPSG:4547) whose ground rises as r²/400 around ``centre``."""
    import rasterio
    from rasterio.transform import from_origin

    size = 400
    x0, y0 = centre[0] - size / 2, centre[1] + size / 2
    cols = x0 + 0.5 + np.arange(size)
    rows = y0 - 0.5 - np.arange(size)
    xx, yy = np.meshgrid(cols, rows)
    z = ground + ((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / 400.0
    with rasterio.open(
        path, "w", driver="GTiff", width=size, height=size, count=1, dtype="float32",
        crs="EPSG:4547", transform=from_origin(x0, y0, 1.0, 1.0), nodata=-9999.0,
    ) as out:  # fmt: skip
        out.write(z.astype("float32"), 1)


def test_extent_holds_the_volume(engine: Engine, example1: int, tmp_path: Path) -> None:
    from importers.terrain import import_terrain

    with engine.connect() as conn:
        x, y = conn.execute(
            text(
                "SELECT ST_X(geom), ST_Y(geom) FROM pipe_node WHERE dataset_id = :d AND code = '10'"
            ),
            {"d": example1},
        ).one()
    _bowl(tmp_path / "bowl.tif", (x, y), 100.0)
    import_terrain(engine, tmp_path / "bowl.tif")
    with Session(engine) as session:
        answer = flood_simulation(session, example1, output_crs="EPSG:4326")
    [node] = answer.flooded_nodes
    extent = node.extent
    assert extent is not None and not extent.reaches_window_edge
    # a paraboloid z = r²/400 holds V = π·400·h²/2 below level h: h = sqrt(2V / 400π)
    depth = np.sqrt(2 * node.volume_m3 / (400 * np.pi))
    assert extent.max_depth_m == pytest.approx(depth, rel=0.05)
    assert extent.area_m2 == pytest.approx(np.pi * 400 * depth, rel=0.05)
    assert answer.geojson is not None
    polygons = [f for f in answer.geojson["features"] if f["properties"]["role"] == "flood_extent"]
    assert len(polygons) == 1
    geometry = polygons[0]["geometry"]
    assert geometry is not None
    lon, lat = geometry["coordinates"][0][0]
    assert 100 < lon < 130 and 0 < lat < 60


def test_bad_inputs_are_refused(engine: Engine, example1: int) -> None:
    with Session(engine) as session:
        with pytest.raises(NotFound):
            flood_simulation(session, 999_999)
        with pytest.raises(InvalidInput, match="tail_h"):
            flood_simulation(session, example1, tail_h=-1)


def test_water_network_is_refused(engine: Engine, clean_tables: None) -> None:
    water = run(engine, PIPES / "Net1.inp", crs="EPSG:4547", origin=ORIGIN).dataset.id
    with Session(engine) as session, pytest.raises(InvalidInput, match="not a SWMM"):
        flood_simulation(session, water)


def test_swmm_error_is_one_line(engine: Engine, example1: int) -> None:
    with engine.begin() as conn:  # a conduit that leaves from a node SWMM does not know
        conn.execute(
            text(
                "UPDATE dataset SET options = jsonb_set(options, '{source_model,sections,OPTIONS}',"
                ' \'["FLOW_UNITS CFS", "FLOW_ROUTING NOSUCH"]\') WHERE id = :d'
            ),
            {"d": example1},
        )
    with Session(engine) as session, pytest.raises(InvalidInput, match="SWMM refused") as caught:
        flood_simulation(session, example1)
    assert "\n" not in str(caught.value)


def test_default_subcatchments(engine: Engine, example1: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE dataset SET options = options #- '{source_model,sections,SUBCATCHMENTS}'"
                " WHERE id = :d"
            ),
            {"d": example1},
        )
    storm = chicago_storm(FORMULAS["shenzhen-2024-central"], return_period=5, duration_min=120)
    with Session(engine) as session:
        model = load_swmm_model(session, example1)
        assert len(model.sections["SUBCATCHMENTS"]) == 13  # one per junction
        assert any("subcatchments: none stored" in d for d in model.defaults)
        answer = flood_simulation(session, example1, storm=storm)
    assert answer.totals.outfall_volume_m3 > 0


@pytest.mark.slow
def test_flood_command(database_url: str, example1: int, tmp_path: Path) -> None:
    import json
    import subprocess

    from tests.cli_support import run_cim
    from tests.conftest import cli_env

    def cim(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cim(
            "analyse", "drainage", "flood", str(example1), *args,
            env=cli_env(database_url), cwd=tmp_path,
        )  # fmt: skip

    done = cim()
    assert done.returncode == 0, done.stderr
    assert "flooded nodes: 1" in done.stdout and "the model's own rain" in done.stdout
    answer = json.loads(cim("--return-period", "20", "--json").stdout)
    assert answer["rain"] == "design_storm" and answer["totals"]["flooded_node_count"] >= 1
    refused = cim("--return-period", "20", "--peak", "1.2")
    assert refused.returncode == 2 and "peak position" in refused.stderr
    assert list(tmp_path.iterdir()) == []  # SWMM wrote nothing in the working directory

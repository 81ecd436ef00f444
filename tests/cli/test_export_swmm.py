"""``cim export pipes --format swmm``: import -> export -> swmmio and pyswmm read the same model.

The oracle is swmmio reading the source ``.inp`` beside the exported one: the same node, link and
subcatchment names, and every value the importer keeps (inverts, max depths, conduit ends,
lengths, roughness, offsets, cross-sections, subcatchment rain gages, outlets, areas,
imperviousness, widths and slopes) within 1e-6 relative, coordinates and polygons within the
printed 1e-6; options and time series as read. Then SWMM itself (pyswmm) runs both files: every
node's flooding volume and max depth must be the same within 1 %. Bellinge's rain is a file the
import does not keep (``storm.dat``): the test writes one and puts it beside both files, as the
export's ``external_files`` asks.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import swmmio
from pyswmm import Nodes, Simulation  # type: ignore[import-untyped]
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from cim.errors import InvalidInput, NotFound
from cim.services.simulation.export import replaced_atomically
from cim.services.simulation.export_swmm import export_swmm
from tests.cli_support import run_cim
from tests.conftest import SHARED_SAMPLES, cli_env
from tests.importers.pipes_helpers import run

PIPES = SHARED_SAMPLES / "pipes"
ORIGIN = (500_000.0, 3_400_000.0, 0.0)
REL = 1e-6
XY = 1e-6 + 1e-9  # coordinates are printed with 6 decimals
#: name -> import options: US feet on a drawing origin, SI in UTM with storage-node manholes,
#: MGD feet on a drawing origin with a height, losses and curves, and 1,329 subcatchments
#: (Helsinki, GK25 with a drawing origin).
CASES: dict[str, dict[str, Any]] = {
    "swmm_Example1.inp": {"origin": ORIGIN},
    "swmm_bellinge_small.inp": {"crs": "EPSG:32632"},
    "swmm_model_state_plane.inp": {"origin": (-2_247_000.0, 2_281_000.0, 10.0)},
    "aalto_demo_catchment/demo_catchment_adap.inp": {
        "crs": "EPSG:3879",
        "origin": (25_497_000.0, 6_672_000.0, 0.0),
    },
}
#: swmmio frame -> numeric columns the importer keeps, and text columns.
NUMBERS = {
    "junctions": ("InvertElev", "MaxDepth", "InitDepth", "SurchargeDepth", "PondedArea"),
    "outfalls": ("InvertElev",),
    "storage": ("InvertElev", "MaxD", "InitDepth"),
    "conduits": ("Length", "Roughness", "InOffset", "OutOffset"),
    "xsections": ("Geom1", "Geom2", "Geom3", "Geom4", "Barrels"),
    "subcatchments": ("Area", "PercImperv", "Width", "PercSlope", "CurbLength"),
    "subareas": ("N-Imperv", "N-Perv", "S-Imperv", "S-Perv", "PctZero"),
}
TEXTS = {
    "outfalls": ("OutfallType",),
    "conduits": ("InletNode", "OutletNode"),
    "xsections": ("Shape",),
    "subcatchments": ("Raingage", "Outlet"),
    "raingages": ("RainType", "TimeIntrvl", "DataSource", "DataSourceName"),
}


def frames(path: Path, folder: Path) -> Any:
    """swmmio's reading of ``path``, through a copy in ``folder`` whose lone carriage returns
    are blanks: SWMM reads them so (Aalto's conduit lines hold one before InitFlow), swmmio
    (pandas) as a line end."""
    copy = folder / f"oracle_{path.name}"
    text = path.read_bytes().decode("utf-8")  # read_text would make every \r a line end
    copy.write_text(text.replace("\r\n", "\n").replace("\r", " "))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return swmmio.Model(str(copy)).inp


def table(inp: Any, name: str) -> pd.DataFrame:
    """One section as swmmio reads it, its index (element names) as text and unique."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = getattr(inp, name)
    frame.index = frame.index.astype(str)
    assert frame.index.is_unique, name
    return frame


def assert_same_model(source_path: Path, exported_path: Path, folder: Path) -> None:
    """Every element and kept value of the source, within 1e-6 relative (xy: printed 1e-6)."""
    source, exported = frames(source_path, folder), frames(exported_path, folder)
    for name in {*NUMBERS, *TEXTS}:
        want, got = table(source, name), table(exported, name)
        assert sorted(want.index) == sorted(got.index), name
        if not len(want):
            continue
        for column in NUMBERS.get(name, ()):
            a = pd.to_numeric(want[column], errors="coerce").fillna(0.0)
            b = pd.to_numeric(got[column], errors="coerce").reindex(want.index).fillna(0.0)
            assert b.to_numpy() == pytest.approx(a.to_numpy(), rel=REL, abs=1e-12), (name, column)
        for column in TEXTS.get(name, ()):
            a = want[column].astype(str).str.strip('"')
            b = got[column].reindex(want.index).astype(str).str.strip('"')
            assert a.tolist() == b.tolist(), (name, column)
    for name in ("coordinates", "polygons"):
        want, got = _all_rows(source, name), _all_rows(exported, name)
        assert sorted(set(want.index)) == sorted(set(got.index)), name
        for key, group in want.groupby(level=0):
            other = got.loc[[key]]
            assert other.to_numpy() == pytest.approx(group.to_numpy(), abs=XY), (name, key)
    assert (table(exported, "options")["Value"].astype(str).tolist()
            == table(source, "options")["Value"].astype(str).tolist())  # fmt: skip
    want, got = _all_rows(source, "timeseries"), _all_rows(exported, "timeseries")
    assert want.astype(str).to_numpy().tolist() == got.astype(str).to_numpy().tolist()
    assert want.index.tolist() == got.index.tolist()


def _all_rows(inp: Any, name: str) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = getattr(inp, name)
    frame.index = frame.index.astype(str)
    return frame


def flooding(path: Path) -> dict[str, tuple[float, float]]:
    """pyswmm's flooding volume and max depth per node of the ``.inp`` at ``path`` (its units)."""
    with Simulation(str(path)) as sim:
        for _ in sim:
            pass
        return {
            n.nodeid: (n.statistics["flooding_volume"], n.statistics["max_depth"])
            for n in Nodes(sim)
        }


def write_storm(folder: Path) -> None:
    """Bellinge's ``storm.dat`` (station 1, mm/h every 5 min): a 2-hour triangle peaking at
    120 mm/h an hour in, the day the model runs."""
    lines = []
    for step in range(25):
        minute = 5 * step
        intensity = 120.0 * (1 - abs(minute - 60) / 60)
        lines.append(f"1 2000 1 1 {minute // 60} {minute % 60} {intensity:.3f}")
    (folder / "storm.dat").write_text("\n".join(lines) + "\n")


@pytest.fixture
def imported(
    engine: Engine, clean_tables: None, request: pytest.FixtureRequest
) -> tuple[Path, int]:
    """The source file (a parameter: a key of CASES) and the dataset imported from it."""
    name = str(request.param)
    return PIPES / name, run(engine, PIPES / name, **CASES[name]).dataset.id


@pytest.mark.parametrize("imported", list(CASES), indirect=True)
def test_export_equals_source(engine: Engine, imported: tuple[Path, int], tmp_path: Path) -> None:
    source, dataset = imported
    (tmp_path / "oracle").mkdir()
    out = tmp_path / "exported.inp"
    with Session(engine) as session:
        done = export_swmm(session, dataset, out)
    assert_same_model(source, out, tmp_path / "oracle")
    inp = frames(source, tmp_path / "oracle")
    assert (done.junctions, done.outfalls, done.storages, done.conduits, done.subcatchments) == (
        *(len(table(inp, name)) for name in
          ("junctions", "outfalls", "storage", "conduits", "subcatchments")),
    )  # fmt: skip
    assert done.defaults == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported.inp", "oracle"]


@pytest.mark.parametrize(
    ("imported", "floods"),
    [("swmm_Example1.inp", True), ("swmm_bellinge_small.inp", True),
     ("swmm_model_state_plane.inp", False)],
    indirect=["imported"],
)  # fmt: skip
def test_exported_model_floods_as_source(
    database_url: str, imported: tuple[Path, int], floods: bool, tmp_path: Path
) -> None:
    original, dataset = imported
    (tmp_path / "source").mkdir()
    (tmp_path / "out").mkdir()
    source = tmp_path / "source" / original.name
    shutil.copy(original, source)
    out = tmp_path / "out" / "exported.inp"
    args = ("export", "pipes", str(dataset), str(out), "--format", "swmm", "--json")
    done = run_cim(*args, env=cli_env(database_url), cwd="/")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    for needed in summary["external_files"]:
        assert needed == "storm.dat"
        write_storm(source.parent)
        write_storm(out.parent)
    expected, got = flooding(source), flooding(out)
    assert sorted(got) == sorted(expected)
    assert any(v[0] > 0 for v in expected.values()) == floods
    for node, (volume, depth) in expected.items():
        assert got[node][0] == pytest.approx(volume, rel=0.01, abs=1e-9), node
        assert got[node][1] == pytest.approx(depth, rel=0.01, abs=1e-9), node


def _cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cim("export", "pipes", *args, env=cli_env(database_url), cwd="/")


def test_wrong_format_is_refused_and_writes_nothing(
    database_url: str, engine: Engine, clean_tables: None, tmp_path: Path
) -> None:
    water = run(engine, PIPES / "Net1.inp", origin=ORIGIN).dataset.id
    drainage = run(engine, PIPES / "swmm_Example1.inp", origin=ORIGIN).dataset.id
    kept = tmp_path / "kept.inp"
    kept.write_text("the file that was there\n")
    for dataset, target, fmt, message in (
        (water, tmp_path / "new.inp", "swmm", "not a SWMM drainage network"),
        (water, kept, "swmm", "export it with --format epanet"),
        (drainage, tmp_path / "new.inp", "epanet", "export it with --format swmm"),
        (drainage, kept, "epanet", "not an EPANET water network"),
    ):
        done = _cli(database_url, str(dataset), str(target), "--format", fmt)
        assert done.returncode == 2, done.stderr
        assert message in done.stderr and done.stderr.count("\n") == 1
    done = _cli(database_url, str(drainage), str(kept), "--format", "swmm", "--units", "LPS")
    assert done.returncode == 2 and "--units" in done.stderr
    done = _cli(database_url, "987654", str(tmp_path / "new.inp"), "--format", "swmm")
    assert done.returncode == 3, done.stderr
    done = _cli(database_url, str(drainage), str(tmp_path / "no" / "x.inp"), "--format", "swmm")
    assert done.returncode == 2 and "no such folder" in done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["kept.inp"]
    assert kept.read_text() == "the file that was there\n"
    with Session(engine) as session, pytest.raises(NotFound):
        export_swmm(session, 987654, tmp_path / "x.inp")
    done = _cli(database_url, str(drainage), str(kept), "--format", "swmm")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"wrote {kept} (swmm, CFS): 13 junctions, 1 outfalls")
    assert kept.read_text().startswith("[TITLE]\nExample 1\n")


def test_failed_write_leaves_no_file(tmp_path: Path) -> None:
    kept = tmp_path / "kept.inp"
    kept.write_text("before\n")
    kept.chmod(0o600)
    for target in (kept, tmp_path / "new.inp"):
        with pytest.raises(RuntimeError), replaced_atomically(target) as partial:
            partial.write_text("half a fi")
            raise RuntimeError("disk full")
    assert [p.name for p in tmp_path.iterdir()] == ["kept.inp"]
    assert kept.read_text() == "before\n"
    with replaced_atomically(kept) as partial:
        partial.write_text("after\n")
    assert kept.read_text() == "after\n" and kept.stat().st_mode & 0o777 == 0o600
    with replaced_atomically(tmp_path / "new.inp") as partial:
        partial.write_text("new\n")
    assert (tmp_path / "new.inp").stat().st_mode & 0o777 == 0o644
    with pytest.raises(InvalidInput, match="is a folder"), replaced_atomically(tmp_path):
        pass


def _pipes_only(folder: Path) -> Path:
    """Example 1 without [TITLE], [OPTIONS], rain or subcatchments: the pipes and their places."""
    keep = {"JUNCTIONS", "OUTFALLS", "CONDUITS", "XSECTIONS", "COORDINATES", "VERTICES"}
    lines, section = [], ""
    for line in (PIPES / "swmm_Example1.inp").read_text().splitlines():
        if line.startswith("["):
            section = line.strip("[] ").upper()
        if section in keep:
            lines.append(line)
    path = folder / "pipes_only.inp"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_pipes_only_model_gets_documented_defaults(
    engine: Engine, clean_tables: None, tmp_path: Path
) -> None:
    source = _pipes_only(tmp_path)
    dataset = run(engine, source, origin=ORIGIN).dataset.id
    (tmp_path / "oracle").mkdir()
    out = tmp_path / "exported.inp"
    with Session(engine) as session:
        done = export_swmm(session, dataset, out)
        stand_ins = export_swmm(session, dataset, tmp_path / "rained.inp",
                                default_subcatchments=True)  # fmt: skip
    assert done.subcatchments == 0 and done.raingages == 0 and done.flow_units == "CFS"
    assert [d.split(":")[0] for d in done.defaults] == ["title", "FLOW_UNITS", "run period"]
    text = out.read_text()
    assert "[SUBCATCHMENTS]" not in text and "END_DATE 01/02/2004" in text
    got, want = (table(frames(p, tmp_path / "oracle"), "junctions") for p in (out, source))
    assert sorted(got.index) == sorted(want.index)
    assert flooding(out)  # SWMM runs it: a valid file
    assert stand_ins.subcatchments == 13  # one per junction (the flood simulation's stand-ins)
    assert any(d.startswith("subcatchments: none stored") for d in stand_ins.defaults)

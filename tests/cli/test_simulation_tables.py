"""``--csv``/``--xlsx``/``--lang``/``--table`` of ``cim analyse pipes shutdown`` and ``cim analyse
drainage flood``, as a user runs them (in-process, ``tests.cli_support``): the files hold the rows
``--json`` prints."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import Engine, text

from tests.cli_support import run_cim
from tests.conftest import SHARED_SAMPLES, cli_env
from tests.importers.pipes_helpers import run

ORIGIN = (500_000.0, 3_400_000.0, 0.0)


def cim(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cim("analyse", *args, env=cli_env(database_url), cwd="/")


def read_csv(path: Path) -> list[list[str]]:
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf"), "no UTF-8 byte-order mark"
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


@pytest.mark.slow
def test_shutdown_writes_csv_and_xlsx(
    database_url: str, engine: Engine, clean_tables: None, tmp_path: Path
) -> None:
    dataset = run(engine, SHARED_SAMPLES / "pipes" / "Net1.inp", origin=ORIGIN).dataset.id
    with engine.connect() as conn:
        pipe = conn.execute(
            text("SELECT id FROM pipe_segment WHERE dataset_id = :d AND code = '12'"),
            {"d": dataset},
        ).scalar_one()  # a main: 8 nodes beyond it lose pressure
    nodes, book = tmp_path / "nodes.csv", tmp_path / "shutdown.xlsx"
    base = ("pipes", "shutdown", "--pipe", str(pipe), "--hours", "6")
    done = cim(database_url, *base, "--csv", str(nodes), "--xlsx", str(book), "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)  # the files' messages go to stderr, not into the JSON
    assert f"wrote {len(answer['nodes'])} row(s)" in done.stderr and "4 sheet(s)" in done.stderr
    rows = read_csv(nodes)
    assert answer["nodes"], "closing 12 lowered no pressure: nothing to compare"
    assert rows[0][:4] == ["节点ID", "编号", "节点类型", "影响类型"]
    assert [(int(r[0]), r[1], float(r[6])) for r in rows[1:]] == [
        (n["id"], n["code"], n["max_drop_m"]) for n in answer["nodes"]
    ]
    workbook = load_workbook(book)
    assert workbook.sheetnames == [
        "压力下降节点",
        "低于服务压力节点",
        "停水节点",
        "关闭的阀门与管段",
    ]
    [closed] = answer["closed_links"]
    assert list(workbook["关闭的阀门与管段"].values)[1] == ("12", None, None, None, pipe)

    english = tmp_path / "closed.csv"
    done = cim(database_url, *base, "--csv", str(english), "--table", "closed", "--lang", "en")
    assert done.returncode == 0, done.stderr
    assert read_csv(english) == [
        ["Model link", "Valve node ID", "Valve code", "Valve state", "Segment ID"],
        [closed["link"], "", "", "", str(closed["segment_id"])],
    ]
    bad = cim(database_url, *base, "--csv", str(english), "--table", "pipes")
    assert bad.returncode == 2 and "nodes, below_service, isolated, closed" in bad.stderr


@pytest.mark.slow
def test_flood_writes_csv_and_xlsx(
    database_url: str, engine: Engine, clean_tables: None, tmp_path: Path
) -> None:
    path = SHARED_SAMPLES / "pipes" / "swmm_Example1.inp"
    dataset = str(run(engine, path, origin=ORIGIN).dataset.id)
    book, outfalls = tmp_path / "flood.xlsx", tmp_path / "outfalls.csv"
    done = cim(database_url, "drainage", "flood", dataset, "--xlsx", str(book), "--lang", "en",
               "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    workbook = load_workbook(book)
    assert workbook.sheetnames == ["Flooded nodes", "Surcharged conduits", "Outfalls"]
    flooded = list(workbook["Flooded nodes"].values)
    assert flooded[0][:4] == ("Node ID", "Code", "Node kind", "Flood volume (m³)")
    assert [r[:4] for r in flooded[1:]] == [
        (n["id"], n["code"], n["kind"], n["volume_m3"]) for n in answer["flooded_nodes"]
    ]
    assert flooded[1][7:] == (None,) * 6  # no DEM here: the extent cells are empty
    conduits = list(workbook["Surcharged conduits"].values)[1:]
    assert [(r[0], r[2]) for r in conduits] == [
        (c["id"], c["hours_surcharged"]) for c in answer["surcharged_conduits"]
    ]
    done = cim(database_url, "drainage", "flood", dataset, "--csv", str(outfalls),
               "--table", "outfalls")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert read_csv(outfalls) == [
        ["节点ID", "编号", "节点类型", "排放量 (m³)", "平均流量 (m³/s)", "最大流量 (m³/s)"],
        *[
            [str(o["id"]), o["code"], "排放口", str(o["volume_m3"]), str(o["average_flow_m3s"]),
             str(o["peak_flow_m3s"])]
            for o in answer["outfalls"]
        ],
    ]  # fmt: skip
    refused = cim(database_url, "drainage", "flood", dataset, "--xlsx", str(book), "--lang", "fr")
    assert refused.returncode == 2 and "'fr' is not one of en, zh" in refused.stderr

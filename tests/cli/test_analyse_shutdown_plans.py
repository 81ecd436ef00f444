"""``cim analyse pipes shutdowns add|list|conflicts|cancel`` (in-process, ``tests.cli_support``)
on Net3: two plans whose rings and periods overlap conflict until one is cancelled; bad input
exits 2 or 3."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from tests.cim.test_pipes_isolation import import_with_valves
from tests.cim.test_shutdown_plans import oracle_ring, segment_of
from tests.cli_support import run_cim
from tests.conftest import cli_env


def run(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cim("analyse", "pipes", "shutdowns", *args, env=cli_env(database_url))


def test_add_list_conflicts_cancel(
    database_url: str, engine: Engine, clean_tables: None, tmp_path: Path
) -> None:
    _, _, net3 = import_with_valves(database_url, engine, tmp_path, "Net3.inp", 1, via_cli=False)
    with Session(engine) as session:
        work_a, work_b = segment_of(session, net3, "117"), segment_of(session, net3, "303")
    dataset = ("--dataset", str(net3))
    a = run(database_url, "add", *dataset, "--title", "A", "--segment", str(work_a),
            "--from", "2026-12-07T08:00+08:00", "--to", "2026-12-07T12:00+08:00",
            "--json")  # fmt: skip
    assert a.returncode == 0, a.stderr
    plan_a = json.loads(a.stdout)["plan"]
    assert plan_a["created_by"].startswith("cli") and json.loads(a.stdout)["conflicts"] == []
    b = run(database_url, "add", *dataset, "--title", "B", "--segment", str(work_b),
            "--from", "2026-12-07T10:00+08:00", "--to", "2026-12-07T14:00+08:00")  # fmt: skip
    assert b.returncode == 0, b.stderr
    assert "conflicts: 1" in b.stdout and f"plans {plan_a['id']} and " in b.stdout

    found = run(database_url, "conflicts", *dataset, "--json")
    [conflict] = json.loads(found.stdout)["conflicts"]
    with Session(engine) as session:
        plan_b = json.loads(run(database_url, "list", "--json").stdout)["plans"][1]
        ring_a = oracle_ring(session, net3, set(plan_a["valve_ids"]))
        ring_b = oracle_ring(session, net3, set(plan_b["valve_ids"]))
        assert conflict["shared_segment_ids"] == sorted(ring_a & ring_b)
        codes = set(
            session.execute(
                text("SELECT code FROM pipe_segment WHERE id = ANY(:ids)"),
                {"ids": conflict["shared_segment_ids"]},
            ).scalars()
        )
    assert {"303", "305#261", "307"} <= codes
    assert conflict["overlap_from"] == "2026-12-07T02:00:00Z"

    active = run(database_url, "list", "--at", "2026-12-07T13:00+08:00")
    assert active.returncode == 0 and "'B'" in active.stdout and "'A'" not in active.stdout
    cancelled = run(database_url, "cancel", str(plan_b["id"]))
    assert cancelled.returncode == 0 and "[cancelled]" in cancelled.stdout
    assert run(database_url, "conflicts", *dataset).stdout.strip() == "no conflicts"

    bad = run(database_url, "add", *dataset, "--title", "late", "--segment", str(work_a),
              "--from", "2026-12-07T12:00+08:00", "--to", "2026-12-07T08:00+08:00")  # fmt: skip
    assert bad.returncode == 2 and "before it starts" in bad.stderr
    period = ("--from", "2026-12-07T08:00Z", "--to", "2026-12-07T09:00Z")
    unknown = run(database_url, "add", "--dataset", "999999999", "--title", "x",
                  "--segment", str(work_a), *period)  # fmt: skip
    assert unknown.returncode == 3
    assert run(database_url, "list", "--at", "tomorrow").returncode == 2
    assert run(database_url, "cancel", "999999999").returncode == 3
    with engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM pipe_shutdown_plan")).scalar_one()
    assert count == 2

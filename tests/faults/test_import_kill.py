"""SIGKILL of a real ``cim import pipes`` at every phase: the dataset is absent or complete.

Deterministic phases come from :mod:`cim.faults` pause points (before parsing, after the
``loading`` row, inside the open COPY, just before COMMIT); seeded random delays add kills at
points nobody chose. After each kill the database holds either no dataset of the file or a
``ready`` one whose row counts equal the reference import's, and re-running the import works.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from tests.conftest import CIM, SHARED_SAMPLES, cli_env

KY4 = SHARED_SAMPLES / "pipes" / "ky4.inp"


def _import(database_url: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [CIM, "import", "pipes", str(KY4), "--crs", "EPSG:3547", "--json"],
        env=cli_env(database_url, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _state(engine: Engine) -> list[dict[str, Any]]:
    """Every pipes dataset with its recorded counts and the rows really present."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT d.id, d.status, d.counts, "
                "(SELECT count(*) FROM pipe_node n WHERE n.dataset_id = d.id) AS nodes, "
                "(SELECT count(*) FROM pipe_segment s WHERE s.dataset_id = d.id) AS segments "
                "FROM dataset d WHERE d.kind = 'pipes' ORDER BY d.id"
            )
        ).all()
        orphans = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM pipe_node WHERE dataset_id NOT IN "
                "(SELECT id FROM dataset)) + (SELECT count(*) FROM pipe_segment WHERE "
                "dataset_id NOT IN (SELECT id FROM dataset))"
            )
        ).scalar_one()
    assert orphans == 0
    return [dict(r._mapping) for r in rows]


def _check(engine: Engine) -> dict[str, Any] | None:
    """None when no dataset of the file exists, else the one dataset, which must be ready."""
    state = _state(engine)
    assert len(state) <= 1, state
    if not state:
        return None
    (dataset,) = state
    assert dataset["status"] == "ready"
    assert dataset["nodes"] == dataset["counts"]["pipe_node"]
    assert dataset["segments"] == dataset["counts"]["pipe_segment"]
    return dataset


def _wait_idle(engine: Engine) -> None:
    """The server has seen the dead client and rolled its transaction back."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            busy = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                    "AND datname = current_database() AND application_name = 'cim' "
                    "AND state <> 'idle'"
                )
            ).scalar_one()
        if busy == 0:
            return
        time.sleep(0.1)
    raise AssertionError("a killed import's transaction is still open after 10 s")


def _kill(child: subprocess.Popen[str], *, may_have_finished: bool = False) -> None:
    """SIGKILL the import. With ``may_have_finished`` the import may have exited on its own
    between the caller's ``poll()`` and the signal (a kill of an unreaped process does nothing):
    then it must have succeeded."""
    os.kill(child.pid, signal.SIGKILL)
    child.communicate(timeout=10)
    allowed = (-signal.SIGKILL, 0) if may_have_finished else (-signal.SIGKILL,)
    assert child.returncode in allowed


def _paused_then_killed(database_url: str, phase: str) -> None:
    child = _import(database_url, CIM_TEST_PAUSE_AT=phase)
    assert child.stderr is not None
    line = ""
    while "CIM_PAUSED" not in line:
        line = child.stderr.readline()
        assert line or child.poll() is None, f"{phase}: exited before pausing"
    assert line.strip() == f"CIM_PAUSED {phase}"
    _kill(child)


@pytest.mark.slow
def test_sigkill_at_any_point_leaves_the_dataset_absent_or_complete(
    utm_engine: Engine, utm_url: str
) -> None:
    engine = utm_engine
    for phase in ("parse", "write", "copy", "commit"):
        _paused_then_killed(utm_url, phase)
        _wait_idle(engine)
        # The COMMIT was never sent at any of these phases, so nothing may be left at all.
        assert _check(engine) is None, phase

    rng = random.Random(11)
    random_outcomes = []
    for _ in range(2):
        child = _import(utm_url)
        time.sleep(rng.uniform(1.0, 12.0))  # a ky4 import takes ~5-15 s on this machine
        if child.poll() is None:
            _kill(child, may_have_finished=True)
        else:
            child.communicate()
        _wait_idle(engine)
        random_outcomes.append(_check(engine))
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM dataset"))

    # Re-running after the kills succeeds and is the reference for complete outcomes.
    child = _import(utm_url)
    _, err = child.communicate(timeout=180)
    assert child.returncode == 0, err
    final = _check(engine)
    assert final is not None and final["segments"] > 1000  # big enough for a COPY in flight
    for outcome in random_outcomes:
        if outcome is not None:
            assert (outcome["nodes"], outcome["segments"]) == (final["nodes"], final["segments"])


def test_pause_point_names_the_phase(tmp_path: Path) -> None:
    """The hook itself: silent when unset, pauses and says where when set."""
    script = "from cim.faults import pause_point; pause_point('copy'); print('after')"
    venv_python = str(Path(CIM).with_name("python"))
    quiet = subprocess.run(
        [venv_python, "-c", script], env=cli_env("postgresql://x/y"), capture_output=True, text=True
    )
    assert quiet.stdout == "after\n" and quiet.stderr == ""
    paused = subprocess.run(
        [venv_python, "-c", script],
        env=cli_env("postgresql://x/y", CIM_TEST_PAUSE_AT="parse,copy", CIM_TEST_PAUSE_SECONDS="0"),
        capture_output=True,
        text=True,
    )
    assert paused.stderr == "CIM_PAUSED copy\n" and paused.stdout == "after\n"

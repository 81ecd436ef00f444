"""An import is all or nothing: an exception or a SIGKILL mid-write leaves no rows of it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import shapely
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cim.db.copy import copy_rows
from cim.db.models import Dataset
from cim.errors import ImportFailed
from cim.services.datasets import DatasetSource
from importers.base import WriteOutcome, run_import

SLOW_IMPORT = r"""
import sys, time, shapely
from cim.db.engine import make_engine
from cim.db.copy import copy_rows
from cim.services.datasets import DatasetSource
from importers.base import WriteOutcome, run_import

def write(session, dataset):
    def rows():
        for i in range(10_000_000):
            if i == 5000:
                print("WRITING", flush=True)
            if i > 5000:
                time.sleep(0.001)
            yield [dataset.id, f"N{i}", "JS", "junction",
                   shapely.to_wkb(shapely.set_srid(shapely.Point(i, 0, 0), 4547), hex=True,
                                  include_srid=True), "{}"]
    copy_rows(session, table="pipe_node",
              columns=["dataset_id", "code", "utility", "kind", "geom", "attrs"], rows=rows())
    return WriteOutcome(counts={})

source = DatasetSource(kind="pipes", name="killed", source_name="killed.csv",
                       source_sha256="f" * 64)
run_import(make_engine(sys.argv[1]), source=source, write=write)
"""


def _counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        datasets = conn.execute(
            text("SELECT count(*) FROM dataset WHERE name = 'killed'")
        ).scalar_one()
        nodes = conn.execute(
            text("SELECT count(*) FROM pipe_node WHERE code LIKE 'N%'")
        ).scalar_one()
    return int(datasets), int(nodes)


def test_sigkill_while_writing_leaves_nothing(engine: Engine, database_url: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", SLOW_IMPORT, database_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "WRITING", child.stderr.read() if child.stderr else ""
        time.sleep(0.3)  # well inside the COPY
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    assert _counts(engine) == (0, 0)
    # The server has noticed the dead client and rolled back: nothing is left holding locks.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            busy = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' "
                    "OR (state = 'active' AND query LIKE 'COPY pipe_node%')"
                )
            ).scalar_one()
        if busy == 0:
            break
        time.sleep(0.2)
    assert busy == 0


def test_exception_in_writer_rolls_back(engine: Engine, clean_tables: None) -> None:
    def write(session: Session, dataset: Dataset) -> WriteOutcome:
        copy_rows(
            session,
            table="pipe_node",
            columns=["dataset_id", "code", "utility", "kind", "geom", "attrs"],
            rows=[
                [
                    dataset.id,
                    "N1",
                    "JS",
                    "junction",
                    shapely.to_wkb(
                        shapely.set_srid(shapely.Point(1, 2, 3), 4547), hex=True, include_srid=True
                    ),
                    "{}",
                ]
            ],
        )
        raise ImportFailed("bad row 2")

    source = DatasetSource(kind="pipes", name="killed", source_name="x.csv", source_sha256="e" * 64)
    with pytest.raises(ImportFailed, match="bad row 2"):
        run_import(engine, source=source, write=write)
    assert _counts(engine) == (0, 0)


def test_database_refusal_becomes_import_failed(engine: Engine, clean_tables: None) -> None:
    def write(session: Session, dataset: Dataset) -> WriteOutcome:
        wrong_srid = shapely.to_wkb(
            shapely.set_srid(shapely.Point(1, 2, 3), 4326), hex=True, include_srid=True
        )
        copy_rows(
            session,
            table="pipe_node",
            columns=["dataset_id", "code", "utility", "kind", "geom", "attrs"],
            rows=[[dataset.id, "N1", "JS", "junction", wrong_srid, "{}"]],
        )
        return WriteOutcome(counts={})

    source = DatasetSource(kind="pipes", name="killed", source_name="y.csv", source_sha256="d" * 64)
    with pytest.raises(ImportFailed, match=r"y\.csv: the database refused"):
        run_import(engine, source=source, write=write)
    assert _counts(engine) == (0, 0)


def test_same_file_twice_is_a_noop(engine: Engine, clean_tables: None) -> None:
    calls = []

    def write(session: Session, dataset: Dataset) -> WriteOutcome:
        calls.append(dataset.id)
        return WriteOutcome(counts={"pipe_node": 0})

    source = DatasetSource(kind="pipes", name="twice", source_name="t.csv", source_sha256="c" * 64)
    first = run_import(engine, source=source, write=write)
    second = run_import(engine, source=source, write=write)
    third = run_import(engine, source=source, write=write, replace=True)
    assert first.created and not second.created and third.created
    assert second.dataset.id == first.dataset.id
    # pipes are versioned: a replace is the dataset's next version, not a new dataset
    assert third.dataset.id == first.dataset.id and third.replaced_id is None
    assert len(calls) == 2 and first.dataset.status == "ready"

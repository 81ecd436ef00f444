"""Helpers shared by benches: a database to measure on (embedded, throwaway, or given), and
where the shared sample files are."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine

from cim.db import migrate
from cim.db.embedded import EmbeddedCluster
from cim.db.engine import make_engine

SHARED_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
"""``../shared/samples`` next to the checkout (the same folder the tests read)."""


@contextmanager
def bench_database(url: str | None, *, srid: int = 4547) -> Iterator[Engine]:
    """An engine on a migrated database: ``url`` if given, else a throwaway embedded cluster."""
    folder: Path | None = None
    cluster: EmbeddedCluster | None = None
    if url is None:
        folder = Path(tempfile.mkdtemp(prefix="cim-bench-", dir="/tmp"))
        folder.chmod(0o755)
        cluster = EmbeddedCluster(folder)
        cluster.start()
        url = cluster.url()
    engine = make_engine(url)
    try:
        migrate.upgrade(engine, srid=srid, default_srid=srid)
        yield engine
    finally:
        engine.dispose()
        if cluster is not None:
            cluster.stop()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

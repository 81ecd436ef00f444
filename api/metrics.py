"""Prometheus metrics of the API: what is defined, how hot paths record it, how a scrape reads it.

Requests are counted by route *template* (``/collections/{collectionId}/items``, never the raw
path: a path per feature id would make a series per feature), method and status; latency is a
histogram by route and method; in-flight requests, shed requests (the bulkhead's 503 per lane,
the anonymous rate limit's 429), database pool use, import job queue, durations and rows/s.
Tile builds run in ``cim tiles build``, never in the API, so what the API knows of them is what
the last build recorded in ``tileset`` (its seconds and time), read from the database per scrape.

``cim serve --workers N`` runs N processes. ``cim serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at
a fresh folder under the data dir before the workers start; prometheus-client then keeps every
worker's values in memory-mapped files there and :func:`scrape` sums them, so any worker answers
for all. Gauges of live state (in flight, pool, job queue) count only live workers: files of
dead workers are dropped at scrape. Without the variable (tests, a bare ``uvicorn``) each
process answers for itself.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import QueuePool

from cim.processes import process_alive

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# No ``*_created`` series: they would double a scrape, and multiprocess mode has none.
disable_created_metrics()  # type: ignore[no-untyped-call]
LOCAL = CollectorRegistry(auto_describe=True)
"""This process's metrics, scraped as they are when not in multiprocess mode."""

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
JOB_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 10800.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods counted by name; any other is ``OTHER`` (a client may send any token)."""

REQUESTS = Counter(
    "cim_http_requests",
    "HTTP requests answered, by method, route template ('unmatched' when none) and status.",
    ["method", "route", "status"],
    registry=LOCAL,
)
LATENCY = Histogram(
    "cim_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by method and route template.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
    registry=LOCAL,
)
IN_FLIGHT = Gauge(
    "cim_http_requests_in_flight",
    "Requests being served now.",
    multiprocess_mode="livesum",
    registry=LOCAL,
)
SHED = Counter(
    "cim_http_requests_shed",
    "Requests refused to protect the service: reason rate_limit (429, anonymous callers), "
    "heavy or analysis (503 Overloaded, the bulkhead lane that was full).",
    ["reason"],
    registry=LOCAL,
)
POOL_CHECKED_OUT = Gauge(
    "cim_db_pool_checked_out",
    "Database connections in use, by engine (primary, read); may pass the size by the overflow.",
    ["engine"],
    multiprocess_mode="livesum",
    registry=LOCAL,
)
POOL_SIZE = Gauge(
    "cim_db_pool_size",
    "Connections a database pool keeps open (its size, without overflow), by engine.",
    ["engine"],
    multiprocess_mode="livesum",
    registry=LOCAL,
)
JOB_DURATION = Histogram(
    "cim_import_job_duration_seconds",
    "Duration of import jobs, by dataset kind and outcome (succeeded, failed).",
    ["kind", "outcome"],
    buckets=JOB_BUCKETS,
    registry=LOCAL,
)
IMPORT_ROWS = Counter(
    "cim_import_rows",
    "Rows written by import jobs, by dataset kind.",
    ["kind"],
    registry=LOCAL,
)
IMPORT_SECONDS = Counter(
    "cim_import_seconds",
    "Seconds spent by the import jobs that wrote rows, by kind (rows/s = rows / seconds).",
    ["kind"],
    registry=LOCAL,
)
IMPORT_RATE = Gauge(
    "cim_import_rows_per_second",
    "Rows per second of the last import job of each kind that wrote rows.",
    ["kind"],
    multiprocess_mode="mostrecent",
    registry=LOCAL,
)

ROW_COUNTS = {
    "terrain": ("terrain_raster",),
    "pipes": ("pipe_node", "pipe_segment"),
    "ifc": ("building", "building_storey", "building_element"),
    "shelters": ("shelters",),
    "population": ("units",),
    "hazards": ("zones",),
    "roads": ("segments",),
}
"""Which entries of a dataset's ``counts`` are rows written, by kind (the others are tallies:
by class, length, capacity). A new kind adds its entry; until then its rows count 0."""


def count_shed(reason: str) -> None:
    """A request refused by the rate limit (``rate_limit``) or a bulkhead lane."""
    SHED.labels(reason).inc()


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """One answered request (the telemetry middleware, once per request)."""
    method = method if method in METHODS else "OTHER"
    REQUESTS.labels(method, route, str(status)).inc()
    LATENCY.labels(method, route).observe(seconds)


def sample_pools(state: Any) -> None:
    """Record the pools' use now (after each request and at each scrape): the gauges are the
    values of this process, summed over the workers at scrape."""
    primary: Engine | None = getattr(state, "engine", None)
    read: Engine | None = getattr(state, "read_engine", None)
    engines = [("primary", primary)] + ([("read", read)] if read is not primary else [])
    for name, engine in engines:
        pool = engine.pool if engine is not None else None
        if isinstance(pool, QueuePool):
            POOL_CHECKED_OUT.labels(name).set(pool.checkedout())
            POOL_SIZE.labels(name).set(pool.size())


def rows_written(kind: str, results: Iterable[dict[str, Any]]) -> int:
    """Rows the imports of a job wrote (0 for a file imported before: nothing was written).

    Examples
    --------
    >>> rows_written("pipes", [{"created": True, "dataset": {"counts": {
    ...     "pipe_node": 3, "pipe_segment": 2, "utilities": {"JS": 2}}}}])
    5
    """
    keys = ROW_COUNTS.get(kind, ())
    total = 0
    for result in results:
        if not result.get("created"):
            continue
        counts = (result.get("dataset") or {}).get("counts") or {}
        total += sum(int(counts[key]) for key in keys if isinstance(counts.get(key), int))
    return total


def job_finished(
    kind: str, outcome: str, seconds: float, results: Iterable[dict[str, Any]] = ()
) -> None:
    """An import job ended: its duration, and for one that wrote rows its rows and rate."""
    JOB_DURATION.labels(kind, outcome).observe(seconds)
    rows = rows_written(kind, results)
    if rows and seconds > 0:
        IMPORT_ROWS.labels(kind).inc(rows)
        IMPORT_SECONDS.labels(kind).inc(seconds)
        IMPORT_RATE.labels(kind).set(rows / seconds)


class TilesetCollector(Collector):
    """The last build of every tile layer as recorded in ``tileset``, read at scrape time."""

    def __init__(self, engine: Engine | None) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        if self.engine is None:
            return
        try:
            with self.engine.connect() as connection:
                rows = connection.execute(
                    text("SELECT layer, stats, built_at FROM tileset ORDER BY layer")
                ).all()
        except SQLAlchemyError:
            return  # the database is down: /health says so; the other metrics still answer
        seconds = GaugeMetricFamily(
            "cim_tileset_build_seconds",
            "Seconds the last build of a tile layer took (cim tiles build, recorded in tileset).",
            labels=["layer"],
        )
        built = GaugeMetricFamily(
            "cim_tileset_built_timestamp_seconds",
            "When the last build of a tile layer finished (Unix time).",
            labels=["layer"],
        )
        for row in rows:
            took = (row.stats or {}).get("seconds")
            if isinstance(took, int | float):
                seconds.add_metric([row.layer], float(took))
            built.add_metric([row.layer], row.built_at.timestamp())
        yield seconds
        yield built


class JobsCollector(Collector):
    """Import jobs queued and running, counted in ``import_job`` at scrape time: the queue is
    shared by every ``cim serve`` and ``cim worker`` process, so no process's own count is it."""

    def __init__(self, engine: Engine | None) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        if self.engine is None:
            return
        try:
            with self.engine.connect() as connection:
                rows = connection.execute(
                    text(
                        "SELECT status, count(*) FROM import_job WHERE task = 'import'"
                        " AND status IN ('queued', 'running') GROUP BY status"
                    )
                ).all()
        except SQLAlchemyError:
            return  # the database is down: /health says so; the other metrics still answer
        counts = {str(status): int(count) for status, count in rows}
        for status, help_text in (
            ("queued", "Import jobs waiting for a job worker."),
            ("running", "Import jobs running now."),
        ):
            yield GaugeMetricFamily(
                f"cim_import_jobs_{status}", help_text, value=float(counts.get(status, 0))
            )


class _Scrape(Collector):
    """Several collectors read as one (what :func:`generate_latest` takes)."""

    def __init__(self, *sources: Collector) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        for source in self.sources:
            yield from source.collect()


def multiprocess_dir() -> Path | None:
    """The folder of the workers' value files, when ``cim serve`` set one."""
    folder = os.environ.get(MULTIPROCESS_DIR_ENV)
    return Path(folder) if folder else None


WORKER_FILE = re.compile(r"gauge_live\w+_(\d+)\.db")


def forget_dead_workers(folder: Path) -> None:
    """Drop the live-gauge files of workers that are gone (killed, restarted): their requests
    in flight and pool connections are not in flight any more."""
    for file in folder.glob("gauge_live*.db"):
        match = WORKER_FILE.fullmatch(file.name)
        if match and not process_alive(int(match.group(1))):
            mark_process_dead(int(match.group(1)), str(folder))  # type: ignore[no-untyped-call]


def scrape(state: Any) -> bytes:
    """The text exposition of every metric: all workers' when in multiprocess mode."""
    sample_pools(state)
    folder = multiprocess_dir()
    engine = getattr(state, "read_engine", None)
    tilesets, jobs = TilesetCollector(engine), JobsCollector(engine)
    if folder is None:
        return generate_latest(_Scrape(LOCAL, tilesets, jobs))
    forget_dead_workers(folder)
    workers = CollectorRegistry()
    MultiProcessCollector(workers, path=str(folder))  # type: ignore[no-untyped-call]
    return generate_latest(_Scrape(workers, tilesets, jobs))

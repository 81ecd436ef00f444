"""``cim serve``: run the HTTP API (and later the viewer) with uvicorn."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Annotated, Any

import typer

from cim.config import CimSettings
from cim.db.connect import database_url
from cim.errors import ConfigError
from cim.logs import log_config
from cim.services.sensors.mqtt_broker import LocalBroker
from cim.services.sensors.mqtt_ingest import (
    MQTT_BATCH_ENV,
    MQTT_PUBLISH_ENV,
    MQTT_URL_ENV,
    broker_address,
)
from cli import analysis_processes
from cli.context import console, engine_scope, load_settings

METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
ANALYSIS_SOCKET_ENV = "CIM_ANALYSIS_SOCKET"


def fresh_metrics_dir(data_dir: Path, port: int) -> Path:
    """An empty folder for the workers' metric files (``api.metrics``: one scrape sums every
    worker). Per port, so two servers on one data dir keep apart; emptied at each start, so
    counters start from zero with the server."""
    folder = (data_dir / "metrics" / str(port)).resolve()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes.")] = 1,
    reload: Annotated[bool, typer.Option(help="Reload on code changes (development).")] = False,
    healthcheck_timeout: Annotated[
        int,
        typer.Option(
            min=1,
            help="With --workers: seconds a worker may take to answer the supervisor's ping "
            "before it is killed and restarted.",
        ),
    ] = 60,
    mqtt: Annotated[
        bool,
        typer.Option(
            "--mqtt",
            help="Ingest SensorThings observations over MQTT from a local Mosquitto, started "
            "on 127.0.0.1 (port 1883 if free) with its config and data in the data dir.",
        ),
    ] = False,
    mqtt_url: Annotated[
        str | None,
        typer.Option(help="Ingest over MQTT from this broker instead (mqtt://host:port)."),
    ] = None,
    mqtt_batch: Annotated[
        int,
        typer.Option(min=1, max=50_000, help="MQTT messages per write (flushed every 200 ms)."),
    ] = 2000,
    mqtt_publish: Annotated[
        bool,
        typer.Option(help="Publish stored observations back on their topic (as FROST does)."),
    ] = True,
    analysis_processes: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=64,
            help="Processes that run the /analysis/ requests, niced, apart from the API "
            "workers (default CIM_ANALYSIS_PROCESSES, else as many as --workers; 0: analyses "
            "run in the API workers).",
        ),
    ] = None,
) -> None:
    """Serve the API on HOST:PORT; the database is started and migrated first when embedded."""
    import uvicorn

    settings = load_settings()
    analyses = 0 if reload else _analysis_count(settings, analysis_processes, workers)
    broker = _mqtt(settings.data_dir, mqtt, mqtt_url, mqtt_batch, workers)
    os.environ[MQTT_PUBLISH_ENV] = "1" if mqtt_publish else "0"
    try:
        _run(uvicorn, settings, host, port, workers, reload, healthcheck_timeout, analyses)
    finally:
        if broker is not None:
            broker.stop()


def _mqtt(
    data_dir: Path, local: bool, url: str | None, batch: int, workers: int
) -> LocalBroker | None:
    """Where the API ingests MQTT from (``CIM_MQTT_URL`` for the app, ``api.mqtt``); the local
    broker when this command started one."""
    if not local and url is None:
        return None
    if workers > 1:
        raise ConfigError("--mqtt takes one worker: one persistent MQTT session, one consumer")
    broker = None
    if url is None:
        broker = LocalBroker(data_dir)
        url = broker.start()
    broker_address(url)  # refuses a URL that is not mqtt://host:port
    os.environ[MQTT_URL_ENV] = url
    os.environ[MQTT_BATCH_ENV] = str(batch)
    console.print(f"MQTT: subscribed to v1.1/Datastreams(ID)/Observations on {url}")
    return broker


def _analysis_count(settings: CimSettings, option: int | None, workers: int) -> int:
    """How many analysis processes: the option, else the setting, else one per API worker."""
    if option is not None:
        return option
    if settings.analysis_processes is not None:
        return settings.analysis_processes
    return workers


def _run(
    uvicorn: Any,
    settings: CimSettings,
    host: str,
    port: int,
    workers: int,
    reload: bool,
    healthcheck_timeout: int,
    analyses: int,
) -> None:
    with engine_scope(settings):
        pass  # starts + migrates the embedded database once, before the workers fork
    # Workers reach the same database without each managing the cluster.
    os.environ["CIM_DATABASE_URL"] = database_url(settings, start=False)
    os.environ["CIM_DATA_DIR"] = str(settings.data_dir)
    # Before uvicorn imports the app: prometheus-client picks its mode when first imported.
    os.environ[METRICS_DIR_ENV] = str(fresh_metrics_dir(settings.data_dir, port))
    group = None
    if analyses:
        group = analysis_processes.start(analyses, settings.analysis_nice, healthcheck_timeout)
        os.environ[ANALYSIS_SOCKET_ENV] = str(group.socket)
        console.print(f"analyses: {analyses} process(es), nice +{settings.analysis_nice}")
    console.print(f"cim API on http://{host}:{port}/ (health: /health)")
    try:
        _run_api(uvicorn, settings, host, port, workers, reload, healthcheck_timeout)
    finally:
        if group is not None:
            group.stop()


def _run_api(
    uvicorn: Any,
    settings: CimSettings,
    host: str,
    port: int,
    workers: int,
    reload: bool,
    healthcheck_timeout: int,
) -> None:
    uvicorn.run(
        "api.main:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers if not reload else None,
        reload=reload,
        log_level=settings.log_level.lower(),
        # Our formatter (JSON lines or text, CIM_LOG_FORMAT) in every worker; the access line
        # is the app's own (api.telemetry: request id, route, duration, key id), not uvicorn's.
        log_config=log_config(settings.log_level, settings.log_format),
        access_log=False,
        proxy_headers=True,
        # uvicorn's default (5 s) kills a worker that is merely busy: on a loaded 2-core machine
        # a worker building a 1M-segment network graph misses the ping, is killed with the
        # requests it holds, restarts and builds the graph again (bench/load.py saw it).
        timeout_worker_healthcheck=healthcheck_timeout,
    )

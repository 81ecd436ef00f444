"""Bench: SensorThings ingestion over HTTP (CreateObservations dataArray) and a 30-day chart.

1. ``cim serve`` (one uvicorn worker, loopback) on a throwaway database; ``--clients`` aiohttp
   clients each POST dataArray blocks of ``--rows`` observations for ``--seconds`` seconds.
   Every URL answered is counted; afterwards the stored count must equal it (0 lost).
2. One datastream with a year of 1-minute data (525,600 rows) written by
   ``insert_observations`` (COPY + roll-ups); a 30-day chart (``datastream_series``, answered
   from the hourly roll-ups) is timed against the baseline of the same chart aggregated from
   the raw rows (GROUP BY hour over 43,200 rows).

3. MQTT: first the load generator alone (:mod:`bench.mqtt_load`, QoS 1 PUBLISHes written in
   bulk on a raw socket) into a Mosquitto with no subscriber, for up to 5 s as fast as the
   broker acks: it must be well above the goal, or the bench measures the publisher. Then
   ``cim serve --mqtt`` (local Mosquitto started by the server, batches of ``--mqtt-batch``);
   the generator sends ``--mqtt-rate`` observations/s for ``--seconds``, in messages of
   ``--per-message`` observations (1 = one SensorThings entity per message, as devices send;
   more = a gateway's JSON array), QoS 1. The rate is what was stored divided by the time
   until the last one was stored; lost = acknowledged by the broker - stored. The ingester's
   stats line (counts; check/write/ack milliseconds summed over its batches) is printed.
   Meanwhile every 0.5 s an observation on a second datastream crosses a threshold rule (up,
   then down): publish -> the alarm event on ``GET /alarms/stream`` is timed (p50, p99).

Goals (issue 20): >= 20,000 observations/s ingested with 0 lost; 30-day chart <= 100 ms;
p99 publish -> alarm on the SSE stream <= 1 s.
Usage: ``python bench/sensors.py [--seconds 60] [--clients 4] [--rows 2000] [--database-url URL]
[--skip-http] [--skip-mqtt] [--skip-chart] [--mqtt-rate 20000] [--per-message 50]
[--mqtt-batch 5000] [--no-publish]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.api import free_port, start, stop
from bench.common import bench_database
from bench.mqtt_load import Publisher, publish_paced
from cim.db.models import Datastream, ObservedProperty, Sensor, Thing
from cim.services.access import create_key
from cim.services.sensors.mqtt_broker import LocalBroker
from cim.services.sensors.mqtt_ingest import broker_address
from cim.services.sensors.mqtt_messages import observation_topic
from cim.services.sensors.observations import ObservationRow, insert_observations
from cim.services.sensors.series import datastream_series

ROOT = Path(__file__).resolve().parents[1]
GOAL_RATE = 20_000.0
GOAL_CHART_MS = 100.0
GOAL_ALARM_MS = 1000.0
ALARM_EVERY_S = 0.5
UNIT = {"name": "percent of LEL", "symbol": "%LEL", "definition": "http://unitsofmeasure.org"}


def make_datastream(engine: Engine, name: str) -> int:
    """A thing, sensor and methane datastream; returns the datastream id."""
    with Session(engine) as session, session.begin():
        prop = session.query(ObservedProperty).filter_by(name="Methane concentration").one()
        thing = Thing(name=name, description="bench", properties={})
        sensor = Sensor(name="IR", description="bench", encoding_type="text/plain",
                        sensor_metadata="-", properties={})  # fmt: skip
        session.add_all([thing, sensor])
        session.flush()
        stream = Datastream(name=name, description="bench", observation_type="OM_Measurement",
                            unit_of_measurement=UNIT, thing_id=thing.id, sensor_id=sensor.id,
                            observed_property_id=prop.id, properties={})  # fmt: skip
        session.add(stream)
        session.flush()
        return int(stream.id)


async def _client(
    session: aiohttp.ClientSession, url: str, stream: int, rows: int, offset: int, until: float
) -> tuple[int, int, list[float]]:
    """Post blocks until ``until``; returns (rows acknowledged, rows refused, latencies)."""
    start_time = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(days=offset)
    acknowledged = refused = sent = 0
    latencies = []
    while time.monotonic() < until:
        data = [
            [(start_time + timedelta(seconds=sent + i)).isoformat(), float((sent + i) % 997)]
            for i in range(rows)
        ]
        body = [{"Datastream": {"@iot.id": stream}, "components": ["phenomenonTime", "result"],
                 "dataArray": data}]  # fmt: skip
        began = time.perf_counter()
        async with session.post(url, json=body) as answer:
            links = await answer.json()
            if answer.status != 201:
                raise RuntimeError(f"HTTP {answer.status}: {links}")
        latencies.append(time.perf_counter() - began)
        acknowledged += sum(1 for link in links if link != "error")
        refused += sum(1 for link in links if link == "error")
        sent += rows
    return acknowledged, refused, latencies


async def drive(url: str, key: str, stream: int, args: argparse.Namespace) -> dict[str, Any]:
    until = time.monotonic() + args.seconds
    headers = {"X-API-Key": key}
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(120)) as http:
        began = time.perf_counter()
        results = await asyncio.gather(
            *(_client(http, url, stream, args.rows, i, until) for i in range(args.clients))
        )
        elapsed = time.perf_counter() - began
    latencies = [s for r in results for s in r[2]]
    return {
        "acknowledged": sum(r[0] for r in results),
        "refused": sum(r[1] for r in results),
        "seconds": elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * float(np.percentile(latencies, 99)),
    }


def http_ingestion(engine: Engine, args: argparse.Namespace) -> None:
    stream = make_datastream(engine, "http")
    with Session(engine) as session, session.begin():
        _, key = create_key(session, name="bench", role="analyst")
    url = engine.url.render_as_string(hide_password=False)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIM_")}
    env.update({"CIM_DATABASE_URL": url, "CIM_DATA_DIR": tempfile.mkdtemp(prefix="cim-bench-"),
                "CIM_LOG_LEVEL": "WARNING", "CIM_ANONYMOUS_RATE_PER_MINUTE": "0"})  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    log = Path(env["CIM_DATA_DIR"]) / "server.log"
    server = start([str(ROOT / ".venv" / "bin" / "cim"), "serve", "--port", str(port)], env,
                   f"{base}/sta/v1.1", log)  # fmt: skip
    try:
        found = asyncio.run(drive(f"{base}/sta/v1.1/CreateObservations", key, stream, args))
    finally:
        stop(server)
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT count(*) FROM sensor_observation WHERE datastream_id = :d"), {"d": stream}
        ).scalar_one()
    rate = found["acknowledged"] / found["seconds"]
    lost = found["acknowledged"] - stored
    print(f"HTTP dataArray: {found['acknowledged']:,} observations in {found['seconds']:.1f} s"
          f" = {rate:,.0f}/s (goal >= {GOAL_RATE:,.0f}/s, ratio {rate / GOAL_RATE:.2f});"
          f" stored {stored:,}, lost {lost}, refused {found['refused']};"
          f" request p50 {found['p50_ms']:.0f} ms, p99 {found['p99_ms']:.0f} ms"
          f" ({args.clients} clients x {args.rows} rows)")  # fmt: skip


def _serve(
    engine: Engine, port: int, extra: list[str], level: str = "WARNING"
) -> tuple[Any, dict[str, str]]:
    """``cim serve`` on the bench database (quiet logs); returns the process and its env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIM_")}
    env.update({"CIM_DATABASE_URL": engine.url.render_as_string(hide_password=False),
                "CIM_DATA_DIR": tempfile.mkdtemp(prefix="cim-bench-"), "CIM_LOG_LEVEL": level,
                "CIM_ANONYMOUS_RATE_PER_MINUTE": "0"})  # fmt: skip
    log = Path(env["CIM_DATA_DIR"]) / "server.log"
    command = [str(ROOT / ".venv" / "bin" / "cim"), "serve", "--port", str(port), *extra]
    return start(command, env, f"http://127.0.0.1:{port}/sta/v1.1", log), env


def _sse(url: str, arrivals: dict[int, float], ready: threading.Event) -> None:
    """Record when each alarm event arrives, keyed by the observation value that caused it."""
    import httpx

    try:
        with httpx.stream("GET", url, timeout=None) as answer:
            ready.set()
            for line in answer.iter_lines():
                if line.startswith("data: "):
                    event = json.loads(line[6:])
                    if event["event"] == "raised":
                        arrivals.setdefault(int(event["value"]), time.monotonic())
    except httpx.HTTPError:
        pass  # the server stopped


def _observations(stream: int, per_message: int) -> Any:
    """The bench's messages: ``per_message`` observations of ``stream``, one ms apart."""
    base = datetime(2026, 10, 1, tzinfo=UTC)
    topic = observation_topic(stream)

    def message(sent: int) -> tuple[str, bytes, int]:
        items = [{"phenomenonTime": (base + timedelta(milliseconds=sent + i)).isoformat(),
                  "result": float((sent + i) % 997) / 100}
                 for i in range(per_message)]  # fmt: skip
        return topic, json.dumps(items[0] if per_message == 1 else items).encode(), per_message

    return message


def publisher_alone(args: argparse.Namespace) -> float:
    """The load generator's own rate into a Mosquitto with no subscriber (observations/s)."""
    folder = Path(tempfile.mkdtemp(prefix="cim-bench-mqtt-"))
    broker = LocalBroker(folder, port=free_port())
    host, port = broker_address(broker.start())
    try:
        publisher = Publisher(host, port, "bench-publisher-alone")
        began = time.monotonic()
        message = _observations(1, args.per_message)
        sent = publish_paced(publisher, min(5.0, args.seconds), 0, message)
        publisher.drain(30)
        rate = publisher.acknowledged / (time.monotonic() - began)
        publisher.close()
    finally:
        broker.stop()
        shutil.rmtree(folder, ignore_errors=True)
    print(f"MQTT publisher alone (no subscriber): {sent:,} observations acknowledged by the"
          f" broker at {rate:,.0f}/s ({args.per_message} per message, QoS 1)")  # fmt: skip
    return rate


def _stages(log: str) -> str:
    """The ingester's last stats line (counts and per-stage milliseconds) from the server log."""
    lines = [line for line in log.splitlines() if "MQTT ingestion:" in line]
    return lines[-1].split("MQTT ingestion: ", 1)[1] if lines else "(no stats logged)"


def mqtt_ingestion(engine: Engine, args: argparse.Namespace) -> None:
    stream, alarm_stream = make_datastream(engine, "mqtt"), make_datastream(engine, "mqtt alarm")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO sensor_alarm_rule (name, kind, datastream_id, alarm)"
                          " VALUES ('bench', 'threshold', :d, 0)"),
                     {"d": alarm_stream})  # fmt: skip
    port = free_port()
    extra = ["--mqtt", "--mqtt-batch", str(args.mqtt_batch)]
    server, env = _serve(engine, port, extra + ([] if args.publish else ["--no-mqtt-publish"]),
                         level="INFO")  # fmt: skip
    alarms: dict[int, float] = {}
    alarm_topic = observation_topic(alarm_stream)

    def tick(elapsed: float) -> None:
        # every ALARM_EVERY_S an observation on the alarm stream: odd ticks cross the
        # threshold (raise: timed, the value names it), even ones clear it
        count = int(elapsed / ALARM_EVERY_S) + 1
        while ticks[0] < count:
            ticks[0] += 1
            number = ticks[0]
            value = 1000 + number if number % 2 else -(1000 + number)
            if value > 0:
                alarms[value] = time.monotonic()
            body = {"phenomenonTime": datetime.now(UTC).isoformat(), "result": value}
            publisher.send(publisher.packet(alarm_topic, json.dumps(body).encode(), 0))

    ticks = [0]
    try:
        log = Path(env["CIM_DATA_DIR"]) / "server.log"
        broker = json.loads((Path(env["CIM_DATA_DIR"]) / "mqtt" / "broker.json").read_text())
        arrivals: dict[int, float] = {}
        ready = threading.Event()
        threading.Thread(target=_sse, args=(f"http://127.0.0.1:{port}/alarms/stream", arrivals,
                                            ready), daemon=True).start()  # fmt: skip
        ready.wait(10)
        publisher = Publisher("127.0.0.1", broker["port"], "bench-publisher")
        began = time.monotonic()
        publish_paced(publisher, args.seconds, args.mqtt_rate,
                      _observations(stream, args.per_message), tick)  # fmt: skip
        publisher.drain(120)
        sent = publisher.acknowledged
        publisher.close()
        stored, last_change, last_stored = 0, time.monotonic(), -1
        while stored < sent and time.monotonic() - last_change < 30:
            time.sleep(0.05)
            with engine.connect() as conn:
                stored = conn.execute(text("SELECT count(*) FROM sensor_observation"
                                           " WHERE datastream_id = :d"),
                                      {"d": stream}).scalar_one()  # fmt: skip
            if stored != last_stored:
                last_change, last_stored = time.monotonic(), stored
        seconds = last_change - began
        time.sleep(1.5)
    finally:
        stop(server)
        stages = _stages(log.read_text()) if log.exists() else "(no log)"
        shutil.rmtree(env["CIM_DATA_DIR"], ignore_errors=True)
    rate = stored / seconds
    delays = [1000 * (arrivals[v] - at) for v, at in alarms.items() if v in arrivals]
    p50 = statistics.median(delays) if delays else float("nan")
    p99 = float(np.percentile(delays, 99)) if delays else float("nan")
    print(f"MQTT: {sent:,} observations acknowledged by the broker in {args.seconds:.0f} s"
          f" ({args.per_message} per message, QoS 1, published back: {args.publish}),"
          f" all stored after {seconds:.1f} s"
          f" = {rate:,.0f}/s (goal >= {GOAL_RATE:,.0f}/s, ratio {rate / GOAL_RATE:.2f});"
          f" stored {stored:,}, lost {sent - stored}")  # fmt: skip
    print(f"MQTT ingester stages: {stages}")
    print(f"publish -> alarm on SSE: {len(delays)} of {len(alarms)} alarms raised seen,"
          f" p50 {p50:.0f} ms, p99 {p99:.0f} ms (goal <= {GOAL_ALARM_MS:.0f} ms,"
          f" ratio {p99 / GOAL_ALARM_MS:.2f}); load average {os.getloadavg()}")  # fmt: skip


def chart_query(engine: Engine) -> None:
    stream = make_datastream(engine, "year")
    start_time = datetime(2025, 12, 1, tzinfo=UTC)
    minutes = 365 * 1440
    values = (
        20
        + 5 * np.sin(np.arange(minutes) * 2 * np.pi / 1440)
        + np.random.default_rng(1).normal(0, 1, minutes)
    )
    began = time.perf_counter()
    for at in range(0, minutes, 50_000):
        rows = [ObservationRow(stream, start_time + timedelta(minutes=m), float(values[m]))
                for m in range(at, min(minutes, at + 50_000))]  # fmt: skip
        insert_observations(engine, rows)
    load_s = time.perf_counter() - began
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE sensor_observation")
        conn.exec_driver_sql("ANALYZE sensor_observation_hourly")
    window_start = start_time + timedelta(days=200)
    window_end = window_start + timedelta(days=30)
    timings, baseline = [], []
    for _ in range(30):
        with Session(engine) as session:
            began = time.perf_counter()
            series = datastream_series(session=session, datastream_id=stream,
                                       start=window_start, end=window_end)  # fmt: skip
            timings.append(1000 * (time.perf_counter() - began))
            began = time.perf_counter()
            raw = session.execute(
                text("SELECT date_trunc('hour', phenomenon_time), count(*), min(result),"
                     " max(result), avg(result) FROM sensor_observation WHERE datastream_id = :d"
                     " AND phenomenon_time >= :s AND phenomenon_time < :e GROUP BY 1 ORDER BY 1"),
                {"d": stream, "s": window_start, "e": window_end},
            ).all()  # fmt: skip
            baseline.append(1000 * (time.perf_counter() - began))
    assert len(series.points) == len(raw) == 720 and series.resolution == "hour"
    median, base = statistics.median(timings), statistics.median(baseline)
    print(
        f"year of 1-minute data: {minutes:,} rows written by insert_observations in"
        f" {load_s:.1f} s ({minutes / load_s:,.0f}/s with roll-ups)"
    )
    print(f"30-day chart from hourly roll-ups: median {median:.1f} ms, p95"
          f" {float(np.percentile(timings, 95)):.1f} ms (goal <= {GOAL_CHART_MS:.0f} ms);"
          f" baseline GROUP BY over raw rows {base:.1f} ms"
          f" (ratio {base / median:.1f}x)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--database-url")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-mqtt", action="store_true")
    parser.add_argument("--skip-chart", action="store_true")
    parser.add_argument("--mqtt-rate", type=float, default=20_000.0)
    parser.add_argument("--per-message", type=int, default=50)
    parser.add_argument("--mqtt-batch", type=int, default=5000)
    parser.add_argument(
        "--no-publish",
        dest="publish",
        action="store_false",
        help="cim serve --no-mqtt-publish (nothing published back)",
    )
    args = parser.parse_args()
    with bench_database(args.database_url) as engine:
        if not args.skip_http:
            http_ingestion(engine, args)
        if not args.skip_mqtt:
            publisher_alone(args)
            mqtt_ingestion(engine, args)
        if not args.skip_chart:
            chart_query(engine)


if __name__ == "__main__":
    main()

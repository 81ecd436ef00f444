"""MQTT ingestion with a real Mosquitto: only valid observations are stored, refusals are
logged and counted, stored observations are published back (and not ingested again), and a
``cim serve --mqtt-url`` killed with SIGKILL mid-stream loses nothing once restarted (QoS 1
redelivery to the persistent session, redelivered duplicates skipped)."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text

from cim.services.sensors.mqtt_broker import LocalBroker
from cim.services.sensors.mqtt_ingest import MqttIngester, connect_client
from cim.services.sensors.mqtt_messages import observation_topic
from tests.api.server import free_port
from tests.cim.sensor_streams import drop_streams, make_datastream, stored_count
from tests.conftest import CIM, cli_env

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists(),
    reason="mosquitto is not installed (scripts/bootstrap installs it)",
)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    local = LocalBroker(tmp_path_factory.mktemp("mqtt"), port=free_port())
    yield local.start()
    local.stop()


@pytest.fixture
def stream(engine: Engine) -> Iterator[int]:
    made = make_datastream(engine, f"mqtt {time.monotonic_ns()}", utility=None)
    yield made
    drop_streams(engine, [made])


def wait_for(condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def observation(at: datetime, value: float) -> bytes:
    return json.dumps({"phenomenonTime": at.isoformat(), "result": value}).encode()


def test_valid_stored_malformed_refused_published_back(
    broker: str, stream: int, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cim.sensors.mqtt")
    follower = connect_client(broker, "test-follower", persistent=False)
    echoed: list[bytes] = []
    follower.on_message = lambda _c, _u, m: (
        echoed.append(m.payload) if b"@iot.id" in m.payload else None
    )
    follower.subscribe(observation_topic(stream), qos=0)
    follower.loop_start()
    ingester = MqttIngester(engine, broker, client_id="test-ingest-1", batch_size=50, flush_ms=50)
    ingester.start()
    publisher = connect_client(broker, "test-publisher-1", persistent=False)
    publisher.loop_start()
    start = datetime.now(UTC) - timedelta(days=1)
    topic = observation_topic(stream)
    malformed = [
        (topic, b"{not json"),
        (topic, b'{"phenomenonTime": "2026-01-01T00:00:00Z", "result": "high"}'),  # not a number
        (topic, b'{"phenomenonTime": "2026-01-01T00:00:00", "result": 1}'),  # no time zone
        (observation_topic(10**12), observation(start, 1.0)),  # no such datastream
    ]
    sent = []
    for i in range(300):
        sent.append(publisher.publish(topic, observation(start + timedelta(seconds=i), i), qos=1))
        if i % 75 == 0:
            bad_topic, bad_payload = malformed[i // 75]
            sent.append(publisher.publish(bad_topic, bad_payload, qos=1))
    # a gateway's array of 3, and an entity cim published (an echo: not stored again)
    three = [{"phenomenonTime": (start + timedelta(hours=1, seconds=s)).isoformat(), "result": s}
             for s in range(3)]  # fmt: skip
    sent.append(publisher.publish(topic, json.dumps(three).encode(), qos=1))
    sent.append(publisher.publish(topic, b'{"@iot.id": 1, "result": 1.0}', qos=1))
    for info in sent:
        info.wait_for_publish(5)
    wait_for(lambda: ingester.stats.received == 306, 20)
    # 300 entities, the array as an array, and the device's fake echo (it is on the topic)
    wait_for(lambda: len(echoed) >= 302, 10)
    ingester.stop()
    publisher.loop_stop()
    follower.loop_stop()
    assert stored_count(engine, stream) == 303
    stats = ingester.stats
    assert (stats.rejected, stats.echoes, stats.stored) == (4, 1, 303)
    bodies = [json.loads(doc) for doc in echoed]
    published = [d for body in bodies for d in (body if isinstance(body, list) else [body])]
    assert len(published) == 304 and [len(b) for b in bodies if isinstance(b, list)] == [3]
    assert all(isinstance(doc["@iot.id"], int) for doc in published)
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 4 and any("no datastream" in r for r in refusals)
    assert any("rejected 4" in r.getMessage() for r in caplog.records)


def serve(
    database_url: str, data_dir: Path, broker: str, **extra_env: str
) -> tuple[subprocess.Popen[bytes], Path]:
    port = free_port()
    log = data_dir / f"serve-{port}.log"
    env = cli_env(database_url, CIM_DATA_DIR=str(data_dir), CIM_LOG_FORMAT="text", **extra_env)
    process = subprocess.Popen(
        [CIM, "serve", "--port", str(port), "--mqtt-url", broker, "--mqtt-batch", "500"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    wait_for(lambda: _healthy(port) or process.poll() is not None, 30)
    assert process.poll() is None, log.read_text()[-2000:]
    return process, log


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.slow
def test_kill_during_ingestion_loses_nothing(
    broker: str, stream: int, engine: Engine, database_url: str, tmp_path: Path
) -> None:
    total = 20_000
    # The first server pauses after committing a batch, before its PUBACKs (cim.faults), and
    # is killed there: that batch and what came meanwhile are in flight, every time.
    first, first_log = serve(database_url, tmp_path, broker, CIM_TEST_PAUSE_AT="mqtt-ack")
    publisher = connect_client(broker, "test-publisher-2", persistent=False)
    publisher.loop_start()
    start = datetime.now(UTC) - timedelta(days=2)
    topic = observation_topic(stream)
    infos = []

    def publish() -> None:
        for i in range(total):
            infos.append(
                publisher.publish(topic, observation(start + timedelta(seconds=i), i % 97), qos=1)
            )
            if i % 1000 == 999:
                time.sleep(0.1)  # about 10,000 a second, over two seconds

    feeder = threading.Thread(target=publish)
    feeder.start()
    wait_for(lambda: "CIM_PAUSED mqtt-ack" in first_log.read_text(errors="replace"), 20)
    os.kill(first.pid, signal.SIGKILL)  # mid-stream: a stored batch not acknowledged
    first.wait()
    killed_at = stored_count(engine, stream)
    feeder.join()
    for info in infos:
        info.wait_for_publish(10)
    publisher.loop_stop()
    assert killed_at < total, "the stream ended before the kill: nothing was tested"
    second, second_log = serve(database_url, tmp_path, broker)
    try:
        wait_for(lambda: stored_count(engine, stream) >= total, 60)
        time.sleep(1)  # nothing more arrives
    finally:
        second.terminate()
        second.wait(20)
    with engine.connect() as conn:
        stored, distinct = conn.execute(
            text(
                "SELECT count(*), count(DISTINCT phenomenon_time) FROM sensor_observation"
                " WHERE datastream_id = :d"
            ),
            {"d": stream},
        ).one()
    assert (stored, distinct) == (total, total)
    summary = [line for line in second_log.read_text().splitlines() if "MQTT ingestion:" in line]
    assert summary, second_log.read_text()[-2000:]
    counts = dict(
        part.rsplit(" ", 1) for part in summary[-1].split("MQTT ingestion: ")[1].split(", ")
    )
    print(f"killed at {killed_at} stored; restart: {summary[-1]}; first log: {first_log.name}")
    assert int(counts["stored"]) + int(counts["duplicates"]) >= total - killed_at
    assert int(counts["redelivered"]) > 0
    assert int(counts["duplicates"]) > 0  # the stored, unacknowledged batch was not stored again


def total_observations(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM sensor_observation")).scalar_one())


@pytest.mark.slow
def test_simulated_feed_leak_raises_the_alarm(
    broker: str, engine: Engine, database_url: str, tmp_path: Path
) -> None:
    methane = make_datastream(engine, "gas-concentration-lel", utility="RQ")
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO sensor_alarm_rule"
                    " (name, kind, datastream_id, warning, alarm, hysteresis)"
                    " VALUES ('leak', 'threshold', :d, 20, 40, 5)"
                ),
                {"d": methane},
            )
        before = total_observations(engine)
        ingester = MqttIngester(engine, broker, client_id="test-ingest-feed", flush_ms=50)
        ingester.start()
        feed = subprocess.run(
            [CIM, "simulate", "sensors", "--url", broker, "--rate", "400", "--duration", "3",
             "--leak-after", "0.5", "--leak-ramp", "1", "--leak-peak", "60"],
            env=cli_env(database_url, CIM_DATA_DIR=str(tmp_path)),
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        published = int(re.search(r"published\s+(\d+)", feed.stdout + feed.stderr)[1])  # type: ignore[index]
        assert published >= 1000, feed.stderr
        wait_for(lambda: total_observations(engine) - before >= published, 20)
        ingester.stop()
        assert total_observations(engine) - before == published
        with engine.connect() as conn:
            levels = list(
                conn.execute(
                    text("SELECT level FROM sensor_alarm WHERE datastream_id = :d"), {"d": methane}
                ).scalars()
            )
        assert levels == ["alarm"], dump_alarms(engine, methane)  # warning, escalated: one alarm
        retention = subprocess.run(
            [CIM, "sensors", "retention", "--months", "600"],
            env=cli_env(database_url, CIM_DATA_DIR=str(tmp_path)),
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        assert "dropped partitions: none" in retention.stdout + retention.stderr
    finally:
        drop_streams(engine, [methane])


def dump_alarms(engine: Engine, datastream: int) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT id, level, state, value, observed_at, cleared_by FROM sensor_alarm"
                    " WHERE datastream_id = :d ORDER BY id"
                ),
                {"d": datastream},
            )
        ]

"""Alarm rules and alarms over HTTP against a real ``cim serve``: a threshold raises an alarm
seen on the SSE stream within a second, acknowledge and clear (audited, who and when), no
second alarm while one is open, hysteresis, rate of change, missing data, gas alarms hidden
from anonymous callers (list and stream)."""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cim.services.sensors.alarm_eval import check_missing
from tests.api.server import cim_serve, cim_server
from tests.cim.sensor_streams import drop_streams, make_datastream

pytestmark = pytest.mark.slow
Event = tuple[float, dict[str, Any]]


@pytest.fixture(scope="module")
def streams(engine: Engine) -> Iterator[dict[str, int]]:
    found = {
        "gas": make_datastream(engine, "methane", utility="RQ"),
        "water": make_datastream(engine, "water level", utility="PS"),
    }
    yield found
    drop_streams(engine, list(found.values()))


@pytest.fixture(scope="module")
def base(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with cim_serve(database_url, Path(tmp_path_factory.mktemp("alarms"))) as url:
        yield url


class Listener:
    """An SSE client in a thread: every ``alarm`` event with the time it arrived."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.events: queue.Queue[Event] = queue.Queue()
        self.ready = threading.Event()
        self.finished = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(url, headers), daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _run(self, url: str, headers: dict[str, str]) -> None:
        import json

        stream = httpx.stream("GET", f"{url}/alarms/stream", headers=headers, timeout=None)
        try:
            with stream as answer:
                assert answer.status_code == 200
                self.ready.set()
                for line in answer.iter_lines():
                    if line.startswith("data: "):
                        self.events.put((time.monotonic(), json.loads(line[6:])))
        except httpx.HTTPError:
            pass  # the server stopped at the end of the module
        finally:
            self.finished.set()

    def next(self, timeout: float = 5.0) -> Event:
        return self.events.get(timeout=timeout)

    def empty_for(self, seconds: float) -> bool:
        try:
            self.events.get(timeout=seconds)
        except queue.Empty:
            return True
        return False


def post(base: str, keys: dict[str, str], stream: int, value: float, at: datetime) -> float:
    sent = time.monotonic()
    answer = httpx.post(
        f"{base}/sta/v1.1/Datastreams({stream})/Observations",
        json={"phenomenonTime": at.isoformat(), "result": value},
        headers={"X-API-Key": keys["analyst"]},
    )
    assert answer.status_code == 201, answer.text
    return sent


def rule(base: str, keys: dict[str, str], **body: Any) -> dict[str, Any]:
    answer = httpx.post(f"{base}/alarms/rules", json=body, headers={"X-API-Key": keys["admin"]})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_threshold_alarm_lifecycle_and_stream(
    base: str, keys: dict[str, str], streams: dict[str, int], engine: Engine
) -> None:
    gas = streams["gas"]
    rule(base, keys, name="methane %LEL", kind="threshold", datastream_id=gas,
         notice=10, warning=20, alarm=25, hysteresis=2)  # fmt: skip
    analyst = Listener(base, {"X-API-Key": keys["analyst"]})
    anonymous = Listener(base, {})
    now = datetime.now(UTC)
    sent = post(base, keys, gas, 22.0, now)
    arrived, event = analyst.next()
    assert event["event"] == "raised" and event["level"] == "warning"
    assert arrived - sent < 1.0, f"SSE after {arrived - sent:.3f} s"
    alarm_id = event["id"]
    post(base, keys, gas, 30.0, now + timedelta(seconds=10))  # escalates, not a new alarm
    escalated = analyst.next()[1]
    assert (escalated["id"], escalated["event"], escalated["level"], escalated["value"]) == (
        alarm_id, "escalated", "alarm", 30.0)  # fmt: skip
    post(base, keys, gas, 26.0, now + timedelta(seconds=20))  # still open: nothing
    open_alarms = httpx.get(
        f"{base}/alarms", params={"state": "open", "datastream_id": gas},
        headers={"X-API-Key": keys["reader"]},
    ).json()  # fmt: skip
    assert [a["id"] for a in open_alarms] == [alarm_id], open_alarms
    # gas (RQ) is hidden from anonymous callers: list, by id, stream
    anonymous_list = httpx.get(f"{base}/alarms").json()
    assert all(a["datastream_id"] != gas for a in anonymous_list), anonymous_list
    assert httpx.get(f"{base}/alarms/{alarm_id}").status_code == 404
    assert anonymous.empty_for(0.5)
    # acknowledge (analyst), audited, twice is harmless; anonymous or reader may not
    assert httpx.post(f"{base}/alarms/{alarm_id}/acknowledge").status_code == 401
    reader = httpx.post(
        f"{base}/alarms/{alarm_id}/acknowledge", headers={"X-API-Key": keys["reader"]}
    )
    assert reader.status_code == 403
    acked = httpx.post(
        f"{base}/alarms/{alarm_id}/acknowledge", headers={"X-API-Key": keys["analyst"]}
    ).json()
    assert acked["state"] == "acknowledged" and "test analyst" in acked["acknowledged_by"]
    assert analyst.next()[1]["event"] == "acknowledged"
    # values back, but not past 10 - 2: stays open; at 7.5 it clears (system)
    post(base, keys, gas, 9.0, now + timedelta(seconds=30))
    assert analyst.empty_for(0.5)
    post(base, keys, gas, 7.5, now + timedelta(seconds=40))
    _, cleared = analyst.next()
    assert (cleared["event"], cleared["state"], cleared["cleared_by"]) == (
        "cleared", "cleared", "system")  # fmt: skip
    # a new episode, cleared by hand
    post(base, keys, gas, 12.0, now + timedelta(seconds=50))
    second = analyst.next()[1]
    assert second["id"] != alarm_id and second["level"] == "notice"
    done = httpx.post(f"{base}/alarms/{second['id']}/clear", headers={"X-API-Key": keys["analyst"]})
    assert done.json()["state"] == "cleared" and "test analyst" in done.json()["cleared_by"]
    again = httpx.post(
        f"{base}/alarms/{second['id']}/clear", headers={"X-API-Key": keys["analyst"]}
    )
    assert again.status_code == 400
    with engine.connect() as conn:
        actions = set(
            conn.execute(
                text("SELECT action FROM audit_log WHERE resource = ANY(:r)"),
                {"r": [f"alarms/{alarm_id}", f"alarms/{second['id']}"]},
            ).scalars()
        )
    assert {"acknowledge", "clear"} <= actions


def test_rate_of_change_and_water_visible_to_anonymous(
    base: str, keys: dict[str, str], streams: dict[str, int]
) -> None:
    water = streams["water"]
    rule(base, keys, name="level rising", kind="rate", datastream_id=water, warning=5, alarm=50)
    anonymous = Listener(base, {})
    start = datetime.now(UTC) - timedelta(hours=1)
    post(base, keys, water, 1.0, start)
    post(base, keys, water, 3.0, start + timedelta(minutes=1))  # 2 / min: nothing
    assert anonymous.empty_for(0.5)
    post(base, keys, water, 13.0, start + timedelta(minutes=2))  # 10 / min: warning
    _, event = anonymous.next()
    assert (event["event"], event["level"], event["kind"]) == ("raised", "warning", "rate")
    assert event["value"] == pytest.approx(10.0)


def test_missing_data(
    base: str, keys: dict[str, str], streams: dict[str, int], engine: Engine
) -> None:
    water = streams["water"]
    made = rule(base, keys, name="water silent", kind="missing", datastream_id=water, minutes=5,
                level="alarm")  # fmt: skip
    listener = Listener(base, {"X-API-Key": keys["reader"]})
    with Session(engine) as session, session.begin():  # the server's check runs every 30 s
        raised = check_missing(session)
    _, event = listener.next()
    assert event["rule_id"] == made["id"] and event["id"] in raised
    assert (event["event"], event["level"]) == ("raised", "alarm")
    with Session(engine) as session, session.begin():
        assert check_missing(session) == []  # not raised again while open
    post(base, keys, water, 13.5, datetime.now(UTC))  # data again: cleared
    cleared = [e for _, e in iter_events(listener) if e["rule_id"] == made["id"]]
    assert cleared[-1]["state"] == "cleared"


def iter_events(listener: Listener) -> Iterator[Event]:
    while True:
        try:
            yield listener.next(timeout=2.0)
        except queue.Empty:
            return


def test_rules_need_admin_and_sense(
    base: str, keys: dict[str, str], streams: dict[str, int]
) -> None:
    body = {"name": "x", "kind": "threshold", "datastream_id": streams["water"], "warning": 5}
    analyst = httpx.post(f"{base}/alarms/rules", json=body, headers={"X-API-Key": keys["analyst"]})
    assert analyst.status_code == 403
    admin = {"X-API-Key": keys["admin"]}
    backwards = body | {"notice": 9, "warning": 5}
    assert httpx.post(f"{base}/alarms/rules", json=backwards, headers=admin).status_code == 400
    nowhere = body | {"datastream_id": 10**12}
    assert httpx.post(f"{base}/alarms/rules", json=nowhere, headers=admin).status_code == 404
    assert httpx.get(f"{base}/alarms/rules").status_code == 401


def test_a_stopped_server_ends_the_stream_and_exits_at_once(
    database_url: str, tmp_path: Path
) -> None:
    """SIGTERM with a control-room screen on the stream: uvicorn waits for open responses,
    and the stream never ends by itself, so the server did not exit until it was killed."""
    with cim_server(database_url, tmp_path) as server:
        listener = Listener(server.base, {})
        started = time.monotonic()
        server.process.terminate()
        server.process.wait(timeout=8)
        took = time.monotonic() - started
        assert listener.finished.wait(2)  # the stream ended (the browser reconnects)
    # uvicorn re-raises the SIGTERM it caught once it has shut down cleanly
    assert server.process.returncode in (0, -signal.SIGTERM)
    assert took < 5, took

"""Alarm evaluation without a server: levels, hysteresis, escalation, rates, and the rule
checks; MQTT message checking; redelivered duplicates recognised."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from cim.errors import InvalidInput
from cim.services.sensors.alarm_eval import RuleOnStream, rates, walk
from cim.services.sensors.mqtt_ingest import MqttIngester, Pending
from cim.services.sensors.mqtt_messages import parse_message, result_fits, topic_datastream
from cim.services.sensors.observations import ObservationRow, insert_observations
from tests.cim.sensor_streams import drop_streams, make_datastream

T0 = datetime(2026, 12, 1, tzinfo=UTC)
MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"


def rule(direction: str = "above", hysteresis: float = 2.0) -> RuleOnStream:
    levels = (10.0, 20.0, 25.0) if direction == "above" else (5.0, 3.0, 1.0)
    return RuleOnStream(1, "threshold", direction, levels, hysteresis, None, 1)


def points(*values: float) -> list[tuple[datetime, float]]:
    return [(T0 + timedelta(minutes=i), v) for i, v in enumerate(values)]


def test_raise_escalate_hysteresis_clear() -> None:
    actions = walk(rule(), points(5, 12, 11, 22, 30, 12, 9, 8.5, 7.9, 15), open_level=0)
    assert [(a.kind, a.level, a.value) for a in actions] == [
        ("raise", 1, 12),
        ("escalate", 2, 22),
        ("escalate", 3, 30),
        ("clear", 3, 7.9),  # 12, 9, 8.5 are not below 10 - 2
        ("raise", 1, 15),
    ]


def test_open_alarm_is_not_raised_again_and_below_direction() -> None:
    assert walk(rule(), points(12, 14, 11), open_level=1) == []
    below = walk(rule("below", 0.5), points(6, 4, 0.5, 5.2, 5.6), open_level=0)
    assert [(a.kind, a.level) for a in below] == [("raise", 1), ("escalate", 3), ("clear", 3)]


def test_rates_per_minute() -> None:
    found = rates(points(10, 13, 13), previous=(T0 - timedelta(minutes=2), 6.0), falling=False)
    assert [v for _, v in found] == [2.0, 3.0, 0.0]
    assert [v for _, v in rates(points(10, 4), None, falling=True)] == [6.0]


def test_mqtt_messages_checked() -> None:
    types = {7: MEASUREMENT}
    topic = "v1.1/Datastreams(7)/Observations"
    assert topic_datastream(topic) == 7 and topic_datastream("v1.1/Things(7)") is None
    parsed = parse_message(topic, b'{"phenomenonTime": "2026-12-01T00:00:00Z", "result": 3}', types)
    assert parsed.rows[0].result == 3 and not parsed.echo
    assert parse_message(topic, b'{"@iot.id": 4, "result": 3}', types).echo
    for bad in (b"{", b'{"result": "x"}', b'{"result": true}', b"[]", b'{"phenomenonTime": 1}'):
        with pytest.raises(InvalidInput):
            parse_message(topic, bad, types)
    with pytest.raises(InvalidInput, match="no datastream"):
        parse_message("v1.1/Datastreams(8)/Observations", b'{"result": 1}', types)
    assert result_fits(MEASUREMENT.replace("Measurement", "TruthObservation"), False)
    assert not result_fits(MEASUREMENT.replace("Measurement", "CountObservation"), 1.5)


def test_redelivered_rows_already_stored_are_skipped(engine: Engine) -> None:
    stream = make_datastream(engine, "dup", utility=None)
    try:
        stored = [ObservationRow(stream, T0 + timedelta(seconds=i), float(i)) for i in range(3)]
        insert_observations(engine, stored)
        again = [ObservationRow(stream, T0 + timedelta(seconds=i), float(i)) for i in range(4)]
        ingester = MqttIngester(engine, "mqtt://127.0.0.1:1")
        kept = ingester._without_duplicates([Pending("t", b"", 1, True, again)])
        assert [row.phenomenon_time for row in kept] == [T0 + timedelta(seconds=3)]
        assert ingester.stats.duplicates == 3
    finally:
        drop_streams(engine, [stream])

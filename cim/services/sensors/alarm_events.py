"""Alarm documents and their announcement on PostgreSQL ``NOTIFY`` (for the SSE stream).

Every change of an alarm (raised, escalated, acknowledged, cleared) runs :func:`announce` in
the transaction that made it: ``pg_notify`` is transactional, so listeners hear of the change
exactly when it commits, in every process connected to the database (the API workers, the MQTT
ingester, ``cim`` commands). The payload is the alarm document of :data:`ALARM_COLUMNS` plus
``event``; it carries the thing's utility class so a listener can hide gas and power alarms
from anonymous clients without a query.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

CHANNEL = "cim_sensor_alarm"
"""The NOTIFY channel of alarm changes."""

ALARM_FROM = (
    " FROM sensor_alarm a"
    " JOIN sensor_alarm_rule r ON r.id = a.rule_id"
    " JOIN sensor_datastream d ON d.id = a.datastream_id"
    " JOIN sensor_thing t ON t.id = d.thing_id"
)
ALARM_COLUMNS = (
    "SELECT a.id, a.rule_id, r.name AS rule_name, r.kind, a.datastream_id,"
    " d.name AS datastream_name, d.thing_id, t.utility, a.level, a.state, a.value,"
    " a.observed_at, a.raised_at, a.acknowledged_at, a.acknowledged_by, a.cleared_at,"
    " a.cleared_by, a.updated_at"
)


def alarm_document(row: Any) -> dict[str, Any]:
    """An alarm row of :data:`ALARM_COLUMNS` as JSON-ready values (times in ISO 8601)."""
    document = dict(row._mapping)
    for key, value in document.items():
        if isinstance(value, datetime):
            document[key] = value.isoformat()
    return document


def announce(session: Session, alarm_id: int, event: str) -> dict[str, Any]:
    """Send the alarm's document with ``event`` on :data:`CHANNEL` (delivered on commit)."""
    row = session.execute(text(ALARM_COLUMNS + ALARM_FROM + " WHERE a.id = :id"), {"id": alarm_id})
    document = alarm_document(row.one()) | {"event": event}
    session.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {"channel": CHANNEL, "payload": json.dumps(document)},
    )
    return document

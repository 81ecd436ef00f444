"""Evaluate alarm rules on every batch of observations, and the periodic missing-data check.

:func:`evaluate_batch` runs inside the transaction that writes a batch (it is called by
:func:`cim.services.sensors.observations.write_observations`, the one write path of HTTP,
dataArray, MQTT and the simulator), so an alarm commits with the observation that raised it.
A batch costs one query when no rule watches its datastreams.

Levels and hysteresis. A value's level is the highest of notice < warning < alarm whose
threshold it reaches (``>=`` for direction ``above``, ``<=`` for ``below``). A rule with no open
alarm raises one at that level; an open alarm is never raised again, a higher level escalates
it (its level, value and time are updated). It clears only when a value is back past the
rule's *lowest* threshold by ``hysteresis`` (above: ``value < lowest - hysteresis``), so a
value hovering at a threshold does not raise and clear alarms in a loop, and an alarm that fell
from ``alarm`` to the ``notice`` band stays open at its highest level. Rate rules apply the same
to the change per minute between consecutive observations of the datastream (``below`` = the
falling speed). Missing-data rules raise when the datastream's last observation
(``phenomenon_time_end``) is older than ``minutes`` and clear when a recent one arrives.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT, TIMESTAMP
from sqlalchemy.orm import Session

from cim.db.models.alarm import LEVELS
from cim.services.sensors.alarm_events import announce

if TYPE_CHECKING:
    from cim.services.sensors.observations import ObservationRow

RULES_OF_DATASTREAMS = text(
    "SELECT r.id, r.kind, r.direction, r.notice, r.warning, r.alarm, r.hysteresis,"
    " r.minutes, d.id AS datastream_id"
    " FROM sensor_alarm_rule r"
    " JOIN sensor_datastream d ON d.id = r.datastream_id"
    " OR (r.datastream_id IS NULL AND d.observed_property_id = r.observed_property_id)"
    " JOIN sensor_thing t ON t.id = d.thing_id"
    " WHERE r.enabled AND d.id = ANY(:ids) AND (r.utility IS NULL OR r.utility = t.utility)"
).bindparams(bindparam("ids", type_=ARRAY(BIGINT)))
OPEN_ALARMS = text(
    "SELECT id, rule_id, datastream_id, level FROM sensor_alarm"
    " WHERE state <> 'cleared' AND datastream_id = ANY(:ids)"
).bindparams(bindparam("ids", type_=ARRAY(BIGINT)))
PREVIOUS_VALUES = text(
    "SELECT p.ds AS datastream_id, o.phenomenon_time, o.result"
    " FROM unnest(:ids, :befores) AS p(ds, before_time) CROSS JOIN LATERAL"
    " (SELECT phenomenon_time, result FROM sensor_observation WHERE datastream_id = p.ds"
    " AND result IS NOT NULL AND phenomenon_time < p.before_time"
    " ORDER BY phenomenon_time DESC LIMIT 1) AS o"
).bindparams(
    bindparam("ids", type_=ARRAY(BIGINT)),
    bindparam("befores", type_=ARRAY(TIMESTAMP(timezone=True))),
)
RAISE = text(
    "INSERT INTO sensor_alarm (rule_id, datastream_id, level, value, observed_at)"
    " VALUES (:rule, :ds, :level, :value, :at)"
    " ON CONFLICT (rule_id, datastream_id) WHERE state <> 'cleared' DO NOTHING RETURNING id"
)
ESCALATE = text(
    "UPDATE sensor_alarm SET level = :level, value = :value, observed_at = :at,"
    " updated_at = now() WHERE id = :id AND state <> 'cleared'"
)
CLEAR = text(
    "UPDATE sensor_alarm SET state = 'cleared', cleared_at = now(), cleared_by = :by,"
    " updated_at = now() WHERE id = :id AND state <> 'cleared'"
)
SYSTEM = "system"
"""``cleared_by`` of alarms cleared because the values came back."""

Point = tuple[datetime, float]


@dataclass(frozen=True, slots=True)
class RuleOnStream:
    """A rule as it applies to one datastream."""

    rule_id: int
    kind: str
    direction: str
    thresholds: tuple[float | None, float | None, float | None]  # notice, warning, alarm
    hysteresis: float
    minutes: int | None
    datastream_id: int


@dataclass(frozen=True, slots=True)
class Action:
    """A change to apply: ``raise``, ``escalate`` or ``clear`` at ``level`` (1..3)."""

    kind: str
    level: int
    value: float
    at: datetime


def value_level(rule: RuleOnStream, value: float) -> int:
    """0 (none) or 1..3 (notice, warning, alarm): the highest threshold ``value`` reaches."""
    found = 0
    for index, threshold in enumerate(rule.thresholds, start=1):
        if threshold is None:
            continue
        if value >= threshold if rule.direction == "above" else value <= threshold:
            found = index
    return found


def back_to_normal(rule: RuleOnStream, value: float) -> bool:
    """Whether ``value`` is back past the rule's lowest threshold by its hysteresis."""
    limits = [t for t in rule.thresholds if t is not None]
    if rule.direction == "above":
        return value < min(limits) - rule.hysteresis
    return value > max(limits) + rule.hysteresis


def walk(rule: RuleOnStream, points: Sequence[Point], open_level: int) -> list[Action]:
    """The raise / escalate / clear actions of ``points`` (time order) given the open level."""
    actions: list[Action] = []
    level = open_level
    for at, value in points:
        reached = value_level(rule, value)
        if reached > level:
            actions.append(Action("raise" if level == 0 else "escalate", reached, value, at))
            level = reached
        elif level and back_to_normal(rule, value):
            actions.append(Action("clear", level, value, at))
            level = 0
    return actions


def rates(points: Sequence[Point], previous: Point | None, falling: bool) -> list[Point]:
    """Change per minute between consecutive points (the first against ``previous``); the
    falling speed (negated) when ``falling``. Points at the same instant are skipped."""
    found: list[Point] = []
    last = previous
    for point in points:
        if last is not None and point[0] > last[0]:
            minutes = (point[0] - last[0]).total_seconds() / 60
            rate = (point[1] - last[1]) / minutes
            found.append((point[0], -rate if falling else rate))
        last = point
    return found


def apply(session: Session, rule: RuleOnStream, open_id: int | None, actions: list[Action]) -> None:
    """Write ``actions`` in order and announce each change."""
    for action in actions:
        params = {"level": LEVELS[action.level - 1], "value": action.value, "at": action.at}
        if action.kind == "raise":
            new = session.execute(
                RAISE, params | {"rule": rule.rule_id, "ds": rule.datastream_id}
            ).scalar()
            if new is None:  # another process raised it meanwhile: escalate that one
                open_id = session.execute(
                    text(
                        "SELECT id FROM sensor_alarm WHERE rule_id = :r AND datastream_id = :d"
                        " AND state <> 'cleared'"
                    ),
                    {"r": rule.rule_id, "d": rule.datastream_id},
                ).scalar()
                if open_id is not None:
                    session.execute(ESCALATE, params | {"id": open_id})
                    announce(session, open_id, "escalated")
                continue
            open_id = int(new)
            announce(session, open_id, "raised")
        elif open_id is not None:
            if action.kind == "escalate":
                session.execute(ESCALATE, params | {"id": open_id})
                announce(session, open_id, "escalated")
            else:
                session.execute(CLEAR, {"id": open_id, "by": SYSTEM})
                announce(session, open_id, "cleared")
                open_id = None


def _points(rows: Sequence[ObservationRow]) -> dict[int, list[Point]]:
    by_stream: dict[int, list[Point]] = defaultdict(list)
    for row in rows:
        value = row.result
        if isinstance(value, int | float) and not isinstance(value, bool):
            by_stream[row.datastream_id].append((row.phenomenon_time, float(value)))
    for points in by_stream.values():
        points.sort(key=lambda point: point[0])
    return by_stream


def _rules(session: Session, ids: list[int]) -> list[RuleOnStream]:
    return [
        RuleOnStream(
            rule_id=int(r.id),
            kind=r.kind,
            direction=r.direction,
            thresholds=(r.notice, r.warning, r.alarm),
            hysteresis=float(r.hysteresis),
            minutes=r.minutes,
            datastream_id=int(r.datastream_id),
        )
        for r in session.execute(RULES_OF_DATASTREAMS, {"ids": ids})
    ]


def _previous(session: Session, firsts: dict[int, datetime]) -> dict[int, Point]:
    """The last stored numeric observation of each datastream before its batch's first one."""
    if not firsts:
        return {}
    ids = sorted(firsts)
    rows = session.execute(PREVIOUS_VALUES, {"ids": ids, "befores": [firsts[i] for i in ids]})
    return {int(r.datastream_id): (r.phenomenon_time, float(r.result)) for r in rows}


def evaluate_batch(session: Session, rows: Sequence[ObservationRow]) -> None:
    """Apply every enabled rule watching the batch's datastreams (see the module docstring).
    Call after the rows are written, in the same transaction."""
    latest: dict[int, datetime] = {}
    for row in rows:
        if row.phenomenon_time > latest.get(row.datastream_id, row.phenomenon_time - timedelta(1)):
            latest[row.datastream_id] = row.phenomenon_time
    rules = _rules(session, sorted(latest))
    if not rules:
        return
    open_alarms = {
        (int(r.rule_id), int(r.datastream_id)): (int(r.id), LEVELS.index(r.level) + 1)
        for r in session.execute(OPEN_ALARMS, {"ids": sorted(latest)})
    }
    points = _points(rows)
    rate_streams = {r.datastream_id for r in rules if r.kind == "rate"} & set(points)
    previous = _previous(session, {ds: points[ds][0][0] for ds in rate_streams})
    now = datetime.now(UTC)
    for rule in rules:
        open_id, open_level = open_alarms.get((rule.rule_id, rule.datastream_id), (None, 0))
        series = points.get(rule.datastream_id, [])
        if rule.kind == "missing":
            recent = latest[rule.datastream_id] >= now - timedelta(minutes=rule.minutes or 0)
            if open_id is not None and recent:
                apply(session, rule, open_id, [Action("clear", open_level, 0.0, now)])
            continue
        if rule.kind == "rate":
            falling = rule.direction == "below"
            series = rates(series, previous.get(rule.datastream_id), falling)
            rule = RuleOnStream(**{**_fields(rule), "direction": "above"})
        apply(session, rule, open_id, walk(rule, series, open_level))


def _fields(rule: RuleOnStream) -> dict[str, Any]:
    return {name: getattr(rule, name) for name in RuleOnStream.__slots__}


MISSING = text(
    "INSERT INTO sensor_alarm (rule_id, datastream_id, level, value, observed_at)"
    " SELECT r.id, d.id, r.level,"
    " extract(epoch FROM (now() - d.phenomenon_time_end)) / 60, d.phenomenon_time_end"
    " FROM sensor_alarm_rule r"
    " JOIN sensor_datastream d ON d.id = r.datastream_id"
    " OR (r.datastream_id IS NULL AND d.observed_property_id = r.observed_property_id)"
    " JOIN sensor_thing t ON t.id = d.thing_id"
    " WHERE r.enabled AND r.kind = 'missing' AND (r.utility IS NULL OR r.utility = t.utility)"
    " AND d.phenomenon_time_end < now() - r.minutes * interval '1 minute'"
    " ON CONFLICT (rule_id, datastream_id) WHERE state <> 'cleared' DO NOTHING RETURNING id"
)


def check_missing(session: Session) -> list[int]:
    """Raise the missing-data alarms now due (datastreams that never reported are not
    missing: there is no last time to count from); returns the new alarms' ids."""
    ids = [int(i) for i in session.execute(MISSING).scalars()]
    for alarm_id in ids:
        announce(session, alarm_id, "raised")
    return ids

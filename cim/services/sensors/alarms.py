"""Alarm rules (create, read, replace, delete) and the alarm lifecycle (list, acknowledge, clear).

Rules are checked here, once, for the API and the CLI alike: a target (a datastream, or an
observed property with an optional utility class), thresholds in the order of their direction
(above: notice <= warning <= alarm; below: the reverse), minutes for missing data. Evaluation
is :mod:`cim.services.sensors.alarm_eval`; announcements are
:mod:`cim.services.sensors.alarm_events`. Functions take a session and never commit.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import bindparam, delete, select, text
from sqlalchemy.dialects.postgresql import ARRAY, TEXT
from sqlalchemy.orm import Session

from cim.db.models import Datastream, ObservedProperty
from cim.db.models.alarm import AlarmRule
from cim.errors import InvalidInput, NotFound
from cim.services.results import Result
from cim.services.sensors.alarm_events import ALARM_COLUMNS, ALARM_FROM, announce

Level = Literal["notice", "warning", "alarm"]
MAX_ALARMS = 1000


class RuleInput(BaseModel):
    """A rule as clients send it (``POST``/``PUT /alarms/rules``)."""

    name: str = Field(min_length=1, max_length=200)
    kind: Literal["threshold", "rate", "missing"]
    datastream_id: int | None = Field(default=None, ge=1)
    observed_property_id: int | None = Field(default=None, ge=1)
    utility: str | None = Field(default=None, min_length=1, max_length=8)
    direction: Literal["above", "below"] = "above"
    notice: float | None = Field(default=None, allow_inf_nan=False)
    warning: float | None = Field(default=None, allow_inf_nan=False)
    alarm: float | None = Field(default=None, allow_inf_nan=False)
    hysteresis: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    minutes: int | None = Field(default=None, ge=1, le=525_600)
    level: Level = "warning"
    enabled: bool = True


class RuleAnswer(Result):
    """A stored rule."""

    id: int
    name: str
    kind: str
    datastream_id: int | None
    observed_property_id: int | None
    utility: str | None
    direction: str
    notice: float | None
    warning: float | None
    alarm: float | None
    hysteresis: float
    minutes: int | None
    level: str
    enabled: bool
    created_at: datetime


class AlarmAnswer(Result):
    """An alarm with its rule, datastream and utility class."""

    id: int
    rule_id: int
    rule_name: str
    kind: str
    datastream_id: int
    datastream_name: str
    thing_id: int
    utility: str | None
    level: str
    state: str
    value: float | None
    observed_at: datetime | None
    raised_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    cleared_at: datetime | None
    cleared_by: str | None
    updated_at: datetime


def check_rule(session: Session, rule: RuleInput) -> None:
    """Refuse a rule that cannot work, with one clear line."""
    if rule.datastream_id is None and rule.observed_property_id is None:
        raise InvalidInput("a rule needs datastream_id or observed_property_id")
    if rule.datastream_id is not None and session.get(Datastream, rule.datastream_id) is None:
        raise NotFound(f"no datastream with id {rule.datastream_id}")
    if (
        rule.observed_property_id is not None
        and session.get(ObservedProperty, rule.observed_property_id) is None
    ):
        raise NotFound(f"no observed property with id {rule.observed_property_id}")
    if rule.kind == "missing":
        if rule.minutes is None:
            raise InvalidInput("a missing-data rule needs minutes")
        return
    levels = [v for v in (rule.notice, rule.warning, rule.alarm) if v is not None]
    if not levels:
        raise InvalidInput(f"a {rule.kind} rule needs at least one of notice, warning, alarm")
    ordered = sorted(levels) if rule.direction == "above" else sorted(levels, reverse=True)
    if levels != ordered:
        raise InvalidInput(
            f"thresholds of a rule {rule.direction} must go notice, warning, alarm in that order"
        )
    if rule.kind == "rate" and min(levels) <= 0:
        raise InvalidInput("rate thresholds are speeds per minute: positive numbers")


def _fields(rule: RuleInput) -> dict[str, Any]:
    values = rule.model_dump()
    if values["utility"] is not None:
        values["utility"] = values["utility"].upper()
    return values


def _answer(rule: AlarmRule) -> RuleAnswer:
    return RuleAnswer.model_validate(
        {c.key: getattr(rule, c.key) for c in AlarmRule.__table__.columns}
    )


def create_rule(session: Session, rule: RuleInput) -> RuleAnswer:
    """Store a new rule (evaluated from the next batch on)."""
    check_rule(session, rule)
    stored = AlarmRule(**_fields(rule))
    session.add(stored)
    session.flush()
    session.refresh(stored)
    return _answer(stored)


def _rule(session: Session, rule_id: int) -> AlarmRule:
    found = session.get(AlarmRule, rule_id)
    if found is None:
        raise NotFound(f"no alarm rule with id {rule_id}")
    return found


def get_rule(session: Session, rule_id: int) -> RuleAnswer:
    return _answer(_rule(session, rule_id))


def list_rules(session: Session) -> list[RuleAnswer]:
    return [_answer(r) for r in session.scalars(select(AlarmRule).order_by(AlarmRule.id))]


def replace_rule(session: Session, rule_id: int, rule: RuleInput) -> RuleAnswer:
    """Replace a rule's settings; its open alarms stay open until values or a user clear them."""
    stored = _rule(session, rule_id)
    check_rule(session, rule)
    for key, value in _fields(rule).items():
        setattr(stored, key, value)
    session.flush()
    return _answer(stored)


def delete_rule(session: Session, rule_id: int) -> None:
    """Delete a rule and its alarms (their history goes with it; disable a rule to keep it)."""
    _rule(session, rule_id)
    session.execute(delete(AlarmRule).where(AlarmRule.id == rule_id))


def _visible() -> str:
    """The condition hiding alarms of the classes in ``:hidden`` (always bound, maybe empty)."""
    return " AND (t.utility IS NULL OR NOT t.utility = ANY(:hidden))"


def list_alarms(
    session: Session,
    *,
    hidden: Collection[str] = (),
    state: str | None = None,
    level: str | None = None,
    datastream_id: int | None = None,
    rule_id: int | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[AlarmAnswer]:
    """Alarms, newest first; ``state=open`` means raised or acknowledged."""
    where = " WHERE true" + _visible()
    params: dict[str, Any] = {"hidden": sorted(hidden), "limit": min(limit, MAX_ALARMS)}
    if state == "open":
        where += " AND a.state <> 'cleared'"
    elif state is not None:
        where += " AND a.state = :state"
        params["state"] = state
    for name, value in (("level", level), ("datastream_id", datastream_id), ("rule_id", rule_id)):
        if value is not None:
            where += f" AND a.{name} = :{name}"
            params[name] = value
    if since is not None:
        where += " AND a.updated_at >= :since"
        params["since"] = since
    statement = text(
        ALARM_COLUMNS + ALARM_FROM + where + " ORDER BY a.raised_at DESC, a.id DESC LIMIT :limit"
    ).bindparams(bindparam("hidden", type_=ARRAY(TEXT)))
    return [
        AlarmAnswer.model_validate(dict(r._mapping)) for r in session.execute(statement, params)
    ]


def get_alarm(session: Session, alarm_id: int, hidden: Collection[str] = ()) -> AlarmAnswer:
    """One alarm; one the caller may not see is not found."""
    statement = text(ALARM_COLUMNS + ALARM_FROM + " WHERE a.id = :id" + _visible()).bindparams(
        bindparam("hidden", type_=ARRAY(TEXT))
    )
    row = session.execute(statement, {"id": alarm_id, "hidden": sorted(hidden)}).first()
    if row is None:
        raise NotFound(f"no alarm with id {alarm_id}")
    return AlarmAnswer.model_validate(dict(row._mapping))


def acknowledge(
    session: Session, alarm_id: int, *, by: str, hidden: Collection[str] = ()
) -> AlarmAnswer:
    """``raised`` -> ``acknowledged`` (by whom, when). Acknowledging twice keeps the first."""
    alarm = get_alarm(session, alarm_id, hidden)
    if alarm.state == "cleared":
        raise InvalidInput(f"alarm {alarm_id} is cleared already")
    if alarm.state == "raised":
        session.execute(
            text(
                "UPDATE sensor_alarm SET state = 'acknowledged', acknowledged_at = now(),"
                " acknowledged_by = :by, updated_at = now() WHERE id = :id AND state = 'raised'"
            ),
            {"id": alarm_id, "by": by},
        )
        announce(session, alarm_id, "acknowledged")
    return get_alarm(session, alarm_id)


def clear(session: Session, alarm_id: int, *, by: str, hidden: Collection[str] = ()) -> AlarmAnswer:
    """Clear by hand (the rule may raise a new alarm on the next value past a threshold)."""
    alarm = get_alarm(session, alarm_id, hidden)
    if alarm.state == "cleared":
        raise InvalidInput(f"alarm {alarm_id} is cleared already")
    session.execute(
        text(
            "UPDATE sensor_alarm SET state = 'cleared', cleared_at = now(), cleared_by = :by,"
            " updated_at = now() WHERE id = :id AND state <> 'cleared'"
        ),
        {"id": alarm_id, "by": by},
    )
    announce(session, alarm_id, "cleared")
    return get_alarm(session, alarm_id)

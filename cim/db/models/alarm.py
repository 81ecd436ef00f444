"""Alarm rules on sensor datastreams and the alarms they raise (issue 20, point 5).

A rule watches one datastream, or every datastream of an observed property (optionally only
on things of one utility class, e.g. methane %LEL on gas ``RQ``). Kinds:

- ``threshold``: levels notice / warning / alarm on the value, ``direction`` above or below;
- ``rate``: the same levels on the change per minute between consecutive observations
  (``above`` = rising at least that fast, ``below`` = falling at least that fast);
- ``missing``: no observation for ``minutes``; raises ``level``.

An alarm is one episode of a rule on a datastream: ``raised`` -> ``acknowledged`` (by whom,
when) -> ``cleared`` (by whom or ``system`` when the values came back). At most one alarm per
(rule, datastream) is open (not cleared) — a partial unique index makes that hold even when
two processes evaluate at once — so a rule does not raise again while its alarm is open; a
higher level escalates the open alarm instead.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from cim.db.base import Base
from cim.db.types import BigIntPK, DefaultNow, cascade_to

LEVELS = ("notice", "warning", "alarm")
"""Alarm levels, lowest first."""
RULE_KINDS = ("threshold", "rate", "missing")
ALARM_STATES = ("raised", "acknowledged", "cleared")


class AlarmRule(Base):
    """What makes an alarm: a threshold, a rate of change or silence, on datastreams."""

    __tablename__ = "sensor_alarm_rule"
    __table_args__ = (
        CheckConstraint(
            "datastream_id IS NOT NULL OR observed_property_id IS NOT NULL", name="target"
        ),
        CheckConstraint("kind IN ('threshold', 'rate', 'missing')", name="kind"),
        CheckConstraint("direction IN ('above', 'below')", name="direction"),
        CheckConstraint("level IN ('notice', 'warning', 'alarm')", name="level"),
        CheckConstraint("kind <> 'missing' OR minutes > 0", name="missing_minutes"),
        CheckConstraint(
            "kind = 'missing' OR coalesce(notice, warning, alarm) IS NOT NULL", name="levels"
        ),
        CheckConstraint("hysteresis >= 0", name="hysteresis"),
    )

    id: Mapped[BigIntPK]
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))
    datastream_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("sensor_datastream.id", ondelete="CASCADE"), index=True
    )
    observed_property_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("sensor_observed_property.id", ondelete="CASCADE"), index=True
    )
    # Only datastreams of things of this utility class (CJJ 61 code, e.g. RQ); null = any.
    utility: Mapped[str | None] = mapped_column(String(8))
    direction: Mapped[str] = mapped_column(String(8), server_default="above")
    notice: Mapped[float | None] = mapped_column(Double)
    warning: Mapped[float | None] = mapped_column(Double)
    alarm: Mapped[float | None] = mapped_column(Double)
    hysteresis: Mapped[float] = mapped_column(Double, server_default=text("0"))
    minutes: Mapped[int | None] = mapped_column(Integer)
    level: Mapped[str] = mapped_column(String(8), server_default="warning")
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[DefaultNow]


class Alarm(Base):
    """One episode of a rule on a datastream, from raised to cleared."""

    __tablename__ = "sensor_alarm"
    __table_args__ = (
        CheckConstraint("state IN ('raised', 'acknowledged', 'cleared')", name="state"),
        CheckConstraint("level IN ('notice', 'warning', 'alarm')", name="level"),
        Index(
            "uq_sensor_alarm_open",
            "rule_id",
            "datastream_id",
            unique=True,
            postgresql_where=text("state <> 'cleared'"),
        ),
        Index("ix_sensor_alarm_raised_at", "raised_at"),
    )

    id: Mapped[BigIntPK]
    rule_id: Mapped[int] = cascade_to("sensor_alarm_rule")
    datastream_id: Mapped[int] = cascade_to("sensor_datastream")
    level: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(16), server_default="raised")
    value: Mapped[float | None] = mapped_column(Double)
    observed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    raised_at: Mapped[DefaultNow]
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by: Mapped[str | None] = mapped_column(Text)
    cleared_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cleared_by: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[DefaultNow]

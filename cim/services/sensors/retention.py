"""Retention: drop the month partitions of raw observations older than N months.

Dropping a partition is instant and leaves no dead rows (a DELETE of a month would bloat the
table and take minutes); the hourly and daily roll-ups are kept, so charts of old periods
still answer. Old rows waiting in the default partition are deleted row by row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from cim.errors import InvalidInput

PARTITION_NAME = re.compile(r"^sensor_observation_p(\d{4})(\d{2})$")


@dataclass(frozen=True, slots=True)
class RetentionResult:
    """What a retention run removed."""

    cutoff: datetime
    dropped_partitions: list[str]
    default_rows_deleted: int


def month_partitions(session: Session) -> dict[str, datetime]:
    """The month partitions of ``sensor_observation``: name -> first instant of the month."""
    names = session.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'sensor_observation'::regclass"
        )
    ).scalars()
    found: dict[str, datetime] = {}
    for name in names:
        match = PARTITION_NAME.match(name)
        if match:
            found[name] = datetime(int(match[1]), int(match[2]), 1, tzinfo=UTC)
    return found


def retention_cutoff(months: int, now: datetime | None = None) -> datetime:
    """The start of the oldest month kept: the current UTC month minus ``months``."""
    if months < 1:
        raise InvalidInput("retention must keep at least 1 month")
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    index = moment.year * 12 + moment.month - 1 - months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def drop_old_partitions(
    *, session: Session, months: int, now: datetime | None = None
) -> RetentionResult:
    """Drop every month partition entirely before the cutoff (see :func:`retention_cutoff`);
    roll-ups stay. Runs in the caller's transaction."""
    cutoff = retention_cutoff(months, now)
    dropped = []
    for name, start in sorted(month_partitions(session).items()):
        if start < cutoff:  # the month ends at or before the cutoff (both month-aligned)
            session.execute(text(f'DROP TABLE "{name}"'))
            dropped.append(name)
    deleted = session.execute(
        text("DELETE FROM sensor_observation_default WHERE phenomenon_time < :cutoff"),
        {"cutoff": cutoff},
    )
    return RetentionResult(cutoff, dropped, int(getattr(deleted, "rowcount", 0) or 0))

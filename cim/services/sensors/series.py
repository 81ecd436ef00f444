"""Chart queries over one datastream: raw values for short spans, roll-ups for long ones.

A year of 1-minute data is 525,600 rows; a chart needs a few hundred points. ``auto`` picks the
finest resolution that stays under :data:`MAX_POINTS` points: raw rows up to two days, hourly
buckets up to ninety days (a 30-day chart reads 720 hourly rows), daily buckets beyond. Roll-up
buckets carry count, min, max and mean so a chart can draw the envelope as well as the line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import text
from sqlalchemy.orm import Session

from cim.errors import InvalidInput

Resolution = Literal["auto", "raw", "hour", "day"]
RAW_SPAN = timedelta(days=2)
HOURLY_SPAN = timedelta(days=90)
MAX_POINTS = 10_000
"""Raw answers stop here (a two-day span of 1-second data would be 172,800 points)."""


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """One point of a chart: a raw value (count 1) or a roll-up bucket starting at ``time``."""

    time: datetime
    count: int
    minimum: float
    maximum: float
    mean: float


@dataclass(frozen=True, slots=True)
class Series:
    """The answer: which resolution was used and its points, oldest first."""

    datastream_id: int
    resolution: Literal["raw", "hour", "day"]
    start: datetime
    end: datetime
    points: list[SeriesPoint]


def pick_resolution(start: datetime, end: datetime) -> Literal["raw", "hour", "day"]:
    """The resolution ``auto`` means for the span ``start``..``end``."""
    span = end - start
    if span <= RAW_SPAN:
        return "raw"
    return "hour" if span <= HOURLY_SPAN else "day"


def datastream_series(
    *,
    session: Session,
    datastream_id: int,
    start: datetime,
    end: datetime,
    resolution: Resolution = "auto",
) -> Series:
    """Numeric results of ``datastream_id`` with ``start <= phenomenonTime < end``.

    Roll-up buckets are included when they start inside the span (hour/day aligned in UTC).
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInput("start and end must carry a time zone (e.g. Z)")
    if end <= start:
        raise InvalidInput("end must be after start")
    chosen = pick_resolution(start, end) if resolution == "auto" else resolution
    params = {"ds": datastream_id, "start": start, "end": end, "limit": MAX_POINTS}
    if chosen == "raw":
        rows = session.execute(
            text(
                "SELECT phenomenon_time, 1, result, result, result FROM sensor_observation"
                " WHERE datastream_id = :ds AND phenomenon_time >= :start"
                " AND phenomenon_time < :end AND result IS NOT NULL"
                " ORDER BY phenomenon_time LIMIT :limit"
            ),
            params,
        ).all()
    else:
        table = "sensor_observation_hourly" if chosen == "hour" else "sensor_observation_daily"
        rows = session.execute(
            text(
                f"SELECT bucket, count, minimum, maximum, total / count FROM {table}"
                " WHERE datastream_id = :ds AND bucket >= :start AND bucket < :end"
                " ORDER BY bucket LIMIT :limit"
            ),
            params,
        ).all()
    points = [SeriesPoint(r[0], int(r[1]), float(r[2]), float(r[3]), float(r[4])) for r in rows]
    return Series(datastream_id, chosen, start, end, points)

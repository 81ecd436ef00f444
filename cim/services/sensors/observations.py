"""Write observations in batches: COPY into the month partitions, then merge the roll-ups.

This is the one write path of observations (HTTP, dataArray, MQTT, the simulator): a batch is
checked (its datastreams exist), its month partitions are made if missing, its ids are taken
from the observation sequence in one round trip, the rows go in by ``COPY`` and the hourly and
daily roll-ups of the batch are merged into the stored buckets by an upsert that combines
(count + count, least of minima, greatest of maxima, sum + sum) — never recomputed from the
raw rows, so a batch costs the same on day 1 and day 1000. Only numeric results are rolled up.

``refresh_buckets`` recomputes the few buckets an update or a delete touched, from the raw
rows (which exist, since the changed observation did).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import Engine, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT, TIMESTAMP
from sqlalchemy.orm import Session

from cim.db.copy import reserve_ids
from cim.errors import InvalidInput, NotFound
from cim.services.sensors.alarm_eval import evaluate_batch

COPY_COLUMNS = (
    "id",
    "datastream_id",
    "phenomenon_time",
    "phenomenon_time_end",
    "result_time",
    "result",
    "result_json",
    "result_quality",
    "parameters",
    "feature_of_interest_id",
)
ROLLUP_TABLES = {"hour": "sensor_observation_hourly", "day": "sensor_observation_daily"}
PARTITION_YEARS_BACK = 30
"""Month partitions are made for data at most this many years old (and at most a year ahead);
anything outside waits in the default partition rather than making a table per stray month."""
UPSERT_CHUNK = 5000


@dataclass(slots=True)
class ObservationRow:
    """One observation to write; times are timezone-aware. A ``result`` that is a finite
    number (not a bool) is numeric and rolled up; any other JSON value is kept as is."""

    datastream_id: int
    phenomenon_time: datetime
    result: Any
    phenomenon_time_end: datetime | None = None
    result_time: datetime | None = None
    result_quality: Any = None
    parameters: dict[str, Any] | None = None
    feature_of_interest_id: int | None = None
    id: int | None = field(default=None)


def is_numeric(value: Any) -> bool:
    """Whether ``value`` goes to the numeric ``result`` column (and the roll-ups)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def month_start(moment: datetime) -> datetime:
    """The first instant of the UTC month of ``moment``."""
    utc = moment.astimezone(UTC)
    return datetime(utc.year, utc.month, 1, tzinfo=UTC)


def bucket_start(moment: datetime, resolution: str) -> datetime:
    """The UTC hour or day holding ``moment``."""
    utc = moment.astimezone(UTC)
    if resolution == "hour":
        return utc.replace(minute=0, second=0, microsecond=0)
    return utc.replace(hour=0, minute=0, second=0, microsecond=0)


def ensure_partitions(session: Session, moments: Iterable[datetime]) -> list[str]:
    """Make the month partitions holding ``moments`` (within the partition window); returns
    their names. Rows of months outside the window go to the default partition."""
    now = datetime.now(UTC)
    low = now.replace(year=now.year - PARTITION_YEARS_BACK)
    high = now + timedelta(days=366)
    months = sorted(_months(moments, low, high))
    if not months:
        return []
    statement = text("SELECT sensor_observation_ensure_partition(m) FROM unnest(:months) AS m")
    statement = statement.bindparams(bindparam("months", type_=ARRAY(TIMESTAMP(timezone=True))))
    return list(session.execute(statement, {"months": months}).scalars())


def _months(moments: Iterable[datetime], low: datetime, high: datetime) -> set[datetime]:
    """The months of ``moments`` inside [low, high]. A batch mostly spans minutes, so when its
    first and last month are the same or adjacent those are the answer (two conversions, not
    one per row); else each moment's month is taken."""
    inside = [m for m in moments if low <= m <= high]
    if not inside:
        return set()
    first, last = month_start(min(inside)), month_start(max(inside))
    if (last.year * 12 + last.month) - (first.year * 12 + first.month) <= 1:
        return {first, last}
    return {month_start(m) for m in inside}


def _check_aware(rows: Sequence[ObservationRow]) -> None:
    for row in rows:
        if row.phenomenon_time.tzinfo is None or (
            row.phenomenon_time_end is not None and row.phenomenon_time_end.tzinfo is None
        ):
            raise InvalidInput("phenomenonTime must carry a time zone (e.g. Z)")


def _check_datastreams(session: Session, ids: set[int]) -> None:
    found = set(
        session.execute(
            text("SELECT id FROM sensor_datastream WHERE id = ANY(:ids)").bindparams(
                bindparam("ids", type_=ARRAY(BIGINT))
            ),
            {"ids": sorted(ids)},
        ).scalars()
    )
    missing = sorted(ids - found)
    if missing:
        raise NotFound(f"no datastream with id {', '.join(map(str, missing[:5]))}")


def _take_ids(session: Session, count: int) -> list[int]:
    """``count`` ids from the observation sequence in one round trip (one row back, not one
    per id: :func:`cim.db.copy.reserve_ids`)."""
    return reserve_ids(session, table="sensor_observation", count=count)


def _copy(session: Session, rows: Sequence[ObservationRow]) -> None:
    raw = session.connection().connection.driver_connection
    assert raw is not None
    columns = ", ".join(COPY_COLUMNS)
    with (
        raw.cursor() as cursor,
        cursor.copy(f"COPY sensor_observation ({columns}) FROM STDIN") as copy,
    ):
        for row in rows:
            numeric = is_numeric(row.result)
            copy.write_row(
                (
                    row.id,
                    row.datastream_id,
                    row.phenomenon_time,
                    row.phenomenon_time_end,
                    row.result_time,
                    float(row.result) if numeric else None,
                    None if numeric or row.result is None else Jsonb(row.result),
                    None if row.result_quality is None else Jsonb(row.result_quality),
                    None if row.parameters is None else Jsonb(row.parameters),
                    row.feature_of_interest_id,
                )
            )


Bucket = tuple[int, datetime]


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def batch_rollup(rows: Iterable[ObservationRow], resolution: str) -> dict[Bucket, list[float]]:
    """[count, min, max, sum] of the numeric results per (datastream, bucket) of a batch."""
    return batch_rollups(rows)[resolution]


def batch_rollups(rows: Iterable[ObservationRow]) -> dict[str, dict[Bucket, list[float]]]:
    """The hourly and daily [count, min, max, sum] of a batch's numeric results, by
    (datastream, bucket). One pass over the rows into hours (whole hours since the epoch:
    exact integer arithmetic on the aware times, no per-row time-zone conversion), then the
    days from the hours (UTC days are 24 whole hours)."""
    hours: dict[tuple[int, int], list[float]] = {}
    for row in rows:
        value = row.result
        if not is_numeric(value):
            continue
        value = float(value)
        key = (row.datastream_id, (row.phenomenon_time - EPOCH) // HOUR)
        found = hours.get(key)
        if found is None:
            hours[key] = [1, value, value, value]
        else:
            found[0] += 1
            if value < found[1]:
                found[1] = value
            if value > found[2]:
                found[2] = value
            found[3] += value
    hourly: dict[Bucket, list[float]] = {}
    days: dict[tuple[int, int], list[float]] = {}
    for (datastream_id, hour), stats in hours.items():
        hourly[(datastream_id, EPOCH + hour * HOUR)] = stats
        day = days.get((datastream_id, hour // 24))
        if day is None:
            days[(datastream_id, hour // 24)] = list(stats)
        else:
            day[0] += stats[0]
            day[1] = min(day[1], stats[1])
            day[2] = max(day[2], stats[2])
            day[3] += stats[3]
    daily = {(ds, EPOCH + day * 24 * HOUR): stats for (ds, day), stats in days.items()}
    return {"hour": hourly, "day": daily}


def merge_rollup(session: Session, table: str, buckets: dict[Bucket, list[float]]) -> None:
    """Combine the batch's buckets into ``table`` (sorted, so concurrent batches lock buckets
    in one order and cannot deadlock)."""
    keys = sorted(buckets)
    statement = text(
        f"INSERT INTO {table} AS b (datastream_id, bucket, count, minimum, maximum, total)"
        " SELECT * FROM unnest(:ds, :bucket, :count, :low, :high, :total)"
        " ON CONFLICT (datastream_id, bucket) DO UPDATE SET"
        " count = b.count + excluded.count,"
        " minimum = least(b.minimum, excluded.minimum),"
        " maximum = greatest(b.maximum, excluded.maximum),"
        " total = b.total + excluded.total"
    ).bindparams(
        bindparam("ds", type_=ARRAY(BIGINT)),
        bindparam("bucket", type_=ARRAY(TIMESTAMP(timezone=True))),
        bindparam("count", type_=ARRAY(BIGINT)),
    )
    for start in range(0, len(keys), UPSERT_CHUNK):
        chunk = keys[start : start + UPSERT_CHUNK]
        stats = [buckets[key] for key in chunk]
        session.execute(
            statement,
            {
                "ds": [key[0] for key in chunk],
                "bucket": [key[1] for key in chunk],
                "count": [int(s[0]) for s in stats],
                "low": [s[1] for s in stats],
                "high": [s[2] for s in stats],
                "total": [s[3] for s in stats],
            },
        )


def _extend_phenomenon_times(session: Session, rows: Sequence[ObservationRow]) -> None:
    spans: dict[int, tuple[datetime, datetime]] = {}
    for row in rows:
        end = row.phenomenon_time_end or row.phenomenon_time
        low, high = spans.get(row.datastream_id, (row.phenomenon_time, end))
        spans[row.datastream_id] = (min(low, row.phenomenon_time), max(high, end))
    for datastream_id in sorted(spans):
        low, high = spans[datastream_id]
        session.execute(
            text(
                "UPDATE sensor_datastream SET"
                " phenomenon_time_start = least(phenomenon_time_start, :low),"
                " phenomenon_time_end = greatest(phenomenon_time_end, :high)"
                " WHERE id = :id"
            ),
            {"id": datastream_id, "low": low, "high": high},
        )


def write_observations(
    session: Session, rows: Sequence[ObservationRow], *, partitions_made: bool = False
) -> list[int]:
    """Store ``rows`` in the caller's transaction; returns their ids in order.

    Raises NotFound when a datastream does not exist, InvalidInput for a naive time.
    ``partitions_made``: the caller made the month partitions already.
    """
    if not rows:
        return []
    if not partitions_made:
        _check_aware(rows)
    _check_datastreams(session, {row.datastream_id for row in rows})
    if not partitions_made:
        ensure_partitions(session, (row.phenomenon_time for row in rows))
    for row, new_id in zip(rows, _take_ids(session, len(rows)), strict=True):
        row.id = new_id
    _copy(session, rows)
    rollups = batch_rollups(rows)
    for resolution, table in ROLLUP_TABLES.items():
        merge_rollup(session, table, rollups[resolution])
    _extend_phenomenon_times(session, rows)
    evaluate_batch(session, rows)  # alarms commit with the observations that raised them
    return [row.id for row in rows if row.id is not None]


def insert_observations(engine: Engine, rows: Sequence[ObservationRow]) -> list[int]:
    """Store ``rows`` in one transaction of their own (ingesters: MQTT, the simulator, benches).

    The month partitions are made first in a short transaction of their own, so the data
    transaction never holds the partition locks.
    """
    if not rows:
        return []
    _check_aware(rows)
    with Session(engine) as session, session.begin():
        ensure_partitions(session, (row.phenomenon_time for row in rows))
    with Session(engine) as session, session.begin():
        return write_observations(session, rows, partitions_made=True)


def refresh_buckets(session: Session, datastream_id: int, moments: Iterable[datetime]) -> None:
    """Recompute the hourly and daily buckets holding ``moments`` from the raw rows (after an
    observation was changed or deleted); a bucket left empty is removed."""
    for resolution, table in ROLLUP_TABLES.items():
        starts = sorted({bucket_start(m, resolution) for m in moments})
        step = timedelta(hours=1) if resolution == "hour" else timedelta(days=1)
        for start in starts:
            params = {"ds": datastream_id, "start": start, "end": start + step}
            session.execute(
                text(f"DELETE FROM {table} WHERE datastream_id = :ds AND bucket = :start"), params
            )
            session.execute(
                text(
                    f"INSERT INTO {table} (datastream_id, bucket, count, minimum, maximum, total)"
                    " SELECT :ds, :start, count(result), min(result), max(result), sum(result)"
                    " FROM sensor_observation WHERE datastream_id = :ds"
                    " AND phenomenon_time >= :start AND phenomenon_time < :end"
                    " AND result IS NOT NULL HAVING count(result) > 0"
                ),
                params,
            )

"""Observation storage: COPY batches, roll-ups equal to pandas' aggregates, partitions, retention,
chart queries answered from the roll-ups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cim.db.models import Datastream, ObservedProperty, Sensor, Thing
from cim.errors import InvalidInput, NotFound
from cim.services.sensors.observations import (
    ObservationRow,
    insert_observations,
    refresh_buckets,
    write_observations,
)
from cim.services.sensors.retention import drop_old_partitions, month_partitions
from cim.services.sensors.series import datastream_series

UCUM_PERCENT = {"name": "percent", "symbol": "%LEL", "definition": "http://unitsofmeasure.org"}


def make_datastream(session: Session, name: str = "methane") -> int:
    """A thing, sensor and datastream on the seeded methane property; returns its id."""
    prop = session.query(ObservedProperty).filter_by(name="Methane concentration").one()
    thing = Thing(name=f"well {name}", description="telecom well next to a gas main")
    sensor = Sensor(
        name="IR methane", description="infrared", encoding_type="text/html", sensor_metadata="-"
    )
    session.add_all([thing, sensor])
    session.flush()
    stream = Datastream(
        name=name,
        description="CH4 %LEL",
        observation_type="OM_Measurement",
        unit_of_measurement=UCUM_PERCENT,
        thing_id=thing.id,
        sensor_id=sensor.id,
        observed_property_id=prop.id,
    )
    session.add(stream)
    session.flush()
    return stream.id


def minute_data(stream: int, start: datetime, minutes: int, seed: int) -> pd.DataFrame:
    """Quarter-unit values (exact in binary, so sums do not depend on the order of addition)."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(start, periods=minutes, freq="min", tz="UTC")
    values = rng.integers(-400, 4000, size=minutes) / 4.0
    return pd.DataFrame({"datastream_id": stream, "time": times, "value": values})


def rows_of(frame: pd.DataFrame) -> list[ObservationRow]:
    return [
        ObservationRow(int(ds), t.to_pydatetime(), float(v))
        for ds, t, v in frame[["datastream_id", "time", "value"]].itertuples(index=False)
    ]


def stored_rollup(session: Session, table: str, *streams: int) -> pd.DataFrame:
    """The stored buckets of ``streams`` (other tests may have committed data of their own)."""
    frame = pd.read_sql_query(
        text(
            f"SELECT datastream_id, bucket, count, minimum, maximum, total / count AS mean"
            f" FROM {table} WHERE datastream_id = ANY(:streams) ORDER BY datastream_id, bucket"
        ),
        session.connection(),
        params={"streams": list(streams)},
    )
    frame["bucket"] = pd.to_datetime(frame["bucket"], utc=True)
    return frame


def expected_rollup(frame: pd.DataFrame, freq: str) -> pd.DataFrame:
    grouped = frame.groupby(["datastream_id", frame["time"].dt.floor(freq)])["value"]
    out = grouped.agg(["count", "min", "max", "mean"]).reset_index()
    out.columns = ["datastream_id", "bucket", "count", "minimum", "maximum", "mean"]
    return out.sort_values(["datastream_id", "bucket"]).reset_index(drop=True)


def test_rollups_equal_pandas_aggregates_over_shuffled_batches(session: Session) -> None:
    first, second = make_datastream(session, "a"), make_datastream(session, "b")
    start = datetime(2026, 1, 30, 20, 17, tzinfo=UTC)  # crosses a day and a month boundary
    frame = pd.concat([minute_data(first, start, 3 * 1440, 1), minute_data(second, start, 1000, 2)])
    shuffled = frame.sample(frac=1.0, random_state=3)
    size = len(shuffled) // 7 + 1
    for at in range(0, len(shuffled), size):  # batches hit the same buckets again and again
        write_observations(session, rows_of(shuffled.iloc[at : at + size]))

    for table, freq in (("sensor_observation_hourly", "h"), ("sensor_observation_daily", "D")):
        stored = stored_rollup(session, table, first, second)
        expected = expected_rollup(frame, freq)
        assert stored["datastream_id"].tolist() == expected["datastream_id"].tolist()
        assert stored["bucket"].tolist() == expected["bucket"].tolist()
        assert stored["count"].tolist() == expected["count"].tolist()
        assert stored["minimum"].tolist() == expected["minimum"].tolist()
        assert stored["maximum"].tolist() == expected["maximum"].tolist()
        assert stored["mean"].tolist() == expected["mean"].tolist()  # exact: quarter values

    raw = session.execute(
        text("SELECT count(*) FROM sensor_observation WHERE datastream_id IN (:a, :b)"),
        {"a": first, "b": second},
    ).scalar_one()
    assert raw == len(frame)
    span = session.execute(
        text(
            "SELECT phenomenon_time_start, phenomenon_time_end FROM sensor_datastream"
            " WHERE id = :id"
        ),
        {"id": first},
    ).one()
    assert span == (start, start + timedelta(minutes=3 * 1440 - 1))


def test_month_partitions_appear_and_nothing_is_lost(session: Session) -> None:
    stream = make_datastream(session)
    rows = [
        ObservationRow(stream, datetime(2026, 3, 10, tzinfo=UTC), 1.5),
        ObservationRow(stream, datetime(1950, 1, 1, tzinfo=UTC), 2.5),  # outside the window
        ObservationRow(stream, datetime(2026, 4, 1, tzinfo=UTC), "offline"),  # not numeric
    ]
    ids = write_observations(session, rows)
    assert len(ids) == 3 == len(set(ids))
    assert {"sensor_observation_p202603", "sensor_observation_p202604"} <= set(
        month_partitions(session)
    )
    in_default = session.execute(
        text("SELECT count(*) FROM sensor_observation_default WHERE datastream_id = :ds"),
        {"ds": stream},
    ).scalar_one()
    assert in_default == 1  # the 1950 row waits in the default partition
    text_result = session.execute(
        text("SELECT result, result_json FROM sensor_observation WHERE id = :id"), {"id": ids[2]}
    ).one()
    assert text_result == (None, "offline")
    # A row that reached the default partition moves when its month partition is made.
    session.execute(
        text(
            "INSERT INTO sensor_observation (datastream_id, phenomenon_time, result)"
            " VALUES (:ds, '2026-07-15T00:00:00Z', 3)"
        ),
        {"ds": stream},
    )
    session.execute(text("SELECT sensor_observation_ensure_partition('2026-07-01T00:00:00Z')"))
    moved = session.execute(text("SELECT count(*) FROM sensor_observation_p202607")).scalar_one()
    assert moved == 1
    total = session.execute(
        text("SELECT count(*) FROM sensor_observation WHERE datastream_id = :ds"), {"ds": stream}
    ).scalar_one()
    assert total == 4


def test_retention_drops_old_partitions_and_keeps_rollups(session: Session) -> None:
    stream = make_datastream(session)
    frame = pd.concat(
        [minute_data(stream, datetime(2026, m, 2, tzinfo=UTC), 120, m) for m in (1, 2, 3)]
    )
    write_observations(session, rows_of(frame))
    hourly_before = stored_rollup(session, "sensor_observation_hourly", stream)

    result = drop_old_partitions(session=session, months=2, now=datetime(2026, 4, 15, tzinfo=UTC))
    assert result.cutoff == datetime(2026, 2, 1, tzinfo=UTC)
    # Other tests may have committed partitions of older months: every one before the cutoff goes.
    assert "sensor_observation_p202601" in result.dropped_partitions
    assert all(name < "sensor_observation_p202602" for name in result.dropped_partitions)
    assert "sensor_observation_p202602" in month_partitions(session)
    raw = session.execute(
        text("SELECT count(*) FROM sensor_observation WHERE datastream_id = :ds"), {"ds": stream}
    ).scalar_one()
    assert raw == 240
    hourly_after = stored_rollup(session, "sensor_observation_hourly", stream)
    pd.testing.assert_frame_equal(hourly_before, hourly_after)  # January's roll-ups are kept
    with pytest.raises(InvalidInput):
        drop_old_partitions(session=session, months=0)


def test_series_over_30_days_answers_from_hourly_rollups(session: Session) -> None:
    stream = make_datastream(session)
    start = datetime(2026, 5, 1, tzinfo=UTC)
    frame = minute_data(stream, start, 31 * 1440, 7)
    write_observations(session, rows_of(frame))

    series = datastream_series(
        session=session, datastream_id=stream, start=start, end=start + timedelta(days=30)
    )
    assert series.resolution == "hour"
    assert len(series.points) == 720
    inside = frame[frame["time"] < pd.Timestamp(start + timedelta(days=30))]
    expected = expected_rollup(inside, "h")
    assert [p.count for p in series.points] == expected["count"].tolist()
    assert [p.mean for p in series.points] == expected["mean"].tolist()
    assert [p.maximum for p in series.points] == expected["maximum"].tolist()

    day = datastream_series(
        session=session, datastream_id=stream, start=start, end=start + timedelta(hours=3)
    )
    assert day.resolution == "raw" and len(day.points) == 180
    year = datastream_series(
        session=session, datastream_id=stream, start=start, end=start + timedelta(days=365)
    )
    assert year.resolution == "day" and len(year.points) == 31
    with pytest.raises(InvalidInput):
        datastream_series(session=session, datastream_id=stream, start=start, end=start)


def test_refresh_buckets_after_a_delete(session: Session) -> None:
    stream = make_datastream(session)
    moment = datetime(2026, 6, 1, 10, 30, tzinfo=UTC)
    ids = write_observations(
        session, [ObservationRow(stream, moment, 5.0), ObservationRow(stream, moment, 9.0)]
    )
    session.execute(text("DELETE FROM sensor_observation WHERE id = :id"), {"id": ids[1]})
    refresh_buckets(session, stream, [moment])
    hourly = stored_rollup(session, "sensor_observation_hourly", stream)
    assert hourly[["count", "minimum", "maximum", "mean"]].values.tolist() == [[1, 5, 5, 5]]
    session.execute(text("DELETE FROM sensor_observation WHERE id = :id"), {"id": ids[0]})
    refresh_buckets(session, stream, [moment])
    assert stored_rollup(session, "sensor_observation_daily", stream).empty


def test_bad_batches_are_refused(session: Session) -> None:
    stream = make_datastream(session)
    with pytest.raises(InvalidInput, match="time zone"):
        write_observations(session, [ObservationRow(stream, datetime(2026, 1, 1), 1.0)])
    with pytest.raises(NotFound, match="999999"):
        write_observations(session, [ObservationRow(999999, datetime(2026, 1, 1, tzinfo=UTC), 1.0)])


def test_insert_observations_commits_in_its_own_transaction(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        stream = make_datastream(session, "committed")
    try:
        rows = rows_of(minute_data(stream, datetime(2026, 8, 1, tzinfo=UTC), 500, 11))
        ids = insert_observations(engine, rows)
        with engine.connect() as conn:
            count = conn.execute(
                text("SELECT count(*) FROM sensor_observation WHERE datastream_id = :ds"),
                {"ds": stream},
            ).scalar_one()
        assert count == len(ids) == 500
    finally:
        with engine.begin() as conn:
            owners = conn.execute(
                text("SELECT thing_id, sensor_id FROM sensor_datastream WHERE id = :ds"),
                {"ds": stream},
            ).one()
            conn.execute(text("DELETE FROM sensor_thing WHERE id = :id"), {"id": owners[0]})
            conn.execute(text("DELETE FROM sensor_device WHERE id = :id"), {"id": owners[1]})


def test_concurrent_batches_make_a_new_month_partition_once(engine: Engine) -> None:
    """Four writers hit a month with no partition at once: one makes it, all succeed."""
    from concurrent.futures import ThreadPoolExecutor

    with Session(engine) as session, session.begin():
        stream = make_datastream(session, "race")
        taken = set(month_partitions(session))
    month = next(
        datetime(year, 2, 1, tzinfo=UTC)
        for year in range(2001, 2025)
        if f"sensor_observation_p{year}02" not in taken
    )
    batches = [rows_of(minute_data(stream, month + timedelta(days=i), 300, i)) for i in range(4)]
    try:
        with ThreadPoolExecutor(4) as pool:
            written = list(pool.map(lambda rows: insert_observations(engine, rows), batches))
        assert [len(ids) for ids in written] == [300] * 4
        with engine.connect() as conn:
            name = f"sensor_observation_p{month:%Y%m}"
            count = conn.execute(
                text(f"SELECT count(*) FROM {name} WHERE datastream_id = :ds"), {"ds": stream}
            ).scalar_one()
        assert count == 1200
    finally:
        with engine.begin() as conn:
            owners = conn.execute(
                text("SELECT thing_id, sensor_id FROM sensor_datastream WHERE id = :ds"),
                {"ds": stream},
            ).one()
            conn.execute(text("DELETE FROM sensor_thing WHERE id = :id"), {"id": owners[0]})
            conn.execute(text("DELETE FROM sensor_device WHERE id = :id"), {"id": owners[1]})

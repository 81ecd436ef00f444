"""Datastreams for the alarm and MQTT tests: a thing of a utility class with one datastream."""

from __future__ import annotations

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cim.db.models import Datastream, ObservedProperty, Sensor, Thing
from cim.db.models.sensor import OBSERVATION_TYPES


def make_datastream(
    engine: Engine, name: str, *, utility: str | None, observation_type: str = "OM_Measurement"
) -> int:
    """A committed Thing (utility class ``utility``) with one datastream; its id."""
    with Session(engine) as session, session.begin():
        thing = Thing(name=f"{name} device", description="test", properties={}, utility=utility)
        sensor = Sensor(
            name=f"{name} sensor",
            description="test",
            encoding_type="text/html",
            sensor_metadata="https://example.org",
            properties={},
        )
        observed = ObservedProperty(
            name=name, definition=f"https://example.org/{name}", description="test", properties={}
        )
        session.add_all([thing, sensor, observed])
        session.flush()
        stream = Datastream(
            name=f"{name} stream",
            description="test",
            observation_type=OBSERVATION_TYPES[observation_type],
            unit_of_measurement={"name": "percent", "symbol": "%", "definition": "ucum:%"},
            thing_id=thing.id,
            sensor_id=sensor.id,
            observed_property_id=observed.id,
            properties={},
        )
        session.add(stream)
        session.flush()
        return int(stream.id)


def drop_streams(engine: Engine, ids: list[int]) -> None:
    """Delete the things (and so datastreams, observations, rules, alarms) of ``ids``."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "DELETE FROM sensor_thing WHERE id IN"
                " (SELECT thing_id FROM sensor_datastream WHERE id = ANY(:ids))"
            ),
            {"ids": ids},
        )


def stored_count(engine: Engine, datastream_id: int) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM sensor_observation WHERE datastream_id = :d"),
                {"d": datastream_id},
            ).scalar_one()
        )

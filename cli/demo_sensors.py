"""The demo city's sensors: a SensorThings set loaded through the service layer, its backlog
of observations, and the live simulated feed ``cim demo`` runs beside ``cim serve --mqtt``.

The set (``data/samples/demo_ky4_sensors.json``, written by ``scripts/make_demo_gas.py``) is
STA Thing bodies with their Datastreams (deep insert, :func:`cim.services.sensors.write.create`)
and alarm rules, with two demo-only references resolved here: ``cim:watches`` names a pipe node
by ``code`` (the node of the newest ready dataset with that code), and an ObservedProperty given
only by ``definition`` is the seeded one (migration 0008). Every Thing carries ``demo_set``; a
set already there is left alone, so a second ``cim demo`` adds nothing. The backlog is ``days``
of values every ``step_minutes`` up to now, from :mod:`cim.services.sensors.feed`'s profiles
with the set's seed, so the chart and the roll-ups show something at once.
"""

from __future__ import annotations

import json
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cim.db.engine import make_engine
from cim.errors import InvalidInput, NotFound
from cim.services.sensors.alarms import RuleInput, create_rule
from cim.services.sensors.documents import Context
from cim.services.sensors.feed import load_streams, pick_leak, profile_for, value
from cim.services.sensors.ingest import default_feature
from cim.services.sensors.mqtt_broker import running_broker_url
from cim.services.sensors.mqtt_feed import publish_feed
from cim.services.sensors.mqtt_ingest import connect_client
from cim.services.sensors.observations import ObservationRow, write_observations
from cim.services.sensors.schema import SETS
from cim.services.sensors.write import create

LEAK_AFTER_S, LEAK_RAMP_S, LEAK_PEAK = 120.0, 120.0, 60.0
"""The live feed's leak: from 2 min, ramping to 60 %LEL over 2 min (notice 10, warning 25,
alarm 50 are crossed between about 2.5 and 3.7 min)."""
SECONDS_PER_VALUE = 5.0
"""Each datastream gets a live value about every 5 s."""


def read_set(path: Path) -> dict[str, Any]:
    """The sensor set JSON; InvalidInput when unreadable."""
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"cannot read the demo sensor set {path}: {exc}") from None
    if not isinstance(found, dict) or not isinstance(found.get("things"), list):
        raise InvalidInput(f"the demo sensor set {path} has no 'things' list")
    return found


def _node_id(session: Session, code: str) -> int:
    found = session.execute(
        text(
            "SELECT n.id FROM pipe_node n JOIN dataset d ON d.id = n.dataset_id"
            " WHERE n.code = :code AND d.status = 'ready' ORDER BY d.id DESC LIMIT 1"
        ),
        {"code": code},
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(f"no pipe node {code} in a ready dataset (was the gas layer imported?)")
    return int(found)


def _property_id(session: Session, definition: str) -> int:
    found = session.execute(
        text("SELECT min(id) FROM sensor_observed_property WHERE definition = :d"),
        {"d": definition},
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(f"no observed property {definition}")
    return int(found)


def _resolved(session: Session, thing: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(json.dumps(thing))
    watches = body.get("properties", {}).get("cim:watches")
    if isinstance(watches, dict) and "code" in watches:
        watches["id"] = _node_id(session, str(watches.pop("code")))
    for stream in body.get("Datastreams", []):
        wanted = stream.get("ObservedProperty")
        if isinstance(wanted, dict) and set(wanted) == {"definition"}:
            stream["ObservedProperty"] = {"@iot.id": _property_id(session, wanted["definition"])}
    return body


def loaded_things(session: Session, name: str) -> int:
    """Things of the set ``name`` already stored."""
    return int(
        session.execute(
            text("SELECT count(*) FROM sensor_thing WHERE properties->>'demo_set' = :name"),
            {"name": name},
        ).scalar_one()
    )


def backlog_rows(
    session: Session, datastreams: list[int], *, days: float, step_minutes: float, seed: int,
    end: datetime,
) -> list[ObservationRow]:  # fmt: skip
    """Values every ``step_minutes`` over the ``days`` before ``end`` for each datastream."""
    rows = []
    steps = int(days * 24 * 60 / step_minutes)
    for datastream_id in datastreams:
        definition = session.execute(
            text(
                "SELECT p.definition FROM sensor_datastream d JOIN sensor_observed_property p"
                " ON p.id = d.observed_property_id WHERE d.id = :id"
            ),
            {"id": datastream_id},
        ).scalar_one()
        profile = profile_for(definition)
        rng = random.Random(f"{seed}:{datastream_id}")
        feature = default_feature(session, datastream_id)
        for k in range(steps, 0, -1):
            moment = end - timedelta(minutes=step_minutes * k)
            rows.append(
                ObservationRow(datastream_id, moment, value(profile, moment, rng), None, None,
                               feature_of_interest_id=feature)
            )  # fmt: skip
    return rows


def load_sensor_set(engine: Engine, path: Path, srid: int) -> dict[str, Any]:
    """Store the set, its rules and its backlog in one transaction; a report for the demo."""
    found = read_set(path)
    name = str(found.get("set") or path.stem)
    with Session(engine) as session, session.begin():
        existing = loaded_things(session, name)
        if existing:
            return {"status": "unchanged", "things": existing}
        ctx = Context(base_url="", srid=srid)
        things = [
            create(session, SETS["Things"], _resolved(session, t), ctx) for t in found["things"]
        ]
        datastreams = [
            int(i)
            for i in session.execute(
                text("SELECT id FROM sensor_datastream WHERE thing_id = ANY(:t) ORDER BY id"),
                {"t": things},
            ).scalars()
        ]
        for rule in found.get("rules", []):
            fields = dict(rule)
            definition = fields.pop("observed_property", None)
            if definition is not None:
                fields["observed_property_id"] = _property_id(session, definition)
            create_rule(session, RuleInput.model_validate(fields))
        backlog = found.get("backlog") or {}
        step = float(backlog.get("step_minutes", 5))
        now = datetime.now(UTC)
        end = now - timedelta(
            minutes=now.minute % step, seconds=now.second, microseconds=now.microsecond
        )
        rows = backlog_rows(
            session, datastreams, days=float(backlog.get("days", 0)), step_minutes=step,
            seed=int(found.get("seed", 0)), end=end,
        )  # fmt: skip
        write_observations(session, rows)
    return {
        "status": "imported",
        "things": len(things),
        "datastreams": len(datastreams),
        "rules": len(found.get("rules", [])),
        "observations": len(rows),
    }


def start_live_feed(url: str, data_dir: Path, seed: int = 20) -> threading.Thread:
    """A daemon thread that waits for the data dir's broker (``cim serve --mqtt``), then
    publishes every numeric datastream about every 5 s with one methane leak, until exit."""

    def run() -> None:
        deadline = time.monotonic() + 60
        broker = running_broker_url(data_dir)
        while broker is None and time.monotonic() < deadline:
            time.sleep(0.5)
            broker = running_broker_url(data_dir)
        if broker is None:
            return
        engine = make_engine(url)
        try:
            with Session(engine) as session:
                streams = load_streams(session)
        finally:
            engine.dispose()
        if not streams:
            return
        leak = pick_leak(streams, LEAK_AFTER_S, LEAK_RAMP_S, LEAK_PEAK)
        client = connect_client(broker, f"cim-demo-feed-{seed}", persistent=False)
        client.loop_start()
        rate = len(streams) / SECONDS_PER_VALUE
        try:
            publish_feed(client, streams, rate=rate, duration=0, leak=leak, seed=seed)
        except (RuntimeError, OSError):
            return  # the broker stopped with the server: the demo is ending

    thread = threading.Thread(target=run, name="cim-demo-feed", daemon=True)
    thread.start()
    return thread

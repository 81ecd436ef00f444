"""SensorThings: things, locations, sensors, observed properties, datastreams, observations

The OGC SensorThings API 1.1 data model (tables ``sensor_*``, see ``cim/db/models/sensor.py``).
``sensor_observation`` is range-partitioned by month on ``phenomenon_time`` with a BRIN index on
time and a btree on (datastream, time); ``sensor_observation_ensure_partition(ts)`` makes the
month partition of ``ts`` when missing (moving that month's rows out of the default partition,
which catches anything that arrives before its month exists, so nothing is lost). Hourly and daily
roll-ups (count, min, max, sum) are kept by the observation service. Observed properties for the
lifeline cases are seeded, each with its suggested UCUM unit (sources in
``SEEDED_PROPERTIES``). Downgrade drops every sensor table and the function.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 12:30:00.000000
"""

import json
import os
from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UCUM = "http://unitsofmeasure.org/ucum.html"
QUDT = "http://qudt.org/vocab/quantitykind/"
# name, definition URI, description, suggested unitOfMeasurement (UCUM code as ``symbol``).
# Quantity kinds: QUDT 2.1 vocabulary (qudt.org/vocab/quantitykind); units: UCUM (The Unified
# Code for Units of Measure, unitsofmeasure.org): kPa, m3/h, m, Cel, mm and % are UCUM codes.
# %LEL (percent of the lower explosive limit, the reading of catalytic and infrared methane
# detectors per GB 15322 / EN 60079-29-1) has no UCUM unit of its own: in UCUM it is percent
# with an annotation, ``%{LEL}``; the symbol shown is "%LEL", as detectors display it.
SEEDED_PROPERTIES: list[tuple[str, str, str, dict[str, str]]] = [
    (
        "Methane concentration",
        "urn:cim:observed-property:gas-concentration-lel",
        "Combustible gas concentration in percent of the lower explosive limit (methane LEL "
        "5 % vol), in manholes, chambers and tunnels next to gas mains.",
        {"name": "percent of lower explosive limit", "symbol": "%LEL", "definition": UCUM},
    ),
    (
        "Pipe pressure",
        QUDT + "Pressure",
        "Gauge pressure inside a water, gas or heat pipe.",
        {"name": "kilopascal", "symbol": "kPa", "definition": UCUM},
    ),
    (
        "Flow rate",
        QUDT + "VolumeFlowRate",
        "Volume flow through a pipe or conduit.",
        {"name": "cubic metre per hour", "symbol": "m3/h", "definition": UCUM},
    ),
    (
        "Water level",
        "urn:cim:observed-property:water-level",
        "Water level above the invert of a manhole, chamber or conduit (drainage, flooding).",
        {"name": "metre", "symbol": "m", "definition": UCUM},
    ),
    (
        "Temperature",
        QUDT + "Temperature",
        "Medium or wall temperature of a heat pipe; air temperature in a utility tunnel.",
        {"name": "degree Celsius", "symbol": "Cel", "definition": UCUM},
    ),
    (
        "Displacement",
        QUDT + "Displacement",
        "Settlement or deformation of a pipe, tunnel or structure.",
        {"name": "millimetre", "symbol": "mm", "definition": UCUM},
    ),
]

PARTITION_FUNCTION = """
CREATE FUNCTION sensor_observation_ensure_partition(at_time timestamptz) RETURNS text
LANGUAGE plpgsql AS $fn$
DECLARE
    lower_bound timestamptz := date_trunc('month', at_time, 'UTC');
    upper_bound timestamptz :=
        (date_trunc('month', at_time, 'UTC') AT TIME ZONE 'UTC' + interval '1 month')
        AT TIME ZONE 'UTC';
    part text := 'sensor_observation_p' || to_char(lower_bound AT TIME ZONE 'UTC', 'YYYYMM');
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN part;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext(part));
    -- Not to_regclass again: an advisory lock does not refresh the catalog caches, so a
    -- partition another session just committed is seen only by a fresh catalog query.
    IF EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE c.relname = part AND n.nspname = current_schema()) THEN
        RETURN part;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE sensor_observation INCLUDING DEFAULTS)', part);
    EXECUTE format(
        'WITH moved AS (DELETE FROM sensor_observation_default'
        ' WHERE phenomenon_time >= $1 AND phenomenon_time < $2 RETURNING *)'
        ' INSERT INTO %I SELECT * FROM moved', part) USING lower_bound, upper_bound;
    EXECUTE format(
        'ALTER TABLE sensor_observation ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
        part, lower_bound, upper_bound);
    RETURN part;
END
$fn$;
COMMENT ON FUNCTION sensor_observation_ensure_partition(timestamptz) IS
    'Make the UTC month partition of sensor_observation holding at_time, if missing; '
    'rows of that month waiting in the default partition move into it.';
"""


def _storage_srid() -> int:
    recorded = (
        op.get_bind()
        .execute(sa.text("SELECT value FROM cim_setting WHERE key = 'storage_srid'"))
        .scalar_one_or_none()
    )
    if recorded is not None:
        return int(recorded)
    srid = op.get_context().config.attributes.get("srid") if op.get_context().config else None
    return int(srid or os.environ.get("CIM_SRID") or 4547)


ENTITY_DDL = """
CREATE TABLE sensor_thing (
    id bigserial CONSTRAINT pk_sensor_thing PRIMARY KEY,
    name text NOT NULL, description text NOT NULL, {props},
    utility varchar(8),
    pipe_node_id bigint CONSTRAINT fk_sensor_thing_pipe_node_id_pipe_node
        REFERENCES pipe_node(id) ON DELETE SET NULL,
    pipe_segment_id bigint CONSTRAINT fk_sensor_thing_pipe_segment_id_pipe_segment
        REFERENCES pipe_segment(id) ON DELETE SET NULL,
    building_element_id bigint
        CONSTRAINT fk_sensor_thing_building_element_id_building_element
        REFERENCES building_element(id) ON DELETE SET NULL,
    CONSTRAINT ck_sensor_thing_one_feature
        CHECK (num_nonnulls(pipe_node_id, pipe_segment_id, building_element_id) <= 1)
);
CREATE INDEX ix_sensor_thing_utility ON sensor_thing (utility);
CREATE INDEX ix_sensor_thing_pipe_node_id ON sensor_thing (pipe_node_id);
CREATE INDEX ix_sensor_thing_pipe_segment_id ON sensor_thing (pipe_segment_id);
CREATE INDEX ix_sensor_thing_building_element_id ON sensor_thing (building_element_id);

CREATE TABLE sensor_location (
    id bigserial CONSTRAINT pk_sensor_location PRIMARY KEY,
    name text NOT NULL, description text NOT NULL,
    encoding_type text DEFAULT 'application/geo+json' NOT NULL,
    geom geometry(GEOMETRYZ, {srid}) NOT NULL, {props}
);
CREATE INDEX idx_sensor_location_geom ON sensor_location USING gist (geom);

CREATE TABLE sensor_thing_location (
    thing_id bigint NOT NULL CONSTRAINT fk_sensor_thing_location_thing_id_sensor_thing
        REFERENCES sensor_thing(id) ON DELETE CASCADE,
    location_id bigint NOT NULL CONSTRAINT fk_sensor_thing_location_location_id_sensor_location
        REFERENCES sensor_location(id) ON DELETE CASCADE,
    CONSTRAINT pk_sensor_thing_location PRIMARY KEY (thing_id, location_id)
);
CREATE INDEX ix_sensor_thing_location_thing_id ON sensor_thing_location (thing_id);
CREATE INDEX ix_sensor_thing_location_location_id ON sensor_thing_location (location_id);

CREATE TABLE sensor_historical_location (
    id bigserial CONSTRAINT pk_sensor_historical_location PRIMARY KEY,
    thing_id bigint NOT NULL CONSTRAINT fk_sensor_historical_location_thing_id_sensor_thing
        REFERENCES sensor_thing(id) ON DELETE CASCADE,
    time timestamptz NOT NULL
);
CREATE INDEX ix_sensor_historical_location_thing_id ON sensor_historical_location (thing_id);

CREATE TABLE sensor_historical_location_location (
    historical_location_id bigint NOT NULL
        CONSTRAINT fk_sensor_historical_location_location_historical_location_id_sensor_historical_location
        REFERENCES sensor_historical_location(id) ON DELETE CASCADE,
    location_id bigint NOT NULL
        CONSTRAINT fk_sensor_historical_location_location_location_id_sensor_location
        REFERENCES sensor_location(id) ON DELETE CASCADE,
    CONSTRAINT pk_sensor_historical_location_location
        PRIMARY KEY (historical_location_id, location_id)
);
CREATE INDEX ix_sensor_historical_location_location_historical_location_id
    ON sensor_historical_location_location (historical_location_id);
CREATE INDEX ix_sensor_historical_location_location_location_id
    ON sensor_historical_location_location (location_id);

CREATE TABLE sensor_device (
    id bigserial CONSTRAINT pk_sensor_device PRIMARY KEY,
    name text NOT NULL, description text NOT NULL, encoding_type text NOT NULL,
    metadata text NOT NULL, {props}
);

CREATE TABLE sensor_observed_property (
    id bigserial CONSTRAINT pk_sensor_observed_property PRIMARY KEY,
    name text NOT NULL,
    definition text NOT NULL,
    description text NOT NULL, {props}
);
CREATE INDEX ix_sensor_observed_property_definition ON sensor_observed_property (definition);

CREATE TABLE sensor_datastream (
    id bigserial CONSTRAINT pk_sensor_datastream PRIMARY KEY,
    name text NOT NULL, description text NOT NULL, observation_type text NOT NULL,
    unit_of_measurement jsonb NOT NULL,
    thing_id bigint NOT NULL CONSTRAINT fk_sensor_datastream_thing_id_sensor_thing
        REFERENCES sensor_thing(id) ON DELETE CASCADE,
    sensor_id bigint NOT NULL CONSTRAINT fk_sensor_datastream_sensor_id_sensor_device
        REFERENCES sensor_device(id) ON DELETE CASCADE,
    observed_property_id bigint NOT NULL
        CONSTRAINT fk_sensor_datastream_observed_property_id_sensor_observed_property
        REFERENCES sensor_observed_property(id) ON DELETE CASCADE,
    phenomenon_time_start timestamptz, phenomenon_time_end timestamptz, {props}
);
CREATE INDEX ix_sensor_datastream_thing_id ON sensor_datastream (thing_id);
CREATE INDEX ix_sensor_datastream_sensor_id ON sensor_datastream (sensor_id);
CREATE INDEX ix_sensor_datastream_observed_property_id
    ON sensor_datastream (observed_property_id);

CREATE TABLE sensor_feature_of_interest (
    id bigserial CONSTRAINT pk_sensor_feature_of_interest PRIMARY KEY,
    name text NOT NULL, description text NOT NULL,
    encoding_type text DEFAULT 'application/geo+json' NOT NULL,
    geom geometry(GEOMETRYZ, {srid}) NOT NULL,
    location_id bigint CONSTRAINT fk_sensor_feature_of_interest_location_id_sensor_location
        REFERENCES sensor_location(id) ON DELETE SET NULL,
    {props}
);
CREATE INDEX idx_sensor_feature_of_interest_geom ON sensor_feature_of_interest USING gist (geom);
CREATE INDEX ix_sensor_feature_of_interest_location_id
    ON sensor_feature_of_interest (location_id);
"""
"""The entity tables; ``{srid}`` is the storage SRID, ``{props}`` the JSONB properties column."""


def _entity_ddl(srid: int) -> str:
    props = "properties jsonb DEFAULT '{}'::jsonb NOT NULL"
    return ENTITY_DDL.format(srid=srid, props=props)


OBSERVATION_DDL = """
CREATE TABLE sensor_observation (
    id bigint GENERATED BY DEFAULT AS IDENTITY NOT NULL,
    datastream_id bigint NOT NULL CONSTRAINT fk_sensor_observation_datastream_id_sensor_datastream
        REFERENCES sensor_datastream(id) ON DELETE CASCADE,
    phenomenon_time timestamptz NOT NULL,
    phenomenon_time_end timestamptz,
    result_time timestamptz,
    result double precision,
    result_json jsonb,
    result_quality jsonb,
    parameters jsonb,
    feature_of_interest_id bigint
        CONSTRAINT fk_sensor_observation_feature_of_interest_id_sensor_feature_of_interest
        REFERENCES sensor_feature_of_interest(id) ON DELETE SET NULL,
    CONSTRAINT pk_sensor_observation PRIMARY KEY (id, phenomenon_time)
) PARTITION BY RANGE (phenomenon_time);
CREATE INDEX ix_sensor_observation_phenomenon_time
    ON sensor_observation USING brin (phenomenon_time);
CREATE INDEX ix_sensor_observation_datastream_id_phenomenon_time
    ON sensor_observation (datastream_id, phenomenon_time);
CREATE TABLE sensor_observation_default PARTITION OF sensor_observation DEFAULT;
"""


def _rollup_ddl(table: str) -> str:
    return f"""
CREATE TABLE {table} (
    datastream_id bigint NOT NULL CONSTRAINT fk_{table}_datastream_id_sensor_datastream
        REFERENCES sensor_datastream(id) ON DELETE CASCADE,
    bucket timestamptz NOT NULL,
    count bigint NOT NULL,
    minimum double precision NOT NULL,
    maximum double precision NOT NULL,
    total double precision NOT NULL,
    CONSTRAINT pk_{table} PRIMARY KEY (datastream_id, bucket)
);
"""


def upgrade() -> None:
    srid = _storage_srid()
    op.execute(_entity_ddl(srid))
    op.execute(OBSERVATION_DDL)
    op.execute(_rollup_ddl("sensor_observation_hourly"))
    op.execute(_rollup_ddl("sensor_observation_daily"))
    op.execute(PARTITION_FUNCTION)
    insert = sa.text(
        "INSERT INTO sensor_observed_property (name, definition, description, properties)"
        " VALUES (:name, :definition, :description, CAST(:properties AS jsonb))"
    )
    for name, definition, description, unit in SEEDED_PROPERTIES:
        properties = json.dumps({"unitOfMeasurement": unit, "seeded": True})
        op.get_bind().execute(
            insert,
            {
                "name": name,
                "definition": definition,
                "description": description,
                "properties": properties,
            },
        )


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS sensor_observation_ensure_partition(timestamptz)")
    for table in (
        "sensor_observation_daily",
        "sensor_observation_hourly",
        "sensor_observation",  # its partitions go with it
        "sensor_feature_of_interest",
        "sensor_datastream",
        "sensor_observed_property",
        "sensor_device",
        "sensor_historical_location_location",
        "sensor_historical_location",
        "sensor_thing_location",
        "sensor_location",
        "sensor_thing",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")

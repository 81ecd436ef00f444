"""Sensor alarm rules and alarms: ``sensor_alarm_rule`` and ``sensor_alarm`` (issue 20).

One open (not cleared) alarm per (rule, datastream) is enforced by the partial unique index
``uq_sensor_alarm_open``; see :mod:`cim.db.models.alarm` for the lifecycle.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 13:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("now()")


def _stamp(name: str, *, default: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        server_default=NOW if default else None,
        nullable=not default,
    )


def _reference(name: str, table: str, *, nullable: bool) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        name,
        sa.BigInteger(),
        sa.ForeignKey(f"{table}.id", ondelete="CASCADE"),
        nullable=nullable,
    )


def upgrade() -> None:
    op.create_table(
        "sensor_alarm_rule",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        _reference("datastream_id", "sensor_datastream", nullable=True),
        _reference("observed_property_id", "sensor_observed_property", nullable=True),
        sa.Column("utility", sa.String(8), nullable=True),
        sa.Column("direction", sa.String(8), server_default="above", nullable=False),
        sa.Column("notice", sa.Double(), nullable=True),
        sa.Column("warning", sa.Double(), nullable=True),
        sa.Column("alarm", sa.Double(), nullable=True),
        sa.Column("hysteresis", sa.Double(), server_default=sa.text("0"), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=True),
        sa.Column("level", sa.String(8), server_default="warning", nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        _stamp("created_at", default=True),
        sa.CheckConstraint(
            "datastream_id IS NOT NULL OR observed_property_id IS NOT NULL", name="target"
        ),
        sa.CheckConstraint("kind IN ('threshold', 'rate', 'missing')", name="kind"),
        sa.CheckConstraint("direction IN ('above', 'below')", name="direction"),
        sa.CheckConstraint("level IN ('notice', 'warning', 'alarm')", name="level"),
        sa.CheckConstraint("kind <> 'missing' OR minutes > 0", name="missing_minutes"),
        sa.CheckConstraint(
            "kind = 'missing' OR coalesce(notice, warning, alarm) IS NOT NULL", name="levels"
        ),
        sa.CheckConstraint("hysteresis >= 0", name="hysteresis"),
    )
    for column in ("datastream_id", "observed_property_id"):
        op.create_index(f"ix_sensor_alarm_rule_{column}", "sensor_alarm_rule", [column])
    op.create_table(
        "sensor_alarm",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        _reference("rule_id", "sensor_alarm_rule", nullable=False),
        _reference("datastream_id", "sensor_datastream", nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("state", sa.String(16), server_default="raised", nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        _stamp("observed_at"),
        _stamp("raised_at", default=True),
        _stamp("acknowledged_at"),
        sa.Column("acknowledged_by", sa.Text(), nullable=True),
        _stamp("cleared_at"),
        sa.Column("cleared_by", sa.Text(), nullable=True),
        _stamp("updated_at", default=True),
        sa.CheckConstraint("state IN ('raised', 'acknowledged', 'cleared')", name="state"),
        sa.CheckConstraint("level IN ('notice', 'warning', 'alarm')", name="level"),
    )
    op.create_index("ix_sensor_alarm_rule_id", "sensor_alarm", ["rule_id"])
    op.create_index("ix_sensor_alarm_datastream_id", "sensor_alarm", ["datastream_id"])
    op.create_index("ix_sensor_alarm_raised_at", "sensor_alarm", ["raised_at"])
    op.create_index(
        "uq_sensor_alarm_open",
        "sensor_alarm",
        ["rule_id", "datastream_id"],
        unique=True,
        postgresql_where=sa.text("state <> 'cleared'"),
    )


def downgrade() -> None:
    op.drop_table("sensor_alarm")
    op.drop_table("sensor_alarm_rule")

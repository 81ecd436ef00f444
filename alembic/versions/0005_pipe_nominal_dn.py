"""``pipe_segment.nominal_dn``: the nominal size (DN) of each circular pipe, beside its exact diameter

Imported imperial networks store 304.8 mm for a 12-inch pipe; labels, OGC properties and filters
use the nominal size (DN300) while ``diameter_mm`` keeps the exact value. Existing rows are filled
from their distinct diameters with the same function the importers use
(:func:`cim.nominal_sizes.nominal_dn`), so there is one definition of the series.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 09:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op
from cim.nominal_sizes import nominal_dn

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("pipe_segment", sa.Column("nominal_dn", sa.Integer(), nullable=True))
    bind = op.get_bind()
    diameters = bind.execute(
        sa.text("SELECT DISTINCT diameter_mm FROM pipe_segment WHERE diameter_mm > 0")
    ).scalars()
    pairs = [{"d": float(d), "dn": nominal_dn(float(d))} for d in diameters]
    if pairs:
        bind.execute(
            sa.text("UPDATE pipe_segment SET nominal_dn = :dn WHERE diameter_mm = :d"), pairs
        )


def downgrade() -> None:
    op.drop_column("pipe_segment", "nominal_dn")

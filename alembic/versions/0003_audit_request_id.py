"""audit rows name their request: nullable ``audit_log.request_id``

The id of the HTTP request that wrote the row (its ``X-Request-ID`` answer header and the
``request_id`` of its log lines), so an operator can go from an audit row to the log lines of
the same request and back. Existing rows, and rows of the CLI, have none (NULL). No index: the
column is read when investigating, with a time range on the indexed ``at``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 07:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("request_id", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("audit_log", "request_id")

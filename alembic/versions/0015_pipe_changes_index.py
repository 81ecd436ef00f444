"""pipes: index the rows a new version wrote, ``(dataset_id, valid_from)`` (issue 18)

The incremental tile refresh (``tiles.changes``) asks which pipe rows a dataset's new versions
wrote: ``dataset_id = :d AND valid_from >= :since``. Without an index that is a sequential scan
of both pipe tables (about 0.25 s at 300k segments, most of a refresh). The plain
``dataset_id`` index is a prefix of the new one, so it is replaced: the import still maintains
the same number of indexes, and deleting a dataset finds its rows through the new index.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 23:50:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("pipe_node", "pipe_segment")


def upgrade() -> None:
    for table in TABLES:
        op.create_index(f"ix_{table}_dataset_id_valid_from", table, ["dataset_id", "valid_from"])
        op.drop_index(f"ix_{table}_dataset_id", table_name=table)


def downgrade() -> None:
    for table in TABLES:
        op.create_index(f"ix_{table}_dataset_id", table, ["dataset_id"])
        op.drop_index(f"ix_{table}_dataset_id_valid_from", table_name=table)

"""pipes: one ``(code, dataset_id)`` index instead of ``(code)`` and ``(dataset_id, code)`` (issue 21)

Every lookup by code is an equality on it - across datasets (``code = :c``, the OGC API's
filters) or within some (``dataset_id = ANY(:ds) AND code = ANY(:codes)``, the EPANET/SWMM and
version lookups) - and one index led by ``code`` answers both. No query reads a dataset's rows
in code order, which is all ``(dataset_id, code)`` could add. Each index build after a bulk
import costs ~0.45 s at 1M rows on the import's serial path, so the pipe import builds two
fewer (ten instead of twelve).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 06:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("pipe_node", "pipe_segment")


def upgrade() -> None:
    for table in TABLES:
        op.create_index(f"ix_{table}_code_dataset_id", table, ["code", "dataset_id"])
        op.drop_index(f"ix_{table}_code", table_name=table)
        op.drop_index(f"ix_{table}_dataset_id_code", table_name=table)


def downgrade() -> None:
    for table in TABLES:
        op.create_index(f"ix_{table}_code", table, ["code"])
        op.create_index(f"ix_{table}_dataset_id_code", table, ["dataset_id", "code"])
        op.drop_index(f"ix_{table}_code_dataset_id", table_name=table)

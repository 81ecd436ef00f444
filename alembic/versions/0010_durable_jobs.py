"""Durable jobs: ``import_job`` becomes a PostgreSQL-backed queue that any process can work.

A worker claims a queued row with ``SELECT ... FOR UPDATE SKIP LOCKED``, records itself in
``worker`` and ``attempts``, and keeps ``heartbeat_at`` fresh while the job runs; a row whose
heartbeat goes stale is re-queued (``attempts < max_attempts``) or failed, never left
``running``. ``task`` says what a job does (import | tiles); ``run_after`` delays a job.
Existing rows are imports; rows that already ran count one attempt.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 13:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMPS = ("heartbeat_at", "started_at", "finished_at")


def upgrade() -> None:
    op.add_column(
        "import_job",
        sa.Column("task", sa.String(16), server_default="import", nullable=False),
    )
    op.create_check_constraint("ck_import_job_task", "import_job", "task IN ('import', 'tiles')")
    op.add_column("import_job", sa.Column("worker", sa.Text(), nullable=True))
    for column in TIMESTAMPS:
        op.add_column("import_job", sa.Column(column, sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "import_job",
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column(
        "import_job",
        sa.Column("max_attempts", sa.Integer(), server_default=sa.text("3"), nullable=False),
    )
    op.add_column(
        "import_job",
        sa.Column(
            "run_after", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )
    op.execute("UPDATE import_job SET run_after = created_at")
    op.execute("UPDATE import_job SET attempts = 1 WHERE status <> 'queued'")
    op.create_index(
        "ix_import_job_claim",
        "import_job",
        ["run_after", "created_at"],
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.create_index("ix_import_job_created_at", "import_job", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_import_job_created_at", table_name="import_job")
    op.drop_index("ix_import_job_claim", table_name="import_job")
    for column in ("run_after", "max_attempts", "attempts", *TIMESTAMPS, "worker"):
        op.drop_column("import_job", column)
    op.drop_constraint("ck_import_job_task", "import_job", type_="check")
    op.drop_column("import_job", "task")

"""Access control and background work: ``api_key``, ``audit_log`` and ``import_job``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from cim.db.base import Base
from cim.db.types import BigIntPK, DefaultNow, JsonAttrs
from cim.logs import current_request_id

ROLES = ("reader", "analyst", "admin")
JOB_STATUSES = ("queued", "running", "succeeded", "failed")
JOB_TASKS = ("import", "tiles")
DEFAULT_MAX_ATTEMPTS = 3
"""Attempts a job gets before a dead worker's job is failed instead of re-queued."""


class ApiKey(Base):
    """An API key: only its sha256 is stored; ``role`` decides what it may read and write."""

    __tablename__ = "api_key"
    __table_args__ = (CheckConstraint(f"role IN {ROLES!r}", name="role"),)

    id: Mapped[BigIntPK]
    name: Mapped[str] = mapped_column(Text)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[DefaultNow]
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditLog(Base):
    """Who read a sensitive layer or changed data, and when.

    ``request_id`` is the id of the HTTP request that wrote the row (the ``X-Request-ID`` of
    its answer and the ``request_id`` of its log lines), filled in by default from the request
    being served, whoever writes the row; NULL for rows of the CLI.
    """

    __tablename__ = "audit_log"

    id: Mapped[BigIntPK]
    at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
    api_key_id: Mapped[int | None] = mapped_column(BigInteger)
    role: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(Text)
    resource: Mapped[str] = mapped_column(Text)
    client: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[JsonAttrs]
    request_id: Mapped[str | None] = mapped_column(Text, default=current_request_id)


class ImportJob(Base):
    """A background job (an upload's import, or a tile refresh) in the durable queue.

    ``task`` says what runs (import | tiles); ``kind`` is the dataset kind it concerns. A worker
    claims a ``queued`` row whose ``run_after`` has come (``SELECT ... FOR UPDATE SKIP LOCKED``),
    sets ``worker`` and ``attempts + 1`` and keeps ``heartbeat_at`` fresh while it runs; a row
    whose heartbeat goes stale is re-queued or failed (``cim.jobs.queue``). ``worker`` is NULL
    for rows claimed by the in-memory runner before migration 0010.
    """

    __tablename__ = "import_job"
    __table_args__ = (
        CheckConstraint(f"status IN {JOB_STATUSES!r}", name="status"),
        CheckConstraint(f"task IN {JOB_TASKS!r}", name="task"),
        Index(
            "ix_import_job_claim",
            "run_after",
            "created_at",
            postgresql_where=text("status = 'queued'"),
        ),
        Index("ix_import_job_created_at", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    task: Mapped[str] = mapped_column(String(16), default="import", server_default="import")
    kind: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="queued", server_default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0, server_default=text("0"))
    options: Mapped[JsonAttrs]
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    dataset_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[DefaultNow]
    updated_at: Mapped[DefaultNow]
    worker: Mapped[str | None] = mapped_column(Text)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    max_attempts: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_MAX_ATTEMPTS, server_default=text(str(DEFAULT_MAX_ATTEMPTS))
    )
    run_after: Mapped[DefaultNow]
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

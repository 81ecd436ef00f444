"""Run any analysis on the data as it was: ``at`` on the analysis routes.

Why this way: the analyses (section, clearance, isolation, trace…) read ``pipe_node`` and
``pipe_segment`` (the gas analyses also ``building``) by name in dozens of queries; every
versioned table of :mod:`.tables` gets its view. :func:`read_as_of` creates, for one transaction,
temporary views of the same names (PostgreSQL searches the session's temporary schema first) whose
rows are those valid at the moment (current rows valid by then + ``feature_history``) — so every
analysis answers on the past network unchanged. The views are dropped before the transaction
commits (a rollback drops them anyway), server-side prepared statements are off while they exist
(a statement prepared earlier on the pooled connection would still read the real table), and the
in-memory network graphs are keyed by the moment too (``session.info["as_of"]``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.orm import Session

from cim.services.versions.tables import VERSIONED_TABLES

AS_OF = "as_of"


def _view_sql(schema: str, table: str, moment: datetime) -> str:
    stamp = f"'{moment.isoformat()}'::timestamptz"  # from a datetime, never from raw input
    real = f'"{schema}"."{table}"'
    # the record is built only from this table's history rows (CASE), whatever order the planner
    # evaluates the view's filter and a condition pushed into it: a pipe_node row populated as a
    # pipe_segment is a geometry type error, not a row to filter out
    return (
        f"CREATE TEMP VIEW {table} AS SELECT * FROM {real} WHERE valid_from <= {stamp}"
        f" UNION ALL SELECT (jsonb_populate_record(NULL::{real},"
        f" CASE WHEN h.table_name = '{table}' THEN h.row END)).*"
        f" FROM \"{schema}\".feature_history h WHERE h.table_name = '{table}'"
        f" AND h.valid_from <= {stamp} AND h.valid_to > {stamp}"
    )


def read_as_of(session: Session, moment: datetime) -> None:
    """Make the rest of this transaction read the versioned tables as they were at ``moment``."""
    if moment.tzinfo is None:
        raise ValueError("read_as_of needs an aware datetime")
    connection = session.connection()
    driver: Any = connection.connection.driver_connection
    threshold = driver.prepare_threshold
    driver.prepare_threshold = None
    schema = connection.execute(text("SELECT current_schema()")).scalar_one()
    for table in VERSIONED_TABLES:
        connection.execute(text(_view_sql(schema, table, moment)))
    session.info[AS_OF] = moment

    def drop_views(current: Session) -> None:
        for table in VERSIONED_TABLES:
            current.connection().execute(text(f"DROP VIEW IF EXISTS pg_temp.{table}"))

    restored: list[bool] = []

    def restore(current: Session, transaction: Any) -> None:
        if transaction.parent is None and not restored:  # the outer transaction ended
            driver.prepare_threshold = threshold
            current.info.pop(AS_OF, None)
            restored.append(True)

    event.listen(session, "before_commit", drop_views, once=True)
    event.listen(session, "after_transaction_end", restore)


def as_of(session: Session) -> datetime | None:
    """The moment this session reads at (None: now); part of the keys of cached graphs."""
    moment = session.info.get(AS_OF)
    return moment if isinstance(moment, datetime) else None

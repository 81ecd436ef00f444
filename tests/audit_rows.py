"""The ``audit_log`` rows a test caused: the last id before, the ``read`` rows after it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, text


def last_audit_id(engine: Engine) -> int:
    """The newest ``audit_log`` id (0 when empty): rows after it are the test's."""
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT coalesce(max(id), 0) FROM audit_log")).scalar_one())


def reads_since(engine: Engine, after: int) -> list[tuple[int | None, str, dict[str, Any]]]:
    """(key id, resource, detail) of every ``read`` row after id ``after``, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT api_key_id, resource, detail FROM audit_log"
                " WHERE id > :after AND action = 'read' ORDER BY id"
            ),
            {"after": after},
        ).all()
    return [(row[0], row[1], row[2]) for row in rows]

"""Bulk writes with PostgreSQL ``COPY`` (the fast path for millions of rows).

``copy_rows`` takes Python rows (text format): geometries as hex EWKB
(``shapely.to_wkb(g, hex=True, include_srid=True)``), which the geometry type's text input
accepts; jsonb values as JSON text. ``copy_binary`` takes chunks already in the binary COPY
tuple format (built column-wise by the caller, e.g. with numpy): nothing is formatted per row
here, and the server parses no text.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from cim.faults import pause_point


def copy_rows(
    session: Session, *, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> int:
    """COPY ``rows`` into ``table`` inside the session's transaction; returns the row count."""
    connection = session.connection().connection.driver_connection
    assert connection is not None
    count = 0
    column_list = ", ".join(columns)
    with (
        connection.cursor() as cursor,
        cursor.copy(f"COPY {table} ({column_list}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)
            count += 1
            if count == 1:
                pause_point("copy")  # fault tests kill the process inside an open COPY
    return count


BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
"""Binary COPY signature, flags (no OIDs) and an empty header extension."""
BINARY_TRAILER = b"\xff\xff"


def copy_binary(
    session: Session, *, table: str, columns: Sequence[str], chunks: Iterable[Any]
) -> None:
    """COPY binary tuple data (buffers, e.g. uint8 arrays; header and trailer added here).

    Chunks are consumed as they come, so a producer may still be encoding the next one while
    this one is sent (the wait for the socket releases the GIL).
    """
    connection = session.connection().connection.driver_connection
    assert connection is not None
    column_list = ", ".join(columns)
    with (
        connection.cursor() as cursor,
        cursor.copy(f"COPY {table} ({column_list}) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.write(BINARY_HEADER)
        for number, chunk in enumerate(chunks):
            copy.write(memoryview(chunk))
            if number == 0:
                pause_point("copy")  # fault tests kill the process inside an open COPY
        copy.write(BINARY_TRAILER)


def reserve_ids(session: Session, *, table: str, count: int) -> list[int]:
    """Take ``count`` ids from the table's sequence, so COPY rows can reference each other."""
    ids: list[int] = reserve_id_array(session, table=table, count=count).tolist()
    return ids


def reserve_id_array(session: Session, *, table: str, count: int) -> npt.NDArray[np.int64]:
    """:func:`reserve_ids` as an int64 array (no Python int per id when they are contiguous).

    When this transaction holds ``table`` exclusively (a bulk writer that dropped its indexes,
    :func:`defer_indexes`) the whole range is taken in one step (:func:`_take_range`): a
    million ``nextval`` calls cost the pipe import 0.9 s of its serial path. Otherwise the
    table is locked as an insert would lock it (``ROW EXCLUSIVE``, which the COPY that follows
    takes anyway), so that a reservation never runs beside an exclusive holder's one-step one.
    """
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    connection = session.connection().connection.driver_connection
    assert connection is not None
    with connection.cursor() as cursor:
        # Resolve the sequence once: pg_get_serial_sequence per row is a catalog lookup per id
        # and made this 4-6x slower.
        cursor.execute(
            "SELECT s.seqrelid::regclass::text, s.seqincrement = 1 AND s.seqcache = 1"
            "  AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'relation'"
            "   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            "   AND l.relation = CAST(%s AS regclass) AND l.pid = pg_backend_pid()"
            "   AND l.mode = 'AccessExclusiveLock' AND l.granted)"
            " FROM pg_sequence s"
            " WHERE s.seqrelid = CAST(pg_get_serial_sequence(%s, 'id') AS regclass)",
            (table, table),
        )
        found = cursor.fetchone()
        assert found is not None, f"{table}.id has no sequence"
        sequence, exclusive = found
        if exclusive:
            first = _take_range(cursor, sequence, count)
            return np.arange(first, first + count, dtype=np.int64)
        cursor.execute(f"LOCK TABLE ONLY {table} IN ROW EXCLUSIVE MODE")
        first, last, scattered = _take(cursor, sequence, count)
    if scattered is not None:
        return np.asarray(scattered, dtype=np.int64)
    return np.arange(first, last + 1, dtype=np.int64)


def _take_range(cursor: Any, sequence: str, count: int) -> int:
    """Advance ``sequence`` by ``count`` in one step; returns the first value taken.

    Safe only while this transaction holds the sequence's table in ACCESS EXCLUSIVE mode and
    the sequence caches no values (checked by the caller): every other use of the sequence
    waits for that lock first, an ``INSERT`` because it locks the table before it evaluates
    the column default, :func:`reserve_id_array` because it locks the table before ``nextval``.
    So nothing can draw a value between the ``nextval`` and the ``setval`` here. Like
    ``nextval``, ``setval`` is not rolled back: a failed import leaves a gap, as always.
    """
    cursor.execute(
        "SELECT setval(CAST(%s AS regclass), nextval(CAST(%s AS regclass)) + %s - 1)",
        (sequence, sequence, count),
    )
    row = cursor.fetchone()
    assert row is not None
    return int(row[0]) - count + 1


def _take(cursor: Any, sequence: str, count: int) -> tuple[int, int, list[int] | None]:
    """Take ``count`` values; (first, last, None) when they are contiguous, as they are unless
    another session draws from the sequence meanwhile; else the values themselves, ascending.

    One row comes back instead of ``count``: sending a million ids to the client cost more
    than taking them. When another session drew values meanwhile, the span is not ours alone:
    those values are left unused (a sequence has gaps anyway) and ``count`` more are taken
    and sent back one by one.
    """
    cursor.execute(
        "SELECT min(v), max(v), count(*) FROM"
        " (SELECT nextval(%s::regclass) AS v FROM generate_series(1, %s)) AS taken",
        (sequence, count),
    )
    row = cursor.fetchone()
    assert row is not None
    first, last, taken = int(row[0]), int(row[1]), int(row[2])
    if last - first + 1 == taken:
        return first, last, None
    cursor.execute("SELECT nextval(%s::regclass) FROM generate_series(1, %s)", (sequence, count))
    values = [int(r[0]) for r in cursor.fetchall()]
    return values[0], values[-1], values


def skip_row_triggers(session: Session, tables: Sequence[str]) -> bool:
    """Switch per-row foreign-key triggers off for the rest of this transaction when that is
    safe: the role is a superuser (``session_replication_role`` needs it) and ``tables`` carry
    no user triggers that would be skipped too. Whether they were switched off.

    Why: a foreign-key check is a trigger call and an index probe per row, more than the row's
    indexes cost. Bulk writers whose references point at rows of their own transaction switch
    them off for the COPY (as ``pg_restore --disable-triggers`` does), switch them back on with
    :func:`restore_row_triggers` and check every reference with one set-based query instead.
    """
    allowed = session.execute(
        text(
            "SELECT r.rolsuper AND NOT EXISTS (SELECT 1 FROM pg_trigger t"
            "  WHERE t.tgrelid = ANY (CAST(:tables AS regclass[])) AND NOT t.tgisinternal)"
            " FROM pg_roles r WHERE r.rolname = current_user"
        ),
        {"tables": list(tables)},
    ).scalar()
    if allowed:
        session.execute(text("SET LOCAL session_replication_role = replica"))
    return bool(allowed)


def restore_row_triggers(session: Session) -> None:
    """Per-row triggers back on (after :func:`skip_row_triggers`)."""
    session.execute(text("SET LOCAL session_replication_role = origin"))


DEFER_INDEXES_MIN_ROWS = 10_000
"""Below this many new rows, dropping and creating the indexes costs more than it saves."""


def defer_indexes(session: Session, table: str, *, new_rows: int) -> list[str]:
    """Drop the secondary indexes of ``table`` for a bulk COPY when rebuilding them afterwards
    is cheaper than maintaining them row by row; returns their definitions for
    :func:`rebuild_indexes` (run it before the transaction ends).

    Cheaper means the table holds fewer rows than the COPY will add: a build sorts or packs
    every row once, an insert descends every index per row (the pipe tables' indexes cost
    3-4x the COPY itself). The drop is part of the transaction: a rollback or a killed process
    leaves the indexes as they were. It needs the table's ACCESS EXCLUSIVE lock, so it is
    attempted only when nothing holds a lock on the table (``NOWAIT``); readers that come later
    wait for the commit (they could read fewer rows than the import adds). Primary keys and
    other constraint-backed indexes stay (ids ascend, so appending them is cheap).
    Returns [] (nothing dropped) when the rebuild is not cheaper, the COPY is smaller than
    :data:`DEFER_INDEXES_MIN_ROWS` or the lock is held.
    """
    if new_rows < DEFER_INDEXES_MIN_ROWS:
        return []
    existing = session.execute(
        text(f"SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT :n) AS sample"),
        {"n": new_rows},
    ).scalar_one()
    if existing >= new_rows:
        return []
    try:
        with session.begin_nested():
            session.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE NOWAIT"))
    except OperationalError:
        return []
    rows = session.execute(
        text(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)"
            " FROM pg_index i WHERE i.indrelid = CAST(:table AS regclass)"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)"
            " ORDER BY i.indexrelid"
        ),
        {"table": table},
    ).all()
    for name, _ in rows:
        session.execute(text(f"DROP INDEX {name}"))
    return [definition for _, definition in rows]


def rebuild_indexes(session: Session, definitions: Sequence[str]) -> None:
    """Create the indexes :func:`defer_indexes` dropped (same names and definitions)."""
    if not definitions:
        return
    session.execute(text("SELECT set_config('maintenance_work_mem', '256MB', true)"))
    for definition in definitions:
        session.execute(text(definition))


STALE_SHARE = 0.1
"""A table that an import grows by more than this share of its committed rows is analysed
before the import commits (autovacuum's own default, ``autovacuum_analyze_scale_factor``)."""


def refresh_statistics(
    session: Session, written: Mapping[str, int], columns: Mapping[str, Sequence[str]] | None = None
) -> list[str]:
    """``ANALYZE`` each table of ``written`` (table -> rows this transaction added) that grew
    by more than :data:`STALE_SHARE` of the rows it held before (the statistics views' live
    tuple count, which excludes this transaction's). Returns the tables analysed.
    ``columns`` limits a table's statistics to the columns queries filter or join on (the
    row count is gathered anyway): a column of meshes nobody filters on costs most of it.

    Why: a bulk import is read at once - ``cim demo`` and the tests build tiles the moment it
    commits - while autovacuum analyses the new rows up to a minute later. Until then the
    planner believes the tables are (nearly) empty and picks nested loops over them: the city
    index of the demo's 11k buildings took 18.5 s that way instead of 0.2 s. ``ANALYZE`` in the
    import's transaction samples its own uncommitted rows, and its statistics are rolled back
    with everything else if the import fails."""
    analysed = []
    for table, rows in written.items():
        if rows <= 0:
            continue
        before = session.execute(
            text("SELECT pg_stat_get_live_tuples(CAST(:t AS regclass))"), {"t": table}
        ).scalar()
        if rows > STALE_SHARE * (before or 0):
            named = (columns or {}).get(table)
            session.execute(text(f"ANALYZE {table}" + (f" ({', '.join(named)})" if named else "")))
            analysed.append(table)
    return analysed


BINARY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
READ_CHUNK_BYTES = 8 << 20
"""Records decoded at a time by :func:`read_fixed_rows` (the caller keeps arrays, not bytes)."""


def read_fixed_rows(
    connection: Any, sql: str, fields: Sequence[tuple[str, str]]
) -> Iterator[npt.NDArray[Any]]:
    """The rows of ``sql`` as numpy records, a few MB at a time, read with binary COPY.

    ``fields`` names each column and its big-endian numpy type (``">i8"`` int8, ``">f8"``
    float8, ``">i4"`` int4, ``"?"`` bool), in the query's order. Every value must be non-NULL
    (coalesce in the query), so every row has the same size and a chunk of rows is one
    ``np.frombuffer``: a million rows read as Python tuples cost seconds of client CPU, as
    records a few milliseconds (what remains is psycopg's per-row message, ~1.3 us).

    Examples
    --------
    >>> _record_dtype([("id", ">i8"), ("x", ">f8")]).itemsize  # count, then (length, value)s
    26
    """
    dtype = _record_dtype(fields)
    buffered: list[bytes] = []
    size = 0
    header = b""
    statement = f"COPY ({sql}) TO STDOUT (FORMAT BINARY)"
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        for data in copy:
            if len(header) < 19:
                header += bytes(data)
                if len(header) < 19:
                    continue
                if not header.startswith(BINARY_SIGNATURE):
                    raise ValueError("not a binary COPY stream")
                skip = 19 + int.from_bytes(header[15:19], "big")
                data, header = header[skip:], header[:19]
            buffered.append(bytes(data))
            size += len(data)
            if size >= READ_CHUNK_BYTES:
                whole = b"".join(buffered)
                cut = len(whole) // dtype.itemsize * dtype.itemsize
                yield _records(whole[:cut], dtype, fields)
                buffered, size = [whole[cut:]], len(whole) - cut
    rest = b"".join(buffered)
    if not rest.endswith(BINARY_TRAILER):
        raise ValueError("binary COPY stream without its trailer")
    if len(rest) > 2:
        yield _records(rest[:-2], dtype, fields)


def _record_dtype(fields: Sequence[tuple[str, str]]) -> np.dtype[Any]:
    parts: list[tuple[str, str]] = [("_count", ">i2")]
    for name, code in fields:
        parts += [(f"_{name}_length", ">i4"), (name, code)]
    return np.dtype(parts)


def _records(
    data: bytes, dtype: np.dtype[Any], fields: Sequence[tuple[str, str]]
) -> npt.NDArray[Any]:
    if len(data) % dtype.itemsize:
        raise ValueError("a NULL or a value of another size in a fixed-width COPY")
    records = np.frombuffer(data, dtype=dtype)
    widths_ok = all(
        (records[f"_{name}_length"] == np.dtype(code).itemsize).all() for name, code in fields
    )
    if not widths_ok or (records["_count"] != len(fields)).any():
        raise ValueError("a NULL or a value of another size in a fixed-width COPY")
    return records

"""Fold a freshly imported copy of a dataset into the dataset as its next version.

Why this shape: importers stay as they are — they write every row of the new source under a
*staging* dataset in the import's transaction. Here, still in that transaction, each staging
row is matched to the current row with the same stable key (:mod:`.tables`):

* same content — the staging row is dropped; the current row is shared by both versions;
* changed — the current row goes to ``feature_history`` whole, then takes the new content in
  place (same id, ``valid_from`` = now);
* only in the new source — the staging row moves into the dataset (added);
* only in the old — the row goes to history and leaves the current table (removed).

So a version stores only what changed, ids stay stable, and readers of the current tables see
the new version at COMMIT, all at once. References (a segment's end nodes) are remapped to the
matched ids first. All names in the SQL come from our own table metadata, never from input.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from cim.services.versions.tables import VERSIONED, VersionedTable

STATES = ("added", "removed", "changed", "unchanged")


def _match_table(table: VersionedTable | str) -> str:
    """The temporary match table of a versioned table (given by spec or by name)."""
    return f"_version_match_{table if isinstance(table, str) else table.name}"


def _ref_alias(column: str) -> str:
    return f"ref_{column}"


def _same_content(spec: VersionedTable) -> str:
    """SQL: rows ``o`` and ``n`` hold the same content — every column but id, dataset and
    validity, compared null-safe; geometries as exact EWKB bytes; a reference of ``n`` through
    the referenced table's match (``ref_<column>``), since the staging row points at staging ids.
    """
    refs = dict(spec.references)
    same = []
    for column in spec.content_columns:
        if column in spec.geometry_columns:
            same.append(f"ST_AsEWKB(o.{column}) IS NOT DISTINCT FROM ST_AsEWKB(n.{column})")
        elif column in spec.text_compared_columns:
            same.append(f"o.{column}::text IS NOT DISTINCT FROM n.{column}::text")
        elif column in refs:
            mapped = f"coalesce({_ref_alias(column)}.old_id, n.{column})"
            same.append(f"o.{column} IS NOT DISTINCT FROM {mapped}")
        else:
            same.append(f"o.{column} IS NOT DISTINCT FROM n.{column}")
    return " AND ".join(same)


def _ref_joins(spec: VersionedTable) -> str:
    return " ".join(
        f"LEFT JOIN {_match_table(table)} {_ref_alias(column)}"
        f" ON {_ref_alias(column)}.new_id = n.{column}"
        for column, table in spec.references
    )


def _key_columns(spec: VersionedTable, side: str) -> str:
    """The key of each row of ``side`` (o: current, n: staging) as columns ``k0, k1…``.

    A reference in the key is read through the referenced table's match, so a staging row
    names the current row it points at. A nullable key column gives two columns (is it NULL,
    its text or '') so that NULL matches NULL and the join stays a hash join.
    """
    refs = dict(spec.references)
    columns = []
    for i, column in enumerate(spec.key):
        value = f"t.{column}"
        if side == "n" and column in refs:
            value = f"coalesce({_ref_alias(column)}.old_id, t.{column})"
        if spec.table.c[column].nullable:
            columns.append(f"({value}) IS NULL AS k{i}_null")
            value = f"coalesce(({value})::text, '')"
        columns.append(f"{value} AS k{i}")
    return ", ".join(columns)


def _key_names(spec: VersionedTable) -> list[str]:
    names = []
    for i, column in enumerate(spec.key):
        if spec.table.c[column].nullable:
            names.append(f"k{i}_null")
        names.append(f"k{i}")
    return names


def _key_ref_joins(spec: VersionedTable) -> str:
    """Joins of the staging rows to the matches of the references in their key."""
    return " ".join(
        f"LEFT JOIN {_match_table(table)} {_ref_alias(column)}"
        f" ON {_ref_alias(column)}.new_id = t.{column}"
        for column, table in spec.references
        if column in spec.key
    )


def _match(session: Session, spec: VersionedTable, old: int, new: int) -> dict[str, int]:
    """A temporary (old_id, new_id, state) table pairing rows by key; the counts per state.

    ``state`` is added (no old row), removed (no new row), changed or unchanged.
    """
    key = ", ".join(_key_names(spec))
    on = " AND ".join(f"o.{k} = n.{k}" for k in _key_names(spec))
    match = _match_table(spec)
    session.execute(text(f"DROP TABLE IF EXISTS {match}"))
    session.execute(
        text(
            f"""
            CREATE TEMP TABLE {match} ON COMMIT DROP AS
            WITH o0 AS (SELECT t.id, {_key_columns(spec, "o")}
                        FROM {spec.name} t WHERE t.dataset_id = :old),
                 n0 AS (SELECT t.id, {_key_columns(spec, "n")}
                        FROM {spec.name} t {_key_ref_joins(spec)} WHERE t.dataset_id = :new),
                 o AS (SELECT *, row_number() OVER (PARTITION BY {key} ORDER BY id) AS k FROM o0),
                 n AS (SELECT *, row_number() OVER (PARTITION BY {key} ORDER BY id) AS k FROM n0),
                 pairs AS (SELECT o.id AS old_id, n.id AS new_id
                           FROM o FULL JOIN n ON {on} AND o.k = n.k)
            SELECT p.old_id, p.new_id, CASE
                WHEN p.old_id IS NULL THEN 'added'
                WHEN p.new_id IS NULL THEN 'removed'
                WHEN {_same_content(spec)} THEN 'unchanged' ELSE 'changed' END AS state
            FROM pairs p
            LEFT JOIN {spec.name} o ON o.id = p.old_id
            LEFT JOIN {spec.name} n ON n.id = p.new_id
            {_ref_joins(spec)}
            """
        ),
        {"old": old, "new": new},
    )
    session.execute(text(f"CREATE INDEX ON {match} (new_id)"))
    session.execute(text(f"ANALYZE {match}"))
    rows = session.execute(text(f"SELECT state, count(*) FROM {match} GROUP BY state")).all()
    counts = {state: 0 for state in STATES}
    counts.update({str(state): int(n) for state, n in rows})
    return counts


def _remap(session: Session, spec: VersionedTable) -> None:
    """Point the references of the staging rows that stay (changed: copied over the current
    row; added: moved into the dataset) at the matched current ids of the referenced table."""
    for column, referenced in spec.references:
        session.execute(
            text(
                f"UPDATE {spec.name} t SET {column} = m.old_id"
                f" FROM {_match_table(referenced)} m, {_match_table(spec)} s"
                f" WHERE s.state IN ('changed', 'added') AND t.id = s.new_id"
                f" AND t.{column} = m.new_id AND m.old_id IS NOT NULL"
            )
        )


def history_row_sql(spec: VersionedTable, alias: str) -> str:
    """JSONB of a whole row, geometries as hex EWKB (what ``jsonb_populate_record`` reads back)."""
    overrides = ", ".join(
        f"'{g}', encode(ST_AsEWKB({alias}.{g}), 'hex')" for g in spec.geometry_columns
    )
    row = f"to_jsonb({alias})"
    return f"{row} || jsonb_build_object({overrides})" if overrides else row


def _keep_history(session: Session, spec: VersionedTable, dataset_id: int) -> None:
    """Rows a version changes or removes, as they were, into ``feature_history``."""
    geom = "NULL" if spec.shape is None else f"ST_Force3D(o.{spec.shape})"
    session.execute(
        text(
            f"""
            INSERT INTO feature_history
                (dataset_id, table_name, feature_id, valid_from, valid_to, row, geom)
            SELECT :dataset, :table, o.id, o.valid_from, now(), {history_row_sql(spec, "o")},
                   {geom}
            FROM {spec.name} o JOIN {_match_table(spec)} m ON m.old_id = o.id
            WHERE m.state IN ('changed', 'removed')
            """
        ),
        {"dataset": dataset_id, "table": spec.name},
    )


def _update_changed(session: Session, spec: VersionedTable) -> None:
    columns = spec.content_columns
    targets = ", ".join(columns)
    values = ", ".join(f"n.{c}" for c in columns)
    session.execute(
        text(
            f"""
            UPDATE {spec.name} o SET ({targets}, valid_from) = ({values}, now())
            FROM {spec.name} n, {_match_table(spec)} m
            WHERE m.state = 'changed' AND o.id = m.old_id AND n.id = m.new_id
            """
        )
    )


def _adopt_added(session: Session, spec: VersionedTable, dataset_id: int) -> None:
    session.execute(
        text(
            f"UPDATE {spec.name} SET dataset_id = :dataset WHERE id IN"
            f" (SELECT new_id FROM {_match_table(spec)} WHERE state = 'added')"
        ),
        {"dataset": dataset_id},
    )


def _drop(session: Session, spec: VersionedTable, side: str, states: tuple[str, ...]) -> None:
    session.execute(
        text(
            f"DELETE FROM {spec.name} WHERE id IN (SELECT {side} FROM {_match_table(spec)}"
            f" WHERE state = ANY(:states))"
        ),
        {"states": list(states)},
    )


def merge_version(
    session: Session, *, kind: str, dataset_id: int, staging_id: int
) -> dict[str, Any]:
    """Make the rows of ``staging_id`` the next version of ``dataset_id``; counts per table.

    Runs inside the caller's transaction (the import's), so a failure leaves the dataset as it
    was. The staging dataset is left empty (the caller deletes it).
    """
    specs = VERSIONED[kind]
    changes: dict[str, Any] = {}
    for spec in specs:  # referenced tables first: their matches map the references
        changes[spec.name] = _match(session, spec, dataset_id, staging_id)
        _remap(session, spec)
        _keep_history(session, spec, dataset_id)
    for spec in specs:
        _update_changed(session, spec)
        _adopt_added(session, spec, dataset_id)
    for spec in reversed(specs):  # referencing tables first: nothing cascades unseen
        _drop(session, spec, "new_id", ("changed", "unchanged"))
        _drop(session, spec, "old_id", ("removed",))
    return changes

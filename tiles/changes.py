"""What new dataset versions changed since a layer was built: the layer features to re-read.

A re-import of a versioned dataset (:mod:`cim.services.versions`) gives changed and added rows
``valid_from`` = the new version's time and keeps changed and removed rows in
``feature_history`` with ``valid_to`` = that time. So, from the first version after the one
the layer's manifest recorded (its ``created_at``, the ``since`` of a :class:`VersionStep`):

* changed or added rows: ``valid_from >= since`` in the current table;
* changed or removed rows: ``valid_to >= since`` in ``feature_history``.

Pipes tiles also draw a feature from its neighbours' rows: a segment's depth below ground comes
from its start node, and a valve's marker sits at the height of the pipes that meet it. So the
end nodes (old and new) of a touched segment, and the segments at a touched node, are touched
too. Both ends are taken, a little more than the content needs, so that a future change of the
content SQL cannot leave a stale tile behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, text

from cim.services.versions.tables import is_versioned


@dataclass(frozen=True)
class VersionStep:
    """A dataset that has versions newer than the layer's, and when the first of them began."""

    dataset_id: int
    since: datetime


class NotIncremental(Exception):
    """This layer must be rebuilt in full; the message says why (shown in the build result)."""


def version_steps(
    connection: Connection, recorded: dict[str, int], changed: list[str]
) -> list[VersionStep]:
    """The version steps of the ``changed`` datasets since the ``recorded`` version numbers.

    Raises :class:`NotIncremental` when a dataset is not of a versioned kind (its re-import
    replaced it), or when the history since the recorded version was purged
    (``cim datasets purge`` drops the recorded version's entry exactly when it drops the history
    that ends after it).
    """
    steps = []
    for dataset in changed:
        row = connection.execute(
            text(
                "SELECT d.kind, "
                "  (SELECT created_at FROM dataset_version v WHERE v.dataset_id = d.id "
                "   AND v.version = :recorded + 1) AS since, "
                "  EXISTS (SELECT 1 FROM dataset_version v WHERE v.dataset_id = d.id "
                "   AND v.version = :recorded) AS kept "
                "FROM dataset d WHERE d.id = :dataset"
            ),
            {"dataset": int(dataset), "recorded": recorded.get(dataset, 0)},
        ).first()
        if row is None or not is_versioned(str(row.kind)):
            raise NotIncremental(f"dataset {dataset} was replaced, not versioned")
        if not row.kept or row.since is None:
            raise NotIncremental(f"the history of dataset {dataset} since the build is gone")
        steps.append(VersionStep(int(dataset), row.since))
    return steps


# Segment ids (positive) and node ids (negated) touched since ``since``, neighbours included
# (psycopg placeholders: run through ``exec_driver_sql``).
TOUCHED_SQL = """
WITH seg_history AS (
    SELECT feature_id AS id, row FROM feature_history
    WHERE dataset_id = %(dataset)s AND table_name = 'pipe_segment' AND valid_to >= %(since)s),
seg AS (
    SELECT id FROM pipe_segment WHERE dataset_id = %(dataset)s AND valid_from >= %(since)s
    UNION SELECT id FROM seg_history),
node AS (
    SELECT id FROM pipe_node WHERE dataset_id = %(dataset)s AND valid_from >= %(since)s
    UNION SELECT feature_id FROM feature_history
    WHERE dataset_id = %(dataset)s AND table_name = 'pipe_node' AND valid_to >= %(since)s),
seg_ends AS (
    SELECT unnest(ARRAY[s.start_node_id, s.end_node_id]) AS id
    FROM pipe_segment s WHERE s.id IN (SELECT id FROM seg)
    UNION SELECT unnest(ARRAY[(h.row ->> 'start_node_id')::bigint,
                              (h.row ->> 'end_node_id')::bigint]) FROM seg_history h),
node_segs AS (
    SELECT s.id FROM pipe_segment s WHERE s.start_node_id IN (SELECT id FROM node)
    UNION SELECT s.id FROM pipe_segment s WHERE s.end_node_id IN (SELECT id FROM node))
SELECT id FROM seg UNION SELECT id FROM node_segs
UNION SELECT -id FROM node WHERE id IS NOT NULL
UNION SELECT -id FROM seg_ends WHERE id IS NOT NULL
"""


def touched_features(connection: Connection, steps: list[VersionStep]) -> npt.NDArray[np.int64]:
    """Sorted ids of the pipes layer's features (segments > 0, nodes < 0) that the versions of
    ``steps`` changed, added or removed, with the neighbours whose tiles draw them."""
    found: list[npt.NDArray[np.int64]] = [np.zeros(0, dtype=np.int64)]
    for step in steps:
        rows = connection.exec_driver_sql(
            TOUCHED_SQL, {"dataset": step.dataset_id, "since": step.since}
        ).fetchall()  # thousands of ids: one fetch, no per-row result processing
        found.append(np.array([row[0] for row in rows], dtype=np.int64))
    return np.unique(np.concatenate(found))

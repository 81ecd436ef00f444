"""What an analysis answer shows of the sensitive utility classes: its segments, counted by class.

The audit trail (``api/audit.py``) records every answer that shows segments of a class in
``CIM_SENSITIVE_UTILITIES``; this module is the one place that knows where each typed answer
keeps its segments. Walks (isolation, trace) name segments by id only, so the classes are read
back from ``pipe_segment`` for every answer, in one query.
"""

from __future__ import annotations

from typing import assert_never

from sqlalchemy import text
from sqlalchemy.orm import Session

from cim.services.pipes.models import (
    BurstIsolation,
    ClashReport,
    ClearanceReport,
    CrossSection,
    ExcavationImpact,
    LongitudinalProfile,
    NetworkTrace,
    PairSide,
    PipeCollection,
)

PipeAnswer = (
    PipeCollection
    | CrossSection
    | LongitudinalProfile
    | ClearanceReport
    | ClashReport
    | BurstIsolation
    | NetworkTrace
    | ExcavationImpact
)
"""Every analysis answer that lists pipe segments."""


def _pipe_sides(*sides: object) -> list[int]:
    return [s.id for s in sides if isinstance(s, PairSide) and s.layer == "pipe_segment"]


def shown_segments(answer: PipeAnswer) -> set[int]:
    """Ids of the pipe segments ``answer`` shows (listed, highlighted or charted)."""
    match answer:
        case PipeCollection():
            return {int(f["properties"]["id"]) for f in answer.features}
        case CrossSection():
            return {p.segment_id for p in answer.pipes}
        case LongitudinalProfile():
            return {s.segment_id for s in answer.segments}
        case ClearanceReport():
            return {i for v in answer.violations for i in _pipe_sides(v.a, v.b)}
        case ClashReport():
            return {i for c in answer.clashes for i in _pipe_sides(c.a, c.b)}
        case BurstIsolation():
            return {answer.burst_segment.id, *(s.id for s in answer.isolated_segments)}
        case NetworkTrace():
            return {s.id for s in answer.segments}
        case ExcavationImpact():
            return {p.segment_id for p in answer.pipes}
        case _:
            assert_never(answer)


def sensitive_segments(
    session: Session, *, answer: PipeAnswer, sensitive: frozenset[str]
) -> dict[str, int]:
    """Segments of each ``sensitive`` class that ``answer`` shows (classes with none left out)."""
    ids = sorted(shown_segments(answer))
    if not ids or not sensitive:
        return {}
    rows = session.execute(
        text(
            "SELECT upper(utility), count(*) FROM pipe_segment"
            " WHERE id = ANY(:ids) AND utility = ANY(:classes)"
            " GROUP BY 1 ORDER BY 1"
        ),
        {"ids": ids, "classes": sorted(sensitive)},
    ).all()
    return {str(row[0]): int(row[1]) for row in rows}

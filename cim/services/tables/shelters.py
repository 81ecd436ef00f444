"""The tables of a shelter plan: its service zones and its uncovered population units."""

from __future__ import annotations

from typing import Any

from cim.services.shelters.models import UncoveredCollection, ZoneCollection
from cim.services.tables.spec import Table, TableSpec, prop

ZONES = TableSpec(
    "zones",
    "shelter_zones",
    (
        prop("shelter_id"),
        prop("name"),
        prop("level", vocabulary="shelter_level"),
        prop("population"),
        prop("capacity"),
        prop("load_ratio"),
    ),
)
UNCOVERED = TableSpec(
    "uncovered",
    "shelter_uncovered",
    (
        prop("unit_id"),
        prop("code"),
        prop("population"),
        prop("uncovered"),
        prop("reason", vocabulary="uncovered_reason"),
    ),
)


def zone_tables(answer: ZoneCollection) -> list[Table]:
    features: list[Any] = list(answer.features)
    return [ZONES.build(features)]


def uncovered_tables(answer: UncoveredCollection) -> list[Table]:
    features: list[Any] = list(answer.features)
    return [UNCOVERED.build(features)]

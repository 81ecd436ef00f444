"""Checking the values a client writes: strings, JSON objects, times, the watched feature.

Each returns the stored form or raises :class:`InvalidInput` naming the property, so a bad
POST answers 400 with one clear line and writes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from cim.errors import InvalidInput, NotFound
from cim.services.sensors.documents import UTILITY_KEY, WATCH_KEY, WATCHED_COLUMNS

MAX_TEXT = 10_000


def text_value(value: Any, name: str) -> str:
    """A string property (name, description, encodingType...)."""
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise InvalidInput(f"{name} must be a string of at most {MAX_TEXT} characters")
    return value


def object_value(value: Any, name: str) -> dict[str, Any]:
    """A JSON object property (properties, parameters, unitOfMeasurement)."""
    if not isinstance(value, dict):
        raise InvalidInput(f"{name} must be a JSON object")
    return value


def unit_value(value: Any) -> dict[str, Any]:
    """unitOfMeasurement: name, symbol and definition (UCUM), null members allowed for
    observation types without a unit."""
    unit = object_value(value, "unitOfMeasurement")
    for key in ("name", "symbol", "definition"):
        if key not in unit or not (unit[key] is None or isinstance(unit[key], str)):
            raise InvalidInput(f"unitOfMeasurement.{key} must be given (a string or null)")
    return unit


def time_value(value: Any, name: str) -> datetime:
    """An ISO 8601 instant with a time zone."""
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be an ISO 8601 time")
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{name} is not an ISO 8601 time: {value[:40]!r}") from None
    if moment.tzinfo is None:
        raise InvalidInput(f"{name} must carry a time zone (e.g. Z)")
    return moment


def interval_value(value: Any, name: str) -> tuple[datetime, datetime | None]:
    """An instant or a ``start/end`` interval."""
    if isinstance(value, str) and "/" in value:
        start, _, end = value.partition("/")
        low, high = time_value(start, name), time_value(end, name)
        if high < low:
            raise InvalidInput(f"{name}: the interval ends before it starts")
        return low, high
    return time_value(value, name), None


def thing_links(session: Session, properties: dict[str, Any]) -> dict[str, Any]:
    """The columns set by ``cim:watches`` / ``cim:utility`` in a Thing's properties (popped).

    ``{"cim:watches": {"kind": "pipe_node", "id": 12}}`` links the Thing to that feature and
    copies its utility class; a Thing with a free location may name ``cim:utility`` itself.
    """
    columns: dict[str, Any] = {column: None for column in WATCHED_COLUMNS.values()}
    watches = properties.pop(WATCH_KEY, None)
    utility = properties.pop(UTILITY_KEY, None)
    if utility is not None and (not isinstance(utility, str) or not 0 < len(utility) <= 8):
        raise InvalidInput(f"{UTILITY_KEY} must be a utility class code (at most 8 characters)")
    columns["utility"] = utility
    if watches is None:
        return columns
    if (
        not isinstance(watches, dict)
        or watches.get("kind") not in WATCHED_COLUMNS
        or not isinstance(watches.get("id"), int)
    ):
        kinds = ", ".join(WATCHED_COLUMNS)
        raise InvalidInput(f'{WATCH_KEY} must be {{"kind": one of {kinds}, "id": integer}}')
    kind, feature_id = watches["kind"], watches["id"]
    has_utility = kind != "building_element"
    found = session.execute(
        text(f"SELECT {'utility' if has_utility else 'NULL'} FROM {kind} WHERE id = :id"),
        {"id": feature_id},
    ).first()
    if found is None:
        raise NotFound(f"no {kind} with id {feature_id}")
    columns[WATCHED_COLUMNS[kind]] = feature_id
    columns["utility"] = found[0] if has_utility else utility
    return columns

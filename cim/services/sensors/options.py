"""Query options of a SensorThings request: ``$top $skip $count $filter $orderby $select
$expand $resultFormat``, parsed and checked once (OGC 18-088 §9.3).

``$expand`` takes nested options in parentheses separated by ``;`` (``Datastreams($top=1;
$expand=Observations($orderby=phenomenonTime desc))``) and paths (``Datastreams/Observations``,
the same as nesting).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cim.errors import InvalidInput

DEFAULT_TOP = 100
MAX_TOP = 10_000
MAX_EXPAND_DEPTH = 4
KNOWN = {"$top", "$skip", "$count", "$filter", "$orderby", "$select", "$expand", "$resultFormat"}


@dataclass
class QueryOptions:
    """The options of one collection or entity request (or of one expanded navigation)."""

    top: int = DEFAULT_TOP
    skip: int = 0
    count: bool = False
    filter: str | None = None
    orderby: str | None = None
    select: list[str] | None = None
    expand: dict[str, QueryOptions] = field(default_factory=dict)
    result_format: str | None = None


def _integer(name: str, text: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low} and {high}")
    return value


def _split(text: str, separator: str) -> list[str]:
    """Split on ``separator`` outside parentheses and quotes."""
    parts: list[str] = []
    current: list[str] = []
    depth, quoted = 0, False
    for char in text:
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
            if depth < 0:
                raise InvalidInput("$expand: unbalanced parentheses")
        if char == separator and depth == 0 and not quoted:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    if depth != 0:
        raise InvalidInput("$expand: unbalanced parentheses")
    parts.append("".join(current).strip())
    return [part for part in parts if part]


def parse_options(params: Mapping[str, str], depth: int = 0) -> QueryOptions:
    """Options from query parameters (or one ``$expand`` item's parenthesised list)."""
    unknown = sorted(key for key in params if key.startswith("$") and key not in KNOWN)
    if unknown:
        raise InvalidInput(f"unknown query option {unknown[0]}; known: {', '.join(sorted(KNOWN))}")
    options = QueryOptions()
    if "$top" in params:
        options.top = _integer("$top", params["$top"], 0, MAX_TOP)
    if "$skip" in params:
        options.skip = _integer("$skip", params["$skip"], 0, 10**9)
    if "$count" in params:
        if params["$count"] not in ("true", "false"):
            raise InvalidInput("$count must be true or false")
        options.count = params["$count"] == "true"
    options.filter = params.get("$filter")
    options.orderby = params.get("$orderby")
    if "$select" in params:
        options.select = [item.strip() for item in params["$select"].split(",") if item.strip()]
        options.select = ["id" if item == "@iot.id" else item for item in options.select]
    if "$resultFormat" in params:
        if params["$resultFormat"] != "dataArray":
            raise InvalidInput("$resultFormat must be dataArray")
        options.result_format = "dataArray"
    if "$expand" in params:
        options.expand = parse_expand(params["$expand"], depth)
    return options


def parse_expand(text: str, depth: int = 0) -> dict[str, QueryOptions]:
    """``$expand`` -> {navigation name: its options}; a path nests (the options in
    parentheses belong to its last step)."""
    if depth >= MAX_EXPAND_DEPTH:
        raise InvalidInput(f"$expand is nested deeper than {MAX_EXPAND_DEPTH}")
    expanded: dict[str, QueryOptions] = {}
    for item in _split(text, ","):
        path, inner = item, {}
        if item.endswith(")") and "(" in item:
            path, _, rest = item.partition("(")
            for option in _split(rest[:-1], ";"):
                key, equals, value = option.partition("=")
                if not equals:
                    raise InvalidInput(f"$expand: option {option!r} needs a value")
                inner[key.strip()] = value.strip()
        steps = path.strip().split("/")
        if len(steps) + depth > MAX_EXPAND_DEPTH:
            raise InvalidInput(f"$expand is nested deeper than {MAX_EXPAND_DEPTH}")
        for step in steps:
            if not step.isidentifier():
                raise InvalidInput(f"$expand: {step!r} is not a navigation property")
        level = expanded
        for index, step in enumerate(steps):
            last = index == len(steps) - 1
            if last and inner:
                fresh = parse_options(inner, depth + index + 1)
                fresh.expand = (
                    {**level[step].expand, **fresh.expand} if step in level else fresh.expand
                )
                level[step] = fresh
            level.setdefault(step, QueryOptions())
            level = level[step].expand
    return expanded

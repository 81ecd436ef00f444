"""Size limits of a CQL2 filter, checked before and after parsing so no parser step can recurse
without bound (a 600-term ``AND`` once ended in ``RecursionError`` and a 500).

Before parsing: the text length and how deeply brackets nest (parentheses outside string
literals in cql2-text; arrays and objects in cql2-json, whose parser recurses on them). After
parsing, walked without recursion: how deeply operators nest (a chain of one ``AND`` or ``OR``
counts as one level, as the translator joins it into one SQL list), how many conditions there
are, and how many values an ``IN`` list holds. Any excess is :class:`InvalidInput` naming the
limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pygeofilter import ast

from cim.errors import InvalidInput

JSON_LEVEL_BRACKETS = 2
"""A cql2-json operator nests two brackets (its object and its ``args`` array)."""
JSON_GEOMETRY_BRACKETS = 6
"""Allowance for a GeoJSON literal's own brackets (a MultiPolygon's coordinates nest four)."""


@dataclass(frozen=True)
class CqlLimits:
    """How large a filter may be (``CIM_CQL_MAX_*``); the defaults are those of ``CimSettings``."""

    max_length: int = 16_384
    """Characters of filter text."""
    max_depth: int = 20
    """Levels of operators inside operators (and of parentheses in cql2-text)."""
    max_conditions: int = 200
    """Conditions (comparisons, LIKE, IN, BETWEEN, IS NULL, spatial predicates) in one filter."""
    max_in_values: int = 1_000
    """Values in one ``IN (...)`` list."""


def too_deep(limits: CqlLimits) -> InvalidInput:
    """The error for a filter nested deeper than the limit."""
    return InvalidInput(f"the filter is nested too deeply: at most {limits.max_depth} levels")


def check_text(text: str, lang: str, limits: CqlLimits) -> None:
    """Length and bracket nesting of the raw filter, before any parser sees it."""
    if len(text) > limits.max_length:
        raise InvalidInput(
            f"the filter is {len(text)} characters long; at most {limits.max_length} "
            "characters are allowed"
        )
    if lang == "cql2-json":
        allowed = JSON_LEVEL_BRACKETS * limits.max_depth + JSON_GEOMETRY_BRACKETS
        if _bracket_depth(text, "[{", "]}", quotes='"', backslash=True) > allowed:
            raise too_deep(limits)
    elif _bracket_depth(text, "(", ")", quotes="'\"", backslash=False) > limits.max_depth:
        raise too_deep(limits)


def _bracket_depth(text: str, opening: str, closing: str, *, quotes: str, backslash: bool) -> int:
    """Deepest bracket nesting outside string literals (a lexical scan, no parsing)."""
    depth = deepest = 0
    quote: str | None = None
    escaped = False
    for char in text:
        if quote is not None:
            if escaped:
                escaped = False
            elif backslash and char == "\\":
                escaped = True
            elif char == quote:  # '' inside a CQL string closes and reopens: same depth
                quote = None
        elif char in quotes:
            quote = char
        elif char in opening:
            depth += 1
            deepest = max(deepest, depth)
        elif char in closing:
            depth -= 1
    return deepest


def check_tree(root: Any, limits: CqlLimits) -> None:
    """Operator depth, condition count and IN-list sizes of a parsed filter (no recursion)."""
    conditions = 0
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limits.max_depth:
            raise too_deep(limits)
        if isinstance(node, ast.Predicate):
            conditions += 1
            if conditions > limits.max_conditions:
                raise InvalidInput(
                    f"the filter has more than {limits.max_conditions} conditions; "
                    f"at most {limits.max_conditions} conditions are allowed"
                )
        if isinstance(node, ast.In) and len(node.sub_nodes) > limits.max_in_values:
            raise InvalidInput(
                f"an IN list has {len(node.sub_nodes)} values; at most "
                f"{limits.max_in_values} values are allowed"
            )
        if not isinstance(node, ast.Node):
            continue
        for child in node.get_sub_nodes():
            same_chain = isinstance(node, ast.Combination) and type(child) is type(node)
            stack.append((child, depth if same_chain else depth + 1))


def chain_operands(node: ast.Combination) -> list[Any]:
    """The operands of a chain of one operator (``a AND b AND c``), left to right, so the
    translator joins them in one SQL list instead of recursing once per term."""
    operands: list[Any] = []
    stack: list[Any] = [node]
    while stack:
        current = stack.pop()
        if type(current) is type(node):
            stack.extend([current.rhs, current.lhs])
        else:
            operands.append(current)
    return operands

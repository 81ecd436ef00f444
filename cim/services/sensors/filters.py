"""``$filter`` / ``$orderby`` trees (:mod:`.odata`) -> SQLAlchemy expressions over an entity set.

Every name must be a property of the set (or reached through a to-one navigation such as
``Datastream/Thing/name``, which becomes a correlated scalar subquery), every function one of
:data:`FUNCTIONS`, and literals are bound parameters whose type fits the property, so the
database never sees text built from the request. ``properties/...`` paths compare as JSONB
(numbers numerically, strings as strings, never an error on mixed types); ``result``
compares the numeric column for numbers and the JSON column otherwise.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    and_,
    cast,
    extract,
    func,
    literal,
    not_,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import UserDefinedType

from cim.errors import InvalidInput
from cim.services.sensors import odata
from cim.services.sensors.geo import wkt_to_storage
from cim.services.sensors.schema import SETS, EntitySet

Typed = tuple[Any, str]  # (expression or Python value for literals, kind)
SPATIAL = {
    "geo.intersects": func.ST_Intersects,
    "st_intersects": func.ST_Intersects,
    "st_within": func.ST_Within,
    "st_contains": func.ST_Contains,
    "st_disjoint": func.ST_Disjoint,
    "st_touches": func.ST_Touches,
    "st_overlaps": func.ST_Overlaps,
    "st_crosses": func.ST_Crosses,
    "st_equals": func.ST_Equals,
}
TIME_PARTS = {"year", "month", "day", "hour", "minute", "second"}
NUMERIC = {"round": func.round, "floor": func.floor, "ceiling": func.ceil}
TEXT = {"tolower": func.lower, "toupper": func.upper, "trim": func.trim, "length": func.length}
FUNCTIONS = sorted(
    {*SPATIAL, *TIME_PARTS, *NUMERIC, *TEXT}
    | {"geo.distance", "geo.length", "st_relate", "substringof", "startswith", "endswith"}
    | {"contains", "now"}
)
OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "div": operator.truediv,
    "mod": operator.mod,
}


class Translator:
    """Translate trees over ``entity_set``; geometries go to the storage CRS ``srid``."""

    def __init__(self, entity_set: EntitySet, srid: int) -> None:
        self.entity_set = entity_set
        self.srid = srid

    def condition(self, node: odata.Node) -> ColumnElement[bool]:
        """A boolean expression; InvalidInput when ``node`` is not a condition."""
        if isinstance(node, odata.Binary) and node.op in ("and", "or"):
            join = and_ if node.op == "and" else or_
            return join(self.condition(node.left), self.condition(node.right))
        if isinstance(node, odata.Not):
            return not_(self.condition(node.operand))
        if isinstance(node, odata.Binary) and node.op in odata.COMPARISONS:
            return self.compare(node)
        value, kind = self.value(node)
        if kind != "bool":
            raise InvalidInput("$filter must be a condition (a comparison or a function)")
        return value if not isinstance(value, bool) else literal(value)

    def value(self, node: odata.Node) -> Typed:
        """An expression and its kind (text, number, time, json, geometry, result, bool)."""
        if isinstance(node, odata.Literal):
            return node.value, "literal-" + node.kind
        if isinstance(node, odata.Path):
            return resolve(self.entity_set, node.parts)
        if isinstance(node, odata.Negate):
            return -self.number(node.operand), "number"
        if isinstance(node, odata.Binary) and node.op in OPERATORS:
            return OPERATORS[node.op](self.number(node.left), self.number(node.right)), "number"
        if isinstance(node, odata.Call):
            return self.call(node)
        return self.condition(node), "bool"

    def number(self, node: odata.Node) -> Any:
        value, kind = self.value(node)
        if kind == "literal-number":
            return literal(value)
        if kind not in ("number", "result"):
            raise InvalidInput("$filter: arithmetic needs numbers")
        return value

    def text(self, node: odata.Node) -> Any:
        value, kind = self.value(node)
        if kind == "literal-string":
            return literal(value)
        if kind == "json":
            return value.astext if hasattr(value, "astext") else cast(value, JSONB)
        if kind != "text":
            raise InvalidInput("$filter: this function needs text")
        return value

    def matches(self, how: str, haystack: odata.Node, needle: odata.Node) -> Any:
        """contains / startswith / endswith: LIKE with escaping for a literal, else strpos."""
        text = self.text(haystack)
        if isinstance(needle, odata.Literal) and isinstance(needle.value, str):
            return getattr(text, how)(needle.value, autoescape=True)
        other = self.text(needle)
        if how == "contains":
            return func.strpos(text, other) > 0
        if how == "startswith":
            return func.left(text, func.length(other)) == other
        return func.right(text, func.length(other)) == other

    def geometry(self, node: odata.Node) -> Any:
        value, kind = self.value(node)
        if kind == "literal-geometry":
            return wkt_to_storage(value, self.srid)
        if kind != "geometry":
            raise InvalidInput("$filter: spatial functions need a geometry property or literal")
        return value

    def call(self, node: odata.Call) -> Typed:
        name, args = node.name, node.args
        if name in SPATIAL and len(args) == 2:
            return SPATIAL[name](self.geometry(args[0]), self.geometry(args[1])), "bool"
        if name == "st_relate" and len(args) == 3:
            pattern, kind = self.value(args[2])
            if kind != "literal-string":
                raise InvalidInput("$filter: st_relate needs a pattern string")
            relate = func.ST_Relate(self.geometry(args[0]), self.geometry(args[1]), pattern)
            return cast(relate, Boolean), "bool"
        if name == "geo.distance" and len(args) == 2:
            return func.ST_Distance(self.geometry(args[0]), self.geometry(args[1])), "number"
        if name == "geo.length" and len(args) == 1:
            return func.ST_Length(self.geometry(args[0])), "number"
        if name == "substringof" and len(args) == 2:
            return self.matches("contains", args[1], args[0]), "bool"
        if name in ("contains", "startswith", "endswith") and len(args) == 2:
            return self.matches(name, args[0], args[1]), "bool"
        if name in TEXT and len(args) == 1:
            return TEXT[name](self.text(args[0])), "number" if name == "length" else "text"
        if name in NUMERIC and len(args) == 1:
            return NUMERIC[name](self.number(args[0])), "number"
        if name in TIME_PARTS and len(args) == 1:
            moment, kind = self.value(args[0])
            if kind != "time":
                raise InvalidInput(f"$filter: {name}() needs a time property")
            return extract(name, func.timezone("UTC", moment)), "number"
        if name == "now" and not args:
            return func.now(), "time"
        if name in FUNCTIONS:
            raise InvalidInput(f"$filter: wrong number of arguments to {name}()")
        raise InvalidInput(f"$filter: unknown function {name}(); known: {', '.join(FUNCTIONS)}")

    def compare(self, node: odata.Binary) -> ColumnElement[bool]:
        left, right = self.value(node.left), self.value(node.right)
        if left[1].startswith("literal-") and not right[1].startswith("literal-"):
            left, right = right, left
            node = odata.Binary(MIRROR[node.op], node.right, node.left)
        expression, kind = left
        value, value_kind = right
        compare = OPERATORS[node.op]
        if value_kind == "literal-null":
            if node.op not in ("eq", "ne"):
                raise InvalidInput("$filter: null compares with eq or ne only")
            if kind == "result":
                expression = func.coalesce(func.to_jsonb(expression), _result_json(self))
            return expression.is_(None) if node.op == "eq" else expression.is_not(None)  # type: ignore[no-any-return]
        if kind == "json":
            return compare(expression, literal(_plain(value), JSONB))  # type: ignore[no-any-return]
        if kind == "result":
            if value_kind == "literal-number":
                return compare(expression, literal(value))  # type: ignore[no-any-return]
            return compare(_result_json(self), literal(_plain(value), JSONB))  # type: ignore[no-any-return]
        return compare(expression, self.operand(kind, value, value_kind))  # type: ignore[no-any-return]

    def operand(self, kind: str, value: Any, value_kind: str) -> Any:
        """The right-hand side of a comparison with a property of ``kind``."""
        fits = {
            "text": ("literal-string", "text"),
            "number": ("literal-number", "number", "result"),
            "time": ("literal-datetime", "time"),
            "bool": ("literal-bool", "bool"),
        }
        if kind not in fits or value_kind not in fits[kind]:
            shown = value_kind.removeprefix("literal-")
            raise InvalidInput(f"$filter: cannot compare a {kind} property with a {shown}")
        return literal(value) if value_kind.startswith("literal-") else value


class RawGeometry(UserDefinedType[Any]):
    """``geometry`` selected in a subquery as is (not converted for a Python client)."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "geometry"


MIRROR = {"eq": "eq", "ne": "ne", "gt": "lt", "ge": "le", "lt": "gt", "le": "ge"}


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _result_json(translator: Translator) -> Any:
    return translator.entity_set.model.result_json


def resolve(entity_set: EntitySet, parts: tuple[str, ...]) -> Typed:
    """The expression of a property path on ``entity_set`` (see the module doc)."""
    head, rest = parts[0], parts[1:]
    model = entity_set.model
    if head in ("id", "@iot.id") and not rest:
        return model.id, "number"
    prop = entity_set.properties.get(head)
    if prop is not None:
        if rest and prop.kind != "json":
            raise InvalidInput(f"$filter: {head} has no member {'/'.join(rest)}")
        column = prop.column
        for part in rest:
            column = column[part]
        return column, prop.kind
    nav = entity_set.navigation.get(head)
    if nav is None or not rest:
        known = ", ".join([*entity_set.properties, *entity_set.navigation])
        raise InvalidInput(f"$filter: {entity_set.singular} has no property {head!r}; {known}")
    if not nav.many and rest in (("id",), ("@iot.id",)):
        return nav.on_parent, "number"  # the foreign key itself: indexable, no subquery
    target = SETS[nav.target]
    inner, kind = resolve(target, rest)
    if kind == "geometry":  # as is: geoalchemy would wrap a selected geometry in ST_AsEWKB
        inner = type_coerce(inner, RawGeometry())
    if nav.many:
        if kind != "geometry":
            raise InvalidInput(f"$filter: {head} is a collection; only its geometry can be used")
        query = select(type_coerce(func.ST_Collect(inner), RawGeometry()))
        if nav.link is not None:  # one level of correlation: join the link table
            to_parent, to_target = nav.link
            query = query.join_from(target.model, to_target.table, to_target == target.model.id)
            query = query.where(to_parent == model.id)
        else:
            query = query.where(nav.on_target == model.id)
        query = query.correlate(model)
        return query.scalar_subquery(), kind
    query = select(inner).where(target.model.id == nav.on_parent).correlate(model)
    return query.scalar_subquery(), kind


def filter_condition(source: str, entity_set: EntitySet, srid: int) -> ColumnElement[bool]:
    """``$filter`` text -> a condition on ``entity_set``'s model."""
    return Translator(entity_set, srid).condition(odata.parse_filter(source))


def order_keys(source: str, entity_set: EntitySet, srid: int) -> list[Any]:
    """``$orderby`` text -> ORDER BY expressions."""
    translator = Translator(entity_set, srid)
    keys = []
    for node, descending in odata.parse_orderby(source):
        value, kind = translator.value(node)
        if kind.startswith("literal-") or kind in ("geometry", "bool"):
            raise InvalidInput("$orderby needs properties (not literals, geometries or conditions)")
        keys.append(value.desc() if descending else value.asc())
    return keys

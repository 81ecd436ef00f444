"""CQL2 (text and JSON, via pygeofilter) to a parameterised SQLAlchemy condition over a collection.

Why not pygeofilter's own SQLAlchemy backend: it builds EWKT strings, cannot transform filter
geometries into the storage CRS and lets any name through. Here every property must be a
queryable of the collection, every function one we know, literal types must fit the column
(so PostgreSQL never sees ``text = integer``), and geometries are transformed in Python and
bound as parameters. Anything else is :class:`InvalidInput` (HTTP 400).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import shapely
import shapely.geometry
from pygeofilter import ast, values
from pyproj import CRS
from sqlalchemy import (
    ColumnElement,
    and_,
    between,
    false,
    func,
    literal,
    not_,
    null,
    or_,
    true,
)
from sqlalchemy import (
    Float as SAFloat,
)

from cim.crs import transformer
from cim.errors import InvalidInput
from cim.services.ogc.cql_bounds import CqlLimits, chain_operands, check_text, check_tree, too_deep
from cim.services.ogc.crs import OgcCrs
from cim.services.ogc.specs import CollectionSpec

FILTER_LANGS = ("cql2-text", "cql2-json")
GEOMETRY_NAMES = ("geometry", "geom")
FUNCTIONS = {"lower": func.lower, "upper": func.upper, "casei": func.lower}
SPATIAL = {
    "INTERSECTS": func.ST_Intersects,
    "DISJOINT": func.ST_Disjoint,
    "CONTAINS": func.ST_Contains,
    "WITHIN": func.ST_Within,
    "TOUCHES": func.ST_Touches,
    "CROSSES": func.ST_Crosses,
    "OVERLAPS": func.ST_Overlaps,
    "EQUALS": func.ST_Equals,
}
RELATE_PATTERN = re.compile(r"^[012TF*]{9}$")
UNITS_TO_METRES = {None: 1.0, "meters": 1.0, "metres": 1.0, "kilometers": 1000.0, "miles": 1609.344}


def parse_filter(text: str, lang: str | None, limits: CqlLimits | None = None) -> ast.Node:
    """Parse a CQL2 filter; ``lang`` is ``cql2-text`` (default) or ``cql2-json``.

    The size ``limits`` are checked before parsing (length, bracket nesting) and on the parsed
    tree (operator nesting, conditions, IN lists), so no parser step recurses without bound.
    """
    lang = lang or "cql2-text"
    limits = limits or CqlLimits()
    if lang not in FILTER_LANGS:
        raise InvalidInput(f"filter-lang must be one of {', '.join(FILTER_LANGS)}")
    check_text(text, lang, limits)
    try:
        if lang == "cql2-json":
            from pygeofilter.parsers.cql2_json import parse as parse_json

            node = parse_json(json.loads(text))
        else:
            from pygeofilter.parsers.cql2_text import parse as parse_text

            node = parse_text(text)
    except InvalidInput:
        raise
    except RecursionError:  # a shape the checks above did not foresee: still the caller's
        raise too_deep(limits) from None
    except Exception as exc:  # lark/json/pygeofilter raise many unrelated types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInput(f"invalid {lang} filter: {first}") from None
    check_tree(node, limits)
    return node


@dataclass(frozen=True)
class Typed:
    """A SQL expression and its CQL2 type: string, number, boolean, geometry or null."""

    sql: ColumnElement[Any]
    kind: str


class CqlTranslator:
    """Translate one parsed filter for one collection."""

    def __init__(self, spec: CollectionSpec, filter_crs: OgcCrs, storage_srid: int) -> None:
        self.spec = spec
        self.crs = filter_crs
        self.storage_srid = storage_srid

    def condition(self, node: Any) -> ColumnElement[bool]:
        result = self.expr(node)
        if result.kind != "boolean":
            raise InvalidInput("the filter must be a condition (true or false)")
        return result.sql

    def expr(self, node: Any) -> Typed:
        if isinstance(node, ast.Not):
            return Typed(not_(self.condition(node.sub_node)), "boolean")
        if isinstance(node, ast.Combination):
            parts = [self.condition(operand) for operand in chain_operands(node)]
            return Typed((and_ if node.op.value == "AND" else or_)(*parts), "boolean")
        if isinstance(node, ast.Include):
            return Typed(false() if node.not_ else true(), "boolean")
        if isinstance(node, ast.Comparison):
            lhs, rhs = self._comparable(
                node.lhs, node.rhs, ordered=node.op.value not in ("=", "<>")
            )
            op = node.op.value
            ops = {
                "=": lhs.sql == rhs.sql, "<>": lhs.sql != rhs.sql, "<": lhs.sql < rhs.sql,
                "<=": lhs.sql <= rhs.sql, ">": lhs.sql > rhs.sql, ">=": lhs.sql >= rhs.sql,
            }  # fmt: skip
            return Typed(ops[op], "boolean")
        if isinstance(node, ast.Between):
            lhs, low = self._comparable(node.lhs, node.low, ordered=True)
            _, high = self._comparable(node.lhs, node.high, ordered=True)
            clause = between(lhs.sql, low.sql, high.sql)
            return Typed(not_(clause) if node.not_ else clause, "boolean")
        if isinstance(node, ast.Like):
            lhs = self.expr(node.lhs)
            pattern = self.expr(node.pattern)
            if lhs.kind != "string" or pattern.kind != "string":
                raise InvalidInput("LIKE compares a string property with a string pattern")
            like = lhs.sql.ilike(pattern.sql) if node.nocase else lhs.sql.like(pattern.sql)
            return Typed(not_(like) if node.not_ else like, "boolean")
        if isinstance(node, ast.In):
            lhs = self.expr(node.lhs)
            options = [
                self._comparable(node.lhs, option, ordered=False)[1] for option in node.sub_nodes
            ]
            clause = lhs.sql.in_([o.sql for o in options])
            return Typed(not_(clause) if node.not_ else clause, "boolean")
        if isinstance(node, ast.IsNull):
            lhs = self.expr(node.lhs)
            return Typed(lhs.sql.is_not(None) if node.not_ else lhs.sql.is_(None), "boolean")
        if isinstance(node, ast.SpatialComparisonPredicate):
            left, right = self._geometry(node.lhs), self._geometry(node.rhs)
            return Typed(SPATIAL[node.op.name](left, right), "boolean")
        if isinstance(node, ast.Relate):
            if not RELATE_PATTERN.match(str(node.pattern)):
                raise InvalidInput("S_RELATE needs a 9-character DE-9IM pattern")
            relate = func.ST_Relate(
                self._geometry(node.lhs), self._geometry(node.rhs), node.pattern
            )
            return Typed(relate, "boolean")
        if isinstance(node, ast.SpatialDistancePredicate):
            return self._distance(node)
        if isinstance(node, ast.BBox):
            box = values.Envelope(node.minx, node.maxx, node.miny, node.maxy)
            return Typed(
                func.ST_Intersects(self._geometry(node.lhs), self._geometry(box)), "boolean"
            )
        if isinstance(node, ast.Attribute):
            return self._attribute(node.name)
        if isinstance(node, ast.Arithmetic):
            lhs, rhs = self.expr(node.lhs), self.expr(node.rhs)
            if lhs.kind != "number" or rhs.kind != "number":
                raise InvalidInput("arithmetic needs numbers on both sides")
            return Typed(self._arithmetic(node.op.value, lhs.sql, rhs.sql), "number")
        if isinstance(node, ast.Function):
            return self._function(node)
        if isinstance(node, values.Geometry | values.Envelope):
            return Typed(self._geometry(node), "geometry")
        return self._literal(node)

    def _comparable(self, a: Any, b: Any, *, ordered: bool) -> tuple[Typed, Typed]:
        lhs, rhs = self.expr(a), self.expr(b)
        if "null" in (lhs.kind, rhs.kind):
            raise InvalidInput("compare with NULL using IS NULL")
        if lhs.kind != rhs.kind or lhs.kind in ("geometry", "object"):
            raise InvalidInput(f"cannot compare a {lhs.kind} with a {rhs.kind}")
        if ordered and lhs.kind == "boolean":
            raise InvalidInput("booleans can only be compared with = and <>")
        return lhs, rhs

    @staticmethod
    def _arithmetic(
        op: str, lhs: ColumnElement[Any], rhs: ColumnElement[Any]
    ) -> ColumnElement[Any]:
        left = lhs.cast(SAFloat)
        if op == "+":
            return left + rhs
        if op == "-":
            return left - rhs
        if op == "*":
            return left * rhs
        # NULLIF: a division by zero is NULL (no match), not a database error
        return left / func.nullif(rhs, 0)

    def _attribute(self, name: str) -> Typed:
        if name in GEOMETRY_NAMES:
            return Typed(self.spec.geom, "geometry")
        if name == "id":
            return Typed(self.spec.id_column, "number")
        prop = self.spec.property(name)
        if prop is None or not prop.filterable:
            names = ", ".join(
                ["id", "geometry", *(p.name for p in self.spec.properties if p.filterable)]
            )
            raise InvalidInput(f"unknown property {name!r} in filter; queryables: {names}")
        kind = "number" if prop.type in ("integer", "number") else prop.type
        return Typed(prop.column, kind)

    def _function(self, node: ast.Function) -> Typed:
        name = str(node.name).lower()
        if name not in FUNCTIONS:
            raise InvalidInput(
                f"unknown function {node.name!r} in filter; known: {', '.join(sorted(FUNCTIONS))}"
            )
        args = [self.expr(arg) for arg in node.arguments]
        if len(args) != 1 or args[0].kind != "string":
            raise InvalidInput(f"{node.name} takes one string")
        return Typed(FUNCTIONS[name](args[0].sql), "string")

    def _literal(self, node: Any) -> Typed:
        if node is None:
            return Typed(null(), "null")
        if isinstance(node, bool):
            return Typed(literal(node), "boolean")
        if isinstance(node, int):
            if abs(node) >= 2**63:
                raise InvalidInput("integer literal out of range")
            return Typed(literal(float(node)), "number")
        if isinstance(node, float):
            if not math.isfinite(node):
                raise InvalidInput("numbers in a filter must be finite")
            return Typed(literal(node), "number")
        if isinstance(node, str):
            return Typed(literal(node), "string")
        if isinstance(node, datetime | date | timedelta | values.Interval):
            raise InvalidInput("no queryable of this collection is temporal")
        raise InvalidInput(f"unsupported filter element {type(node).__name__}")

    def _distance(self, node: Any) -> Typed:
        factor = UNITS_TO_METRES.get(node.units)
        if factor is None or not isinstance(node.distance, int | float):
            raise InvalidInput("distance units must be meters, kilometers or miles")
        metres = float(node.distance) * factor
        if not math.isfinite(metres) or metres < 0:
            raise InvalidInput("distance must be a finite, non-negative number")
        within = func.ST_DWithin(self._geometry(node.lhs), self._geometry(node.rhs), metres)
        return Typed(within if node.op.name == "DWITHIN" else not_(within), "boolean")

    def _geometry(self, node: Any) -> ColumnElement[Any]:
        if isinstance(node, ast.Attribute):
            typed = self._attribute(node.name)
            if typed.kind != "geometry":
                raise InvalidInput(f"{node.name!r} is not a geometry")
            return typed.sql
        if isinstance(node, values.Envelope):
            geom = shapely.box(node.x1, node.y1, node.x2, node.y2)
        elif isinstance(node, values.Geometry):
            try:
                geom = shapely.geometry.shape(node.geometry)
            except Exception as exc:  # shapely raises several types for bad GeoJSON
                raise InvalidInput(f"invalid geometry in filter: {exc}") from None
        else:
            raise InvalidInput("spatial predicates compare the geometry with a geometry literal")
        return func.ST_GeomFromText(self._to_storage_wkt(geom), self.storage_srid)

    def _to_storage_wkt(self, geom: Any) -> str:
        geom = shapely.force_2d(geom)
        coords = shapely.get_coordinates(geom)
        if not np.all(np.isfinite(coords)):
            raise InvalidInput("filter geometry coordinates must be finite")
        if self.crs.north_first:
            geom = shapely.transform(geom, lambda c: c[:, ::-1])
        if self.crs.srid != self.storage_srid:
            if self.crs.geographic:
                area = CRS.from_epsg(self.storage_srid).area_of_use
                if area is not None:
                    geom = shapely.clip_by_rect(geom, area.west, area.south, area.east, area.north)
            forward = transformer(self.crs.srid, self.storage_srid)

            def project(c: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
                x, y = forward.transform(c[:, 0], c[:, 1])
                return np.column_stack([x, y])

            geom = shapely.transform(geom, project)
            if not np.all(np.isfinite(shapely.get_coordinates(geom))):
                raise InvalidInput("filter geometry cannot be transformed to the storage CRS")
        return str(shapely.to_wkt(geom, rounding_precision=-1))


def filter_clause(
    text: str,
    lang: str | None,
    spec: CollectionSpec,
    filter_crs: OgcCrs,
    storage_srid: int,
    limits: CqlLimits | None = None,
) -> ColumnElement[bool]:
    """The SQL condition of CQL2 ``text`` over ``spec``; InvalidInput for anything unknown or
    larger than ``limits`` (default :class:`CqlLimits`)."""
    node = parse_filter(text, lang, limits)
    return CqlTranslator(spec, filter_crs, storage_srid).condition(node)

"""A small OData ``$filter`` / ``$orderby`` parser for the SensorThings API (OGC 18-088 §9.3.3).

Why our own: pygeofilter parses CQL2, not OData, and the one PyPI OData parser (odata-query,
last release 2024-06) would add a lexer dependency for a grammar this size. A tokenizer and a
recursive-descent parser give a plain tree (:class:`Node` subclasses) and errors that say where
(``InvalidInput: $filter: expected ')' at column 17``). Nothing here touches SQL;
:mod:`cim.services.sensors.filters` translates the tree with bound parameters only.

Grammar (lowest precedence first)::

    or      := and ('or' and)*
    and     := not ('and' not)*
    not     := 'not' not | compare
    compare := sum (('eq'|'ne'|'gt'|'ge'|'lt'|'le') sum)?
    sum     := product (('add'|'sub') product)*
    product := unary (('mul'|'div'|'mod') unary)*
    unary   := '-' unary | primary
    primary := '(' or ')' | literal | name '(' args ')' | path
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cim.errors import InvalidInput

MAX_LENGTH = 4000
MAX_DEPTH = 40


class Node:
    """A node of the parsed tree."""


@dataclass(frozen=True)
class Literal(Node):
    """A number, string, boolean, null, time or geometry (``kind``: number, string, bool,
    null, datetime, geometry) — geometry values are WKT text in WGS 84 (lon lat)."""

    value: Any
    kind: str


@dataclass(frozen=True)
class Path(Node):
    """A property, possibly through to-one navigation: ``Datastream/Thing/name``."""

    parts: tuple[str, ...]


@dataclass(frozen=True)
class Call(Node):
    """A function call: ``geo.intersects(location, geography'...')``, ``year(resultTime)``."""

    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Binary(Node):
    """``left op right`` for logical, comparison and arithmetic operators."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Not(Node):
    """``not operand``."""

    operand: Node


@dataclass(frozen=True)
class Negate(Node):
    """``-operand``."""

    operand: Node


TOKEN = re.compile(
    r"""\s*(?:
      (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2}))
    | (?P<geometry>(?:geography|geometry)'[^']*')
    | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    | (?P<string>'(?:[^']|'')*')
    | (?P<name>[A-Za-z_@][A-Za-z0-9_.@]*)
    | (?P<punct>[()/,\-])
    )""",
    re.VERBOSE,
)
COMPARISONS = {"eq", "ne", "gt", "ge", "lt", "le"}
SUMS = {"add", "sub"}
PRODUCTS = {"mul", "div", "mod"}
KEYWORDS = {"true": (True, "bool"), "false": (False, "bool"), "null": (None, "null")}


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    column: int


def tokenize(source: str, what: str) -> list[Token]:
    """Split ``source`` into tokens; an unknown character is an error naming its column."""
    tokens: list[Token] = []
    position = 0
    source = source.rstrip()
    while position < len(source):
        match = TOKEN.match(source, position)
        if match is None or match.end() == position:
            raise InvalidInput(f"{what}: unexpected character at column {position + 1}")
        kind = match.lastgroup or "punct"
        tokens.append(Token(kind, match.group(kind), match.start(kind) + 1))
        position = match.end()
    return tokens


class Parser:
    """Recursive descent over the tokens of one expression; ``what`` names it in errors."""

    def __init__(self, source: str, what: str = "$filter") -> None:
        if len(source) > MAX_LENGTH:
            raise InvalidInput(f"{what} is longer than {MAX_LENGTH} characters")
        self.what = what
        self.tokens = tokenize(source, what)
        self.index = 0
        self.depth = 0

    def fail(self, message: str) -> InvalidInput:
        token = self.peek()
        where = f"column {token.column}" if token else "the end"
        return InvalidInput(f"{self.what}: {message} at {where}")

    def peek(self) -> Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def word(self) -> str | None:
        token = self.peek()
        return token.text if token is not None and token.kind == "name" else None

    def take(self, text: str) -> bool:
        token = self.peek()
        if token is not None and token.text == text and token.kind in ("name", "punct"):
            self.index += 1
            return True
        return False

    def expect(self, text: str) -> None:
        if not self.take(text):
            raise self.fail(f"expected '{text}'")

    def parse(self) -> Node:
        if not self.tokens:
            raise InvalidInput(f"{self.what} is empty")
        node = self.parse_or()
        if self.peek() is not None:
            raise self.fail("unexpected text")
        return node

    def parse_or(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail("expression nested too deeply")
        node = self.parse_and()
        while self.take("or"):
            node = Binary("or", node, self.parse_and())
        self.depth -= 1
        return node

    def parse_and(self) -> Node:
        node = self.parse_not()
        while self.take("and"):
            node = Binary("and", node, self.parse_not())
        return node

    def parse_not(self) -> Node:
        if self.take("not"):
            return Not(self.parse_not())
        return self.parse_compare()

    def parse_compare(self) -> Node:
        node = self.parse_sum()
        op = self.word()
        if op in COMPARISONS:
            self.index += 1
            return Binary(op, node, self.parse_sum())
        return node

    def parse_sum(self) -> Node:
        node = self.parse_product()
        while (op := self.word()) in SUMS:
            self.index += 1
            node = Binary(op or "", node, self.parse_product())
        return node

    def parse_product(self) -> Node:
        node = self.parse_unary()
        while (op := self.word()) in PRODUCTS:
            self.index += 1
            node = Binary(op or "", node, self.parse_unary())
        return node

    def parse_unary(self) -> Node:
        if self.take("-"):
            return Negate(self.parse_unary())
        return self.parse_primary()

    def parse_primary(self) -> Node:
        token = self.peek()
        if token is None:
            raise self.fail("expected a value")
        if self.take("("):
            node = self.parse_or()
            self.expect(")")
            return node
        if token.kind != "name" or token.text.lower() in KEYWORDS:
            self.index += 1
            return literal(token, self)
        self.index += 1
        if self.take("("):
            return Call(token.text.lower(), self.parse_arguments())
        parts = [token.text]
        while self.take("/"):
            name = self.word()
            if name is None:
                raise self.fail("expected a property name after '/'")
            self.index += 1
            parts.append(name)
        return Path(tuple(parts))

    def parse_arguments(self) -> tuple[Node, ...]:
        args: list[Node] = []
        if self.take(")"):
            return ()
        while True:
            args.append(self.parse_or())
            if self.take(")"):
                return tuple(args)
            self.expect(",")


def literal(token: Token, parser: Parser) -> Literal:
    """The value of a literal token (numbers, strings, times, geometries, keywords)."""
    if token.kind == "number":
        text = token.text
        return Literal(float(text) if any(c in text for c in ".eE") else int(text), "number")
    if token.kind == "string":
        return Literal(token.text[1:-1].replace("''", "'"), "string")
    if token.kind == "datetime":
        try:
            return Literal(datetime.fromisoformat(token.text.replace("Z", "+00:00")), "datetime")
        except ValueError:
            raise InvalidInput(f"{parser.what}: bad time {token.text!r}") from None
    if token.kind == "geometry":
        return Literal(token.text.split("'", 1)[1][:-1], "geometry")
    if token.kind == "name":
        return Literal(*KEYWORDS[token.text.lower()])
    parser.index -= 1
    raise parser.fail(f"unexpected '{token.text}'")


def parse_filter(source: str) -> Node:
    """The tree of a ``$filter`` expression; InvalidInput (with a column) when malformed.

    Examples
    --------
    >>> parse_filter("result gt 10")
    Binary(op='gt', left=Path(parts=('result',)), right=Literal(value=10, kind='number'))
    """
    return Parser(source).parse()


def parse_orderby(source: str) -> list[tuple[Node, bool]]:
    """``$orderby``: a comma list of ``expression [asc|desc]``; True means descending."""
    parser = Parser(source, "$orderby")
    if not parser.tokens:
        raise InvalidInput("$orderby is empty")
    keys: list[tuple[Node, bool]] = []
    while True:
        node = parser.parse_sum()
        descending = False
        if parser.take("desc"):
            descending = True
        else:
            parser.take("asc")
        keys.append((node, descending))
        if parser.peek() is None:
            return keys
        parser.expect(",")

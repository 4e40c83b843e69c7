"""The query language of ``q``, parsed to a small tree (pure: no database).

    words "a phrase" prefix*        terms; adjacent terms must all match (implicit AND)
    a AND b, a OR b, NOT a, -a      boolean operators (upper case), parentheses group
    field:value  field:"two words"  a content field equals a value (case-insensitive); value* is a prefix
    field:>5  field:<=2026-01-01    a content field compared with a number or an ISO date

A mistake raises :class:`QuerySyntaxError` (HTTP 400) naming the position, so a caller can point at it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from beamlink.errors import QuerySyntaxError

__all__ = [
    "And",
    "FieldMatch",
    "Node",
    "Not",
    "Or",
    "Phrase",
    "QuerySyntaxError",
    "Term",
    "parse_query",
]


@dataclass(frozen=True)
class Term:
    word: str
    prefix: bool = False


@dataclass(frozen=True)
class Phrase:
    words: str


@dataclass(frozen=True)
class FieldMatch:
    field: str
    op: str  # one of ":", ">", ">=", "<", "<="
    value: str
    prefix: bool = False


@dataclass(frozen=True)
class Not:
    child: Node


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


Node = Term | Phrase | FieldMatch | Not | And | Or

_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z0-9_\-]+)*")
_OPERATORS = ("AND", "OR", "NOT")


@dataclass(frozen=True)
class _Token:
    kind: str  # word, phrase, field, lparen, rparen, and, or, not, minus
    text: str
    position: int
    field: str = ""
    op: str = ""


def _fail(query: str, position: int, problem: str) -> QuerySyntaxError:
    pointer = " " * position + "^"
    return QuerySyntaxError(
        f"q: {problem} at position {position}:\n  {query}\n  {pointer}",
        details={"field": "q", "position": position, "problem": problem},
    )


class _Lexer:
    _STOP: ClassVar[frozenset[str]] = frozenset('()"')

    def __init__(self, query: str) -> None:
        self.query = query
        self.at = 0

    def tokens(self) -> list[_Token]:
        found: list[_Token] = []
        q = self.query
        while True:
            while self.at < len(q) and q[self.at].isspace():
                self.at += 1
            if self.at >= len(q):
                return found
            start = self.at
            char = q[start]
            if char == "(":
                self.at += 1
                found.append(_Token("lparen", char, start))
            elif char == ")":
                self.at += 1
                found.append(_Token("rparen", char, start))
            elif char == '"':
                found.append(_Token("phrase", self._quoted(), start))
            elif char == "-" and start + 1 < len(q) and not q[start + 1].isspace() and q[start + 1] != ")":
                self.at += 1
                found.append(_Token("minus", char, start))
            else:
                found.append(self._word(start))

    def _quoted(self) -> str:
        start = self.at
        end = self.query.find('"', start + 1)
        if end < 0:
            raise _fail(self.query, start, 'this quote is never closed (add a closing ")')
        self.at = end + 1
        return self.query[start + 1 : end]

    def _word(self, start: int) -> _Token:
        q = self.query
        while self.at < len(q) and not q[self.at].isspace() and q[self.at] not in self._STOP:
            self.at += 1
        word = q[start : self.at]
        if word in _OPERATORS:
            return _Token(word.lower(), word, start)
        name, colon, rest = word.partition(":")
        # "scheme://..." is a URI (subjects often are), not a field term.
        if not colon or not _FIELD_NAME.fullmatch(name) or rest.startswith("//"):
            return _Token("word", word, start)
        op = ":"
        for candidate in (">=", "<=", ">", "<"):
            if rest.startswith(candidate):
                op, rest = candidate, rest[len(candidate) :]
                break
        if not rest:
            if op == ":" and self.at < len(q) and q[self.at] == '"':
                return _Token("field", self._quoted(), start, field=name, op=":")
            raise _fail(q, self.at, f"field {name!r} needs a value after '{colon}{'' if op == ':' else op}'")
        return _Token("field", rest, start, field=name, op=op)


class _Parser:
    def __init__(self, query: str, tokens: list[_Token]) -> None:
        self.query = query
        self.tokens = tokens
        self.at = 0

    def _peek(self) -> _Token | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def _end_position(self) -> int:
        return len(self.query.rstrip())

    def parse(self) -> Node:
        node = self._or()
        token = self._peek()
        if token is not None:
            problem = (
                "unexpected ')' (no '(' opens it)" if token.kind == "rparen" else f"unexpected {token.text!r}"
            )
            raise _fail(self.query, token.position, problem)
        return node

    def _or(self) -> Node:
        children = [self._and()]
        while (token := self._peek()) is not None and token.kind == "or":
            self.at += 1
            children.append(self._operand_after(token, self._and))
        return children[0] if len(children) == 1 else Or(tuple(children))

    def _and(self) -> Node:
        children = [self._unary()]
        while (token := self._peek()) is not None and token.kind not in ("or", "rparen"):
            if token.kind == "and":
                self.at += 1
                children.append(self._operand_after(token, self._unary))
            else:
                children.append(self._unary())
        return children[0] if len(children) == 1 else And(tuple(children))

    def _operand_after(self, operator: _Token, parse: object) -> Node:
        token = self._peek()
        if token is None or token.kind in ("or", "and", "rparen"):
            where = self._end_position() if token is None else token.position
            raise _fail(self.query, where, f"{operator.text} needs a term after it")
        assert callable(parse)
        result: Node = parse()
        return result

    def _unary(self) -> Node:
        token = self._peek()
        if token is not None and token.kind in ("not", "minus"):
            self.at += 1
            following = self._peek()
            if following is None or following.kind in ("or", "and", "rparen"):
                where = self._end_position() if following is None else following.position
                raise _fail(self.query, where, f"{token.text} needs a term after it")
            return Not(self._unary())
        return self._primary()

    def _primary(self) -> Node:
        token = self._peek()
        if token is None:
            raise _fail(self.query, self._end_position(), "the query ends where a term should be")
        self.at += 1
        if token.kind == "lparen":
            if (inner := self._peek()) is not None and inner.kind == "rparen":
                raise _fail(self.query, inner.position, "empty parentheses")
            node = self._or()
            closing = self._peek()
            if closing is None or closing.kind != "rparen":
                raise _fail(self.query, token.position, "this '(' is never closed (add a ')')")
            self.at += 1
            return node
        if token.kind == "phrase":
            if not token.text.strip():
                raise _fail(self.query, token.position, "empty quotes")
            return Phrase(token.text)
        if token.kind == "field":
            value, prefix = token.text, False
            if token.op == ":" and value.endswith("*") and len(value) > 1:
                value, prefix = value[:-1], True
            return FieldMatch(token.field, token.op, value, prefix)
        if token.kind == "word":
            if token.text.endswith("*") and len(token.text) > 1:
                return Term(token.text[:-1], prefix=True)
            if token.text.strip("*") == "":
                raise _fail(self.query, token.position, "'*' alone matches nothing: put it after a word")
            return Term(token.text)
        problem = (
            "unexpected ')' (no '(' opens it)" if token.kind == "rparen" else f"unexpected {token.text!r}"
        )
        raise _fail(self.query, token.position, problem)


def parse_query(query: str) -> Node | None:
    """The tree of ``query``; None when it is blank (match every entry)."""
    if not query.strip():
        return None
    return _Parser(query, _Lexer(query).tokens()).parse()

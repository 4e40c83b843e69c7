"""The query language, parsed without a database."""

from __future__ import annotations

import pytest

from beamlink.errors import QuerySyntaxError
from beamlink.service.search.syntax import And, FieldMatch, Not, Or, Phrase, Term, parse_query


@pytest.mark.parametrize(
    ("query", "tree"),
    [
        ("", None),
        ("   ", None),
        ("lysozyme", Term("lysozyme")),
        ("lyso*", Term("lyso", prefix=True)),
        ('"silica beads"', Phrase("silica beads")),
        ("a b", And((Term("a"), Term("b")))),
        ("a AND b OR c", Or((And((Term("a"), Term("b"))), Term("c")))),
        ("a (b OR c)", And((Term("a"), Or((Term("b"), Term("c")))))),
        ("NOT a", Not(Term("a"))),
        ("a -b", And((Term("a"), Not(Term("b"))))),
        ("sample.name:silica", FieldMatch("sample.name", ":", "silica")),
        ('title:"two words"', FieldMatch("title", ":", "two words")),
        ("temperature:>=20", FieldMatch("temperature", ">=", "20")),
        ("created:<2026-01-01", FieldMatch("created", "<", "2026-01-01")),
        ("name:lys*", FieldMatch("name", ":", "lys", prefix=True)),
        # Lower-case operators are words, and a URL is a word, not a field.
        ("a and b", And((Term("a"), Term("and"), Term("b")))),
        ("file:///data/x.h5", Term("file:///data/x.h5")),
        ("x-ray", Term("x-ray")),
    ],
)
def test_queries_parse_to_trees(query: str, tree: object) -> None:
    assert parse_query(query) == tree


@pytest.mark.parametrize(
    ("query", "position", "words"),
    [
        ("a AND", 5, "AND needs a term after it"),
        ("a OR OR b", 5, "OR needs a term after it"),
        ("(a OR b", 0, "'(' is never closed"),
        ("a b)", 3, "unexpected ')'"),
        ('name "abc', 5, "quote is never closed"),
        ("title:", 6, "needs a value"),
        ("NOT", 3, "NOT needs a term"),
        ("a ()", 3, "empty parentheses"),
        ('""', 0, "empty quotes"),
        ("*", 0, "'*' alone"),
    ],
)
def test_a_syntax_error_names_its_position(query: str, position: int, words: str) -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        parse_query(query)
    error = caught.value
    assert error.status == 400
    assert error.details["position"] == position
    assert words in error.message
    # The message points at the spot under the query.
    lines = error.message.splitlines()
    assert lines[1] == f"  {query}"
    assert lines[2] == "  " + " " * position + "^"

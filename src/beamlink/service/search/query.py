"""Queries: ``q`` (full text and field terms), filters, facets, sort and paging, compiled to one SQL
statement per part, with visibility in the WHERE clause.

Full text is the one part each database does its own way: FTS5 ``MATCH`` on SQLite, a ``tsvector``
``@@`` ``tsquery`` on PostgreSQL. A text-only stretch of the query tree (words, phrases, prefixes,
AND/OR) becomes one full-text expression; field terms and NOT are SQL around it. Filters, facets and
sorting read ``search_fields``, the same SQL on both databases.
"""

from __future__ import annotations

import re
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    cast,
    column,
    exists,
    func,
    literal_column,
    not_,
    or_,
    select,
    table,
    true,
)
from sqlalchemy.orm import Session, aliased

from beamlink.errors import InvalidInput
from beamlink.protocol.search import (
    DeleteByQuery,
    DeleteResult,
    FacetBucket,
    FacetRequest,
    FacetResult,
    FilterRequest,
    RangeValue,
    SearchHit,
    SearchRequest,
    SearchResult,
)
from beamlink.service.auth.principal import Principal
from beamlink.service.search import records
from beamlink.service.search.access import access_word, index_word
from beamlink.service.search.fields import check_field_name, date_key
from beamlink.service.search.indexes import find_index, require_role
from beamlink.service.search.models import SearchEntry, SearchField, SearchIndex
from beamlink.service.search.syntax import And, FieldMatch, Node, Not, Or, Phrase, Term, parse_query

__all__ = ["delete_by_query", "search"]

_FTS = table("search_fts", column("rowid"), column("search_fts"), column("rank"))
_TSV: ColumnElement[Any] = literal_column("search_entries.tsv")
_DATE_PREFIX = {"year": 4, "month": 7, "day": 10, "hour": 13, "minute": 16, "second": 19}
_WORD = re.compile(r"[^\W_]+")


# -- full text -----------------------------------------------------------------------------------------


def _text_only(node: Node) -> bool:
    if isinstance(node, Term | Phrase):
        return True
    if isinstance(node, And | Or):
        return all(_text_only(child) for child in node.children)
    return False


def _fts5(node: Node) -> str:
    """An FTS5 query string; every word is quoted, so nothing in it is FTS5 syntax by accident."""
    if isinstance(node, Term):
        return '"' + node.word.replace('"', '""') + '"' + ("*" if node.prefix else "")
    if isinstance(node, Phrase):
        return '"' + node.words.replace('"', '""') + '"'
    assert isinstance(node, And | Or)
    joiner = " AND " if isinstance(node, And) else " OR "
    return "(" + joiner.join(_fts5(child) for child in node.children) + ")"


def _tsquery(node: Node) -> ColumnElement[Any]:
    """A PostgreSQL tsquery built from bound values (phraseto_tsquery tokenises as to_tsvector does)."""
    if isinstance(node, Term) and node.prefix:
        words = _WORD.findall(node.word.lower())
        if not words:
            return func.to_tsquery("simple", "")
        text = " <-> ".join(f"'{word}'" for word in words) + ":*"
        return func.to_tsquery("simple", text)
    if isinstance(node, Term | Phrase):
        # Split on punctuation as the stored text was (migration 0005), then match the words in order.
        text = node.word if isinstance(node, Term) else node.words
        return func.phraseto_tsquery("simple", " ".join(_WORD.findall(text)))
    assert isinstance(node, And | Or)
    operator = "&&" if isinstance(node, And) else "||"
    combined = _tsquery(node.children[0])
    for child in node.children[1:]:
        combined = combined.op(operator)(_tsquery(child))
    return combined


@dataclass(frozen=True)
class _Compiler:
    dialect: str

    def text_clause(self, node: Node) -> ColumnElement[bool]:
        if self.dialect == "sqlite":
            matched = select(_FTS.c.rowid).where(_FTS.c.search_fts.op("MATCH")(f"text : ({_fts5(node)})"))
            return SearchEntry.pk.in_(matched)
        return _TSV.op("@@")(_tsquery(node))

    def ranked_hits(
        self, node: Node, where: ColumnElement[bool], index_id: str, keys: list[str] | None, *, filtered: bool
    ) -> Select[Any]:
        """The keys of every entry of the index matching ``node`` and ``where`` and visible to ``keys``
        (None: to anyone), best match first and, among equals, newest first. ``where`` holds no visibility.
        The database sorts: fetching thousands of bare keys is cheap, fetching them with scores is not."""
        if self.dialect == "sqlite":
            # One FTS5 expression finds the words, the index and the visibility at once (search/access.py).
            expression = f"text : ({_fts5(node)}) AND access : {index_word(index_id)}"
            if keys is not None:
                expression += " AND access : (" + " OR ".join(access_word(key) for key in keys) + ")"
            match = _FTS.c.search_fts.op("MATCH")(expression)
            if not filtered:  # the index and visibility are in the expression: no entry row is read
                return select(_FTS.c.rowid).where(match).order_by(_FTS.c.rank, _FTS.c.rowid.desc())
            hits = select(_FTS.c.rowid, _FTS.c.rank).where(match).subquery()
            query = select(SearchEntry.pk).join(hits, hits.c.rowid == SearchEntry.pk).where(where)
            return query.order_by(hits.c.rank, SearchEntry.pk.desc())
        tsquery = _tsquery(node)
        conditions = [where, _TSV.op("@@")(tsquery)]
        if keys is not None:
            conditions.append(records.visible_to_keys(keys))
        score = func.ts_rank(_TSV, tsquery)
        return select(SearchEntry.pk).where(*conditions).order_by(score.desc(), SearchEntry.pk.desc())

    def compile(self, node: Node) -> ColumnElement[bool]:
        if _text_only(node):
            return self.text_clause(node)
        if isinstance(node, FieldMatch):
            return _field_match(node)
        if isinstance(node, Not):
            return not_(self.compile(node.child))
        assert isinstance(node, And | Or)
        # Text-only children are folded into one full-text expression; the rest stay SQL.
        texts = [child for child in node.children if _text_only(child)]
        others = [self.compile(child) for child in node.children if not _text_only(child)]
        parts = list(others)
        if texts:
            folded = texts[0] if len(texts) == 1 else type(node)(tuple(texts))
            parts.insert(0, self.text_clause(folded))
        return and_(*parts) if isinstance(node, And) else or_(*parts)


# -- fields --------------------------------------------------------------------------------------------


def _has_field(field: str, condition: ColumnElement[bool], *, alias: Any = None) -> ColumnElement[bool]:
    f = alias if alias is not None else aliased(SearchField)
    return exists(select(f.id).where(f.entry_pk == SearchEntry.pk, f.field == field, condition))


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _compare(f: Any, op: str, value: str) -> ColumnElement[bool]:
    number = _number(value)
    bound: float | str
    if number is not None:
        target, bound = f.value_num, number
    elif (date := date_key(value)) is not None:
        target, bound = f.value_date, date
    else:
        target, bound = f.value_key, value.lower()
    result: ColumnElement[bool] = target.op(op)(bound)
    return result


def _like_prefix(value: str) -> str:
    escaped = value.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _field_match(node: FieldMatch) -> ColumnElement[bool]:
    field = check_field_name(node.field, where="q")
    f = aliased(SearchField)
    if node.op != ":":
        return _has_field(field, _compare(f, node.op, node.value), alias=f)
    if node.prefix:
        return _has_field(field, f.value_key.like(_like_prefix(node.value), escape="\\"), alias=f)
    return _has_field(field, f.value_key == node.value.lower()[:256], alias=f)


def _text_of(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        number = _number(value)
        if isinstance(value, float) and number is not None and number.is_integer():
            return str(int(number))
        return str(value)
    raise InvalidInput(
        f"{where}: filter values are strings or numbers, got {type(value).__name__}", details={"field": where}
    )


def _bound(value: float | str | None) -> float | str | None:
    return None if value is None or value == "*" else value


def _range_clause(field: str, raw: Any, where: str) -> ColumnElement[bool]:
    if not isinstance(raw, dict):
        raise InvalidInput(
            f"{where}: a range value is an object {{'from': ..., 'to': ...}} ('*' leaves an end open)",
            details={"field": where},
        )
    try:
        bounds = RangeValue.model_validate(raw)
    except ValueError as exc:
        raise InvalidInput(f"{where}: {exc}", details={"field": where}) from None
    low, high = _bound(bounds.from_), _bound(bounds.to)
    f = aliased(SearchField)
    conditions: list[ColumnElement[bool]] = []
    for value, op in ((low, ">="), (high, "<=")):
        if value is None:
            continue
        if _number(value) is None and date_key(str(value)) is None:
            raise InvalidInput(
                f"{where}: range bound {value!r} is neither a number nor an ISO 8601 date (2026-11-21 or "
                "2026-11-21T10:00:00Z)",
                details={"field": where, "value": value},
            )
        conditions.append(_compare(f, op, str(value)))
    if not conditions:
        return _has_field(field, true(), alias=f)
    return _has_field(field, and_(*conditions), alias=f)


def _filter_clause(item: FilterRequest, position: int) -> ColumnElement[bool]:
    where = f"filters/{position}"
    field = check_field_name(item.field_name, where=f"{where}/field_name")
    if item.type == "range":
        return or_(*[_range_clause(field, raw, f"{where}/values/{n}") for n, raw in enumerate(item.values)])
    keys = [_text_of(value, f"{where}/values/{n}").lower()[:256] for n, value in enumerate(item.values)]
    if item.type == "match_all":
        clauses = []
        for key in keys:
            each = aliased(SearchField)
            clauses.append(_has_field(field, each.value_key == key, alias=each))
        return and_(*clauses)
    f = aliased(SearchField)
    return _has_field(field, f.value_key.in_(keys), alias=f)


# -- facets --------------------------------------------------------------------------------------------


def _facet(
    session: Session, dialect: str, facet: FacetRequest, matched: Select[Any], position: int
) -> FacetResult:
    field = check_field_name(facet.field_name, where=f"facets/{position}/field_name")
    name = facet.name or facet.field_name
    f = SearchField
    in_set = and_(f.field == field, f.entry_pk.in_(matched))
    count = func.count(func.distinct(f.entry_pk))
    if facet.type in ("sum", "avg"):
        aggregate = func.sum(f.value_num) if facet.type == "sum" else func.avg(f.value_num)
        value = session.scalar(select(aggregate).where(in_set, f.value_num.is_not(None)))
        return FacetResult(name=name, value=None if value is None else float(value))
    if facet.type == "terms":
        rows = session.execute(
            select(f.value_text, count)
            .where(in_set)
            .group_by(f.value_text)
            .order_by(count.desc(), f.value_text)
            .limit(facet.size)
        ).all()
        return FacetResult(name=name, buckets=[FacetBucket(value=v, count=c) for v, c in rows])
    if facet.type == "date_histogram":
        bucket = func.substr(f.value_date, 1, _DATE_PREFIX[facet.date_interval or "day"])
        rows = session.execute(
            select(bucket, count).where(in_set, f.value_date.is_not(None)).group_by(bucket).order_by(bucket)
        ).all()
        return FacetResult(name=name, buckets=[FacetBucket(value=v, count=c) for v, c in rows])
    return _numeric_histogram(session, dialect, facet, name, in_set, count, position)


def _numeric_histogram(
    session: Session,
    dialect: str,
    facet: FacetRequest,
    name: str,
    in_set: ColumnElement[bool],
    count: Any,
    position: int,
) -> FacetResult:
    where = f"facets/{position}/histogram_range"
    bounds = facet.histogram_range or {}
    low, high = bounds.get("low"), bounds.get("high")
    if low is None or high is None or not high > low:
        raise InvalidInput(
            f"{where}: a numeric_histogram needs histogram_range {{'low': L, 'high': H}} with H > L",
            details={"field": where},
        )
    width = (high - low) / facet.size
    f = SearchField
    scaled = (f.value_num - low) / width
    # CAST truncates on SQLite but rounds on PostgreSQL; floor() is what both mean here.
    slot = func.floor(scaled) if dialect == "postgresql" else cast(scaled, Integer)
    slot = func.min(slot, facet.size - 1) if dialect == "sqlite" else func.least(slot, facet.size - 1)
    rows: dict[Any, int] = dict(
        session.execute(
            select(slot, count).where(in_set, f.value_num >= low, f.value_num <= high).group_by(slot)
        ).all()
    )
    buckets = [
        FacetBucket(value={"from": low + i * width, "to": low + (i + 1) * width}, count=int(rows.get(i, 0)))
        for i in range(facet.size)
    ]
    return FacetResult(name=name, buckets=buckets)


# -- the query -----------------------------------------------------------------------------------------


def _where(
    dialect: str, index: SearchIndex, q: str, filters: list[FilterRequest], *, text: bool = True
) -> tuple[ColumnElement[bool], Node | None]:
    """The WHERE clause of ``q`` and ``filters``, and the parsed tree; ``text=False`` leaves a text-only
    tree out (the caller matches it itself)."""
    tree = parse_query(q)
    clauses: list[ColumnElement[bool]] = [SearchEntry.index_id == index.id]
    if tree is not None and (text or not _text_only(tree)):
        clauses.append(_Compiler(dialect).compile(tree))
    clauses += [_filter_clause(item, n) for n, item in enumerate(filters)]
    return and_(*clauses), tree


def _ordered(page: Select[Any], request: SearchRequest) -> Select[Any]:
    """``page`` in the asked order: the sort fields, then newest first (relevance is _page_by_rank's)."""
    for position, item in enumerate(request.sort):
        field = check_field_name(item.field_name, where=f"sort/{position}/field_name")
        for attribute in ("value_num", "value_date", "value_key"):
            f = aliased(SearchField)
            target = getattr(f, attribute)
            pick = func.min(target) if item.order == "asc" else func.max(target)
            value = select(pick).where(f.entry_pk == SearchEntry.pk, f.field == field).scalar_subquery()
            page = page.order_by((value.asc() if item.order == "asc" else value.desc()).nulls_last())
    return page.order_by(SearchEntry.updated_at.desc(), SearchEntry.pk.desc())


def _page_by_rank(
    session: Session, query: Select[Any], request: SearchRequest
) -> tuple[int, list[SearchEntry]]:
    """Total and page of a text query ranked by relevance, from one pass over the hits."""
    ranked: list[int] = list(session.scalars(query))
    wanted = ranked[request.offset : request.offset + request.limit]
    rows: list[SearchEntry] = []
    if wanted:
        page = select(SearchEntry).where(SearchEntry.pk.in_(wanted))
        found = {row.pk: row for row in session.scalars(page)}
        rows = [found[pk] for pk in wanted]
    return len(ranked), rows


def _facets_apart(
    bind: Any, dialect: str, facets: list[FacetRequest], matched: Select[Any]
) -> list[FacetResult]:
    with Session(bind) as session:
        return [_facet(session, dialect, facet, matched, n) for n, facet in enumerate(facets)]


@cache
def _facet_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="search-facets")


def search(
    session: Session,
    principal: Principal | None,
    ref: str,
    request: SearchRequest,
    *,
    concurrent_facets: bool = False,
) -> SearchResult:
    """The entries of index ``ref`` matching ``request`` that the caller may see, grouped by subject.

    ``concurrent_facets``: count the facets on a connection of their own while the page is read (on two
    cores a broad query's facets and its ranking overlap). Only for a caller whose transaction has
    written nothing, since the other connection sees committed rows only; the API and portal are such.
    """
    index = find_index(session, ref)
    dialect = session.get_bind().dialect.name
    tree = parse_query(request.q)
    by_rank = tree is not None and _text_only(tree) and not request.sort
    where, tree = _where(dialect, index, request.q, request.filters, text=not by_rank)
    keys: list[str] | None = records.caller_principals(principal)
    if request.bypass_visible_to:
        require_role(session, principal, ref, "admin")
        keys = None
    ranked: Select[Any] | None = None
    if by_rank:
        assert tree is not None
        ranked = _Compiler(dialect).ranked_hits(tree, where, index.id, keys, filtered=bool(request.filters))
        matched = ranked.order_by(None)
    else:
        if keys is not None:
            where = and_(where, records.visible_to_keys(keys))
        matched = select(SearchEntry.pk).where(where)
    for position, facet in enumerate(request.facets):  # a bad facet is refused before any work
        check_field_name(facet.field_name, where=f"facets/{position}/field_name")
    pending: Future[list[FacetResult]] | None = None
    if concurrent_facets and request.facets:
        pending = _facet_pool().submit(_facets_apart, session.get_bind(), dialect, request.facets, matched)
    try:
        rows: list[SearchEntry] = []
        if ranked is not None:
            total, rows = _page_by_rank(session, ranked, request)
        else:
            total = session.scalar(select(func.count()).select_from(SearchEntry).where(where)) or 0
            if request.limit and request.offset < total:
                page = _ordered(select(SearchEntry).where(where), request)
                rows = list(session.scalars(page.offset(request.offset).limit(request.limit)))
        if pending is None:
            facets = [_facet(session, dialect, facet, matched, n) for n, facet in enumerate(request.facets)]
        else:
            facets = pending.result()
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
    hits: dict[str, SearchHit] = {}
    for row in rows:
        hit = hits.setdefault(row.subject, SearchHit(subject=row.subject, entries=[]))
        hit.entries.append(records.entry_info(row))
    return SearchResult(
        total=total,
        count=len(rows),
        offset=request.offset,
        has_next_page=request.offset + len(rows) < total,
        gmeta=list(hits.values()),
        facet_results=facets,
    )


def delete_by_query(session: Session, principal: Principal, ref: str, body: DeleteByQuery) -> DeleteResult:
    """Delete every entry of the index matching ``body`` (writers; whatever its visible_to)."""
    index = require_role(session, principal, ref, "writer")
    where, _ = _where(session.get_bind().dialect.name, index, body.q, body.filters)
    return records.delete_entries(session, index, where)

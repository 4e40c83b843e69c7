"""Indexes, ingest, queries, facets, visibility and deletes against a real database (SQLite and
PostgreSQL), through the domain functions the API routes call."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.orm import Session

from beamlink.errors import (
    AlreadyExists,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    QuerySyntaxError,
)
from beamlink.protocol.search import (
    DeleteByQuery,
    IndexCreate,
    IndexRoleCreate,
    IngestRequest,
    SearchRequest,
    SearchResult,
)
from beamlink.service.auth.models import Group, GroupMember, User
from beamlink.service.auth.principal import Principal
from beamlink.service.auth.tokens import principal_of
from beamlink.service.db.engine import Database
from beamlink.service.search import indexes, query, records

LIMIT = 1 << 20


@dataclass
class World:
    session: Session
    alice: Principal
    bob: Principal
    carol: Principal  # in group "beamline"

    def ingest(self, document: dict[str, Any], who: Principal | None = None, index: str = "xpcs") -> Any:
        body = IngestRequest.model_validate(document)
        return records.ingest(self.session, who or self.alice, index, body, max_entry_bytes=LIMIT)

    def search(self, who: Principal | None, index: str = "xpcs", **request: Any) -> SearchResult:
        return query.search(self.session, who, index, SearchRequest.model_validate(request))

    def subjects(self, who: Principal | None, **request: Any) -> list[str]:
        return [hit.subject for hit in self.search(who, **{"limit": 100, **request}).gmeta]


@pytest.fixture
def world(database: Database) -> Iterator[World]:
    session = database.session()
    people = [User(username=name, password_hash="-") for name in ("alice", "bob", "carol")]
    session.add_all(people)
    session.flush()
    group = Group(name="beamline", owner_id=people[0].id)
    session.add(group)
    session.flush()
    session.add(GroupMember(group_id=group.id, identity_id=people[2].id))
    session.flush()
    alice, bob, carol = (principal_of(session, person) for person in people)
    indexes.create_index(session, alice, IndexCreate(name="xpcs", display_name="XPCS results"))
    session.commit()
    yield World(session, alice, bob, carol)
    session.close()


def _record(subject: str, visible_to: list[str], **content: Any) -> dict[str, Any]:
    return {"subject": subject, "entries": [{"visible_to": visible_to, "content": content}]}


def _samples(world: World) -> None:
    world.ingest(
        {
            "records": [
                _record(
                    "run-1",
                    ["public"],
                    title="Lysozyme gel",
                    sample="lysozyme",
                    temperature=20,
                    taken="2026-01-05T10:00:00Z",
                    keywords=["xpcs", "gel"],
                ),
                _record(
                    "run-2",
                    ["public"],
                    title="Silica beads in glycerol",
                    sample="silica",
                    temperature=25,
                    taken="2026-01-20T10:00:00Z",
                    keywords=["xpcs"],
                ),
                _record(
                    "run-3",
                    ["user:bob"],
                    title="Lysozyme crystal",
                    sample="lysozyme",
                    temperature=30,
                    taken="2026-02-02T10:00:00Z",
                    keywords=["saxs"],
                ),
                _record(
                    "run-4",
                    ["group:beamline"],
                    title="Silica reference",
                    sample="silica",
                    temperature=35,
                    taken="2026-03-01T10:00:00Z",
                    keywords=["xpcs", "reference"],
                ),
                _record(
                    "run-5",
                    ["all_authenticated_users"],
                    title="Empty cell",
                    sample="none",
                    temperature=40,
                    taken="2026-03-15T10:00:00Z",
                    keywords=[],
                ),
            ]
        }
    )


def test_each_caller_sees_only_the_entries_visible_to_them(world: World) -> None:
    _samples(world)
    # alice wrote them all, but visible_to decides: she is neither bob nor in the group.
    assert world.subjects(world.alice) == ["run-5", "run-2", "run-1"]
    assert world.subjects(world.bob) == ["run-5", "run-3", "run-2", "run-1"]
    assert world.subjects(world.carol) == ["run-5", "run-4", "run-2", "run-1"]
    assert world.subjects(None) == ["run-2", "run-1"]
    # Totals and facets count only what the caller may see.
    result = world.search(None, facets=[{"field_name": "sample"}])
    assert result.total == 2
    assert {b.value: b.count for b in result.facet_results[0].buckets} == {"lysozyme": 1, "silica": 1}
    # The owner may look past visible_to, when asking for it; others may not.
    assert len(world.subjects(world.alice, bypass_visible_to=True)) == 5
    with pytest.raises(PermissionDenied):
        world.search(world.bob, bypass_visible_to=True)


def test_full_text_phrases_prefixes_booleans_and_field_terms(world: World) -> None:
    _samples(world)
    carol = world.carol
    assert world.subjects(carol, q="lysozyme") == ["run-1"]
    assert sorted(world.subjects(carol, q="silica")) == ["run-2", "run-4"]
    assert world.subjects(carol, q='"silica beads"') == ["run-2"]
    assert world.subjects(carol, q='"beads silica"') == []
    assert sorted(world.subjects(carol, q="sil*")) == ["run-2", "run-4"]
    assert sorted(world.subjects(carol, q="lysozyme OR reference")) == ["run-1", "run-4"]
    assert world.subjects(carol, q="silica -glycerol") == ["run-4"]
    assert world.subjects(carol, q="silica AND NOT beads") == ["run-4"]
    assert world.subjects(carol, q="sample:SILICA keywords:reference") == ["run-4"]
    assert world.subjects(carol, q="temperature:>=35") == ["run-5", "run-4"]
    assert world.subjects(carol, q="taken:<2026-01-10") == ["run-1"]
    assert world.subjects(carol, q="title:lyso*") == ["run-1"]
    # The subject itself is searchable.
    assert world.subjects(carol, q="run") != []
    assert world.subjects(carol, q="nothing-like-this") == []


def test_filters_facets_sort_and_paging(world: World) -> None:
    _samples(world)
    bob = world.bob
    assert world.subjects(bob, filters=[{"field_name": "keywords", "values": ["gel", "saxs"]}]) == [
        "run-3",
        "run-1",
    ]
    match_all = [{"type": "match_all", "field_name": "keywords", "values": ["xpcs", "gel"]}]
    assert world.subjects(bob, filters=match_all) == ["run-1"]
    in_range = [{"type": "range", "field_name": "temperature", "values": [{"from": 22, "to": "*"}]}]
    assert world.subjects(bob, filters=in_range, sort=[{"field_name": "temperature"}]) == [
        "run-2",
        "run-3",
        "run-5",
    ]
    dates = [{"type": "range", "field_name": "taken", "values": [{"from": "2026-01-15", "to": "2026-02-28"}]}]
    assert world.subjects(bob, filters=dates) == ["run-3", "run-2"]
    by_title = world.subjects(bob, sort=[{"field_name": "title", "order": "desc"}])
    assert by_title == ["run-2", "run-1", "run-3", "run-5"]

    result = world.search(
        bob,
        limit=2,
        offset=1,
        sort=[{"field_name": "temperature"}],
        facets=[
            {"name": "Sample", "field_name": "sample", "size": 2},
            {"type": "date_histogram", "field_name": "taken", "date_interval": "month"},
            {
                "type": "numeric_histogram",
                "field_name": "temperature",
                "size": 2,
                "histogram_range": {"low": 20, "high": 40},
            },
            {"type": "sum", "field_name": "temperature"},
            {"type": "avg", "field_name": "temperature"},
        ],
    )
    assert (result.total, result.count, result.offset, result.has_next_page) == (4, 2, 1, True)
    assert [hit.subject for hit in result.gmeta] == ["run-2", "run-3"]
    terms, months, histogram, total, average = result.facet_results
    assert terms.name == "Sample"
    assert [(b.value, b.count) for b in terms.buckets] == [("lysozyme", 2), ("none", 1)]
    assert [(b.value, b.count) for b in months.buckets] == [("2026-01", 2), ("2026-02", 1), ("2026-03", 1)]
    assert [(b.value, b.count) for b in histogram.buckets] == [
        ({"from": 20.0, "to": 30.0}, 2),
        ({"from": 30.0, "to": 40.0}, 2),
    ]
    assert total.value == 115
    assert average.value == pytest.approx(28.75)
    last = world.search(bob, limit=2, offset=3)
    assert (last.count, last.has_next_page) == (1, False)


def test_ingest_is_an_upsert_by_subject_and_entry_id(world: World) -> None:
    first = world.ingest(_record("run-1", ["public"], title="first"))
    assert (first.created, first.updated) == (1, 0)
    again = world.ingest(_record("run-1", ["user:bob"], title="second"))
    assert (again.created, again.updated) == (0, 1)
    # The old words and the old visibility are gone with the old content.
    assert world.subjects(None) == []
    assert world.subjects(world.bob, q="first") == []
    assert world.subjects(world.bob, q="second") == ["run-1"]
    # Another entry id is another entry of the same subject, with its own visibility.
    world.ingest(
        {
            "subject": "run-1",
            "entries": [
                {"entry_id": "public-summary", "visible_to": ["public"], "content": {"title": "summary"}}
            ],
        }
    )
    anonymous = records.get_subject(world.session, None, "xpcs", "run-1")
    assert [e.entry_id for e in anonymous.entries] == ["public-summary"]
    assert len(records.get_subject(world.session, world.bob, "xpcs", "run-1").entries) == 2
    info = indexes.index_info(world.session, world.alice, indexes.find_index(world.session, "xpcs"))
    assert (info.num_subjects, info.num_entries, info.user_role) == (1, 2, "owner")


def test_globus_gmeta_documents_ingest_unchanged(world: World) -> None:
    gmeta = {
        "ingest_type": "GMetaList",
        "ingest_data": {
            "gmeta": [
                {"subject": "globus://a", "visible_to": ["public"], "content": {"n": 1}},
                {"subject": "globus://a", "id": "extra", "visible_to": ["public"], "content": {"n": 2}},
                {"subject": "globus://b", "visible_to": ["public"], "content": {"n": 3}},
            ]
        },
    }
    result = world.ingest(gmeta)
    assert (result.subjects, result.entries) == (2, 3)
    single = {
        "ingest_type": "GMetaEntry",
        "ingest_data": {"subject": "globus://c", "visible_to": ["public"], "content": {"n": 4}},
    }
    assert world.ingest(single).created == 1
    assert world.search(None, q="n:>1").total == 3


def test_writers_write_and_others_may_only_search(world: World) -> None:
    with pytest.raises(PermissionDenied, match="ask its owner"):
        world.ingest(_record("x", ["public"], title="x"), who=world.bob)
    indexes.add_role(
        world.session, world.alice, "xpcs", IndexRoleCreate(principal="group:beamline", role="writer")
    )
    assert world.ingest(_record("x", ["public"], title="x"), who=world.carol).created == 1
    with pytest.raises(PermissionDenied):
        indexes.add_role(
            world.session, world.carol, "xpcs", IndexRoleCreate(principal="user:bob", role="admin")
        )
    roles = indexes.list_roles(world.session, world.alice, "xpcs")
    assert [(r.principal, r.role) for r in roles] == [("group:beamline", "writer")]
    indexes.remove_role(world.session, world.alice, "xpcs", roles[0].id)
    with pytest.raises(PermissionDenied):
        world.ingest(_record("y", ["public"], title="y"), who=world.carol)
    with pytest.raises(AlreadyExists):
        indexes.create_index(world.session, world.bob, IndexCreate(name="xpcs"))


def test_deletes_by_subject_entry_and_query(world: World) -> None:
    _samples(world)
    removed = records.delete_subjects(world.session, world.alice, "xpcs", ["run-1", "run-2", "absent"])
    assert (removed.subjects, removed.entries) == (2, 2)
    by_query = query.delete_by_query(world.session, world.alice, "xpcs", DeleteByQuery(q="silica OR crystal"))
    # A writer's delete reaches entries whatever their visibility (run-3 is bob's, run-4 the group's).
    assert (by_query.subjects, by_query.entries) == (2, 2)
    assert world.subjects(world.alice, bypass_visible_to=True) == ["run-5"]
    # A query on a field (which reads search_fields) deletes too.
    world.ingest(_record("run-6", ["public"], sample="none"))
    by_field = query.delete_by_query(
        world.session, world.alice, "xpcs", DeleteByQuery(q="sample:none temperature:>30")
    )
    assert (by_field.subjects, by_field.entries) == (1, 1)
    assert world.subjects(world.alice, bypass_visible_to=True) == ["run-6"]
    # Full text forgets deleted entries too.
    assert world.search(world.bob, q="lysozyme").total == 0
    with pytest.raises(NotFound):
        records.delete_entry(world.session, world.alice, "xpcs", "run-6", "no-such-entry")
    with pytest.raises(PermissionDenied):
        records.delete_subjects(world.session, world.bob, "xpcs", ["run-6"])
    with pytest.raises(ValueError, match="needs q or filters"):
        DeleteByQuery()


def test_bad_input_is_refused_with_the_reason(world: World) -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        world.search(None, q="silica AND (beads")
    assert caught.value.details["position"] == 11
    with pytest.raises(PayloadTooLarge, match="at most 2,048 bytes"):
        records.ingest(
            world.session,
            world.alice,
            "xpcs",
            IngestRequest.model_validate(_record("big", ["public"], blob="x" * 5000)),
            max_entry_bytes=2048,
        )
    with pytest.raises(NotFound, match="no user named 'nobody'"):
        world.ingest(_record("s", ["user:nobody"], title="t"))
    with pytest.raises(InvalidInput, match="not a principal"):
        world.ingest(_record("s", ["robot:r2"], title="t"))
    with pytest.raises(InvalidInput, match="not a field name"):
        world.search(None, facets=[{"field_name": "a b"}])
    with pytest.raises(InvalidInput, match="neither a number nor an ISO 8601 date"):
        world.search(None, filters=[{"type": "range", "field_name": "t", "values": [{"from": "soon"}]}])
    with pytest.raises(InvalidInput, match="histogram_range"):
        world.search(None, facets=[{"type": "numeric_histogram", "field_name": "t"}])
    twice = {"subject": "s", "entries": [{"visible_to": ["public"], "content": {}}] * 2}
    with pytest.raises(InvalidInput, match="/records/0/entries/1: subject 's' entry None comes twice"):
        world.ingest(twice)
    with pytest.raises(NotFound, match="no search index 'nope'"):
        world.search(None, index="nope")
    # Nothing of a refused ingest was kept.
    assert world.search(world.alice, bypass_visible_to=True).total == 0


def test_an_ingest_is_all_or_nothing(world: World) -> None:
    document = {
        "records": [_record("good", ["public"], title="good"), _record("bad", ["user:nobody"], title="b")]
    }
    with pytest.raises(NotFound, match="/records/1/entries/0/visible_to/0"):
        world.ingest(document)
    world.session.rollback()  # what the route's transaction does with the error
    assert world.search(None).total == 0


def test_facets_counted_on_their_own_connection_agree_with_the_sequential_ones(world: World) -> None:
    _samples(world)
    world.session.commit()  # the other connection sees committed rows only
    for q in ("lysozyme OR silica", "", "sample:silica"):
        request = SearchRequest.model_validate(
            {"q": q, "facets": [{"field_name": "sample"}, {"type": "sum", "field_name": "temperature"}]}
        )
        alone = query.search(world.session, world.bob, "xpcs", request)
        apart = query.search(world.session, world.bob, "xpcs", request, concurrent_facets=True)
        assert apart == alone
        assert alone.facet_results[0].buckets
    with pytest.raises(InvalidInput, match="not a field name"):
        query.search(
            world.session,
            None,
            "xpcs",
            SearchRequest.model_validate({"q": "gel", "facets": [{"field_name": "bad name"}]}),
            concurrent_facets=True,
        )

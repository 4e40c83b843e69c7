"""Trigger decisions (pure: quiet period, changing files, glob, already-fired files, priming), body
templating, and whole scans on a real database with stand-in agent and flow engine (both backends)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest
from sqlalchemy import select

from beamlink.errors import BeamlinkError, CollectionOffline, NotFound, PermissionDenied
from beamlink.flowlang import FlowInputInvalid
from beamlink.protocol.flows import RunCreate, RunInfo, TriggerCreate
from beamlink.service.auth.models import User
from beamlink.service.auth.principal import Principal
from beamlink.service.db.engine import Database
from beamlink.service.flows import triggers
from beamlink.service.flows.models import Flow, Trigger, TriggerFile
from beamlink.service.flows.triggers import PRIMED, ListedFile, SeenFile, render_body, scan_decisions
from beamlink.service.state import ServiceState
from beamlink.service.transfer.models import Collection

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def seen(path: str, size: int, mtime: float, since: float, run_id: str | None = None) -> SeenFile:
    return SeenFile(path, size, mtime, at(since), run_id)


# -- decisions -----------------------------------------------------------------------------------------


def test_the_first_scan_primes_every_file_and_starts_nothing() -> None:
    listing = [ListedFile("a.h5", 10, 1.0), ListedFile("b.h5", 20, 2.0)]
    d = scan_decisions({}, listing, T0, quiet_seconds=0, primed=False)
    assert d.priming
    assert d.new == listing
    assert d.due == []


def test_a_new_file_is_due_only_after_its_quiet_period() -> None:
    f = ListedFile("scan.h5", 100, 5.0)
    first = scan_decisions({}, [f], T0, quiet_seconds=2)
    assert (first.new, first.due) == ([f], [])
    previous = {"scan.h5": seen("scan.h5", 100, 5.0, since=0)}
    assert scan_decisions(previous, [f], at(1.9), quiet_seconds=2).due == []
    later = scan_decisions(previous, [f], at(2.0), quiet_seconds=2)
    assert (later.new, later.changed, later.due) == ([], [], [f])


def test_a_file_still_growing_restarts_its_quiet_period() -> None:
    previous = {"scan.h5": seen("scan.h5", 100, 5.0, since=0)}
    grown = ListedFile("scan.h5", 200, 6.0)
    d = scan_decisions(previous, [grown], at(10), quiet_seconds=2)
    assert (d.changed, d.due) == ([grown], [])
    touched = ListedFile("scan.h5", 100, 7.0)  # same size, new mtime: still being written
    assert scan_decisions(previous, [touched], at(10), quiet_seconds=2).changed == [touched]


def test_with_no_quiet_period_a_new_file_is_due_at_once() -> None:
    f = ListedFile("x.dat", 1, 1.0)
    assert scan_decisions({}, [f], T0, quiet_seconds=0).due == [f]


def test_a_file_with_a_run_never_starts_another_whatever_happens_to_it() -> None:
    for run_id in ("run-1", PRIMED, triggers.REFUSED):
        previous = {"x.dat": seen("x.dat", 1, 1.0, since=0, run_id=run_id)}
        same = scan_decisions(previous, [ListedFile("x.dat", 1, 1.0)], at(100), quiet_seconds=0)
        changed = scan_decisions(previous, [ListedFile("x.dat", 9, 9.0)], at(100), quiet_seconds=0)
        assert same.due == changed.due == changed.changed == []


def test_only_names_matching_the_glob_count_at_any_depth() -> None:
    listing = [ListedFile("a.h5", 1, 1.0), ListedFile("notes.txt", 1, 1.0), ListedFile("sub/b.h5", 1, 1.0)]
    d = scan_decisions({}, listing, T0, glob="*.h5", quiet_seconds=0)
    assert [f.path for f in d.due] == ["a.h5", "sub/b.h5"]


def test_files_that_disappear_are_forgotten() -> None:
    previous = {
        "gone.dat": seen("gone.dat", 1, 1.0, since=0, run_id="r"),
        "kept.dat": seen("kept.dat", 1, 1.0, 0),
    }
    d = scan_decisions(previous, [ListedFile("kept.dat", 1, 1.0)], at(1), quiet_seconds=5)
    assert d.gone == ["gone.dat"]


def test_render_body_fills_placeholders_in_nested_strings_only() -> None:
    body = {
        "input": "{path}",
        "nested": [{"name": "{name}"}, "in {collection} ({collection_id})", 3, None, True],
        "json": '{"keep": "{unknown}"}',
    }
    values = {"path": "/in/a.h5", "name": "a.h5", "collection": "detector", "collection_id": "c-1"}
    assert render_body(body, values) == {
        "input": "/in/a.h5",
        "nested": [{"name": "a.h5"}, "in detector (c-1)", 3, None, True],
        "json": '{"keep": "{unknown}"}',
    }


# -- whole scans on a database -------------------------------------------------------------------------


@dataclass
class FakeCollections:
    """Stands in for the agent links: a directory tree of {path: [entry]} served in pages."""

    tree: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    offline: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)

    def put(self, path: str, size: int = 1, mtime: float = 1.0) -> None:
        directory, _, name = path.rpartition("/")
        entries = self.tree.setdefault(directory, [])
        entries[:] = [e for e in entries if e["name"] != name]
        entries.append({"name": name, "type": "file", "size": size, "mtime": mtime, "mode": 0o644})
        entries.sort(key=lambda e: e["name"])
        while directory:
            parent, _, child = directory.rpartition("/")
            siblings = self.tree.setdefault(parent, [])
            if not any(e["name"] == child for e in siblings):
                siblings.append({"name": child, "type": "dir", "size": 0, "mtime": 0.0, "mode": 0o755})
                siblings.sort(key=lambda e: e["name"])
            directory = parent

    async def request(
        self, collection_id: str, name: str, op: str, args: dict[str, Any], *, timeout: float
    ) -> Any:
        assert op == "ls"
        self.requests.append(args)
        if self.offline:
            raise CollectionOffline(f"collection {name!r} is not connected")
        if args["path"] not in self.tree:
            raise NotFound(f"{args['path']!r} does not exist")
        entries = [e for e in self.tree[args["path"]] if args["after"] is None or e["name"] > args["after"]]
        page = entries[: args["limit"]]
        more = len(entries) > args["limit"]
        return {"path": args["path"], "entries": page, "next_cursor": page[-1]["name"] if more else None}


@dataclass
class FakeFlows:
    calls: list[RunCreate] = field(default_factory=list)
    fail: BeamlinkError | None = None

    async def start_run(self, principal: Principal, flow_id: str, body: RunCreate) -> RunInfo:
        if self.fail is not None:
            raise self.fail
        self.calls.append(body)
        return RunInfo(
            run_id=f"run-{len(self.calls)}",
            flow_id=flow_id,
            flow_title="f",
            owner_id=principal.id,
            status="ACTIVE",
            display_status="ACTIVE",
            start_time=T0,
        )


@dataclass
class World:
    db: Database
    agent: FakeCollections
    flows: FakeFlows
    state: ServiceState
    alice: Principal
    bob: Principal
    flow_id: str
    collection_id: str

    def create(self, **options: Any) -> str:
        fields = {"flow_id": self.flow_id, "name": "watch", "collection": "detector", **options}
        with self.db.transaction() as session:
            return triggers.create_trigger(session, self.alice, TriggerCreate.model_validate(fields)).id

    def scan(self, trigger_id: str, seconds: float) -> None:
        asyncio.run(triggers.scan_trigger(self.state, trigger_id, now=lambda: at(seconds)))

    def trigger(self, trigger_id: str) -> Trigger:
        with self.db.transaction() as session:
            row = session.get(Trigger, trigger_id)
            assert row is not None
            session.expunge(row)
            return row

    def files(self, trigger_id: str) -> dict[str, str | None]:
        with self.db.transaction() as session:
            rows = session.scalars(select(TriggerFile).where(TriggerFile.trigger_id == trigger_id))
            return {row.path: row.run_id for row in rows}


@pytest.fixture
def world(database: Database) -> World:
    with database.transaction() as session:
        alice, bob = User(username="alice", kind="user"), User(username="bob", kind="user")
        session.add_all([alice, bob])
        session.flush()
        flow = Flow(owner_id=alice.id, title="f", definition={"StartAt": "P", "States": {}})
        collection = Collection(name="detector", owner_id=alice.id, data_key="00" * 32)
        session.add_all([flow, collection])
        session.flush()
        principals = [Principal(id=u.id, username=u.username) for u in (alice, bob)]
        ids = (flow.id, collection.id)
    agent, flows = FakeCollections(), FakeFlows()
    state = cast(ServiceState, SimpleNamespace(db=database, flows=flows, collections=agent))
    return World(database, agent, flows, state, *principals, *ids)


def test_a_trigger_starts_one_run_per_new_complete_file(world: World) -> None:
    world.agent.put("in/old.h5")
    trigger_id = world.create(
        path="/in", glob="*.h5", quiet_seconds=2, body={"file": "{path}", "meta": ["{name}", "{collection}"]}
    )
    world.scan(trigger_id, 0)
    assert world.files(trigger_id) == {"in/old.h5": PRIMED}
    world.agent.put("in/new.h5", size=10, mtime=5.0)
    world.agent.put("in/notes.txt")
    world.scan(trigger_id, 1)
    world.agent.put("in/new.h5", size=20, mtime=6.0)  # still being written
    world.scan(trigger_id, 2.5)
    assert world.flows.calls == []
    world.scan(trigger_id, 4)
    assert world.flows.calls == []
    world.scan(trigger_id, 4.5)  # unchanged since 2.5: two quiet seconds
    (call,) = world.flows.calls
    assert call.body == {"file": "/in/new.h5", "meta": ["new.h5", "detector"]}
    assert call.label == "watch"
    for later in (5, 6, 100):
        world.scan(trigger_id, later)
    assert len(world.flows.calls) == 1
    info = triggers.trigger_info(world.trigger(trigger_id))
    assert (info.runs_started, info.last_run_id, info.path, info.last_error) == (1, "run-1", "/in", None)
    assert world.files(trigger_id) == {"in/old.h5": PRIMED, "in/new.h5": "run-1"}


def test_a_recursive_trigger_pages_through_big_directories(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(triggers, "_LS_PAGE", 3)
    trigger_id = world.create(recursive=True, quiet_seconds=0)
    world.scan(trigger_id, 0)
    for i in range(7):
        world.agent.put(f"top_{i}.dat")
        world.agent.put(f"a/b/deep_{i}.dat")
    world.scan(trigger_id, 1)
    started = [call.request_id for call in world.flows.calls]
    assert len(started) == 14
    assert len(set(started)) == 14
    assert any(r["after"] is not None for r in world.agent.requests)  # it did page


def test_an_offline_collection_is_noted_and_polled_again(world: World) -> None:
    world.agent.offline = True
    trigger_id = world.create(quiet_seconds=0)
    world.scan(trigger_id, 0)
    down = world.trigger(trigger_id)
    assert down.last_error is not None
    assert "COLLECTION_OFFLINE" in down.last_error
    assert not down.primed  # what is there when it comes back predates nothing we saw: prime then
    world.agent.offline = False
    world.agent.put("there-before.dat")
    world.scan(trigger_id, 1)
    world.agent.put("new.dat")
    world.scan(trigger_id, 2)
    assert [c.body for c in world.flows.calls] == [{}]
    assert world.trigger(trigger_id).last_error is None


def test_a_watched_directory_that_does_not_exist_yet_counts_every_file_that_appears(world: World) -> None:
    trigger_id = world.create(path="/later", quiet_seconds=0)
    world.scan(trigger_id, 0)
    missing = world.trigger(trigger_id)
    assert missing.primed
    assert missing.last_error is not None
    assert "NOT_FOUND" in missing.last_error
    world.agent.put("later/first.dat")
    world.scan(trigger_id, 1)
    assert len(world.flows.calls) == 1


def test_a_refused_input_is_not_retried_but_a_denied_start_is(world: World) -> None:
    trigger_id = world.create(quiet_seconds=0)
    world.scan(trigger_id, 0)
    world.agent.put("bad.dat")
    world.flows.fail = FlowInputInvalid("run input is invalid: /x: 'x' is a required property")
    world.scan(trigger_id, 1)
    assert world.files(trigger_id)["bad.dat"] == triggers.REFUSED
    refused = world.trigger(trigger_id).last_error
    assert refused is not None
    assert "bad.dat" in refused
    world.agent.put("later.dat")
    world.flows.fail = PermissionDenied("you may not start flow f")
    world.scan(trigger_id, 2)
    assert world.files(trigger_id)["later.dat"] is None  # kept, so the next poll tries again
    world.flows.fail = None
    world.scan(trigger_id, 3)
    assert world.files(trigger_id)["later.dat"] == "run-1"
    assert world.trigger(trigger_id).last_error is None


def test_a_paused_trigger_does_not_scan_and_only_its_owner_sees_it(world: World) -> None:
    trigger_id = world.create(quiet_seconds=0)
    with world.db.transaction() as session:
        for call in (
            triggers.get_trigger,
            triggers.pause_trigger,
            triggers.resume_trigger,
            triggers.delete_trigger,
        ):
            with pytest.raises(NotFound, match="trigger list"):
                call(session, world.bob, trigger_id)
        triggers.pause_trigger(session, world.alice, trigger_id)
    world.scan(trigger_id, 0)
    assert world.agent.requests == []
    with world.db.transaction() as session:
        triggers.resume_trigger(session, world.alice, trigger_id)
    world.scan(trigger_id, 1)
    assert len(world.agent.requests) == 1
    with world.db.transaction() as session:
        triggers.delete_trigger(session, world.alice, trigger_id)
        session.flush()
        assert session.scalars(triggers.triggers_query(world.alice)).all() == []


def test_creating_a_trigger_needs_the_flow_and_read_access(world: World) -> None:
    with world.db.transaction() as session:
        other = TriggerCreate(flow_id=world.flow_id, name="w", collection=world.collection_id)
        with pytest.raises(NotFound):
            triggers.create_trigger(session, world.bob, other)
        with pytest.raises(NotFound, match="collection"):
            triggers.create_trigger(
                session, world.alice, other.model_copy(update={"collection": "no-such-collection"})
            )

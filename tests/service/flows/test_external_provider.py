"""The client of external Action Provider APIs, driven against a small fake provider served over real
HTTP on a free port."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from beamlink.config import Settings
from beamlink.errors import InvalidInput
from beamlink.protocol.auth import UserCreate
from beamlink.service.auth.principal import Principal
from beamlink.service.auth.users import create_user
from beamlink.service.db.engine import Database
from beamlink.service.flows.models import ActionRow
from beamlink.service.flows.providers.base import TERMINAL, ActionCall, ActionSnapshot, Progress
from beamlink.service.flows.providers.external import ExternalProvider
from beamlink.service.state import ServiceState
from beamlink.testing.databases import sqlite_url

ALICE = Principal(id="user-1", username="alice")


# -- a fake remote Action Provider -------------------------------------------------------------------


@dataclass
class FakeProvider:
    """Behaviours by the first path segment of the ActionUrl:

    ok (ACTIVE for two polls, then SUCCEEDED), fails (FAILED), sync (SUCCEEDED at /run), error (500
    on /run), flaky (500 twice, then starts), refuse (400), garbage (200 with a non-ActionStatus),
    forever (never ends), lost (/status answers 404), down (/status answers 503).
    """

    url: str = ""
    runs: list[dict[str, Any]] = field(default_factory=list)
    polls: dict[str, int] = field(default_factory=dict)
    posts: list[str] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, kind: str, request: dict[str, Any]) -> tuple[int, Any]:
        self.runs.append({"kind": kind, **request})
        attempts = sum(1 for r in self.runs if r["kind"] == kind)
        action_id = f"{kind}-{request['request_id']}"
        if kind == "error" or (kind == "flaky" and attempts <= 2):
            return 500, {"message": "the provider is sick"}
        if kind == "refuse":
            return 400, {"code": "BadRequest", "message": "body.x is required"}
        if kind == "garbage":
            return 200, {"hello": "world"}
        if kind == "sync":
            return 200, self.status(action_id, "SUCCEEDED", {"answer": 1})
        return 202, self.status(action_id, "ACTIVE", None, "Queued")

    def status_of(self, kind: str, action_id: str) -> tuple[int, Any]:
        self.polls[action_id] = polls = self.polls.get(action_id, 0) + 1
        if kind == "lost":
            return 404, {"message": f"no action {action_id}"}
        if kind == "down":
            return 503, "maintenance"
        if kind == "fails":
            return 200, self.status(action_id, "FAILED", {"code": "Boom", "description": "it broke"})
        if kind in ("ok", "flaky") and polls > 2:
            return 200, self.status(action_id, "SUCCEEDED", {"answer": 42})
        return 200, self.status(action_id, "ACTIVE", {"progress": min(polls, 2)}, f"step {min(polls, 2)}")

    @staticmethod
    def status(action_id: str, status: str, details: Any, display: str | None = None) -> dict[str, Any]:
        return {"action_id": action_id, "status": status, "details": details, "display_status": display}


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    state = FakeProvider()

    class Handler(BaseHTTPRequestHandler):
        def answer(self, code: int, body: Any) -> None:
            data = (json.dumps(body) if not isinstance(body, str) else body).encode()
            self.send_response(code)
            self.send_header(
                "content-type", "application/json" if not isinstance(body, str) else "text/plain"
            )
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = json.loads(self.rfile.read(length)) if length else None
            parts = self.path.strip("/").split("/")
            with state.lock:
                state.tokens.add(self.headers.get("authorization", ""))
                if len(parts) == 2 and parts[1] == "run":
                    self.answer(*state.run(parts[0], body))
                    return
                state.posts.append(self.path)
            self.answer(200, {"action_id": parts[1], "status": "FAILED"})

        def do_GET(self) -> None:
            parts = self.path.strip("/").split("/")
            with state.lock:
                state.tokens.add(self.headers.get("authorization", ""))
                self.answer(*state.status_of(parts[0], parts[1]))

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


# -- the engine's side -------------------------------------------------------------------------------


@dataclass
class Recorder:
    """Stands in for the flow engine's Reporter interface: records reports; the action stays active
    until it ended, ``stop_at`` passed (the engine's ActionTimeout) or ``stopped`` is set."""

    services: ServiceState
    reports: list[Progress] = field(default_factory=list)
    stop_at: datetime | None = None
    stopped: bool = False
    tokens: list[tuple[int, str]] = field(default_factory=list)

    async def report(self, action_id: str, progress: Progress, *, log: str | None = None) -> None:
        self.reports.append(progress)

    async def principal(self, user_id: str) -> Principal:
        return ALICE

    async def still_active(self, action_id: str) -> bool:
        if self.stopped or (self.stop_at is not None and datetime.now(UTC) >= self.stop_at):
            return False
        return not any(p.status in TERMINAL for p in self.reports)

    async def token_for(self, user_id: str, *, ttl_seconds: int, purpose: str) -> str:
        self.tokens.append((ttl_seconds, purpose))
        return f"secret-{len(self.tokens)}"


@pytest.fixture
def services(tmp_path: Path) -> Iterator[ServiceState]:
    state = ServiceState(settings=Settings(home=tmp_path), db=Database(sqlite_url(tmp_path)))
    yield state
    state.db.dispose()


def snapshot(url: str, *, ref: str | None = None, timeout_at: datetime | None = None) -> ActionSnapshot:
    return ActionSnapshot(
        id="action-1",
        request_id="req-1",
        provider="external",
        url=url,
        dialect="external",
        creator_id=ALICE.id,
        run_id="run-1",
        body={"x": 1},
        ref=ref,
        timeout_at=timeout_at,
        poll_interval=0.01,
    )


FAST = ExternalProvider(first_delay=0.01, max_poll_interval=0.05)


def drive(services: ServiceState, action: ActionSnapshot, **recorder: Any) -> Recorder:
    reporter = Recorder(services, **recorder)
    asyncio.run(FAST.drive(action, reporter))
    return reporter


def test_an_action_is_started_then_polled_until_it_succeeds(
    services: ServiceState, fake: FakeProvider
) -> None:
    reporter = drive(services, snapshot(f"{fake.url}/ok"))
    assert [(p.status, p.details, p.display_status, p.ref) for p in reporter.reports] == [
        ("ACTIVE", None, "Queued", "ok-req-1"),
        ("ACTIVE", {"progress": 1}, "step 1", None),
        ("ACTIVE", {"progress": 2}, "step 2", None),
        ("SUCCEEDED", {"answer": 42}, None, None),
    ]
    (run,) = fake.runs
    assert run == {"kind": "ok", "request_id": "req-1", "body": {"x": 1}}
    assert fake.tokens == {"Bearer secret-1"}
    ((ttl, purpose),) = reporter.tokens
    assert ttl == 86_400  # no deadline: a day
    assert purpose == "flow action action-1"


def test_a_restarted_drive_only_polls(services: ServiceState, fake: FakeProvider) -> None:
    reporter = drive(services, snapshot(f"{fake.url}/ok", ref="ok-req-1"))
    assert fake.runs == []
    assert reporter.reports[-1].status == "SUCCEEDED"


def test_a_failed_remote_action_fails_with_its_details(services: ServiceState, fake: FakeProvider) -> None:
    reporter = drive(services, snapshot(f"{fake.url}/fails"))
    assert (reporter.reports[-1].status, reporter.reports[-1].details) == (
        "FAILED",
        {"code": "Boom", "description": "it broke"},
    )


def test_a_synchronous_provider_finishes_at_run(services: ServiceState, fake: FakeProvider) -> None:
    reporter = drive(services, snapshot(f"{fake.url}/sync/"))
    assert [(p.status, p.details, p.ref) for p in reporter.reports] == [
        ("SUCCEEDED", {"answer": 1}, "sync-req-1")
    ]
    assert fake.polls == {}


def test_5xx_on_run_is_tried_again_with_the_same_request_id(
    services: ServiceState, fake: FakeProvider
) -> None:
    reporter = drive(services, snapshot(f"{fake.url}/flaky"))
    assert [r["request_id"] for r in fake.runs] == ["req-1"] * 3
    assert reporter.reports[-1].status == "SUCCEEDED"

    failed = drive(services, snapshot(f"{fake.url}/error"))
    (progress,) = failed.reports
    assert progress.status == "FAILED"
    assert progress.details["code"] == "ActionUnableToRun"
    assert (
        "answered 500 Internal Server Error: the provider is sick (tried 4 times"
        in progress.details["description"]
    )


def test_4xx_on_run_fails_at_once_with_the_providers_message(
    services: ServiceState, fake: FakeProvider
) -> None:
    (progress,) = drive(services, snapshot(f"{fake.url}/refuse")).reports
    assert progress.status == "FAILED"
    assert progress.details["status_code"] == 400
    assert (
        "refused the action: it answered 400 Bad Request: body.x is required"
        in progress.details["description"]
    )
    assert len(fake.runs) == 1


def test_an_answer_that_is_not_an_action_status_fails(services: ServiceState, fake: FakeProvider) -> None:
    (progress,) = drive(services, snapshot(f"{fake.url}/garbage")).reports
    assert progress.status == "FAILED"
    assert progress.details["code"] == "InvalidProviderResponse"
    assert (
        "answered something that is not an Action Provider API ActionStatus"
        in progress.details["description"]
    )


def test_an_unreachable_provider_fails_after_the_retries(services: ServiceState) -> None:
    (progress,) = drive(services, snapshot("http://127.0.0.1:9/nobody")).reports
    assert progress.status == "FAILED"
    assert "could not be reached" in progress.details["description"]


def test_a_provider_that_never_finishes_is_left_at_the_deadline(
    services: ServiceState, fake: FakeProvider
) -> None:
    deadline = datetime.now(UTC) + timedelta(seconds=0.5)
    provider = ExternalProvider(first_delay=0.01, max_poll_interval=10.0)  # back-off far past the deadline
    reporter = Recorder(services, stop_at=deadline)
    began = time.monotonic()
    asyncio.run(provider.drive(snapshot(f"{fake.url}/forever", timeout_at=deadline), reporter))
    assert time.monotonic() - began < 2.5
    assert all(p.status == "ACTIVE" for p in reporter.reports)
    ((ttl, _purpose),) = reporter.tokens
    assert ttl == 300  # the deadline plus a margin, at least five minutes


def test_polling_gives_up_after_consecutive_failures(services: ServiceState, fake: FakeProvider) -> None:
    reporter = drive(services, snapshot(f"{fake.url}/down"))
    assert reporter.reports[-1].status == "FAILED"
    assert reporter.reports[-1].details["code"] == "ProviderUnreachable"
    assert (
        "answered 503 Service Unavailable: maintenance, 10 times in a row"
        in (reporter.reports[-1].details["description"])
    )

    lost = drive(services, snapshot(f"{fake.url}/lost"))
    assert lost.reports[-1].details["code"] == "ActionNotFound"


def test_an_action_canceled_while_it_starts_is_canceled_remotely(
    services: ServiceState, fake: FakeProvider
) -> None:
    class CancelAfterRun(Recorder):
        async def still_active(self, action_id: str) -> bool:
            return not self.reports  # canceled right after /run answered

    reporter = CancelAfterRun(services)
    asyncio.run(FAST.drive(snapshot(f"{fake.url}/forever"), reporter))
    assert fake.posts == ["/forever/forever-req-1/cancel"]


def test_start_checks_the_url_scheme(tmp_path: Path) -> None:
    strict = ServiceState(settings=Settings(home=tmp_path), db=Database(sqlite_url(tmp_path)))
    relaxed = ServiceState(
        settings=Settings(home=tmp_path, flow_allow_http_providers=True), db=Database(sqlite_url(tmp_path))
    )

    def start(state: ServiceState, url: str) -> Progress:
        row = ActionRow(id="a", request_id="r", provider="external", url=url, creator_id=ALICE.id, body={})
        return ExternalProvider().start(ActionCall(state.db.session(), ALICE, state, row))

    assert start(strict, "https://ap.example.org/x").display_status == "Queued"
    with pytest.raises(InvalidInput, match="use an https:// URL"):
        start(strict, "http://ap.example.org/x")
    assert start(relaxed, "http://ap.example.org/x").status == "ACTIVE"
    with pytest.raises(InvalidInput, match="is not an Action Provider"):
        start(relaxed, "ftp://ap.example.org/x")


def test_cancel_and_release_are_sent_after_the_commit(
    database: Database, fake: FakeProvider, tmp_path: Path
) -> None:
    services = ServiceState(settings=Settings(home=tmp_path), db=database)
    with database.transaction() as session:
        user = create_user(session, UserCreate(username="alice", password="pw-123456789"))
        principal = Principal(id=user.id, username="alice")
        row = ActionRow(
            id="a",
            request_id="r",
            provider="external",
            url=f"{fake.url}/ok",
            creator_id=user.id,
            body={},
            ref="ok-r",
        )
        provider = ExternalProvider()
        cancel = ActionCall(session, principal, services, row)
        assert provider.cancel(cancel) is None
        release = ActionCall(session, principal, services, row)
        provider.release(release)
        never_started = ActionCall(
            session, principal, services, ActionRow(id="b", url=f"{fake.url}/ok", creator_id=user.id)
        )
        provider.cancel(never_started)
    assert fake.posts == []  # nothing goes out before the commit
    assert never_started.after_commit == []

    async def after_commit() -> None:
        for work in [*cancel.after_commit, *release.after_commit]:
            result = work()
            assert result is not None
            await result

    asyncio.run(after_commit())
    assert fake.posts == ["/ok/ok-r/cancel", "/ok/ok-r/release"]
    assert all(token.startswith("Bearer ") and len(token) > 20 for token in fake.tokens)

"""The small built-in providers: hello_world, expression_eval, notify (a real local HTTP server and a
real local SMTP server), and the search placeholders."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from beamlink.config import Settings
from beamlink.errors import InvalidInput
from beamlink.service.auth.principal import Principal
from beamlink.service.db.engine import Database
from beamlink.service.flows.models import ActionRow
from beamlink.service.flows.providers.base import TERMINAL, ActionCall, ActionSnapshot, Progress
from beamlink.service.flows.providers.basic import (
    ExpressionEvalProvider,
    HelloWorldProvider,
    NotifyProvider,
    StrictBody,
    _EmailBody,
    build_email,
    parse_body,
)
from beamlink.service.state import ServiceState
from beamlink.testing.databases import sqlite_url

ALICE = Principal(id="user-1", username="alice")


@dataclass
class Recorder:
    """Stands in for the flow engine's Reporter interface: records what a drive reports."""

    services: ServiceState
    reports: list[Progress] = field(default_factory=list)
    stopped: bool = False

    async def report(self, action_id: str, progress: Progress, *, log: str | None = None) -> None:
        self.reports.append(progress)

    async def principal(self, user_id: str) -> Principal:
        return ALICE

    async def still_active(self, action_id: str) -> bool:
        return not self.stopped and not any(p.status in TERMINAL for p in self.reports)

    async def token_for(self, user_id: str, *, ttl_seconds: int, purpose: str) -> str:
        return "token"


def make_services(tmp_path: Path, **settings: Any) -> ServiceState:
    return ServiceState(settings=Settings(home=tmp_path, **settings), db=Database(sqlite_url(tmp_path)))


@pytest.fixture
def services(tmp_path: Path) -> Iterator[ServiceState]:
    state = make_services(tmp_path)
    yield state
    state.db.dispose()


def action(body: Any, provider: str = "hello_world", dialect: str = "beamlink") -> ActionRow:
    return ActionRow(
        id="action-1",
        request_id="request-1",
        provider=provider,
        dialect=dialect,
        creator_id=ALICE.id,
        run_id="run-1",
        body=body,
        status="ACTIVE",
        poll_interval=1.0,
        log=[],
    )


def call(services: ServiceState, body: Any, provider: str = "hello_world") -> ActionCall:
    return ActionCall(services.db.session(), ALICE, services, action(body, provider))


def drive(provider: Any, services: ServiceState, body: Any, *, stopped: bool = False) -> Recorder:
    recorder = Recorder(services, stopped=stopped)
    asyncio.run(provider.drive(ActionSnapshot.of(action(body, provider.name)), recorder))
    return recorder


# -- bodies ------------------------------------------------------------------------------------------


class _Example(StrictBody):
    count: int = 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"cuont": 2}, "unknown field 'cuont' (known fields: count)"),
        ({"count": "2"}, "field 'count': Input should be a valid integer"),
        ([1], "needs an object as its Parameters, got list"),
    ],
)
def test_a_bad_body_is_refused_naming_the_field(body: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_body(_Example, body, "example")


# -- hello_world -------------------------------------------------------------------------------------


def test_hello_world_answers_at_once_without_sleep_time(services: ServiceState) -> None:
    provider = HelloWorldProvider()
    assert provider.start(call(services, {})).details == {"Hello": "World", "hello": "hello world"}
    progress = provider.start(call(services, {"echo_string": "bonjour"}))
    assert progress.status == "SUCCEEDED"
    assert progress.details == {"Hello": "World", "hello": "bonjour"}


def test_hello_world_with_sleep_time_is_active_then_succeeds(services: ServiceState) -> None:
    provider = HelloWorldProvider()
    body = {"echo_string": "later", "sleep_time": 0.3}
    assert provider.start(call(services, body)).status == "ACTIVE"
    began = time.monotonic()
    recorder = drive(provider, services, body)
    assert time.monotonic() - began >= 0.3
    assert [(p.status, p.details) for p in recorder.reports] == [
        ("SUCCEEDED", {"Hello": "World", "hello": "later"})
    ]


def test_hello_world_stops_sleeping_once_the_action_ended(services: ServiceState) -> None:
    began = time.monotonic()
    recorder = drive(HelloWorldProvider(), services, {"sleep_time": 30}, stopped=True)
    assert time.monotonic() - began < 2
    assert recorder.reports == []


@pytest.mark.parametrize(
    ("body", "field_name"),
    [
        ({"sleep_time": -1}, "sleep_time"),
        ({"sleep_time": "5"}, "sleep_time"),
        ({"sleep_time": True}, "sleep_time"),
        ({"echo_string": 3}, "echo_string"),
        ({"echo": "x"}, "echo"),
    ],
)
def test_hello_world_refuses_bad_bodies(
    services: ServiceState, body: dict[str, Any], field_name: str
) -> None:
    with pytest.raises(InvalidInput, match=f"hello_world: .*'{field_name}'") as caught:
        HelloWorldProvider().start(call(services, body))
    assert caught.value.details["field"] == field_name


# -- expression_eval ---------------------------------------------------------------------------------


def evaluate(services: ServiceState, body: Any) -> Any:
    progress = ExpressionEvalProvider().start(call(services, body, "expression_eval"))
    assert progress.status == "SUCCEEDED"
    return progress.details


def test_one_expression_gives_result_and_its_result_path(services: ServiceState) -> None:
    assert evaluate(services, {"expression": "x * 2 + 1", "arguments": {"x": 20}}) == {"result": 41}
    body = {"expression": "pathsplit(p)[1]", "arguments": {"p": "/data/scan/f.h5"}, "result_path": "$.name"}
    assert evaluate(services, body) == {"result": "f.h5", "name": "f.h5"}
    assert evaluate(services, {"expression": "'run ' + _context.run_id"}) == {"result": "run run-1"}


def test_a_list_of_expressions_gives_results_and_each_result_path(services: ServiceState) -> None:
    body = {
        "expressions": [
            {"expression": "len(items)", "arguments": {"items": [1, 2, 3]}, "result_path": "count"},
            {"expression": "max(a, b)", "arguments": {"a": 3, "b": 9}},
            {"expression": "is_present('a.b')", "arguments": {"a": {"b": None}}, "result_path": "has_b"},
        ]
    }
    assert evaluate(services, body) == {"results": [3, 9, True], "count": 3, "has_b": True}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"expression": "1 +"}, "syntax error"),
        ({"expression": "open('/etc/passwd')"}, "unknown function 'open'"),
        ({"expression": "missing + 1"}, "missing"),
        ({"expression": "1 / 0"}, "ZeroDivisionError"),
        ({"expression": "1", "result_path": "a.b"}, "must be one key name"),
        ({"expression": "1", "arguments": [1]}, "'arguments': Input should be a valid dictionary"),
        ({"expression": "1", "extra": 1}, "unknown field 'extra'"),
        ({"expressions": []}, "'expressions': List should have at least 1 item"),
        ({"expressions": [{"expression": "1", "result_path": "results"}]}, "would hide the list"),
        ({"expressions": [{"expression": "1"}, {"expression": "x"}]}, "'x'"),
        ({}, "'expression' is required"),
    ],
)
def test_bad_expressions_are_refused_with_the_evaluators_reason(
    services: ServiceState, body: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(")):
        ExpressionEvalProvider().start(call(services, body, "expression_eval"))


# -- notify: webhook ---------------------------------------------------------------------------------


@dataclass
class Hooks:
    url: str
    received: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    """A real HTTP server: /ok answers 200, /broken answers 500 with a long page."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            received.append(
                {
                    "path": self.path,
                    "body": json.loads(self.rfile.read(length)),
                    "headers": dict(self.headers),
                }
            )
            status, text = (200, "thanks") if self.path == "/ok" else (500, "x" * 2000)
            self.send_response(status)
            self.send_header("content-length", str(len(text)))
            self.end_headers()
            self.wfile.write(text.encode())

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Hooks(f"http://127.0.0.1:{server.server_address[1]}", received)
    server.shutdown()
    server.server_close()


def test_a_webhook_posts_the_payload_and_succeeds_with_the_status_code(
    services: ServiceState, hooks: Hooks
) -> None:
    provider = NotifyProvider()
    body = {"webhook_url": f"{hooks.url}/ok", "payload": {"done": True}, "headers": {"X-Flow": "demo"}}
    assert provider.start(call(services, body, "notify")).status == "ACTIVE"
    recorder = drive(provider, services, body)
    assert [(p.status, p.details) for p in recorder.reports] == [("SUCCEEDED", {"status_code": 200})]
    (got,) = hooks.received
    assert got["body"] == {"done": True}
    assert got["headers"]["X-Flow"] == "demo"

    drive(provider, services, {"url": f"{hooks.url}/ok"})  # no payload: the action says who it is
    assert hooks.received[1]["body"] == {
        "action_id": "action-1",
        "run_id": "run-1",
        "request_id": "request-1",
    }


def test_a_webhook_answering_an_error_fails_with_the_code_and_the_answer(
    services: ServiceState, hooks: Hooks
) -> None:
    (progress,) = drive(NotifyProvider(), services, {"webhook_url": f"{hooks.url}/broken"}).reports
    assert progress.status == "FAILED"
    assert progress.details["status_code"] == 500
    assert progress.details["response"] == "x" * 500
    assert progress.details["description"].startswith(f"POST {hooks.url}/broken answered 500: xxx")


def test_an_unreachable_webhook_fails_with_the_reason(services: ServiceState, hooks: Hooks) -> None:
    (progress,) = drive(NotifyProvider(), services, {"webhook_url": "http://127.0.0.1:9/nobody"}).reports
    assert progress.status == "FAILED"
    assert progress.details["code"] == "WebhookUnreachable"


def test_plain_http_webhooks_go_only_to_this_host_unless_allowed(tmp_path: Path) -> None:
    body = {"webhook_url": "http://hooks.example.org/x"}
    strict = make_services(tmp_path)
    with pytest.raises(InvalidInput, match="is plain http: use https"):
        NotifyProvider().start(call(strict, body, "notify"))
    for fine in ("https://hooks.example.org/x", "http://localhost:8080/x", "http://127.0.0.1/x"):
        assert NotifyProvider().start(call(strict, {"url": fine}, "notify")).status == "ACTIVE"
    relaxed = make_services(tmp_path, flow_allow_http_providers=True)
    assert NotifyProvider().start(call(relaxed, body, "notify")).status == "ACTIVE"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"webhook_url": "https://a.org", "url": "https://b.org"}, "not both"),
        ({"webhook_url": "ftp://a.org/x"}, "is not an http"),
        ({"webhook_url": "https://a.org", "headers": {"X": 1}}, "'headers.X'"),
        ({"payload": {}}, "give either 'webhook_url'"),
    ],
)
def test_bad_webhook_bodies_are_refused(services: ServiceState, body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        NotifyProvider().start(call(services, body, "notify"))


# -- notify: email -----------------------------------------------------------------------------------

EMAIL = {
    "destination": "ana@example.org, Bo <bo@example.org>",
    "subject": "Run $run finished",
    "body": "Hello $name, run $run is done. $unknown stays.",
    "body_variables": {"name": "Ana", "run": 42},
    "sender": "pi@example.org",
    "send_credentials": [{"credential_type": "smtp"}],
}


def test_email_without_a_mail_server_is_refused_with_the_setting_to_set(services: ServiceState) -> None:
    with pytest.raises(InvalidInput, match="email needs a mail server: set BEAMLINK_SMTP_URL"):
        NotifyProvider().start(call(services, EMAIL, "notify"))


def test_the_email_is_filled_from_body_variables(services: ServiceState) -> None:
    message = build_email(_EmailBody.model_validate(EMAIL), sender="flows@facility.org")
    assert message["Subject"] == "Run 42 finished"
    assert message["From"] == "flows@facility.org"
    assert message["Reply-To"] == "pi@example.org"
    assert message["To"] == "ana@example.org, bo@example.org"
    assert message.get_content().strip() == "Hello Ana, run 42 is done. $unknown stays."
    html = build_email(_EmailBody.model_validate({**EMAIL, "body_mimetype": "text/html"}), sender="f@x.org")
    assert html.get_content_type() == "text/html"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"subject": "Hi\nBcc: everyone@example.org"}, "linefeed"),
        ({"destination": "not an address"}, "is not a list of email addresses"),
        ({"body_mimetype": "text/markdown"}, "'body_mimetype'"),
    ],
)
def test_bad_emails_are_refused(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    services = make_services(tmp_path, smtp_url="smtp://127.0.0.1:9")
    with pytest.raises(InvalidInput, match=message):
        NotifyProvider().start(call(services, {**EMAIL, **change}, "notify"))


@pytest.fixture
def mail_server() -> Iterator[tuple[int, list[bytes]]]:
    """A real SMTP server (the standard library's, still there in Python 3.11)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncore = pytest.importorskip("asyncore")
        smtpd = pytest.importorskip("smtpd")
    received: list[bytes] = []

    class Server(smtpd.SMTPServer):  # type: ignore[misc,name-defined]
        def process_message(
            self, peer: Any, mailfrom: str, rcpttos: list[str], data: bytes, **kw: Any
        ) -> None:
            received.append(data)

    server = Server(("127.0.0.1", 0), None, decode_data=False)
    port = server.socket.getsockname()[1]
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            asyncore.loop(timeout=0.05, count=1)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield port, received
    stop.set()
    thread.join(5)
    server.close()


def test_an_email_goes_through_the_mail_server(tmp_path: Path, mail_server: tuple[int, list[bytes]]) -> None:
    port, received = mail_server
    services = make_services(tmp_path, smtp_url=f"smtp://127.0.0.1:{port}", smtp_from="flows@facility.org")
    provider = NotifyProvider()
    assert provider.start(call(services, EMAIL, "notify")).status == "ACTIVE"
    (progress,) = drive(provider, services, EMAIL).reports
    assert progress.status == "SUCCEEDED", progress.details
    assert progress.details["sent_to"] == ["ana@example.org", "bo@example.org"]
    assert progress.details["subject"] == "Run 42 finished"
    (raw,) = received
    mail = message_from_bytes(raw)
    assert mail["Subject"] == "Run 42 finished"
    assert "Hello Ana, run 42 is done." in mail.get_payload()


def test_an_email_the_server_cannot_take_fails_with_the_reason(tmp_path: Path) -> None:
    services = make_services(tmp_path, smtp_url="smtp://127.0.0.1:9")
    (progress,) = drive(NotifyProvider(), services, EMAIL).reports
    assert progress.status == "FAILED"
    assert progress.details["code"] == "EmailNotSent"
    assert "127.0.0.1" in progress.details["description"]

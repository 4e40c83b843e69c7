"""The small built-in providers: hello_world, expression_eval and notify.

Bodies follow the Globus-hosted providers of the same name (``actions.globus.org/hello_world``,
``/expression_eval``, ``/notification/notify``), so a Globus flow runs unchanged; each body is checked
by a strict model and a bad one is refused at start with :class:`~beamlink.errors.InvalidInput` naming
the field (the run sees ActionUnableToRun).
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
import string
from email.message import EmailMessage
from email.utils import getaddresses, make_msgid
from typing import Any, Literal, TypeVar
from urllib.parse import unquote, urlsplit

import anyio.to_thread
import httpx
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from beamlink.errors import InvalidInput
from beamlink.flowlang.errors import StatesError
from beamlink.flowlang.expressions import check_expression, evaluate_expression
from beamlink.protocol.flows import ProviderDescription
from beamlink.service.flows.providers.base import ActionCall, ActionSnapshot, Progress, Provider, Reporter

__all__ = [
    "ExpressionEvalProvider",
    "HelloWorldProvider",
    "NotifyProvider",
    "StrictBody",
    "build_email",
    "description_of",
    "parse_body",
]

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_WEBHOOK_TIMEOUT = 10.0
_SMTP_TIMEOUT = 30.0
_ANSWER_CHARS = 500


class StrictBody(BaseModel):
    """Base of provider bodies."""

    # Strict: a flow that passes "5" for a number or a misspelt key is told so, not silently coerced.
    model_config = ConfigDict(extra="forbid", strict=True)


def _field_names(model: type[BaseModel]) -> str:
    return ", ".join(info.alias or name for name, info in model.model_fields.items())


def parse_body(model: type[M], body: Any, provider: str) -> M:
    """``body`` checked against ``model``; InvalidInput naming the first bad field otherwise."""
    if not isinstance(body, dict):
        raise InvalidInput(
            f"the {provider} action needs an object as its Parameters, got {type(body).__name__}",
            details={"field": "body"},
        )
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        # A misspelt or other-dialect key explains the missing one it stands for, so it is named first.
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        error = errors[0]
        field = ".".join(str(part) for part in error["loc"]) or "body"
        if error["type"] == "extra_forbidden":
            message = f"{provider}: unknown field {field!r} (known fields: {_field_names(model)})"
        elif error["type"] == "missing":
            message = f"{provider}: field {field!r} is required"
        else:
            message = f"{provider}: field {field!r}: {error['msg']}"
        raise InvalidInput(message, details={"field": field}) from None


def description_of(
    title: str, model: Any, *, synchronous: bool, subtitle: str | None = None
) -> ProviderDescription:
    return ProviderDescription(
        title=title,
        subtitle=subtitle,
        synchronous=synchronous,
        input_schema=TypeAdapter(model).json_schema(),
    )


# -- hello_world -------------------------------------------------------------------------------------


class _HelloBody(StrictBody):
    echo_string: str = "hello world"
    sleep_time: float | None = Field(default=None, ge=0, le=86_400, allow_inf_nan=False)


def _hello(echo: str) -> dict[str, Any]:
    return {"Hello": "World", "hello": echo}


class HelloWorldProvider(Provider):
    """Globus's test provider: answers at once, or after ``sleep_time`` seconds.

    A restarted service sleeps the whole ``sleep_time`` again (the action keeps no start time of its
    own): harmless for a provider whose only job is to wait.
    """

    name = "hello_world"
    description = description_of(
        "Hello World", _HelloBody, synchronous=False, subtitle="Echoes a string, optionally after a sleep"
    )
    background = True

    def start(self, call: ActionCall) -> Progress:
        body = parse_body(_HelloBody, call.action.body, self.name)
        if not body.sleep_time:
            return Progress("SUCCEEDED", _hello(body.echo_string), "Succeeded")
        return Progress("ACTIVE", None, f"Sleeping {body.sleep_time:g} s")

    async def drive(self, action: ActionSnapshot, reporter: Reporter) -> None:
        body = parse_body(_HelloBody, action.body, self.name)
        remaining = body.sleep_time or 0.0
        while remaining > 0:
            # Short naps, so a canceled or timed-out action stops within about a second.
            nap = min(1.0, remaining)
            await asyncio.sleep(nap)
            remaining -= nap
            if not await reporter.still_active(action.id):
                return
        await reporter.report(action.id, Progress("SUCCEEDED", _hello(body.echo_string), "Succeeded"))


# -- expression_eval ---------------------------------------------------------------------------------


class _Expression(StrictBody):
    expression: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    result_path: str | None = None


class _Expressions(StrictBody):
    expressions: list[_Expression] = Field(min_length=1, max_length=1000)


def _result_key(result_path: str) -> str:
    """Globus writes ``result_path`` as a key or a ``$.key`` path; the details use the bare key."""
    key = result_path[2:] if result_path.startswith("$.") else result_path
    if not key or "." in key or "[" in key:
        raise InvalidInput(
            f"expression_eval: result_path {result_path!r} must be one key name, e.g. 'total' or '$.total'",
            details={"field": "result_path"},
        )
    return key


def _evaluate(item: _Expression, context: dict[str, Any], field: str) -> Any:
    problem = check_expression(item.expression)
    if problem is not None:
        raise InvalidInput(
            f"expression_eval: expression {item.expression!r}: {problem}", details={"field": field}
        )
    try:
        return evaluate_expression(item.expression, item.arguments, context)
    except StatesError as exc:
        raise InvalidInput(
            f"expression_eval: {exc.cause}", details={"field": field, "error": exc.error}
        ) from None


class ExpressionEvalProvider(Provider):
    """Evaluates ``.=``-style expressions over ``arguments`` (the same evaluator and functions as flows).

    One expression gives ``{"result": value}``; ``expressions`` gives ``{"results": [...]}``. A
    ``result_path`` also puts the value under that key of the details.
    """

    name = "expression_eval"
    description = description_of(
        "Expression evaluation", _Expression | _Expressions, synchronous=True, subtitle="Safe expressions"
    )

    def start(self, call: ActionCall) -> Progress:
        body = call.action.body
        context = {
            "action_id": call.action.id,
            "run_id": call.action.run_id,
            "user_id": call.principal.id,
            "username": call.principal.username,
        }
        if isinstance(body, dict) and "expressions" in body:
            many = parse_body(_Expressions, body, self.name)
            results = [
                _evaluate(item, context, f"expressions.{i}.expression")
                for i, item in enumerate(many.expressions)
            ]
            details: dict[str, Any] = {"results": results}
            for item, value in zip(many.expressions, results, strict=True):
                if item.result_path is not None:
                    key = _result_key(item.result_path)
                    if key == "results":
                        raise InvalidInput(
                            "expression_eval: result_path 'results' would hide the list of results; "
                            "choose another name",
                            details={"field": "result_path"},
                        )
                    details[key] = value
            return Progress("SUCCEEDED", details, "Succeeded")
        one = parse_body(_Expression, body, self.name)
        value = _evaluate(one, context, "expression")
        details = {"result": value}
        if one.result_path is not None:
            details[_result_key(one.result_path)] = value
        return Progress("SUCCEEDED", details, "Succeeded")


# -- notify ------------------------------------------------------------------------------------------


class _WebhookBody(StrictBody):
    webhook_url: str | None = None
    url: str | None = None
    payload: Any = None
    headers: dict[str, str] = Field(default_factory=dict)


class _EmailBody(StrictBody):
    destination: str | list[str]
    subject: str = "Notification from a beamlink flow"
    body: str
    body_mimetype: Literal["text/plain", "text/html"] = "text/plain"
    body_variables: dict[str, Any] = Field(default_factory=dict)
    sender: str | None = None
    # Globus fields accepted so Globus flows run unchanged; the service's own mail server sends
    # (BEAMLINK_SMTP_URL), never one named in a flow, so send_credentials is not used.
    notification_method: Literal["any", "email"] = "any"
    notification_priority: Literal["low", "high"] = "high"
    send_credentials: list[Any] | None = None


def _webhook_url(body: _WebhookBody, *, allow_http: bool) -> str:
    if body.webhook_url is not None and body.url is not None:
        raise InvalidInput(
            "notify: give the webhook address once, as 'webhook_url' or 'url', not both",
            details={"field": "url"},
        )
    url = body.webhook_url or body.url or ""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            f"notify: webhook_url {url!r} is not an http(s) URL, e.g. https://hooks.example.org/flow-done",
            details={"field": "webhook_url"},
        )
    if scheme == "http" and parts.hostname.lower() not in _LOCAL_HOSTS and not allow_http:
        raise InvalidInput(
            f"notify: webhook_url {url!r} is plain http: use https (plain http is allowed only to "
            "localhost, or everywhere when the service sets BEAMLINK_FLOW_ALLOW_HTTP_PROVIDERS=true)",
            details={"field": "webhook_url"},
        )
    return url


def _recipients(destination: str | list[str]) -> list[str]:
    raw = [destination] if isinstance(destination, str) else destination
    addresses = [address for _name, address in getaddresses(raw) if address]
    bad = [a for a in addresses if "@" not in a or any(c.isspace() for c in a)]
    if not addresses or bad:
        shown = bad[0] if bad else destination
        raise InvalidInput(
            f"notify: destination {shown!r} is not a list of email addresses, e.g. 'a@example.org, "
            "b@example.org'",
            details={"field": "destination"},
        )
    return addresses


def build_email(body: _EmailBody, *, sender: str) -> EmailMessage:
    """The message to send: ``$var`` placeholders of subject and body filled from ``body_variables``
    (unknown ones are left as written, like Globus's ``safe_substitute``)."""
    variables = {key: str(value) for key, value in body.body_variables.items()}
    message = EmailMessage()
    try:
        message["From"] = sender
        # The flow's sender is only a reply address: the mail server sends as the service, so a flow
        # cannot make mail look like it came from someone else.
        if body.sender:
            message["Reply-To"] = body.sender
        message["To"] = ", ".join(_recipients(body.destination))
        message["Subject"] = string.Template(body.subject).safe_substitute(variables)
    except ValueError as exc:  # a header with a line break: an injection attempt or a typo
        raise InvalidInput(f"notify: {exc}", details={"field": "subject"}) from None
    message["Message-ID"] = make_msgid(domain="beamlink")
    text = string.Template(body.body).safe_substitute(variables)
    message.set_content(text, subtype="html" if body.body_mimetype == "text/html" else "plain")
    return message


def _smtp_target(smtp_url: str | None) -> tuple[str, str, int, str | None, str | None]:
    if not smtp_url:
        raise InvalidInput(
            "email needs a mail server: set BEAMLINK_SMTP_URL (e.g. "
            "smtp://user:password@mail.example.org:587, or smtps:// for TLS) in the service's settings, "
            "or notify by webhook_url instead",
            details={"field": "destination"},
        )
    parts = urlsplit(smtp_url)
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtps") or not parts.hostname:
        raise InvalidInput(
            "the service's BEAMLINK_SMTP_URL must look like smtp://user:password@host:port or "
            "smtps://host:465; ask the service's administrator to fix it",
            details={"field": "smtp_url"},
        )
    port = parts.port or (465 if scheme == "smtps" else 25)
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return scheme, parts.hostname, port, user, password


def _send_email(smtp_url: str, message: EmailMessage) -> None:
    """Send through the configured server (blocking: run in a thread)."""
    scheme, host, port, user, password = _smtp_target(smtp_url)
    context = ssl.create_default_context()
    server: smtplib.SMTP
    if scheme == "smtps":
        server = smtplib.SMTP_SSL(host, port, timeout=_SMTP_TIMEOUT, context=context)
    else:
        server = smtplib.SMTP(host, port, timeout=_SMTP_TIMEOUT)
    with server:
        server.ehlo()
        if scheme == "smtp" and server.has_extn("starttls"):
            server.starttls(context=context)
            server.ehlo()
        if user is not None:
            server.login(user, password or "")
        server.send_message(message)


class NotifyProvider(Provider):
    """Sends a webhook (``webhook_url``/``url``, ``payload``, ``headers``: a JSON POST) or an email
    (Globus Notification body: ``destination``, ``subject``, ``body``, ``body_variables``...).

    Delivery is at least once: the message goes out in ``drive`` and its outcome is recorded after, so
    a service that crashes between the two sends it again when it drives the action anew. A failed send
    fails the action with the reason (add a ``Retry`` to the state to try again).
    """

    name = "notify"
    description = description_of(
        "Notify", _WebhookBody | _EmailBody, synchronous=False, subtitle="Webhook or email"
    )
    background = True

    def start(self, call: ActionCall) -> Progress:
        settings = call.services.settings
        kind, body = self._parse(call.action.body)
        if isinstance(body, _WebhookBody):
            url = _webhook_url(body, allow_http=settings.flow_allow_http_providers)
            return Progress("ACTIVE", None, f"Calling {urlsplit(url).hostname}")
        _smtp_target(settings.smtp_url)
        build_email(body, sender=settings.smtp_from)
        return Progress("ACTIVE", None, f"Sending {kind}")

    def _parse(self, body: Any) -> tuple[str, _WebhookBody | _EmailBody]:
        if isinstance(body, dict) and ("webhook_url" in body or "url" in body):
            return "webhook", parse_body(_WebhookBody, body, self.name)
        if isinstance(body, dict) and "destination" in body:
            return "email", parse_body(_EmailBody, body, self.name)
        raise InvalidInput(
            "notify: give either 'webhook_url' (a JSON POST to that address) or 'destination', "
            "'subject' and 'body' (an email)",
            details={"field": "webhook_url"},
        )

    async def drive(self, action: ActionSnapshot, reporter: Reporter) -> None:
        _kind, body = self._parse(action.body)
        if isinstance(body, _WebhookBody):
            progress = await self._webhook(action, body)
        else:
            progress = await self._email(body, reporter)
        await reporter.report(action.id, progress)

    async def _webhook(self, action: ActionSnapshot, body: _WebhookBody) -> Progress:
        url = _webhook_url(body, allow_http=True)  # start checked the scheme against the settings
        payload = body.payload
        if payload is None:
            payload = {"action_id": action.id, "run_id": action.run_id, "request_id": action.request_id}
        try:
            async with httpx.AsyncClient(timeout=_WEBHOOK_TIMEOUT, follow_redirects=False) as client:
                response = await client.post(url, json=payload, headers=body.headers)
        except httpx.HTTPError as exc:
            return Progress(
                "FAILED",
                {
                    "code": "WebhookUnreachable",
                    "description": f"POST {url} failed: {type(exc).__name__}: {exc}",
                },
                "Failed",
            )
        if not response.is_success:
            answer = response.text[:_ANSWER_CHARS]
            return Progress(
                "FAILED",
                {
                    "code": "WebhookFailed",
                    "status_code": response.status_code,
                    "response": answer,
                    "description": f"POST {url} answered {response.status_code}: {answer}",
                },
                "Failed",
            )
        return Progress("SUCCEEDED", {"status_code": response.status_code}, "Succeeded")

    async def _email(self, body: _EmailBody, reporter: Reporter) -> Progress:
        settings = reporter.services.settings
        try:
            smtp_url = settings.smtp_url or ""
            _smtp_target(smtp_url)  # the setting may have been removed since start
            message = build_email(body, sender=settings.smtp_from)
        except InvalidInput as exc:
            return Progress("FAILED", {"code": exc.code, "description": exc.message}, "Failed")
        try:
            await anyio.to_thread.run_sync(_send_email, smtp_url, message)
        except (smtplib.SMTPException, OSError) as exc:
            host = urlsplit(smtp_url).hostname
            return Progress(
                "FAILED",
                {"code": "EmailNotSent", "description": f"the mail server {host} refused or failed: {exc}"},
                "Failed",
            )
        recipients = [address for _name, address in getaddresses([str(message["To"])])]
        log.debug("notify: sent %s to %s", message["Message-ID"], recipients)
        return Progress(
            "SUCCEEDED",
            {
                "sent_to": recipients,
                "subject": str(message["Subject"]),
                "message_id": str(message["Message-ID"]),
            },
            "Succeeded",
        )

"""The client of any HTTP(S) Action Provider API: how a flow calls a provider we did not build.

The Action Provider API (Globus): ``POST {url}/run`` with ``{request_id, body}`` answers an
ActionStatus (202 started, 200 the same ``request_id`` seen before); ``GET {url}/{action_id}/status``
answers the current one; ``POST {url}/{action_id}/cancel`` and ``/release`` manage it.

``drive`` calls ``/run`` as the run's owner (a short-lived bearer token of theirs), records the remote
``action_id`` as the action's ``ref``, then polls with back-off until the remote action ends. A drive
started again after a restart finds ``ref`` set and only polls; one that restarts before the ``ref``
was recorded calls ``/run`` again with the same ``request_id``, which the API makes harmless.

Failures, in the run's words: the provider cannot be reached or answers 5xx on ``/run`` (tried 4
times), answers 4xx, or answers something that is not an ActionStatus → the action FAILED with the
reason; while polling, transient failures are retried and only 10 in a row fail the action.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from pydantic import ValidationError

from beamlink.errors import BeamlinkError, InvalidInput
from beamlink.protocol.flows import ActionStatus, ProviderDescription
from beamlink.service.auth.models import User
from beamlink.service.auth.tokens import issue_token
from beamlink.service.flows.providers.base import (
    TERMINAL,
    ActionCall,
    ActionSnapshot,
    Progress,
    Provider,
    Reporter,
)

__all__ = ["ExternalProvider", "check_provider_url"]

log = logging.getLogger(__name__)

_ANSWER_CHARS = 500
_TOKEN_MARGIN = 300  # seconds a token outlives the action's deadline
_TOKEN_WITHOUT_DEADLINE = 86_400
_MANAGE_TOKEN_TTL = 300


def check_provider_url(url: str | None, *, allow_http: bool) -> str:
    """The provider's base URL without a trailing slash; InvalidInput if it is not one we may call."""
    parts = urlsplit(url or "")
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme.lower() not in schemes or not parts.hostname:
        hint = (
            "an https:// URL"
            if not allow_http
            else "an http(s):// URL (plain http is allowed because BEAMLINK_FLOW_ALLOW_HTTP_PROVIDERS is set)"
        )
        raise InvalidInput(
            f"the ActionUrl {url!r} is not an Action Provider the service may call: use {hint}",
            details={"field": "ActionUrl"},
        )
    assert url is not None
    return url.rstrip("/")


def _answer(response: httpx.Response) -> str:
    """What a provider said, for a message: its error message when it sent one, else its text."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:_ANSWER_CHARS]
    if isinstance(data, dict):
        for key in ("message", "description", "detail", "error"):
            if isinstance(data.get(key), str):
                return str(data[key])[:_ANSWER_CHARS]
    return response.text[:_ANSWER_CHARS]


def _failed(code: str, description: str, **extra: Any) -> Progress:
    return Progress("FAILED", {"code": code, "description": description, **extra}, "Failed")


class _Garbage(Exception):
    """A 2xx answer that is not an ActionStatus."""


def _status_of(url: str, response: httpx.Response) -> ActionStatus:
    try:
        return ActionStatus.model_validate(response.json())
    except (ValueError, ValidationError) as exc:
        problem = (
            f"{exc.error_count()} problem(s), first: {exc.errors()[0]['loc']} {exc.errors()[0]['msg']}"
            if isinstance(exc, ValidationError)
            else "not JSON"
        )
        raise _Garbage(
            f"the provider at {url} answered something that is not an Action Provider API ActionStatus "
            f"({problem}): {response.text[:200]!r}"
        ) from None


def _progress(status: ActionStatus, *, ref: str | None = None) -> Progress:
    return Progress(status.status, status.details, status.display_status, ref=ref)


def _aware(moment: Any) -> datetime | None:
    if not isinstance(moment, datetime):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class ExternalProvider(Provider):
    """Calls a remote Action Provider (any ``ActionUrl`` that is not a built-in)."""

    name = "external"
    description = ProviderDescription(
        title="External Action Provider", subtitle="Any HTTP(S) Action Provider API", synchronous=False
    )
    background = True

    def __init__(
        self,
        *,
        first_delay: float = 1.0,
        max_poll_interval: float = 60.0,
        request_timeout: float = 10.0,
        run_retries: int = 3,
        poll_failures: int = 10,
    ) -> None:
        self.first_delay = first_delay
        self.max_poll_interval = max_poll_interval
        self.request_timeout = request_timeout
        self.run_retries = run_retries
        self.poll_failures = poll_failures

    # -- in the transaction ----------------------------------------------------------------------

    def start(self, call: ActionCall) -> Progress:
        check_provider_url(call.action.url, allow_http=call.services.settings.flow_allow_http_providers)
        return Progress("ACTIVE", None, "Queued")

    def cancel(self, call: ActionCall) -> Progress | None:
        """Ask the remote provider to cancel once this transaction commits (best effort)."""
        self._after_commit(call, "cancel")
        return None

    def release(self, call: ActionCall) -> None:
        """Tell the remote provider it may forget the action once this transaction commits."""
        self._after_commit(call, "release")

    def _after_commit(self, call: ActionCall, verb: str) -> None:
        action = call.action
        if not action.url or not action.ref:
            return  # never started remotely: nothing there to tell
        user = call.session.get(User, action.creator_id)
        if user is None:
            return
        _row, token = issue_token(
            call.session, user, name=f"flow action {action.id} {verb}"[:100], ttl_seconds=_MANAGE_TOKEN_TTL
        )
        target = f"{action.url.rstrip('/')}/{quote(action.ref, safe='')}/{verb}"
        call.after_commit.append(self._poster(target, token))

    def _poster(self, target: str, token: str) -> Callable[[], Awaitable[None]]:
        async def post() -> None:
            try:
                async with httpx.AsyncClient(timeout=self.request_timeout) as client:
                    response = await client.post(target, headers={"Authorization": f"Bearer {token}"})
                if not response.is_success:
                    log.info("POST %s answered %s: %s", target, response.status_code, _answer(response))
            except httpx.HTTPError as exc:
                log.info("POST %s failed: %s", target, exc)

        return post

    # -- in the background -----------------------------------------------------------------------

    async def drive(self, action: ActionSnapshot, reporter: Reporter) -> None:
        url = check_provider_url(action.url, allow_http=True)  # start checked the scheme
        if not await reporter.still_active(action.id):
            return
        try:
            token = await self._token(action, reporter)
        except BeamlinkError as exc:  # the owner is gone, or their account was disabled
            await reporter.report(action.id, _failed(exc.code, exc.message))
            return
        async with httpx.AsyncClient(timeout=self.request_timeout, follow_redirects=False) as client:
            remote = _Remote(client, url, token)
            if action.ref is None:
                status = await self._run(action, reporter, remote)
                if status is None:
                    return
                await reporter.report(action.id, _progress(status, ref=status.action_id))
                if status.status in TERMINAL:
                    return
                if not await reporter.still_active(action.id):
                    # Canceled while /run was on its way: the cancel found no ref to send to.
                    await remote.post_quietly(status.action_id, "cancel")
                    return
                remote_id, last = status.action_id, status
            else:
                remote_id, last = action.ref, None
            await self._poll(action, reporter, remote, remote_id, last)

    async def _token(self, action: ActionSnapshot, reporter: Reporter) -> str:
        deadline = _aware(action.timeout_at)
        if deadline is None:
            ttl = _TOKEN_WITHOUT_DEADLINE
        else:
            ttl = int((deadline - datetime.now(UTC)).total_seconds()) + _TOKEN_MARGIN
        return await reporter.token_for(
            action.creator_id, ttl_seconds=max(ttl, _TOKEN_MARGIN), purpose=f"flow action {action.id}"
        )

    async def _run(self, action: ActionSnapshot, reporter: Reporter, remote: _Remote) -> ActionStatus | None:
        """Start the remote action; its first status, or None once the action was reported FAILED."""
        request: dict[str, Any] = {"request_id": action.request_id, "body": action.body}
        deadline = _aware(action.timeout_at)
        if deadline is not None:
            request["deadline"] = deadline.isoformat()
        delay = self.first_delay
        attempts = self.run_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                response = await remote.client.post(f"{remote.url}/run", json=request, headers=remote.headers)
            except httpx.HTTPError as exc:
                problem = f"could not be reached ({type(exc).__name__}: {exc})"
            else:
                if response.is_success:
                    try:
                        return _status_of(remote.url, response)
                    except _Garbage as exc:
                        await reporter.report(action.id, _failed("InvalidProviderResponse", str(exc)))
                        return None
                answer = _answer(response)
                if response.status_code < 500 and response.status_code != 429:
                    await reporter.report(
                        action.id,
                        _failed(
                            "ActionUnableToRun",
                            f"the provider at {remote.url} refused the action: it answered "
                            f"{response.status_code} {response.reason_phrase}: {answer}",
                            status_code=response.status_code,
                        ),
                    )
                    return None
                problem = f"answered {response.status_code} {response.reason_phrase}: {answer}"
            if attempt == attempts:
                await reporter.report(
                    action.id,
                    _failed(
                        "ActionUnableToRun",
                        f"the provider at {remote.url} {problem} (tried {attempts} times; add a Retry to "
                        "the state to keep trying)",
                    ),
                )
                return None
            log.info("action %s: %s/run %s; trying again in %g s", action.id, remote.url, problem, delay)
            await asyncio.sleep(delay)
            delay *= 2
            if not await reporter.still_active(action.id):
                return None
        return None  # pragma: no cover - the loop always returns

    async def _poll(
        self,
        action: ActionSnapshot,
        reporter: Reporter,
        remote: _Remote,
        remote_id: str,
        last: ActionStatus | None,
    ) -> None:
        interval = action.poll_interval if action.poll_interval > 0 else 0.5
        failures = 0
        renewed = False
        problem = ""
        while True:
            await asyncio.sleep(self._pause(interval, action))
            interval = min(interval * 2, self.max_poll_interval)
            if not await reporter.still_active(action.id):
                return
            try:
                response = await remote.client.get(
                    f"{remote.url}/{quote(remote_id, safe='')}/status", headers=remote.headers
                )
            except httpx.HTTPError as exc:
                response, problem = None, f"could not be reached ({type(exc).__name__}: {exc})"
            if response is not None and response.status_code == 401 and not renewed:
                # The token may have lapsed (a long action without a deadline): one fresh try.
                remote.token = await self._token(action, reporter)
                renewed = True
                continue
            if response is not None and response.status_code == 404:
                await reporter.report(
                    action.id,
                    _failed(
                        "ActionNotFound",
                        f"the provider at {remote.url} no longer knows action {remote_id} (404): "
                        f"{_answer(response)}",
                    ),
                )
                return
            if response is not None and response.is_success:
                try:
                    status = _status_of(remote.url, response)
                except _Garbage as exc:
                    await reporter.report(action.id, _failed("InvalidProviderResponse", str(exc)))
                    return
                failures, renewed = 0, False
                if last is None or _changed(last, status):
                    await reporter.report(action.id, _progress(status))
                    last = status
                if status.status in TERMINAL:
                    return
                continue
            if response is not None:
                problem = f"answered {response.status_code} {response.reason_phrase}: {_answer(response)}"
            failures += 1
            log.info("action %s: status of %s %s (%d in a row)", action.id, remote_id, problem, failures)
            if failures >= self.poll_failures:
                await reporter.report(
                    action.id,
                    _failed(
                        "ProviderUnreachable",
                        f"the provider at {remote.url} {problem}, {failures} times in a row while "
                        f"following action {remote_id}",
                    ),
                )
                return

    def _pause(self, interval: float, action: ActionSnapshot) -> float:
        """How long to wait before the next poll: the interval, but never past the action's deadline
        (once it passed, about a second, until the engine ends the action)."""
        deadline = _aware(action.timeout_at)
        if deadline is None:
            return interval
        left = (deadline - datetime.now(UTC)).total_seconds()
        if left <= 0:
            return min(interval, 1.0)
        return min(interval, left)


def _changed(before: ActionStatus, now: ActionStatus) -> bool:
    return (before.status, before.details, before.display_status) != (
        now.status,
        now.details,
        now.display_status,
    )


class _Remote:
    """One remote provider as one action's drive talks to it."""

    def __init__(self, client: httpx.AsyncClient, url: str, token: str) -> None:
        self.client = client
        self.url = url
        self.token = token

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def post_quietly(self, remote_id: str, verb: str) -> None:
        target = f"{self.url}/{quote(remote_id, safe='')}/{verb}"
        try:
            response = await self.client.post(target, headers=self.headers)
            if not response.is_success:
                log.info("POST %s answered %s: %s", target, response.status_code, _answer(response))
        except httpx.HTTPError as exc:
            log.info("POST %s failed: %s", target, exc)

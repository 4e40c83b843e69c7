"""File operations on a collection as actions: ls, mkdir and wait_for_files.

``start`` checks the body and that the run's owner may use the collection at those paths (reader to
look, writer to make a directory), in the run's transaction; ``drive`` then asks the collection's
agent over its WebSocket, as the ``/v1/collections`` routes do. While the agent is away the action is
INACTIVE (``CollectionOffline``, so the run shows why it waits) and asked again with back-off until it
answers; an error the agent answers (no such path, not allowed) fails the action with its code.

Bodies: ours name the collection (``collection``: id, or the name of one of the owner's own); the
Globus Transfer action providers' bodies (``transfer.actions.globus.org/ls`` and the legacy ones) name
it ``endpoint_id`` and write paths from the collection's root (``/~/`` is the root too).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import anyio.to_thread
from pydantic import Field, TypeAdapter
from sqlalchemy.orm import Session

from beamlink.errors import (
    AlreadyExists,
    BeamlinkError,
    CollectionOffline,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
)
from beamlink.protocol.flows import ProviderDescription
from beamlink.service.flows.providers.base import ActionCall, ActionSnapshot, Progress, Provider, Reporter
from beamlink.service.flows.providers.basic import StrictBody, parse_body
from beamlink.service.transfer.collections import collection_for_paths, normalize_path

__all__ = [
    "CollectionRequest",
    "LsProvider",
    "MkdirProvider",
    "WaitForFilesProvider",
    "parse_ls",
    "parse_mkdir",
    "parse_wait",
]

log = logging.getLogger(__name__)

_OP_TIMEOUT = 30.0
_PAGE = 1000
_GLOBUS_DIALECTS = ("globus", "globus-legacy")


# -- bodies ------------------------------------------------------------------------------------------


class _LsBody(StrictBody):
    collection: str = Field(min_length=1)
    path: str = ""
    show_hidden: bool = True
    path_only: bool = False
    limit: int = Field(default=1000, ge=1, le=100_000)


class _GlobusLsBody(StrictBody):
    endpoint_id: str = Field(min_length=1)
    path: str = "/~/"
    show_hidden: bool = True
    path_only: bool = False


class _MkdirBody(StrictBody):
    collection: str = Field(min_length=1)
    path: str = Field(min_length=1)
    parents: bool = False
    exist_ok: bool = False


class _GlobusMkdirBody(StrictBody):
    endpoint_id: str = Field(min_length=1)
    path: str = Field(min_length=1)


class _WaitBody(StrictBody):
    collection: str = Field(min_length=1)
    paths: list[str] | None = Field(default=None, min_length=1, max_length=10_000)
    path: str | None = None
    poll_seconds: float = Field(default=1.0, ge=0.1, le=3600, allow_inf_nan=False)


def _root_relative(path: str, dialect: str) -> str:
    """The collection path a body names; Globus bodies may start from ``/~/``, the collection root."""
    if dialect in _GLOBUS_DIALECTS:
        for home in ("/~/", "~/"):
            if path.startswith(home):
                return path[len(home) :]
        if path in ("/~", "~"):
            return ""
    return path


@dataclass(frozen=True)
class CollectionRequest:
    """A body, whatever its dialect: which collection, which paths (as written and normalized)."""

    collection: str
    written: list[str]
    paths: list[str]
    show_hidden: bool = True
    path_only: bool = False
    limit: int = 1000
    parents: bool = False
    exist_ok: bool = False
    poll_seconds: float = 1.0


def _request(collection: str, written: list[str], dialect: str, **options: Any) -> CollectionRequest:
    paths = [normalize_path(_root_relative(p, dialect)) for p in written]
    return CollectionRequest(collection, written, paths, **options)


def parse_ls(body: Any, dialect: str) -> CollectionRequest:
    """An ls body of either dialect; InvalidInput naming the field if it is not one."""
    if dialect in _GLOBUS_DIALECTS:
        g = parse_body(_GlobusLsBody, body, "ls")
        return _request(g.endpoint_id, [g.path], dialect, show_hidden=g.show_hidden, path_only=g.path_only)
    b = parse_body(_LsBody, body, "ls")
    return _request(
        b.collection, [b.path], dialect, show_hidden=b.show_hidden, path_only=b.path_only, limit=b.limit
    )


def parse_mkdir(body: Any, dialect: str) -> CollectionRequest:
    """A mkdir body of either dialect; InvalidInput naming the field if it is not one."""
    if dialect in _GLOBUS_DIALECTS:
        g = parse_body(_GlobusMkdirBody, body, "mkdir")
        return _request(g.endpoint_id, [g.path], dialect)
    b = parse_body(_MkdirBody, body, "mkdir")
    return _request(b.collection, [b.path], dialect, parents=b.parents, exist_ok=b.exist_ok)


def parse_wait(body: Any, dialect: str) -> CollectionRequest:
    """A wait_for_files body (ours only: Globus has no such provider)."""
    b = parse_body(_WaitBody, body, "wait_for_files")
    if (b.paths is None) == (b.path is None):
        raise InvalidInput(
            "wait_for_files: give 'paths' (a list) or 'path' (one), exactly one of them",
            details={"field": "paths"},
        )
    written = b.paths if b.paths is not None else [b.path or ""]
    return _request(b.collection, written, dialect, poll_seconds=b.poll_seconds)


# -- shaping results as Globus does ------------------------------------------------------------------


def _globus_time(mtime: float) -> str:
    return datetime.fromtimestamp(mtime, UTC).strftime("%Y-%m-%d %H:%M:%S+00:00")


def _entry(raw: dict[str, Any], *, path_only: bool = False) -> dict[str, Any]:
    folder = raw.get("type") == "dir"
    if path_only:
        return {"name": raw["name"], "is_folder": folder}
    return {
        "DATA_TYPE": "file",
        "name": raw["name"],
        "type": raw["type"],
        "size": raw["size"],
        "last_modified": _globus_time(float(raw["mtime"])),
        "permissions": f"{int(raw['mode']):04o}",
        "is_folder": folder,
    }


def _failure(exc: BeamlinkError) -> Progress:
    return Progress("FAILED", {**exc.details, "code": exc.code, "description": exc.message}, "Failed")


# -- talking to the agent ----------------------------------------------------------------------------


class _Stopped(Exception):
    """The action ended (canceled, timed out) while waiting on the agent: stop quietly."""


class _Agent:
    """Asks one collection's agent on behalf of one action, riding out the agent's absences.

    While the agent is away (not connected, or no answer in time) the action is reported INACTIVE once
    and asked again after 1 s, 2 s, 4 s... up to ``max_delay``; when it answers again the action is
    reported ACTIVE with ``busy`` as its display status.
    """

    def __init__(
        self,
        reporter: Reporter,
        action: ActionSnapshot,
        collection_id: str,
        name: str,
        busy: str,
        *,
        first_delay: float,
        max_delay: float,
    ) -> None:
        self.reporter = reporter
        self.action = action
        self.collection_id = collection_id
        self.name = name
        self.busy = busy
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.inactive = False
        #: True once a request may have reached the agent without its answer reaching us.
        self.maybe_done = False

    async def ask(self, op: str, args: dict[str, Any]) -> Any:
        delay = self.first_delay
        while True:
            try:
                result = await self.reporter.services.collections.request(
                    self.collection_id, self.name, op, args, timeout=_OP_TIMEOUT
                )
            except ServiceUnavailable as exc:
                if not isinstance(exc, CollectionOffline):
                    self.maybe_done = True  # sent, but no answer in time
                await self._away(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_delay)
                if not await self.reporter.still_active(self.action.id):
                    raise _Stopped from None
                continue
            if self.inactive:
                self.inactive = False
                await self.reporter.report(self.action.id, Progress("ACTIVE", None, self.busy))
            return result

    async def _away(self, exc: ServiceUnavailable) -> None:
        if self.inactive:
            return
        self.inactive = True
        offline = isinstance(exc, CollectionOffline)
        code = "CollectionOffline" if offline else "CollectionNotAnswering"
        shown = f"Collection {self.name} is offline" if offline else f"Waiting on collection {self.name}"
        await self.reporter.report(
            self.action.id,
            Progress(
                "INACTIVE",
                {"code": code, "description": exc.message, "collection_id": self.collection_id},
                shown[:64],
            ),
            log=exc.message,
        )


class _CollectionProvider(Provider):
    """What the three share: parse, check access, find the collection again in ``drive``."""

    role: ClassVar[str] = "reader"
    background = True

    def __init__(self, *, first_delay: float = 1.0, max_delay: float = 30.0) -> None:
        self.first_delay = first_delay
        self.max_delay = max_delay

    def parse(self, body: Any, dialect: str) -> CollectionRequest:
        raise NotImplementedError

    def busy(self, request: CollectionRequest) -> str:
        raise NotImplementedError

    def start(self, call: ActionCall) -> Progress:
        request = self.parse(call.action.body, call.action.dialect)
        collection_for_paths(call.session, call.principal, request.collection, self.role, request.paths)
        return Progress("ACTIVE", None, self.busy(request))

    async def drive(self, action: ActionSnapshot, reporter: Reporter) -> None:
        request = self.parse(action.body, action.dialect)
        try:
            # Found again here rather than remembered from start: after a restart, or once the owner
            # lost access, the answer must be today's.
            collection_id, name = await self._collection(action, reporter, request)
            agent = _Agent(
                reporter,
                action,
                collection_id,
                name,
                self.busy(request),
                first_delay=self.first_delay,
                max_delay=self.max_delay,
            )
            progress = await self.work(action, reporter, request, agent)
        except _Stopped:
            return
        except BeamlinkError as exc:
            progress = _failure(exc)
        if progress is not None:
            await reporter.report(action.id, progress)

    async def _collection(
        self, action: ActionSnapshot, reporter: Reporter, request: CollectionRequest
    ) -> tuple[str, str]:
        principal = await reporter.principal(action.creator_id)

        def find() -> tuple[str, str]:
            session: Session
            with reporter.services.db.transaction() as session:
                found = collection_for_paths(session, principal, request.collection, self.role, request.paths)
                return found.id, found.name

        return await anyio.to_thread.run_sync(find)

    async def work(
        self, action: ActionSnapshot, reporter: Reporter, request: CollectionRequest, agent: _Agent
    ) -> Progress | None:
        raise NotImplementedError


def _where(agent: _Agent, written: str) -> dict[str, Any]:
    return {"path": written, "endpoint_id": agent.collection_id, "collection": agent.name}


class LsProvider(_CollectionProvider):
    """List a directory: ``details.DATA`` holds its entries (``is_folder`` on each), as Globus's ls."""

    name = "ls"
    description = ProviderDescription(
        title="List a directory",
        synchronous=False,
        input_schema=TypeAdapter(_LsBody | _GlobusLsBody).json_schema(),
    )

    def parse(self, body: Any, dialect: str) -> CollectionRequest:
        return parse_ls(body, dialect)

    def busy(self, request: CollectionRequest) -> str:
        return f"Listing {request.written[0] or '/'}"[:64]

    async def work(
        self, action: ActionSnapshot, reporter: Reporter, request: CollectionRequest, agent: _Agent
    ) -> Progress | None:
        entries: list[dict[str, Any]] = []
        after: str | None = None
        truncated = False
        while True:
            page = await agent.ask("ls", {"path": request.paths[0], "after": after, "limit": _PAGE})
            for raw in page["entries"]:
                if not request.show_hidden and str(raw["name"]).startswith("."):
                    continue
                if len(entries) == request.limit:
                    truncated = True
                    break
                entries.append(_entry(raw, path_only=request.path_only))
            after = page.get("next_cursor")
            if truncated or after is None:
                break
        details = {
            "DATA_TYPE": "file_list",
            "DATA": entries,
            "length": len(entries),
            "truncated": truncated,
            **_where(agent, request.written[0]),
        }
        return Progress("SUCCEEDED", details, "Succeeded")


class MkdirProvider(_CollectionProvider):
    """Make a directory (with ``parents``: and its missing parents)."""

    name = "mkdir"
    role = "writer"
    description = ProviderDescription(
        title="Make a directory",
        synchronous=False,
        input_schema=TypeAdapter(_MkdirBody | _GlobusMkdirBody).json_schema(),
    )

    def parse(self, body: Any, dialect: str) -> CollectionRequest:
        return parse_mkdir(body, dialect)

    def busy(self, request: CollectionRequest) -> str:
        return f"Creating {request.written[0]}"[:64]

    async def work(
        self, action: ActionSnapshot, reporter: Reporter, request: CollectionRequest, agent: _Agent
    ) -> Progress | None:
        path = request.paths[0]
        # Recorded before asking, so a drive started again after a restart knows the directory may be
        # its own work rather than someone else's.
        mark = f"mkdir:{action.id}"
        agent.maybe_done = action.ref == mark
        if not agent.maybe_done:
            await reporter.report(action.id, Progress("ACTIVE", None, self.busy(request), ref=mark))
        try:
            await agent.ask("mkdir", {"path": path, "parents": request.parents, "exist_ok": request.exist_ok})
        except AlreadyExists:
            if not agent.maybe_done:
                raise
            entry = await agent.ask("stat", {"path": path})
            if entry.get("type") != "dir":
                raise
        details = {
            "DATA_TYPE": "mkdir_result",
            "code": "DirectoryCreated",
            "message": f"the directory {request.written[0]} was created",
            **_where(agent, request.written[0]),
        }
        return Progress("SUCCEEDED", details, "Succeeded")


class WaitForFilesProvider(_CollectionProvider):
    """Wait until every path exists (``details.found``: their entries), checking every ``poll_seconds``."""

    name = "wait_for_files"
    description = ProviderDescription(
        title="Wait for files",
        synchronous=False,
        input_schema=TypeAdapter(_WaitBody).json_schema(),
    )

    def parse(self, body: Any, dialect: str) -> CollectionRequest:
        return parse_wait(body, dialect)

    def busy(self, request: CollectionRequest) -> str:
        return f"Waiting for {len(request.paths)} path(s)"

    async def work(
        self, action: ActionSnapshot, reporter: Reporter, request: CollectionRequest, agent: _Agent
    ) -> Progress | None:
        found: dict[int, dict[str, Any]] = {}
        shown = len(request.paths)
        while True:
            for i, path in enumerate(request.paths):
                if i in found:
                    continue
                try:
                    raw = await agent.ask("stat", {"path": path})
                except NotFound:
                    continue
                found[i] = {"path": request.written[i], **_entry(raw)}
            missing = len(request.paths) - len(found)
            if not missing:
                details = {"found": [found[i] for i in range(len(request.paths))], **_where(agent, "")}
                del details["path"]
                return Progress("SUCCEEDED", details, "Succeeded")
            if missing != shown:
                shown = missing
                agent.busy = f"Waiting for {missing} of {len(request.paths)} path(s)"
                await reporter.report(action.id, Progress("ACTIVE", None, agent.busy))
            await asyncio.sleep(request.poll_seconds)
            if not await reporter.still_active(action.id):
                return None

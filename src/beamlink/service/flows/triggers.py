"""Triggers: start a run of a flow for each new, complete file under a collection path.

A trigger polls its directory through the collection's agent. A file counts once its size and mtime
have not changed for ``quiet_seconds`` (so a file still being written never does), and starts exactly
one run: its row in ``flow_trigger_files`` keeps the run id across restarts. The first scan records the
files already there as seen (``primed``) without starting runs. The decisions are pure
(:func:`scan_decisions`); the loop around them is a thin shell. A collection that is offline or
unreadable is recorded in ``last_error`` and polled again, never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import hashlib
import logging
import math
import posixpath
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar, cast

from sqlalchemy import Select, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from beamlink.errors import BeamlinkError, InvalidInput, NotFound
from beamlink.protocol.flows import RunCreate, RunInfo, TriggerCreate, TriggerInfo
from beamlink.service.auth.models import User
from beamlink.service.auth.principal import Principal
from beamlink.service.auth.tokens import principal_of
from beamlink.service.db.base import utcnow
from beamlink.service.flows.models import Trigger, TriggerFile
from beamlink.service.flows.store import get_flow
from beamlink.service.state import ServiceState
from beamlink.service.transfer.collections import get_collection, normalize_path
from beamlink.service.transfer.models import Collection

__all__ = [
    "PRIMED",
    "REFUSED",
    "ListedFile",
    "ScanDecisions",
    "SeenFile",
    "create_trigger",
    "delete_trigger",
    "get_trigger",
    "pause_trigger",
    "render_body",
    "resume_trigger",
    "run_trigger_loop",
    "scan_decisions",
    "scan_trigger",
    "trigger_info",
    "triggers_query",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: ``run_id`` of a file that was there before the trigger first looked: it never starts a run.
PRIMED = "primed"
#: ``run_id`` of a file whose run the flow refused (its input failed the schema): not tried again.
REFUSED = "refused"
#: How often the loop looks for triggers due a poll (a trigger's own period is ``poll_seconds``).
LOOP_SECONDS = 0.1
# The list of active triggers is read this often, not every pass: ten queries a second were a steady
# share of an idle service's CPU. A trigger is scanned when created; pausing is checked at each scan.
ACTIVE_READ_SECONDS = 1.0
_LS_PAGE = 10_000
_LS_TIMEOUT = 30.0
_PLACEHOLDERS = ("path", "name", "collection", "collection_id")


# -- decisions (pure) ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListedFile:
    """A file in a fresh listing: root-relative path, size, mtime."""

    path: str
    size: int
    mtime: float


@dataclass(frozen=True, slots=True)
class SeenFile:
    """What the trigger remembers of a file (a ``flow_trigger_files`` row)."""

    path: str
    size: int
    mtime: float
    stable_since: datetime
    run_id: str | None = None


@dataclass(slots=True)
class ScanDecisions:
    """What one scan changes. ``new`` and ``changed`` are remembered with ``stable_since`` = now (marked
    :data:`PRIMED` when ``priming``); ``due`` files start a run each; ``gone`` rows are forgotten."""

    priming: bool
    new: list[ListedFile] = field(default_factory=list)
    changed: list[ListedFile] = field(default_factory=list)
    due: list[ListedFile] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)


def _matches(path: str, glob: str) -> bool:
    return fnmatch.fnmatchcase(posixpath.basename(path), glob)


def scan_decisions(
    previous: Mapping[str, SeenFile],
    listing: Iterable[ListedFile],
    now: datetime,
    *,
    glob: str = "*",
    quiet_seconds: float,
    primed: bool = True,
) -> ScanDecisions:
    """Compare a fresh listing with what the trigger remembers.

    Only names matching ``glob`` count. Before the trigger is ``primed`` every file is new and none is
    due. A file that has a run (or was primed, or refused) never becomes due again, whatever happens to
    it; any other file is due once its size and mtime have held for ``quiet_seconds``.
    """
    decisions = ScanDecisions(priming=not primed)
    quiet = timedelta(seconds=quiet_seconds)
    listed: set[str] = set()
    for item in listing:
        if not _matches(item.path, glob) or item.path in listed:
            continue
        listed.add(item.path)
        seen = previous.get(item.path)
        if primed and seen is not None and seen.run_id is not None:
            continue
        if seen is None or not primed:
            decisions.new.append(item)
            stable_since = now
        elif (seen.size, seen.mtime) != (item.size, item.mtime):
            decisions.changed.append(item)
            stable_since = now
        else:
            stable_since = seen.stable_since
        if primed and now - stable_since >= quiet:
            decisions.due.append(item)
    decisions.gone = [path for path in previous if path not in listed]
    return decisions


def render_body(body: Any, values: Mapping[str, str]) -> Any:
    """``body`` with ``{path}``, ``{name}``, ``{collection}`` and ``{collection_id}`` filled into every
    string (in dicts and lists, recursively); other braces are left alone."""
    if isinstance(body, str):
        for key in _PLACEHOLDERS:
            body = body.replace("{" + key + "}", values.get(key, "{" + key + "}"))
        return body
    if isinstance(body, dict):
        return {key: render_body(value, values) for key, value in body.items()}
    if isinstance(body, list):
        return [render_body(value, values) for value in body]
    return body


def _shown(path: str) -> str:
    return "/" + path


# -- the domain ------------------------------------------------------------------------------------


def _watched(session: Session, principal: Principal, collection: str, path: str) -> tuple[Collection, str]:
    normal = normalize_path(path)
    return get_collection(session, principal, collection, "reader", path=normal), normal


def create_trigger(
    session: Session, principal: Principal, body: TriggerCreate, *, now: datetime | None = None
) -> Trigger:
    """A trigger owned by the caller, who must be allowed to start the flow and to read the path."""
    flow = get_flow(session, principal, body.flow_id, "starter")
    if not body.glob.strip():
        raise InvalidInput("glob may not be empty: use '*' for every file", details={"field": "glob"})
    collection, path = _watched(session, principal, body.collection, body.path)
    trigger = Trigger(
        owner_id=principal.id,
        flow_id=flow.id,
        collection_id=collection.id,
        name=body.name,
        path=path,
        glob=body.glob,
        recursive=body.recursive,
        quiet_seconds=body.quiet_seconds,
        poll_seconds=body.poll_seconds,
        body=body.body,
        run_label=body.run_label,
        status="ACTIVE",
        primed=False,
        created_at=now or utcnow(),
    )
    session.add(trigger)
    session.flush()
    return trigger


def triggers_query(
    principal: Principal,
    *,
    flow_id: str | None = None,
    status: str | None = None,
    all_users: bool = False,
) -> Select[Trigger]:
    """The caller's triggers (an admin may ask for everyone's), for paging."""
    query = select(Trigger)
    if not (all_users and principal.is_admin):
        query = query.where(Trigger.owner_id == principal.id)
    if flow_id is not None:
        query = query.where(Trigger.flow_id == flow_id)
    if status is not None:
        query = query.where(Trigger.status == status.upper())
    return query


def get_trigger(session: Session, principal: Principal, trigger_id: str) -> Trigger:
    """The trigger, for its owner or an admin; NotFound for anyone else."""
    trigger = session.get(Trigger, trigger_id)
    if trigger is None or (trigger.owner_id != principal.id and not principal.is_admin):
        raise NotFound(
            f"trigger {trigger_id} not found (or it is not yours): list yours with `beamlink trigger list`",
            details={"trigger_id": trigger_id},
        )
    return trigger


def pause_trigger(session: Session, principal: Principal, trigger_id: str) -> Trigger:
    """Stop watching; pausing twice is harmless."""
    trigger = get_trigger(session, principal, trigger_id)
    trigger.status = "PAUSED"
    return trigger


def resume_trigger(session: Session, principal: Principal, trigger_id: str) -> Trigger:
    """Watch again. Files that arrived while paused are new to the trigger, so they start runs."""
    trigger = get_trigger(session, principal, trigger_id)
    trigger.status = "ACTIVE"
    return trigger


def delete_trigger(session: Session, principal: Principal, trigger_id: str) -> Trigger:
    """Forget the trigger and the files it saw; runs it started are not touched."""
    trigger = get_trigger(session, principal, trigger_id)
    session.delete(trigger)
    return trigger


def trigger_info(trigger: Trigger) -> TriggerInfo:
    return TriggerInfo(
        id=trigger.id,
        name=trigger.name,
        flow_id=trigger.flow_id,
        owner_id=trigger.owner_id,
        collection_id=trigger.collection_id,
        path=_shown(trigger.path),
        glob=trigger.glob,
        recursive=trigger.recursive,
        quiet_seconds=trigger.quiet_seconds,
        poll_seconds=trigger.poll_seconds,
        body=trigger.body,
        run_label=trigger.run_label,
        status=cast(Any, trigger.status),
        runs_started=trigger.runs_started,
        last_run_id=trigger.last_run_id,
        last_error=trigger.last_error,
        created_at=trigger.created_at,
    )


# -- one scan ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Job:
    """One scan's trigger, read in a transaction of its own."""

    trigger_id: str
    flow_id: str
    principal: Principal
    collection_id: str
    collection_name: str
    path: str
    recursive: bool
    body: dict[str, Any]
    label: str


async def _in_thread(state: ServiceState, fn: Callable[[Session], T]) -> T:
    return await state.db.run(fn)


def _load(session: Session, trigger_id: str) -> _Job | None:
    """The scan to do, or None (gone, paused, or its owner may no longer read the path: noted)."""
    trigger = session.get(Trigger, trigger_id)
    if trigger is None or trigger.status != "ACTIVE":
        return None
    owner = session.get(User, trigger.owner_id)
    assert owner is not None  # the trigger row cascades away with its owner
    principal = principal_of(session, owner)
    try:
        collection, _ = _watched(session, principal, trigger.collection_id, trigger.path)
    except BeamlinkError as exc:
        _note(trigger, f"{exc.code}: {exc.message}")
        return None
    return _Job(
        trigger.id,
        trigger.flow_id,
        principal,
        collection.id,
        collection.name,
        trigger.path,
        trigger.recursive,
        trigger.body,
        trigger.run_label or trigger.name[:64],
    )


def _note(trigger: Trigger, error: str | None) -> None:
    if trigger.last_error != error:
        trigger.last_error = error


def _note_error(session: Session, trigger_id: str, error: str, *, missing: bool) -> None:
    trigger = session.get(Trigger, trigger_id)
    if trigger is None:
        return
    _note(trigger, error)
    if missing and not trigger.primed:
        # Nothing is there yet, so nothing predates the trigger: every file that appears is new.
        trigger.primed = True


async def _ls(state: ServiceState, job: _Job, directory: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        args = {"path": directory, "after": after, "limit": _LS_PAGE}
        page = await state.collections.request(
            job.collection_id, job.collection_name, "ls", args, timeout=_LS_TIMEOUT
        )
        entries += page["entries"]
        after = page.get("next_cursor")
        if after is None:
            return entries


async def list_files(state: ServiceState, job: _Job) -> list[ListedFile]:
    """Every regular file under the watched directory (below it too when recursive), a page at a time.

    Symbolic links are not followed (a link to a parent would loop); a subdirectory removed while the
    scan runs is skipped.
    """
    files: list[ListedFile] = []
    pending = [job.path]
    while pending:
        directory = pending.pop()
        try:
            entries = await _ls(state, job, directory)
        except NotFound:
            if directory == job.path:
                raise
            continue
        for entry in entries:
            path = f"{directory}/{entry['name']}" if directory else str(entry["name"])
            if entry["type"] == "file":
                files.append(ListedFile(path, int(entry["size"]), float(entry["mtime"])))
            elif entry["type"] == "dir" and job.recursive:
                pending.append(path)
    return files


def _remember(
    session: Session, rows: dict[str, TriggerFile], trigger_id: str, item: ListedFile, now: datetime
) -> TriggerFile:
    row = rows.get(item.path)
    if row is None:
        row = rows[item.path] = TriggerFile(trigger_id=trigger_id, path=item.path)
        session.add(row)
    row.size, row.mtime, row.stable_since = item.size, item.mtime, now
    return row


def _apply(session: Session, job: _Job, listing: list[ListedFile], now: datetime) -> list[ListedFile]:
    """Remember what the scan saw; the files now due a run."""
    trigger = session.get(Trigger, job.trigger_id)
    if trigger is None or trigger.status != "ACTIVE":
        return []
    rows = {
        row.path: row
        for row in session.scalars(select(TriggerFile).where(TriggerFile.trigger_id == trigger.id))
    }
    previous = {
        path: SeenFile(path, row.size, row.mtime, row.stable_since, row.run_id) for path, row in rows.items()
    }
    decisions = scan_decisions(
        previous, listing, now, glob=trigger.glob, quiet_seconds=trigger.quiet_seconds, primed=trigger.primed
    )
    for item in decisions.new:
        _remember(session, rows, trigger.id, item, now).run_id = PRIMED if decisions.priming else None
    for item in decisions.changed:
        _remember(session, rows, trigger.id, item, now)
    for path in decisions.gone:
        session.delete(rows[path])
    trigger.primed = True
    return decisions.due


def _run_body(job: _Job, item: ListedFile) -> RunCreate:
    values = {
        "path": _shown(item.path),
        "name": posixpath.basename(item.path),
        "collection": job.collection_name,
        "collection_id": job.collection_id,
    }
    # Keyed on the file's size and mtime too: a file removed and written again is a new file.
    digest = hashlib.sha256(f"{item.path}\0{item.size}\0{item.mtime!r}".encode()).hexdigest()[:48]
    return RunCreate(
        body=render_body(job.body, values), label=job.label, request_id=f"trigger:{job.trigger_id}:{digest}"
    )


def _record(session: Session, job: _Job, item: ListedFile, run: RunInfo | None, refused: bool) -> None:
    row = session.get(TriggerFile, (job.trigger_id, item.path))
    trigger = session.get(Trigger, job.trigger_id)
    if row is None or trigger is None:
        return  # deleted while the run started
    if run is not None:
        row.run_id = run.run_id
        trigger.runs_started += 1
        trigger.last_run_id = run.run_id
    elif refused:
        row.run_id = REFUSED


def _finish(session: Session, trigger_id: str, error: str | None) -> None:
    trigger = session.get(Trigger, trigger_id)
    if trigger is not None:
        _note(trigger, error)


async def _start(state: ServiceState, job: _Job, item: ListedFile) -> tuple[RunInfo | None, str | None, bool]:
    """The run (or the error, and whether the flow refused this file's input for good)."""
    try:
        return (
            await state.flows.start_run(job.principal, job.flow_id, _run_body(job, item)),
            None,
            False,
        )
    except BeamlinkError as exc:
        log.info("trigger %s could not start a run for %s: %s", job.trigger_id, item.path, exc.message)
        return None, f"{exc.code}: {exc.message} (file {_shown(item.path)})", isinstance(exc, InvalidInput)


async def scan_trigger(state: ServiceState, trigger_id: str, *, now: Callable[[], datetime] = utcnow) -> None:
    """One poll of one trigger: list, remember, start a run for each file due one."""
    job = await _in_thread(state, partial(_load, trigger_id=trigger_id))
    if job is None:
        return
    try:
        listing = await list_files(state, job)
    except BeamlinkError as exc:
        problem = f"{exc.code}: {exc.message}"
        missing = isinstance(exc, NotFound)
        await _in_thread(state, partial(_note_error, trigger_id=trigger_id, error=problem, missing=missing))
        return
    due = await _in_thread(state, partial(_apply, job=job, listing=listing, now=now()))
    first_error: str | None = None
    for item in due:
        run, error, refused = await _start(state, job, item)
        first_error = first_error or error
        await _in_thread(state, partial(_record, job=job, item=item, run=run, refused=refused))
    await _in_thread(state, partial(_finish, trigger_id=trigger_id, error=first_error))


# -- the loop ------------------------------------------------------------------------------------------


def _active(session: Session) -> list[tuple[str, float, datetime]]:
    rows = session.execute(
        select(Trigger.id, Trigger.poll_seconds, Trigger.created_at).where(Trigger.status == "ACTIVE")
    )
    return [(row.id, row.poll_seconds, row.created_at) for row in rows]


async def _guarded_scan(state: ServiceState, trigger_id: str) -> None:
    try:
        await scan_trigger(state, trigger_id)
    except (IntegrityError, DBAPIError) as exc:
        # Two scans of one trigger raced (the one at creation and the loop's first): the next poll
        # sees the winner's rows.
        log.warning("trigger %s: scan not recorded (%s); polling again", trigger_id, type(exc).__name__)
    except Exception:
        log.exception("trigger %s: scan failed; polling again", trigger_id)


@dataclass
class _Poller:
    """The loop's memory: when each trigger polls next, and the scans in flight."""

    state: ServiceState
    next_poll: dict[str, float] = field(default_factory=dict)
    running: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def launch_due(self, active: list[tuple[str, float, datetime]]) -> None:
        clock, wall = time.monotonic(), utcnow()
        ids = {trigger_id for trigger_id, _, _ in active}
        for gone in set(self.next_poll) - ids:
            del self.next_poll[gone]
        for trigger_id, poll_seconds, created_at in active:
            task = self.running.get(trigger_id)
            if task is not None and task.done():
                del self.running[trigger_id]
            if trigger_id not in self.next_poll:
                # Creation already scanned it once; the first poll of the loop comes a period later.
                since = (wall - created_at).total_seconds()
                self.next_poll[trigger_id] = clock + max(0.0, poll_seconds - since)
            if trigger_id in self.running or self.next_poll[trigger_id] > clock:
                continue
            self.next_poll[trigger_id] = clock + poll_seconds
            self.running[trigger_id] = asyncio.create_task(_guarded_scan(self.state, trigger_id))

    async def stop(self) -> None:
        for task in self.running.values():
            task.cancel()
        for task in self.running.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def run_trigger_loop(state: ServiceState) -> None:
    """Poll active triggers until cancelled; an error is logged and the loop goes on."""
    poller = _Poller(state)
    active: list[tuple[str, float, datetime]] = []
    read_at = -math.inf
    try:
        while True:
            try:
                if time.monotonic() - read_at >= ACTIVE_READ_SECONDS:
                    active = await _in_thread(state, _active)
                    read_at = time.monotonic()
                poller.launch_due(active)
            except Exception:
                log.exception("trigger pass failed; trying again")
            await asyncio.sleep(LOOP_SECONDS)
    finally:
        await poller.stop()

"""Transfer and delete tasks: submission (with every check up front), dispatch to the agent that runs
them, progress, events, outcomes, cancel and deadlines. Plain synchronous domain logic; the live links to
agents are in :mod:`.links`.

States follow Globus Transfer: ACTIVE, INACTIVE (a collection it needs is not connected; it goes on when
it is back), SUCCEEDED, FAILED (a cancelled task is FAILED with the code ``CANCELED``).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from beamlink.errors import DestinationInsideSource, InvalidInput, NotFound, TransferOntoItself
from beamlink.protocol import data_tokens
from beamlink.protocol.transfers import (
    TOKEN_ASK_LATER,
    DeleteCreate,
    SourceAccess,
    TransferCounts,
    TransferCreate,
    TransferDone,
    TransferError,
    TransferEvent,
    TransferInfo,
    TransferJob,
    TransferJobItem,
    TransferOptions,
    TransferToken,
)
from beamlink.service.auth.principal import Principal
from beamlink.service.db.base import utcnow
from beamlink.service.transfer.collections import get_collection, normalize_path
from beamlink.service.transfer.models import Collection, Transfer, TransferEventRow

__all__ = [
    "DONE_STATES",
    "add_events",
    "cancel_transfer",
    "destinations_of",
    "expire_deadlines",
    "finish",
    "get_transfer",
    "jobs_to_send",
    "list_events",
    "mark_held",
    "record_progress",
    "refresh_states",
    "renew_token",
    "submit_delete",
    "submit_transfer",
    "transfer_info",
    "transfers_query",
]

DONE_STATES = ("SUCCEEDED", "FAILED")
LIVE_STATES = ("ACTIVE", "INACTIVE")
_SOURCE_OPERATIONS = ("read", "list", "checksum")


def _existing(session: Session, principal: Principal, submission_id: str | None) -> Transfer | None:
    if submission_id is None:
        return None
    return session.scalar(
        select(Transfer).where(Transfer.owner_id == principal.id, Transfer.submission_id == submission_id)
    )


def _check_pair(source: str, destination: str, *, recursive: bool, delete_extra: bool) -> None:
    """Refuse items that would copy onto themselves or into themselves (same collection only)."""
    if source == destination:
        raise TransferOntoItself(
            f"'/{source}' would be copied onto itself: choose another destination path or collection",
            details={"source_path": source, "destination_path": destination},
        )
    if recursive and (source == "" or destination.startswith(source + "/")):
        raise DestinationInsideSource(
            f"'/{destination}' is inside the recursive source '/{source}': the copy would copy itself; "
            "choose a destination outside the source",
            details={"source_path": source, "destination_path": destination},
        )
    if delete_extra and (destination == "" or source.startswith(destination + "/")):
        raise DestinationInsideSource(
            f"with delete_extra, the destination '/{destination}' contains the source '/{source}', which it "
            "would delete: choose a destination outside the source",
            details={"source_path": source, "destination_path": destination},
        )


def submit_transfer(
    session: Session, principal: Principal, body: TransferCreate, *, online: Callable[[str], bool]
) -> tuple[Transfer, bool]:
    """Queue a transfer after checking access at every path; returns it and whether it is new.

    The same ``submission_id`` returns the task it created the first time, so a retried submission never
    runs twice.
    """
    again = _existing(session, principal, body.submission_id)
    if again is not None:
        return again, False
    items = []
    for index, item in enumerate(body.items):
        source_path = normalize_path(item.source_path)
        destination_path = normalize_path(item.destination_path)
        source = get_collection(session, principal, body.source, "reader", path=source_path)
        destination = get_collection(session, principal, body.destination, "writer", path=destination_path)
        if source.id == destination.id:
            try:
                _check_pair(
                    source_path,
                    destination_path,
                    recursive=item.recursive,
                    delete_extra=body.options.delete_extra,
                )
            except InvalidInput as exc:
                exc.details["item"] = index
                raise
        items.append(
            {"source_path": source_path, "destination_path": destination_path, "recursive": item.recursive}
        )
    if body.deadline is not None and body.deadline <= utcnow():
        raise InvalidInput(
            f"the deadline {body.deadline.isoformat()} has passed: give a time in the future",
            details={"field": "deadline"},
        )
    transfer = Transfer(
        kind="transfer",
        owner_id=principal.id,
        label=body.label,
        submission_id=body.submission_id,
        source_id=source.id,
        destination_id=destination.id,
        items=items,
        options=body.options.model_dump(),
        state="ACTIVE" if online(source.id) and online(destination.id) else "INACTIVE",
        counts={},
        deadline=body.deadline,
    )
    session.add(transfer)
    session.flush()
    _event(session, transfer, "SUBMITTED", f"{len(items)} item(s) from {source.name} to {destination.name}")
    return transfer, True


def submit_delete(
    session: Session, principal: Principal, body: DeleteCreate, *, online: Callable[[str], bool]
) -> tuple[Transfer, bool]:
    again = _existing(session, principal, body.submission_id)
    if again is not None:
        return again, False
    paths = [normalize_path(p) for p in body.paths]
    for path in paths:
        collection = get_collection(session, principal, body.collection, "writer", path=path)
        if path == "":
            raise InvalidInput(
                "refusing to delete a collection's root: name the paths inside it to delete",
                details={"field": "paths"},
            )
    transfer = Transfer(
        kind="delete",
        owner_id=principal.id,
        label=body.label,
        submission_id=body.submission_id,
        source_id=None,
        destination_id=collection.id,
        items=[{"destination_path": p, "recursive": body.recursive} for p in paths],
        options={"recursive": body.recursive, "ignore_missing": body.ignore_missing},
        state="ACTIVE" if online(collection.id) else "INACTIVE",
        counts={},
        deadline=body.deadline,
    )
    session.add(transfer)
    session.flush()
    _event(session, transfer, "SUBMITTED", f"delete {len(paths)} path(s) in {collection.name}")
    return transfer, True


def get_transfer(session: Session, principal: Principal, transfer_id: str) -> Transfer:
    transfer = session.get(Transfer, transfer_id)
    if transfer is None or not (principal.is_admin or transfer.owner_id == principal.id):
        raise NotFound(
            f"transfer {transfer_id} not found (or you have no access to it)",
            details={"transfer_id": transfer_id},
        )
    return transfer


def transfers_query(
    principal: Principal, *, state: str | None = None, kind: str | None = None
) -> Select[Transfer]:
    query = select(Transfer)
    if not principal.is_admin:
        query = query.where(Transfer.owner_id == principal.id)
    if state:
        query = query.where(Transfer.state == state)
    if kind:
        query = query.where(Transfer.kind == kind)
    return query


# -- events ------------------------------------------------------------------------------------------


def _event(
    session: Session,
    transfer: Transfer,
    code: str,
    description: str,
    *,
    is_error: bool = False,
    at: datetime | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    transfer.events_seen += 1
    session.add(
        TransferEventRow(
            transfer_id=transfer.id,
            seq=transfer.events_seen,
            at=at or utcnow(),
            code=code,
            description=description,
            is_error=is_error,
            details=details or {},
        )
    )


def add_events(
    session: Session, collection_id: str, transfer_id: str, events: Sequence[TransferEvent]
) -> None:
    transfer = session.get(Transfer, transfer_id)
    if transfer is None or transfer.destination_id != collection_id:
        return
    for event in events:
        _event(
            session,
            transfer,
            event.code,
            event.description,
            is_error=event.is_error,
            at=event.at,
            details=event.details,
        )


def list_events(
    session: Session, principal: Principal, transfer_id: str, *, after: int = 0, limit: int = 1000
) -> list[TransferEvent]:
    transfer = get_transfer(session, principal, transfer_id)
    rows = session.scalars(
        select(TransferEventRow)
        .where(TransferEventRow.transfer_id == transfer.id, TransferEventRow.seq > after)
        .order_by(TransferEventRow.seq)
        .limit(limit)
    )
    return [
        TransferEvent(
            seq=r.seq, at=r.at, code=r.code, description=r.description, is_error=r.is_error, details=r.details
        )
        for r in rows
    ]


# -- running -----------------------------------------------------------------------------------------


def refresh_states(
    session: Session, collection_ids: Iterable[str], online: Callable[[str], bool]
) -> list[str]:
    """Recompute ACTIVE/INACTIVE of the live tasks touching these collections; returns those now ACTIVE."""
    ids = list(collection_ids)
    active = []
    query = select(Transfer).where(
        Transfer.state.in_(LIVE_STATES), or_(Transfer.destination_id.in_(ids), Transfer.source_id.in_(ids))
    )
    for transfer in session.scalars(query):
        needed = [transfer.destination_id] + ([transfer.source_id] if transfer.source_id else [])
        state = "ACTIVE" if all(online(c) for c in needed) else "INACTIVE"
        if state != transfer.state:
            away = [c for c in needed if not online(c)]
            _event(
                session,
                transfer,
                state,
                "collections connected again"
                if state == "ACTIVE"
                else f"waiting for collection(s) {', '.join(away)}",
            )
            transfer.state = state
        if state == "ACTIVE":
            active.append(transfer.id)
    return active


def jobs_to_send(
    session: Session, collection_id: str, held: set[str], *, token_ttl: float
) -> list[TransferJob]:
    """ACTIVE tasks this collection's agent should run and does not hold (new, or lost in a restart)."""
    jobs = []
    query = select(Transfer).where(Transfer.destination_id == collection_id, Transfer.state == "ACTIVE")
    for transfer in session.scalars(query):
        if transfer.id not in held:
            jobs.append(job_for(session, transfer, token_ttl=token_ttl))
    return jobs


def _source_token(session: Session, transfer: Transfer, ttl_seconds: float) -> str:
    """The data token a transfer's destination pulls with, for the job and for every renewal alike."""
    source = session.get(Collection, transfer.source_id)
    assert source is not None
    paths = [i["source_path"] for i in transfer.items]
    # One token for the items' deepest common directory: short-lived, and no wider than the task needs.
    prefix = posixpath.commonpath(["/" + p for p in paths]).lstrip("/") if len(paths) > 1 else paths[0]
    return data_tokens.sign(
        bytes.fromhex(source.data_key),
        collection_id=source.id,
        path=prefix,
        operations=_SOURCE_OPERATIONS,
        ttl_seconds=ttl_seconds,
    )


def job_for(session: Session, transfer: Transfer, *, token_ttl: float) -> TransferJob:
    if transfer.kind == "delete":
        return TransferJob(
            transfer_id=transfer.id,
            kind="delete",
            items=[
                TransferJobItem(destination_path=i["destination_path"], recursive=i["recursive"])
                for i in transfer.items
            ],
            deadline=transfer.deadline,
            recursive=bool(transfer.options.get("recursive")),
            ignore_missing=bool(transfer.options.get("ignore_missing")),
        )
    source = session.get(Collection, transfer.source_id)
    assert source is not None
    return TransferJob(
        transfer_id=transfer.id,
        kind="transfer",
        items=[
            TransferJobItem(
                source_path=i["source_path"], destination_path=i["destination_path"], recursive=i["recursive"]
            )
            for i in transfer.items
        ],
        options=TransferOptions.model_validate(transfer.options),
        source=SourceAccess(
            collection_id=source.id,
            data_url=source.data_url,
            host=source.host,
            root_path=source.root_path,
            token=_source_token(session, transfer, token_ttl),
        ),
        deadline=transfer.deadline,
    )


def renew_token(session: Session, collection_id: str, transfer_id: str, *, token_ttl: float) -> TransferToken:
    """A fresh data token for a running transfer, asked for by the agent of its destination.

    Only an ACTIVE transfer of that collection gets one; the refusal says why. An INACTIVE one is
    refused with :data:`TOKEN_ASK_LATER`: it runs again once its collections are back.
    """
    transfer = session.get(Transfer, transfer_id)
    if transfer is None or transfer.kind != "transfer" or transfer.destination_id != collection_id:
        return _no_token(
            transfer_id, "NOT_FOUND", f"collection {collection_id} runs no transfer {transfer_id}"
        )
    if transfer.state in DONE_STATES:
        return _no_token(
            transfer_id, "TRANSFER_ENDED", f"transfer {transfer_id} has ended ({transfer.state}): stop it"
        )
    if transfer.state != "ACTIVE":
        return _no_token(
            transfer_id,
            TOKEN_ASK_LATER,
            f"transfer {transfer_id} waits for a collection to connect; ask again when it runs",
        )
    token = _source_token(session, transfer, token_ttl)
    expires_at = datetime.fromtimestamp(data_tokens.token_expiry(token), UTC)
    _event(
        session,
        transfer,
        "TOKEN_RENEWED",
        f"new data token for the source, valid until {expires_at.isoformat(timespec='seconds')}",
        details={"expires_at": expires_at.isoformat()},
    )
    return TransferToken(transfer_id=transfer_id, token=token, expires_at=expires_at)


def _no_token(transfer_id: str, code: str, message: str) -> TransferToken:
    return TransferToken(transfer_id=transfer_id, error=TransferError(code=code, message=message))


def destinations_of(session: Session, transfer_ids: Sequence[str]) -> list[str]:
    """The collections whose agents run these tasks."""
    if not transfer_ids:
        return []
    return list(session.scalars(select(Transfer.destination_id).where(Transfer.id.in_(list(transfer_ids)))))


def mark_held(session: Session, collection_id: str, ids: Iterable[str]) -> None:
    for transfer_id in ids:
        transfer = session.get(Transfer, transfer_id)
        if transfer is not None and transfer.destination_id == collection_id and not transfer.held:
            transfer.held = True
            transfer.started_at = transfer.started_at or utcnow()


def record_progress(session: Session, collection_id: str, transfer_id: str, counts: TransferCounts) -> None:
    transfer = session.get(Transfer, transfer_id)
    if transfer is not None and transfer.destination_id == collection_id and transfer.state in LIVE_STATES:
        transfer.counts = counts.model_dump()
        transfer.started_at = transfer.started_at or utcnow()


def finish(session: Session, collection_id: str, done: TransferDone) -> Transfer | None:
    """Record the agent's outcome (idempotent: an outcome re-sent after a reconnect changes nothing)."""
    transfer = session.get(Transfer, done.transfer_id)
    if transfer is None or transfer.destination_id != collection_id or transfer.state in DONE_STATES:
        return None
    transfer.counts = done.counts.model_dump()
    transfer.state = done.state
    transfer.completed_at = done.at
    transfer.held = False
    if done.error is not None:
        transfer.error = done.error.model_dump()
    _event(
        session,
        transfer,
        done.state,
        done.error.message if done.error is not None else "finished",
        is_error=done.error is not None,
        at=done.at,
    )
    return transfer


def _fail(session: Session, transfer: Transfer, code: str, message: str) -> None:
    transfer.state = "FAILED"
    transfer.error = TransferError(code=code, message=message).model_dump()
    transfer.completed_at = utcnow()
    _event(session, transfer, code, message, is_error=True)


def cancel_transfer(session: Session, principal: Principal, transfer_id: str) -> tuple[Transfer, bool]:
    """Fail the task with CANCELED; returns it and whether its agent holds it (and must be told)."""
    transfer = get_transfer(session, principal, transfer_id)
    if transfer.state in DONE_STATES:
        return transfer, False
    held = transfer.held
    _fail(session, transfer, "CANCELED", f"cancelled by {principal.username}")
    return transfer, held


def expire_deadlines(session: Session) -> list[Transfer]:
    """Fail live tasks past their deadline; returns them (their agents are told to stop)."""
    expired = []
    query = select(Transfer).where(Transfer.state.in_(LIVE_STATES), Transfer.deadline < utcnow())
    for transfer in session.scalars(query):
        assert transfer.deadline is not None
        _fail(
            session,
            transfer,
            "DEADLINE_EXCEEDED",
            f"the deadline {transfer.deadline.isoformat()} passed before it finished",
        )
        expired.append(transfer)
    return expired


def transfer_info(session: Session, transfer: Transfer) -> TransferInfo:
    counts = TransferCounts.model_validate(transfer.counts or {})
    names = {
        c.id: c.name
        for c in session.scalars(
            select(Collection).where(Collection.id.in_([transfer.source_id, transfer.destination_id]))
        )
    }
    if transfer.state == "INACTIVE":
        status = "waiting for a collection to connect"
    elif transfer.state == "ACTIVE":
        status = (
            "running"
            if transfer.held
            else f"queued for {names.get(transfer.destination_id, 'its collection')}"
        )
    else:
        status = transfer.state.lower()
    rate = None
    if transfer.started_at is not None and counts.bytes_transferred:
        end = transfer.completed_at or utcnow()
        seconds = max((end - transfer.started_at).total_seconds(), 1e-3)
        rate = counts.bytes_transferred / seconds
    return TransferInfo(
        id=transfer.id,
        kind=transfer.kind,
        label=transfer.label,
        owner_id=transfer.owner_id,
        owner=transfer.owner.username,
        source_collection_id=transfer.source_id,
        destination_collection_id=transfer.destination_id,
        items=transfer.items,
        options=transfer.options,
        state=transfer.state,
        status=status,
        error=TransferError.model_validate(transfer.error) if transfer.error else None,
        counts=counts,
        bytes_per_second=rate,
        submission_id=transfer.submission_id,
        deadline=transfer.deadline,
        created_at=transfer.created_at,
        started_at=transfer.started_at,
        completed_at=transfer.completed_at,
    )

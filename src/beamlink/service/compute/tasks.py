"""The task queue: submission, dispatch bookkeeping, outcomes, retries, cancel and result expiry.

The database is the queue, so nothing is lost when the service or an endpoint restarts: a task is a row
whose ``state`` moves received → waiting-for-endpoint → dispatched → running → success | failed |
cancelled, each move appended to ``transitions`` with its time. The live parts (which agent is connected,
who waits for which result) are in :mod:`.hub`; everything here is plain synchronous domain logic.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import xxhash
from sqlalchemy import (
    Insert,
    Row,
    Select,
    Table,
    Update,
    and_,
    bindparam,
    case,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from beamlink.errors import (
    Conflict,
    EndpointLost,
    EnvironmentMismatch,
    FunctionNotAllowed,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    ResultTooLarge,
    TaskCancelled,
)
from beamlink.protocol.agent import TaskAssignment, TaskDispatch, TaskOutcome
from beamlink.protocol.compute import (
    TERMINAL_STATES,
    Environment,
    TaskBatch,
    TaskError,
    TaskInfo,
    TaskResult,
    TaskState,
    TaskTransition,
    is_json_payload,
)
from beamlink.service.auth.principal import Principal
from beamlink.service.compute import functions as functions_
from beamlink.service.compute.checks import Checked, SubmitChecks
from beamlink.service.compute.endpoints import get_endpoint
from beamlink.service.compute.models import Endpoint, Function, Task, TaskGroup, TaskSubmission
from beamlink.service.db.base import utcnow

__all__ = [
    "Submitted",
    "cancel_tasks",
    "claim_for_dispatch",
    "expire_results",
    "get_task",
    "lose_tasks_of_absent_endpoints",
    "mark_acked",
    "mark_started",
    "reconcile",
    "record_outcomes",
    "release_result",
    "requeue_unsent",
    "return_tasks",
    "settle",
    "submit_batch",
    "task_info",
    "task_result",
    "tasks_query",
]

QUEUED = ("received", "waiting-for-endpoint")
IN_FLIGHT = ("dispatched", "running")
_TRACEBACK_LIMIT = 200_000


def _move(task: Task, state: str, at: datetime | None = None) -> None:
    task.state = state
    task.transitions = [*task.transitions, {"state": state, "at": (at or utcnow()).isoformat()}]


def _format_size(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size:,} bytes"


def _check_environment(
    endpoint: Endpoint, function: Function, submitter: Environment, *, json_args: bool = False
) -> None:
    if endpoint.environment is None:
        return  # never connected: the endpoint checks each task itself when it arrives
    here = Environment.model_validate(endpoint.environment)
    # JSON arguments load anywhere; only the function's own pickle must then match.
    problem = None if json_args else submitter.mismatch(here)
    if problem is None and function.source is None:
        # Without source text the function's own pickle must load there too.
        problem = Environment.model_validate(function.environment).mismatch(here)
    if problem:
        raise EnvironmentMismatch(
            f"endpoint {endpoint.name!r} runs Python {here.python_version} with dill {here.dill_version}, "
            f"but the task comes from Python {submitter.python_version} with dill {submitter.dill_version} "
            f"({problem}): submit from a matching environment, or run the endpoint in one",
            details={
                "endpoint": here.model_dump(),
                "submitter": submitter.model_dump(),
                "function_id": function.id,
            },
        )


def _check_group(session: Session, principal: Principal, task_group_id: str) -> None:
    """PermissionDenied unless the group is the caller's: a group is its first submitter's, so no one can
    slip tasks (and results) into another user's stream. Once a group is someone's it stays theirs, so a
    batch that passed may be remembered with its group (:mod:`.checks`).

    The group is claimed (:class:`TaskGroup`) with one INSERT that does nothing on a claimed id: of two
    users naming one new group at once, the second waits for the first's transaction and then finds the
    group taken. A newly claimed group may still hold tasks: one the service made up (a random UUID
    handed to its submitter) that someone now names."""
    claim = _claim_statement(session.get_bind().dialect.name, TaskGroup)
    values = {"id": task_group_id, "owner_id": principal.id, "created_at": utcnow()}
    if session.execute(claim, values).first() is not None:
        others = select(Task.id).where(Task.task_group_id == task_group_id, Task.owner_id != principal.id)
        foreign = session.scalar(others.limit(1))
    else:
        owner = session.scalar(select(TaskGroup.owner_id).where(TaskGroup.id == task_group_id))
        foreign = None if owner == principal.id else owner
    if foreign is not None:
        raise PermissionDenied(
            f"task group {task_group_id!r} holds another user's tasks: leave task_group_id out to get a new "
            "group, or choose an id of your own",
            details={"task_group_id": task_group_id},
        )


@dataclass(frozen=True)
class Submitted:
    """A queued batch: its endpoint, ids and group, and, when the endpoint is connected, the message
    that carries the tasks to it (to send once the transaction has committed)."""

    endpoint_id: str
    task_group_id: str
    task_ids: list[str]
    dispatch: TaskDispatch | None


def submit_batch(
    session: Session,
    principal: Principal,
    batch: TaskBatch,
    *,
    payload_limit: int,
    connection: Callable[[str], set[str] | None] = lambda _endpoint_id: None,
    checks: SubmitChecks | None = None,
) -> Submitted:
    """Check every task of the batch, then queue them all (all or nothing).

    ``checks`` remembers batches that passed (:mod:`.checks`), so the next like them skips the reads.

    ``connection(endpoint_id)`` tells whether the endpoint is connected right now, by returning the
    functions its connection has already carried (None: not connected). If it is, the tasks are written
    as ``dispatched`` and the message returned, so the hot path takes one transaction and one multi-row
    INSERT instead of an INSERT, a claim and an UPDATE.
    """
    json_args = {
        fid: all(is_json_payload(spec.args) for spec in batch.tasks if spec.function_id == fid)
        for fid in {spec.function_id for spec in batch.tasks}
    }
    key = (
        principal,
        batch.endpoint,
        frozenset(json_args.items()),
        batch.environment.model_dump_json(),
        batch.task_group_id,
    )
    checked = checks.get(key) if checks is not None else None
    found: dict[str, Function] = {}
    if checked is None:
        generation = checks.generation if checks is not None else 0
        endpoint = get_endpoint(session, principal, batch.endpoint, "user")
        found = {fid: functions_.get_function(session, principal, fid) for fid in json_args}
        for fid, function in found.items():
            if endpoint.allowed_functions is not None and fid not in endpoint.allowed_functions:
                raise FunctionNotAllowed(
                    f"endpoint {endpoint.name!r} does not allow function {function.name!r} ({fid}): its "
                    "owner lists the functions it runs under allowed_functions in the endpoint's config.yaml",
                    details={"function_id": fid, "endpoint_id": endpoint.id},
                )
            _check_environment(endpoint, function, batch.environment, json_args=json_args[fid])
        if batch.task_group_id is not None:
            _check_group(session, principal, batch.task_group_id)
        checked = Checked(endpoint_id=endpoint.id, online=endpoint.online)
        if checks is not None:
            checks.put(key, checked, generation)
    for index, spec in enumerate(batch.tasks):
        if len(spec.args) > payload_limit:
            raise PayloadTooLarge(
                f"the arguments of task {index} are {_format_size(len(spec.args))}, over the "
                f"{_format_size(payload_limit)} limit: put the data in a collection and pass its path",
                details={"index": index, "size": len(spec.args), "limit": payload_limit},
            )
    group = batch.task_group_id or str(uuid.uuid4())
    task_ids = _new_ids(len(batch.tasks))
    if batch.submission_id is not None:
        earlier = _claim_submission(session, principal, batch, checked.endpoint_id, group, task_ids)
        if earlier is not None:
            return earlier
    environment = batch.environment.model_dump()
    now = utcnow()
    connected_with = connection(checked.endpoint_id)
    dispatching = connected_with is not None
    rows: list[dict[str, Any]] = []
    assignments: list[TaskAssignment] = []
    for index, spec in enumerate(batch.tasks):
        # A microsecond apart, so (created_at, id) order is submission order: tasks run first in, first out.
        at = (now + timedelta(microseconds=index)).isoformat()
        task_id = task_ids[index]
        next_state = "dispatched" if dispatching else "waiting-for-endpoint" if not checked.online else None
        transitions = [{"state": "received", "at": at}]
        if next_state is not None:
            transitions.append({"state": next_state, "at": at})
        rows.append(
            {
                "id": task_id,
                "function_id": spec.function_id,
                "endpoint_id": checked.endpoint_id,
                "owner_id": principal.id,
                "task_group_id": group,
                "state": next_state or "received",
                "acked": False,
                "args": spec.args,
                "environment": environment,
                "timeout": spec.timeout,
                "max_retries": spec.max_retries,
                "attempt": 1,
                "transitions": transitions,
                "result_released": False,
                "stdout": "",
                "stderr": "",
                "created_at": now + timedelta(microseconds=index),
            }
        )
        if dispatching:
            assignments.append(
                TaskAssignment(
                    task_id=task_id,
                    function_id=spec.function_id,
                    args=spec.args,
                    timeout=spec.timeout,
                    attempt=1,
                    submitter_environment=batch.environment,
                )
            )
    # On the table: the ORM's bulk INSERT spent longer on its per-row bookkeeping than SQLite on the rows.
    session.execute(_insert_statement(), rows)
    message = None
    if connected_with is not None:
        unsent = [fid for fid in json_args if fid not in connected_with]
        codes = [functions_.function_code(found.get(fid) or _function(session, fid)) for fid in unsent]
        message = TaskDispatch(functions=codes, tasks=assignments)
    return Submitted(checked.endpoint_id, group, [row["id"] for row in rows], message)


def _claim_submission(
    session: Session,
    principal: Principal,
    batch: TaskBatch,
    endpoint_id: str,
    group: str,
    task_ids: list[str],
) -> Submitted | None:
    """Record that ``batch.submission_id`` creates ``task_ids``; if it was used before, the answer it got
    then (None: it is new). Conflict if it was used for another batch.

    One INSERT that does nothing on a used id, rather than a lookup first: the common case (a new id)
    costs one statement, and two copies of one batch racing on PostgreSQL queue on the key, so the second
    finds the first's row instead of failing."""
    digest = _batch_digest(batch)
    claim = _claim_statement(session.get_bind().dialect.name, TaskSubmission)
    values = {
        "owner_id": principal.id,
        "submission_id": batch.submission_id,
        "digest": digest,
        "endpoint_id": endpoint_id,
        "task_group_id": group,
        "task_ids": task_ids,
        "created_at": utcnow(),
    }
    if session.execute(claim, values).first() is not None:  # a row back: the id was new
        return None
    earlier = session.get(TaskSubmission, (principal.id, batch.submission_id))
    assert earlier is not None  # the conflicting row is committed: it never goes away (cascades aside)
    if earlier.digest != digest:
        raise Conflict(
            f"submission_id {batch.submission_id!r} was used for another batch: a batch sent again must be "
            "the same batch; new work needs a new submission_id",
            details={"submission_id": batch.submission_id, "task_group_id": earlier.task_group_id},
        )
    return Submitted(earlier.endpoint_id, earlier.task_group_id, list(earlier.task_ids), None)


def _batch_digest(batch: TaskBatch) -> str:
    """What identifies a batch's work: endpoint, group and every task (not the submitter's environment)."""
    hasher = xxhash.xxh3_128()
    hasher.update(f"{batch.endpoint}\0{batch.task_group_id or ''}".encode())
    for spec in batch.tasks:
        hasher.update(f"\0{spec.function_id}\0{spec.timeout}\0{spec.max_retries}\0".encode())
        hasher.update(spec.args.encode())
    return hasher.hexdigest()


def _function(session: Session, function_id: str) -> Function:
    function = session.get(Function, function_id)
    if function is None:  # deleted since it was checked: the deleting commit emptied the checks
        raise NotFound(f"function {function_id} not found (or you have no access to it)")
    return function


def _new_ids(count: int) -> list[str]:
    """``count`` random (version 4) UUIDs from one read of the system's randomness, not one each."""
    randomness = os.urandom(16 * count)
    return [str(uuid.UUID(bytes=randomness[i : i + 16], version=4)) for i in range(0, 16 * count, 16)]


def claim_for_dispatch(
    session: Session, endpoint_id: str, sent_functions: set[str], *, limit: int = 1000
) -> tuple[TaskDispatch | None, list[TaskResult]]:
    """Move the oldest queued tasks of an endpoint to ``dispatched`` and build the message that carries them.

    Functions already sent on this connection are not sent again. A task whose function was deleted
    fails here. Returns the message (None when nothing is left to send) and the tasks that failed.
    """
    query = (
        select(Task)
        .where(Task.endpoint_id == endpoint_id, Task.state.in_(QUEUED))
        .order_by(Task.created_at, Task.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    tasks = list(session.scalars(query))
    if not tasks:
        return None, []
    needed = {t.function_id for t in tasks} - sent_functions
    codes = (
        {f.id: f for f in session.scalars(select(Function).where(Function.id.in_(needed)))} if needed else {}
    )
    now = utcnow()
    assignments = []
    failed = []
    for task in tasks:
        if task.function_id in needed and task.function_id not in codes:
            _finish_failed(
                task, NotFound.code, f"function {task.function_id} was deleted before the task ran", now
            )
            failed.append(task_result(task))
            continue
        _move(task, "dispatched", now)
        task.acked = False
        assignments.append(
            TaskAssignment(
                task_id=task.id,
                function_id=task.function_id,
                args=task.args or "",
                timeout=task.timeout,
                attempt=task.attempt,
                submitter_environment=Environment.model_validate(task.environment),
            )
        )
    if not assignments:
        return None, failed
    return (
        TaskDispatch(functions=[functions_.function_code(f) for f in codes.values()], tasks=assignments),
        failed,
    )


# Tasks an endpoint reports on are looked up by primary key alone, and the endpoint checked on the rows:
# with "endpoint_id = ? AND id IN (...)" SQLite chose the (endpoint_id, state) index and scanned every
# task the endpoint ever ran, a cost that grew with the table.


def _endpoint_tasks(session: Session, endpoint_id: str, ids: Iterable[str]) -> list[Task]:
    id_list = list(ids)
    if not id_list:
        return []
    return [
        t for t in session.scalars(select(Task).where(Task.id.in_(id_list))) if t.endpoint_id == endpoint_id
    ]


# The three messages below arrive for every task an endpoint runs, in batches of up to a thousand. They
# read only the columns they need and write with one statement or one executemany ("bulk UPDATE by
# primary key") rather than loading and flushing ORM objects, which was most of the service's CPU.


def _progress_rows(session: Session, endpoint_id: str, ids: Sequence[str]) -> list[Row[Any]]:
    if not ids:
        return []
    return [
        row
        for row in session.execute(_progress_query(), {"ids": list(ids)})
        if row.endpoint_id == endpoint_id
    ]


@functools.cache
def _progress_query() -> Select[Any]:
    """Built once: constructing a SELECT (and its cache key) cost more than running it."""
    table = cast(Table, Task.__table__)
    c = table.c
    return select(c.id, c.endpoint_id, c.state, c.transitions, c.task_group_id).where(
        c.id.in_(bindparam("ids", expanding=True))
    )


def _appended(transitions: list[dict[str, Any]], state: str, at: datetime) -> list[dict[str, Any]]:
    return [*transitions, {"state": state, "at": at.isoformat()}]


def _bulk_update(session: Session, changes: list[dict[str, Any]]) -> None:
    """One executemany of ``UPDATE tasks SET <the changed columns> WHERE id = ?`` (every dict has the
    same keys). Built on the table, not through the ORM's bulk UPDATE, whose per-row bookkeeping was
    a third of the service's CPU at a thousand tasks a second."""
    if not changes:
        return
    columns = tuple(name for name in changes[0] if name != "id")
    rows = [{"_id": change["id"], **{name: change[name] for name in columns}} for change in changes]
    session.execute(_update_statement(columns), rows)


@functools.cache
def _insert_statement() -> Insert:
    return insert(cast(Table, Task.__table__))


@functools.cache
def _claim_statement(dialect: str, model: type[TaskGroup | TaskSubmission]) -> Insert:
    """An INSERT into ``model``'s table that does nothing when the key is taken; it returns a row only
    when it inserted one (rowcount of a skipped row is not reliable through psycopg)."""
    table = cast(Table, model.__table__)
    insert_ = postgresql.insert if dialect == "postgresql" else sqlite.insert
    keys = [column.name for column in table.primary_key]
    return insert_(table).on_conflict_do_nothing(index_elements=keys).returning(*table.primary_key)


@functools.cache
def _update_statement(columns: tuple[str, ...]) -> Update:
    table = cast(Table, Task.__table__)
    return (
        update(table)
        .where(table.c.id == bindparam("_id"))
        .values({name: bindparam(name, type_=table.c[name].type) for name in columns})
    )


def mark_acked(session: Session, endpoint_id: str, ids: Sequence[str]) -> None:
    if ids:  # one set-based UPDATE: nothing to read first (a busy endpoint acks every task it gets)
        session.execute(_ack_statement(), {"ids": list(ids), "acked_by": endpoint_id})


@functools.cache
def _ack_statement() -> Update:
    # Only the primary key in WHERE: with the endpoint and state there too, SQLite chose their index and
    # scanned every task the endpoint ever ran. Rows of another endpoint or state keep their value.
    c = cast(Table, Task.__table__).c
    ours = and_(c.endpoint_id == bindparam("acked_by"), c.state.in_(IN_FLIGHT))
    return (
        update(cast(Table, Task.__table__))
        .where(c.id.in_(bindparam("ids", expanding=True)))
        .values(acked=case((ours, True), else_=c.acked))
    )


def mark_started(session: Session, endpoint_id: str, ids: Sequence[str], at: datetime) -> None:
    _bulk_update(
        session,
        [
            {
                "id": row.id,
                "state": "running",
                "acked": True,
                "transitions": _appended(row.transitions, "running", at),
            }
            for row in _progress_rows(session, endpoint_id, ids)
            if row.state == "dispatched"
        ],
    )


def _finish_failed(task: Task, code: str, message: str, at: datetime, **extra: Any) -> None:
    task.error = TaskError(code=code, message=message, **extra).model_dump()
    task.completed_at = at
    task.args = None
    _move(task, "failed", at)


def _bounded_error(error: TaskError, limit: int) -> TaskError:
    traceback = error.traceback
    if traceback and len(traceback) > _TRACEBACK_LIMIT:
        traceback = "…(earlier frames cut)…\n" + traceback[-_TRACEBACK_LIMIT:]
    exception = error.exception if error.exception and len(error.exception) <= limit else None
    return error.model_copy(update={"traceback": traceback, "exception": exception})


def record_outcomes(
    session: Session,
    endpoint_id: str,
    outcomes: Sequence[TaskOutcome],
    *,
    result_limit: int,
    ttl_seconds: int,
) -> list[TaskResult]:
    """Store the outcomes reported by an endpoint; duplicates and outcomes of finished tasks are dropped.

    Returns the tasks that finished now, for the hub to push to whoever waits.
    """
    rows = {row.id: row for row in _progress_rows(session, endpoint_id, [o.task_id for o in outcomes])}
    changes: list[dict[str, Any]] = []
    finished = []
    for outcome in outcomes:
        row = rows.pop(outcome.task_id, None)  # popped: a duplicate within the batch is dropped too
        if row is None or row.state in TERMINAL_STATES:
            continue
        at = outcome.finished_at
        transitions = row.transitions
        if outcome.started_at is not None and row.state == "dispatched":
            transitions = _appended(transitions, "running", outcome.started_at)
        settled = settle(outcome, row.task_group_id, result_limit)
        state, result, error = settled.state, settled.result, settled.error
        changes.append(
            {
                "id": row.id,
                "state": state,
                "transitions": _appended(transitions, state, at),
                "stdout": outcome.stdout,
                "stderr": outcome.stderr,
                "result": result,
                "result_size": len(result or "") if state == "success" else None,
                "result_expires_at": at + timedelta(seconds=ttl_seconds) if state == "success" else None,
                "error": error.model_dump() if error is not None else None,
                "completed_at": at,
                "args": None,
            }
        )
        finished.append(settled)
    _bulk_update(session, changes)
    return finished


def settle(outcome: TaskOutcome, task_group_id: str, result_limit: int) -> TaskResult:
    """What an endpoint's outcome is stored and answered as: a result over the limit fails the task, an
    error is bounded."""
    result: str | None = None
    error: TaskError | None = None
    if outcome.state == "success" and outcome.result is not None and len(outcome.result) > result_limit:
        state: TaskState = "failed"
        error = TaskError(
            code=ResultTooLarge.code,
            message=f"the result is {_format_size(len(outcome.result))}, over the service's "
            f"{_format_size(result_limit)} result limit: write it to a file and move it with a transfer",
        )
    elif outcome.state == "success":
        state = "success"
        result = outcome.result
    else:
        state = "cancelled" if outcome.state == "cancelled" else "failed"
        error = _bounded_error(
            outcome.error or TaskError(code="TASK_FAILED", message="the endpoint gave no reason"),
            result_limit,
        )
    return TaskResult(
        id=outcome.task_id,
        task_group_id=task_group_id,
        state=state,
        result=result,
        error=error,
        completed_at=outcome.finished_at,
    )


def return_tasks(session: Session, endpoint_id: str, ids: Sequence[str]) -> int:
    """Tasks an endpoint handed back at a clean stop: queued again, at no cost to their retries."""
    count = 0
    for task in _endpoint_tasks(session, endpoint_id, ids):
        if task.state in IN_FLIGHT:
            task.acked = False
            _move(task, "waiting-for-endpoint")
            count += 1
    return count


def requeue_unsent(session: Session, endpoint_id: str, ids: Sequence[str]) -> int:
    """Tasks marked dispatched whose message could not be sent: queued again, at no cost."""
    count = 0
    for task in _endpoint_tasks(session, endpoint_id, ids):
        if task.state == "dispatched" and not task.acked:
            _move(task, "waiting-for-endpoint")
            count += 1
    return count


def _lose(task: Task, reason: str, now: datetime) -> TaskResult | None:
    """A task the endpoint had and lost: run it again while retries remain, else fail EndpointLost.

    One it never confirmed receiving (sent just as the connection broke) goes back at no cost.
    """
    if not task.acked and task.state == "dispatched":
        _move(task, "waiting-for-endpoint", now)
        return None
    task.acked = False
    if task.attempt <= task.max_retries:
        task.attempt += 1
        _move(task, "waiting-for-endpoint", now)
        return None
    _finish_failed(
        task,
        EndpointLost.code,
        f"{reason}; the task was tried {task.attempt} time(s) (max_retries={task.max_retries})",
        now,
    )
    return task_result(task)


def reconcile(session: Session, endpoint_id: str, held: set[str]) -> list[TaskResult]:
    """At an agent's hello: in-flight tasks it does not hold were lost (or never arrived)."""
    now = utcnow()
    failed = []
    in_flight = session.scalars(
        select(Task).where(Task.endpoint_id == endpoint_id, Task.state.in_(IN_FLIGHT))
    )
    for task in in_flight:
        if task.id in held:
            continue
        result = _lose(task, "the endpoint restarted while it held the task", now)
        if result is not None:
            failed.append(result)
    return failed


def lose_tasks_of_absent_endpoints(session: Session, grace_seconds: float) -> list[TaskResult]:
    """Endpoints away longer than the grace period give up their in-flight tasks."""
    now = utcnow()
    cutoff = now - timedelta(seconds=grace_seconds)
    absent = select(Endpoint.id).where(
        Endpoint.disconnected_at.is_not(None), Endpoint.disconnected_at < cutoff
    )
    failed = []
    for task in session.scalars(select(Task).where(Task.endpoint_id.in_(absent), Task.state.in_(IN_FLIGHT))):
        result = _lose(task, f"the endpoint was disconnected for more than {grace_seconds:g} s", now)
        if result is not None:
            failed.append(result)
    return failed


def expire_results(session: Session) -> int:
    """Drop results past their time to live (the task row and its history stay)."""
    count = 0
    for task in session.scalars(
        select(Task).where(Task.result_expires_at < utcnow(), Task.result.is_not(None)).limit(1000)
    ):
        task.result = None
        task.result_released = True
        count += 1
    return count


def expire_submissions(session: Session, ttl_seconds: float) -> int:
    """Forget submission ids older than ``ttl_seconds`` (their tasks stay): a client re-sends a batch
    within seconds of a broken connection, so the table need not grow with every batch ever sent."""
    table = cast(Table, TaskSubmission.__table__)
    cutoff = utcnow() - timedelta(seconds=ttl_seconds)
    result = session.execute(delete(table).where(table.c.created_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)  # a CursorResult: the count of a DELETE is reliable


def get_task(session: Session, principal: Principal, task_id: str) -> Task:
    task = session.get(Task, task_id)
    if task is None or not (principal.is_admin or task.owner_id == principal.id):
        raise NotFound(
            f"task {task_id} not found (or you have no access to it)", details={"task_id": task_id}
        )
    return task


def tasks_query(
    principal: Principal,
    *,
    state: str | None = None,
    endpoint_id: str | None = None,
    task_group_id: str | None = None,
    ids: Sequence[str] | None = None,
) -> Select[Task]:
    query = select(Task)
    if not principal.is_admin:
        query = query.where(Task.owner_id == principal.id)
    if state:
        query = query.where(Task.state == state)
    if endpoint_id:
        query = query.where(Task.endpoint_id == endpoint_id)
    if task_group_id:
        query = query.where(Task.task_group_id == task_group_id)
    if ids is not None:
        query = query.where(Task.id.in_(list(ids)))
    return query


def cancel_tasks(
    session: Session, principal: Principal, ids: Sequence[str], *, online: set[str]
) -> tuple[list[TaskResult], dict[str, list[str]]]:
    """Cancel tasks: queued ones (or ones on an offline endpoint) at once; in-flight ones on a connected
    endpoint by asking it (it answers with a cancelled outcome). Returns (finished now, {endpoint: ids})."""
    now = utcnow()
    finished: list[TaskResult] = []
    signal: dict[str, list[str]] = {}
    for task_id in ids:
        task = get_task(session, principal, task_id)
        if task.state in TERMINAL_STATES:
            continue
        if task.state in IN_FLIGHT and task.endpoint_id in online:
            signal.setdefault(task.endpoint_id, []).append(task.id)
            continue
        task.error = TaskError(code=TaskCancelled.code, message="cancelled by its owner").model_dump()
        task.completed_at = now
        task.args = None
        _move(task, "cancelled", now)
        finished.append(task_result(task))
    return finished, signal


def release_result(session: Session, principal: Principal, task_id: str) -> Task:
    task = get_task(session, principal, task_id)
    if task.state not in TERMINAL_STATES:
        raise InvalidInput(
            f"task {task_id} is {task.state}: only a finished task's result can be released "
            "(cancel it instead)",
            details={"task_id": task_id, "state": task.state},
        )
    task.result = None
    task.result_released = True
    return task


def task_info(task: Task) -> TaskInfo:
    return TaskInfo(
        id=task.id,
        function_id=task.function_id,
        endpoint_id=task.endpoint_id,
        task_group_id=task.task_group_id,
        owner_id=task.owner_id,
        state=task.state,
        created_at=task.created_at,
        completed_at=task.completed_at,
        attempt=task.attempt,
        max_retries=task.max_retries,
        timeout=task.timeout,
        transitions=[TaskTransition.model_validate(t) for t in task.transitions],
        error=TaskError.model_validate(task.error) if task.error else None,
        result_size=task.result_size,
        result_expires_at=task.result_expires_at,
        result_released=task.result_released,
    )


def task_result(task: Task) -> TaskResult:
    return TaskResult(
        id=task.id,
        task_group_id=task.task_group_id,
        state=task.state,
        result=task.result,
        error=TaskError.model_validate(task.error) if task.error else None,
        completed_at=task.completed_at,
    )

"""``Executor``: a :class:`concurrent.futures.Executor` whose work runs on a beamlink endpoint.

::

    with Executor(endpoint="default") as ex:
        futures = [ex.submit(simulate, seed) for seed in range(1000)]
        print(sum(f.result() for f in futures))

One WebSocket per executor (``/v1/tasks/session``, :mod:`beamlink.protocol.task_session`) carries the
submissions out and the results back, pushed by the service: nothing polls. A background thread runs
that connection on its own event loop; whatever has queued up while it sent the last batch goes out as
the next one (up to ``batch_size``), so a tight ``submit`` loop sends few large frames and a single
call costs one frame each way. A function is registered once per executor; arguments are serialized in
``submit``, so a value that cannot be serialized fails there, in the caller's thread.

If the connection breaks, the executor connects again and the service re-sends the results that
finished meanwhile. Every batch carries a ``submission_id``: one sent but not yet answered when the
connection broke is sent again on the next connection, and the service queues it once whether or not
the first copy arrived. Only when the service cannot be reached again does such a batch fail, with
``ServiceUnreachable`` (it may or may not have been queued).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Executor as _BaseExecutor
from concurrent.futures import Future, InvalidStateError
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from beamlink import serialize
from beamlink.errors import BeamlinkError, ServiceUnavailable, ServiceUnreachable, error_from_payload
from beamlink.protocol.compute import TaskResult
from beamlink.protocol.task_session import Refused, Results, Submitted, decode_session_message
from beamlink.sdk.client import Client
from beamlink.sdk.compute import batch_body, decode_result

__all__ = ["Executor", "TaskFuture"]

log = logging.getLogger(__name__)

# Batches are cut at this many bytes of arguments (one task's arguments always go, however large): the
# service takes frames up to its payload limit plus a margin, not a whole batch of such tasks.
_FRAME_BYTES = 8 * 2**20


class TaskFuture(Future[Any]):
    """A Future with the task's id (None until the batch holding it was accepted)."""

    task_id: str | None = None


class _Batch:
    """A batch sent and not yet answered: its futures, what was sent for them, and its submission id."""

    __slots__ = ("items", "submission_id")

    def __init__(self, items: list[tuple[TaskFuture, str, str]]) -> None:
        self.items = items
        self.submission_id = str(uuid.uuid4())

    @property
    def futures(self) -> list[TaskFuture]:
        return [future for future, _, _ in self.items]


class _Refusal(Exception):
    """The service refused the connection or the group's results: every open future fails with it."""

    def __init__(self, error: BeamlinkError) -> None:
        super().__init__(error.message)
        self.error = error


class Executor(_BaseExecutor):
    """Run callables on ``endpoint`` (an id, or the name of one of your own endpoints).

    ``timeout`` (seconds) and ``max_retries`` apply to every task; ``batch_size`` caps one frame.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        client: Client | None = None,
        batch_size: int = 1000,
        timeout: float | None = None,
        max_retries: int = 2,
        task_group_id: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.client = client or Client()
        self._own_client = client is None
        self.batch_size = batch_size
        self.timeout = timeout
        self.max_retries = max_retries
        self.task_group_id = task_group_id or str(uuid.uuid4())
        self._functions: dict[int, tuple[Callable[..., Any], str]] = {}
        self._lock = threading.Lock()
        # Guarded by _lock (touched from callers' threads):
        self._pending: collections.deque[tuple[TaskFuture, str, str]] = collections.deque()
        self._open: set[TaskFuture] = set()
        self._by_task: dict[str, TaskFuture] = {}
        self._woken = False  # a wake-up of the connection's writer is already on its way
        self._shutdown = False
        self._ended: BaseException | None = None  # the connection's thread has returned, and why
        # The connection's loop only:
        self._early: dict[str, TaskResult] = {}  # results that beat their batch's answer
        self._in_flight: dict[int, _Batch] = {}  # batches sent, not yet answered
        self._resend: list[_Batch] = []  # in flight when the connection broke: sent again first
        self._refs = itertools.count(1)
        self._loop = asyncio.new_event_loop()
        self._wake = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name="beamlink-executor", daemon=True)
        self._thread.start()

    # -- concurrent.futures.Executor --------------------------------------------------------------

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> TaskFuture:
        if self._shutdown:
            raise RuntimeError("cannot submit after shutdown")
        function_id = self._register(fn)
        payload = serialize.pack_arguments(args, kwargs)
        future = TaskFuture()
        with self._lock:
            ended = self._ended
            if ended is None:
                self._open.add(future)
                self._pending.append((future, function_id, payload))
        if ended is not None:
            future.set_exception(ended)
            return future
        future.add_done_callback(self._forget)
        self._kick()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
        if cancel_futures:
            self._cancel_open()
        self._kick(always=True)
        if wait:
            with self._lock:
                waiting = list(self._open)
            for future in waiting:
                with contextlib.suppress(BaseException):  # cancelled futures raise here; that is fine
                    future.exception()
            self._thread.join()
            if self._own_client:
                self.client.close()

    # -- the caller's side ------------------------------------------------------------------------

    def _register(self, fn: Callable[..., Any]) -> str:
        hit = self._functions.get(id(fn))
        if hit is not None and hit[0] is fn:
            return hit[1]
        function_id = self.client.register_function(fn)
        self._functions[id(fn)] = (fn, function_id)
        return function_id

    def _kick(self, *, always: bool = False) -> None:
        """Wake the writer, unless a wake-up is already on its way (one self-pipe write per burst)."""
        with self._lock:
            if self._woken and not always:
                return
            self._woken = True
        with contextlib.suppress(RuntimeError):  # the loop has ended: nothing left to wake
            self._loop.call_soon_threadsafe(self._wake.set)

    def _forget(self, future: Future[Any]) -> None:
        with self._lock:
            self._open.discard(future)
            task_id = getattr(future, "task_id", None)
            if task_id:
                self._by_task.pop(task_id, None)
            last = self._shutdown and not self._open
        if last:
            self._kick(always=True)

    def _cancel_open(self) -> None:
        with self._lock:
            open_futures = list(self._open)
        ids = [f.task_id for f in open_futures if f.task_id]
        for future in open_futures:
            future.cancel()
        if ids:
            try:
                self.client.cancel_tasks(ids)
            except BeamlinkError as exc:
                log.warning("could not cancel %d task(s) at the service: %s", len(ids), exc)

    def _finished(self) -> bool:
        with self._lock:
            return self._shutdown and not self._open

    # -- the connection (its own thread and loop) -------------------------------------------------

    def _run(self) -> None:
        reason: BaseException = RuntimeError("the executor has shut down")
        try:
            self._loop.run_until_complete(self._connect_loop())
        except _Refusal as refusal:
            reason = refusal.error
        except BaseException as exc:
            log.exception("the executor's connection failed")
            reason = exc
        finally:
            self._loop.close()
            with self._lock:
                self._ended = reason
            self._fail_all(reason)

    async def _connect_loop(self) -> None:
        """Connect, serve, and connect again after a break, until shut down with nothing open."""
        url = self.client.websocket_url("/v1/tasks/session")
        delay = 0.2
        while not self._finished():
            try:
                headers = await asyncio.to_thread(self.client.auth_headers)
                ws = await connect(url, additional_headers=headers, max_size=None, compression=None)
            except ServiceUnavailable as exc:  # exchanging client credentials for a token
                self._fail_pending(exc)
                self._fail_resend(cause=exc)
            except (OSError, TimeoutError, InvalidHandshake) as exc:
                # Nothing can be submitted: fail what waits to be, as a refused HTTP request would.
                unreachable = ServiceUnreachable(
                    f"cannot reach the beamlink service at {self.client.url} ({type(exc).__name__}): "
                    "start it with `beamlink server`, or point BEAMLINK_URL at it",
                    details={"url": self.client.url},
                )
                self._fail_pending(unreachable)
                self._fail_resend(cause=unreachable)
            else:
                refusal: _Refusal | None = None
                try:
                    if await self._serve(ws):
                        return
                    delay = 0.2
                except _Refusal as exc:
                    refusal = exc
                    raise
                finally:
                    await ws.close()
                    if refusal is not None:
                        self._fail_all(refusal.error)  # the service's reason, not "the connection broke"
                    # Unanswered batches go again, under their submission ids, on the next connection.
                    self._resend.extend(self._in_flight.values())
                    self._in_flight.clear()
                log.warning("the connection to %s broke; connecting again", self.client.url)
            if self._finished():
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _serve(self, ws: ClientConnection) -> bool:
        """Until the connection breaks (False) or the executor is done (True)."""
        await ws.send(json.dumps({"type": "watch", "task_group_id": self.task_group_id}))
        self._wake.set()  # what queued while we were away goes out now
        reader = asyncio.ensure_future(self._read(ws))
        writer = asyncio.ensure_future(self._write(ws))
        try:
            done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            reader.cancel()
            writer.cancel()
        for task in done:
            error = task.exception()
            if isinstance(error, _Refusal):
                raise error
        return writer in done and writer.exception() is None

    async def _write(self, ws: ClientConnection) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            with self._lock:
                self._woken = False
            while batch := self._next_batch():
                ref = next(self._refs)
                self._in_flight[ref] = batch
                body = batch_body(
                    self.endpoint,
                    [(fid, args) for _, fid, args in batch.items],
                    task_group_id=self.task_group_id,
                    timeout=self.timeout,
                    max_retries=self.max_retries,
                    submission_id=batch.submission_id,
                )
                await ws.send(json.dumps({"type": "submit", "ref": ref, "batch": body}))
            if self._finished():
                return

    def _next_batch(self) -> _Batch | None:
        """A batch to send again, else a new one (None: nothing to send)."""
        if self._resend:
            return self._resend.pop(0)
        items = self._take()
        return _Batch(items) if items else None

    def _take(self) -> list[tuple[TaskFuture, str, str]]:
        """The next batch to send, leaving out futures cancelled while queued."""
        taken: list[tuple[TaskFuture, str, str]] = []
        size = 0
        with self._lock:
            while self._pending and len(taken) < self.batch_size:
                size += len(self._pending[0][2])
                if taken and size > _FRAME_BYTES:
                    break
                taken.append(self._pending.popleft())
        return [item for item in taken if item[0].set_running_or_notify_cancel()]

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for frame in ws:
                message = decode_session_message(frame)
                if isinstance(message, Results):
                    for result in message.results:
                        self._on_result(result)
                elif isinstance(message, Submitted):
                    self._on_submitted(message)
                else:
                    self._on_refused(message)

    def _on_submitted(self, message: Submitted) -> None:
        batch = self._in_flight.pop(message.ref, None)
        futures = batch.futures if batch is not None else []
        with self._lock:
            for future, task_id in zip(futures, message.created.task_ids, strict=True):
                future.task_id = task_id
                if not future.done():
                    self._by_task[task_id] = future
        for task_id in message.created.task_ids:
            early = self._early.pop(task_id, None)
            if early is not None:
                self._on_result(early)

    def _on_refused(self, message: Refused) -> None:
        error = error_from_payload(message.status, message.error)
        if message.ref is None:
            raise _Refusal(error)  # the token, or this executor's task group
        batch = self._in_flight.pop(message.ref, None)
        for future in batch.futures if batch is not None else []:
            future.set_exception(error)

    def _on_result(self, result: TaskResult) -> None:
        with self._lock:
            future = self._by_task.get(result.id)
        if future is None:
            self._early[result.id] = result
            return
        if future.done():
            return  # a result sent again after a reconnect
        try:
            value = decode_result(result)
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(value)

    def _fail_in_flight(self, reason: BaseException) -> None:
        for batch in self._in_flight.values():
            for future in batch.futures:
                if not future.done():
                    future.set_exception(reason)
        self._in_flight.clear()

    def _fail_resend(self, error: BaseException | None = None, *, cause: BaseException | None = None) -> None:
        """Fail the batches waiting to be sent again: with ``error``, or, when the service cannot be reached
        to send them (``cause``), with an error saying they may or may not have been queued."""
        for batch in self._resend:
            failure = error or ServiceUnreachable(
                f"the connection to {self.client.url} broke before the service answered a batch of "
                f"{len(batch.items)} task(s), and it cannot be reached to send it again ({cause}); they "
                "may or may not have been queued (see `beamlink task list`)",
                details={"url": self.client.url, "task_group_id": self.task_group_id},
            )
            for future in batch.futures:
                if not future.done():
                    future.set_exception(failure)
        self._resend.clear()

    def _fail_pending(self, error: BaseException) -> None:
        with self._lock:
            batch = list(self._pending)
            self._pending.clear()
        for future, _, _ in batch:
            if future.set_running_or_notify_cancel():
                future.set_exception(error)

    def _fail_all(self, error: BaseException) -> None:
        self._fail_pending(error)
        self._fail_in_flight(error)
        self._fail_resend(error)
        with self._lock:
            open_futures = list(self._open)
        for future in open_futures:
            with contextlib.suppress(InvalidStateError):  # finished meanwhile
                future.set_exception(error)

    def __repr__(self) -> str:
        return f"Executor(endpoint={self.endpoint!r}, task_group_id={self.task_group_id!r})"

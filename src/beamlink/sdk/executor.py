"""``Executor``: a :class:`concurrent.futures.Executor` whose work runs on a beamlink endpoint.

::

    with Executor(endpoint="default") as ex:
        futures = [ex.submit(simulate, seed) for seed in range(1000)]
        print(sum(f.result() for f in futures))

Submissions are batched: a background thread sends whatever has queued up (up to ``batch_size``) in one
request. Results are pushed by the service over one server-sent-events stream per executor: nothing
polls. A function is registered once per executor; arguments are serialized in ``submit`` so a value
that cannot be serialized fails there, in the caller's thread.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Executor as _BaseExecutor
from concurrent.futures import Future
from typing import Any

from beamlink import serialize
from beamlink.errors import BeamlinkError, ServiceUnavailable
from beamlink.protocol.compute import TaskResult
from beamlink.sdk.client import Client
from beamlink.sdk.compute import decode_result

__all__ = ["Executor", "TaskFuture"]

log = logging.getLogger(__name__)


class TaskFuture(Future[Any]):
    """A Future with the task's id (None until the batch holding it was accepted)."""

    task_id: str | None = None


class Executor(_BaseExecutor):
    """Run callables on ``endpoint`` (an id, or the name of one of your own endpoints).

    ``timeout`` (seconds) and ``max_retries`` apply to every task; ``batch_size`` caps one request.
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
        self._pending: queue.Queue[tuple[TaskFuture, str, str] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._by_task: dict[str, TaskFuture] = {}
        self._early: dict[str, TaskResult] = {}  # results that beat their batch's response
        self._open: set[TaskFuture] = set()
        self._shutdown = False
        self._stream_ready = threading.Event()
        self._stop_stream = threading.Event()
        self._submitter = threading.Thread(target=self._submit_loop, name="beamlink-submitter", daemon=True)
        self._watcher = threading.Thread(target=self._watch_loop, name="beamlink-results", daemon=True)
        self._submitter.start()
        self._watcher.start()

    # -- concurrent.futures.Executor --------------------------------------------------------------

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> TaskFuture:
        if self._shutdown:
            raise RuntimeError("cannot submit after shutdown")
        function_id = self._register(fn)
        payload = serialize.pack_arguments(args, kwargs)
        future = TaskFuture()
        with self._lock:
            self._open.add(future)
        future.add_done_callback(self._forget)
        self._pending.put((future, function_id, payload))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._shutdown = True
        with self._lock:
            if not self._open:
                self._stop_stream.set()
        if cancel_futures:
            self._cancel_open()
        self._pending.put(None)
        if wait:
            self._submitter.join()
            with self._lock:
                waiting = list(self._open)
            for future in waiting:
                with contextlib.suppress(BaseException):  # cancelled futures raise here; that is fine
                    future.exception()
        if self._own_client and wait:
            self.client.close()

    # -- internals --------------------------------------------------------------------------------

    def _register(self, fn: Callable[..., Any]) -> str:
        hit = self._functions.get(id(fn))
        if hit is not None and hit[0] is fn:
            return hit[1]
        function_id = self.client.register_function(fn)
        self._functions[id(fn)] = (fn, function_id)
        return function_id

    def _forget(self, future: Future[Any]) -> None:
        with self._lock:
            self._open.discard(future)
            task_id = getattr(future, "task_id", None)
            if task_id:
                self._by_task.pop(task_id, None)
            if self._shutdown and not self._open:
                self._stop_stream.set()

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

    def _submit_loop(self) -> None:
        self._stream_ready.wait(10.0)
        stop = False
        while not stop:
            first = self._pending.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.batch_size:
                try:
                    item = self._pending.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._send(batch)

    def _send(self, batch: list[tuple[TaskFuture, str, str]]) -> None:
        live = [(f, fid, args) for f, fid, args in batch if f.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            created = self.client.submit_packed(
                self.endpoint,
                [(fid, args) for _, fid, args in live],
                task_group_id=self.task_group_id,
                timeout=self.timeout,
                max_retries=self.max_retries,
            )
        except BaseException as exc:
            for future, _, _ in live:
                future.set_exception(exc)
            return
        with self._lock:
            for (future, _, _), task_id in zip(live, created.task_ids, strict=True):
                future.task_id = task_id
                self._by_task[task_id] = future
            early = [(self._by_task[t], self._early.pop(t)) for t in list(self._early) if t in self._by_task]
        for future, result in early:
            self._resolve(future, result)

    def _resolve(self, future: TaskFuture, result: TaskResult) -> None:
        if future.done():
            return
        try:
            value = decode_result(result)
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(value)

    def _watch_loop(self) -> None:
        """Read the result stream; reconnect (the service re-sends finished results) if it breaks."""
        delay = 0.2
        while True:
            try:
                stream = self.client.stream_results(self.task_group_id, stop=self._stop_stream)
                self._stream_ready.set()
                for result in stream:
                    delay = 0.2
                    with self._lock:
                        future = self._by_task.get(result.id)
                        if future is None:
                            self._early[result.id] = result
                    if future is not None:
                        self._resolve(future, result)
                    if self._finished():
                        return
            except ServiceUnavailable as exc:
                log.warning("result stream interrupted (%s); reconnecting", exc.message)
            except BeamlinkError as exc:
                self._fail_all(exc)
                return
            self._stream_ready.set()
            if self._finished():
                return
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _finished(self) -> bool:
        return self._stop_stream.is_set()

    def _fail_all(self, exc: BaseException) -> None:
        with self._lock:
            open_futures = list(self._open)
        for future in open_futures:
            if not future.done():
                future.set_exception(exc)

    def __repr__(self) -> str:
        return f"Executor(endpoint={self.endpoint!r}, task_group_id={self.task_group_id!r})"

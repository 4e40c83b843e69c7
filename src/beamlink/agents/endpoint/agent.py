"""The endpoint agent: the gateway connection in, the engine out, the result spool between.

Threads and the loop: engines call ``on_started``/``on_done`` from their own threads; those hop onto the
event loop, where one flusher coroutine batches them into ``started`` and ``results`` messages. A result
is written to the spool right after it is sent and forgotten when the service acknowledges it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread

import beamlink
from beamlink import errors, serialize
from beamlink.agents.daemon import AgentProfile, GatewayClient, PidFile, serve_gateway
from beamlink.agents.endpoint.config import EndpointConfig, build_engine
from beamlink.agents.endpoint.engines.base import Engine, Job, failed
from beamlink.agents.endpoint.runner import check_environment
from beamlink.agents.endpoint.spool import ResultSpool
from beamlink.protocol.agent import (
    AGENT_HEADER,
    CancelTasks,
    Goodbye,
    Heartbeat,
    Hello,
    ResultAck,
    TaskAck,
    TaskDispatch,
    TaskOutcome,
    TaskResults,
    TaskStarted,
    Welcome,
    decode_service_message,
    encode,
)
from beamlink.protocol.compute import FunctionCode, is_json_payload

__all__ = ["EndpointAgent"]

log = logging.getLogger(__name__)

_RESULTS_PER_MESSAGE = 500
_COALESCE_SECONDS = 0.002


class EndpointAgent:
    """Runs until ``stop`` is set: connects, runs what it is sent, reports, and hands back on stop."""

    def __init__(self, profile: AgentProfile, config: EndpointConfig, identity: dict[str, Any]) -> None:
        self.profile = profile
        self.config = config
        self.endpoint_id = str(identity["endpoint_id"])
        self.service_url = str(identity["service_url"])
        self._secret = str(identity["agent_secret"])
        self.spool = ResultSpool(profile.spool_dir)
        self.result_limit = 10_000_000
        self._functions: dict[str, FunctionCode] = {}
        self._outcomes: list[TaskOutcome] = []
        self._started: dict[str, datetime] = {}
        self._acks: list[str] = []
        self._wake = asyncio.Event()
        self._welcomed = asyncio.Event()
        self._last_activity = time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.engine: Engine | None = None
        self.gateway = GatewayClient(
            self.service_url,
            headers=self._headers,
            on_connect=self._on_connect,
            on_message=self._on_message,
            on_disconnect=self._on_disconnect,
            heartbeat=self._heartbeat,
            heartbeat_period=config.heartbeat_period,
        )

    # -- engine callbacks (any thread) ----------------------------------------------------------

    def _on_started(self, task_id: str, at: datetime) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._note_started, task_id, at)

    def _note_started(self, task_id: str, at: datetime) -> None:
        self._started[task_id] = at
        self._wake.set()

    def _on_done(self, outcome: TaskOutcome) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._note_done, outcome)

    def _note_done(self, outcome: TaskOutcome) -> None:
        self._outcomes.append(outcome)
        self._last_activity = time.monotonic()
        self._wake.set()

    # -- gateway callbacks ----------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {AGENT_HEADER: self.endpoint_id, "Authorization": f"Bearer {self._secret}"}

    def _held(self) -> list[str]:
        held = set(self.spool.ids())
        if self.engine is not None:
            held.update(self.engine.held())
        return sorted(held)

    def _stats(self) -> dict[str, Any]:
        stats = self.engine.stats() if self.engine is not None else {}
        return {**stats, "spooled_results": len(self.spool)}

    def _heartbeat(self) -> str:
        return encode(Heartbeat(stats=self._stats()))

    async def _on_connect(self) -> None:
        hello = Hello(
            agent_version=beamlink.__version__,
            host=socket.gethostname(),
            environment=serialize.environment(),
            engine=self.config.engine.type,
            heartbeat_period=self.config.heartbeat_period,
            allowed_functions=self.config.allowed_functions,
            held_task_ids=self._held(),
            stats=self._stats(),
        )
        await self.gateway.send(encode(hello))
        spooled = self.spool.load()
        for start in range(0, len(spooled), _RESULTS_PER_MESSAGE):
            await self.gateway.send(
                encode(TaskResults(results=spooled[start : start + _RESULTS_PER_MESSAGE]))
            )
        if spooled:
            log.info("re-sent %d spooled result(s)", len(spooled))

    async def _on_disconnect(self) -> None:
        self._welcomed.clear()

    async def _on_message(self, frame: str) -> None:
        message = decode_service_message(frame)
        if isinstance(message, Welcome):
            self.result_limit = message.result_limit
            self._welcomed.set()
        elif isinstance(message, TaskDispatch):
            await self._accept(message)
        elif isinstance(message, ResultAck):
            self.spool.remove(message.task_ids)
        elif isinstance(message, CancelTasks):
            assert self.engine is not None
            for task_id in message.task_ids:
                if not self.engine.cancel(task_id):
                    log.info("task %s cannot be stopped by the %s engine", task_id, self.engine.name)

    async def _accept(self, dispatch: TaskDispatch) -> None:
        assert self.engine is not None
        for code in dispatch.functions:
            self._functions[code.id] = code
        held = set(self._held())
        allowed = self.config.allowed_functions
        accepted = []
        for task in dispatch.tasks:
            accepted.append(task.task_id)
            if task.task_id in held:
                continue  # sent again after a reconnect: already running or finished
            self._last_activity = time.monotonic()
            function = self._functions.get(task.function_id)
            if function is None:
                self._note_done(
                    failed(
                        task.task_id, errors.InvalidInput.code, f"function {task.function_id} was not sent"
                    )
                )
                continue
            if allowed is not None and task.function_id not in allowed:
                self._note_done(
                    failed(
                        task.task_id,
                        errors.FunctionNotAllowed.code,
                        f"function {function.name!r} ({function.id}) is not in this endpoint's "
                        "allowed_functions",
                    )
                )
                continue
            mismatch = check_environment(
                task.submitter_environment, function, json_args=is_json_payload(task.args)
            )
            if mismatch is not None:
                self._note_done(
                    TaskOutcome(
                        task_id=task.task_id, state="failed", error=mismatch, finished_at=datetime.now(UTC)
                    )
                )
                continue
            self.engine.submit(
                Job(
                    task_id=task.task_id,
                    function=function,
                    args=task.args,
                    timeout=task.timeout,
                    result_limit=self.result_limit,
                    output_limit=self.config.output_limit,
                )
            )
        # Acknowledged by the flusher: a task that finishes within a moment needs only its result.
        self._acks.extend(accepted)
        self._wake.set()

    # -- loops ----------------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._outcomes:
                # Only acks or starts to send: wait a moment for results, which make them unnecessary.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), _COALESCE_SECONDS)
                self._wake.clear()
            elif self.engine is not None and self.engine.in_flight():
                # More results are on their way: a moment gathers them into one message (a busy endpoint
                # sent a frame, and the service wrote a transaction, per result or two). A lone task's
                # result, with nothing else running, goes at once.
                await asyncio.sleep(_COALESCE_SECONDS)
                self._wake.clear()
            await self._flush()

    async def _flush(self) -> None:
        """Batch what the engine reported since the last pass: started tasks, then finished ones."""
        outcomes, self._outcomes = self._outcomes, []
        started, self._started = self._started, {}
        acks, self._acks = self._acks, []
        finished_ids = {o.task_id for o in outcomes}
        unfinished = [t for t in acks if t not in finished_ids]
        if unfinished:
            await self.gateway.send(encode(TaskAck(task_ids=unfinished)))
        still_running = [t for t in started if t not in finished_ids]
        if still_running and self.gateway.connected:
            at = min(started[t] for t in still_running)
            await self.gateway.send(encode(TaskStarted(task_ids=still_running, at=at)))
        for outcome in outcomes:
            if outcome.started_at is None and outcome.task_id in started:
                outcome.started_at = started[outcome.task_id]
        for start in range(0, len(outcomes), _RESULTS_PER_MESSAGE):
            batch = outcomes[start : start + _RESULTS_PER_MESSAGE]
            sent = await self.gateway.send(encode(TaskResults(results=batch)))
            # Spooled after the send, so the disk write is not on the round trip; the service forgets
            # nothing it has not stored, and acks that come before this write are kept (spool.py).
            self.spool.put(batch)
            if not sent:
                self.spool.put(outcomes[start + _RESULTS_PER_MESSAGE :])
                break  # re-sent after the next hello

    async def _idle_loop(self, stop: asyncio.Event) -> None:
        limit = self.config.idle_shutdown_after
        if not limit:
            return
        while not stop.is_set():
            await asyncio.sleep(min(limit / 4, 5.0))
            idle = time.monotonic() - self._last_activity
            if idle >= limit and not self._held():
                log.info("no task for %.0f s (idle_shutdown_after: %g): stopping", idle, limit)
                stop.set()

    async def run(
        self, stop: asyncio.Event, *, pid_file: PidFile | None = None, detached: bool = False
    ) -> None:
        self._loop = asyncio.get_running_loop()
        log.info(
            "endpoint %s (%s) starting: %s engine, service %s",
            self.profile.name,
            self.endpoint_id,
            self.config.engine.type,
            self.service_url,
        )
        engine = build_engine(
            self.config, run_dir=self.profile.dir / "run", on_started=self._on_started, on_done=self._on_done
        )
        await anyio.to_thread.run_sync(engine.start)
        self.engine = engine
        background = [
            asyncio.create_task(self._flush_loop()),
            asyncio.create_task(self._idle_loop(stop)),
        ]
        if pid_file is not None:
            background.append(asyncio.create_task(pid_file.keep_fresh(stop)))
        returned: list[str] = []

        async def before_disconnect() -> None:
            returned.extend(await anyio.to_thread.run_sync(engine.shutdown))
            await self._flush()
            if self.gateway.connected:
                await self.gateway.send(encode(Goodbye(returned_task_ids=returned)))

        await serve_gateway(
            self.gateway,
            self._welcomed,
            stop,
            profile=self.profile,
            agent_id=self.endpoint_id,
            detached=detached,
            background=background,
            before_disconnect=before_disconnect,
        )
        log.info("endpoint %s stopped (%d task(s) handed back)", self.endpoint_id, len(returned))

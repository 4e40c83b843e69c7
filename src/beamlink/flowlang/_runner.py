"""The state machine behind :func:`beamlink.flowlang.start` and :func:`beamlink.flowlang.step`.

A ``Runner`` works on its own copy of a :class:`RunState` for one event: it executes every state it
can without I/O (Pass, ExpressionEval, Choice, Fail, a Wait that is already due, the fan-out and join of
Parallel/Map) and collects instructions for what needs the outside world (start or cancel an action,
wake the run later, report the end). Nothing here reads a clock: ``now`` comes from the caller.
"""

from __future__ import annotations

import copy
import json
from collections import deque
from datetime import datetime, timedelta
from typing import Any

from beamlink.flowlang import paths
from beamlink.flowlang.actions import ActionRegistry
from beamlink.flowlang.choice import choose, parse_timestamp
from beamlink.flowlang.errors import StatesError
from beamlink.flowlang.messages import (
    ACTION_UNABLE_TO_RUN,
    FLOW_CANCELED,
    NO_CHOICE_MATCHED,
    RUNTIME,
    STATE_SIZE_EXCEEDED,
    STATES_ALL,
    STEP_LIMIT_EXCEEDED,
    CancelAction,
    CancelWakeup,
    Instruction,
    LogEntry,
    RunFailed,
    RunSucceeded,
    ScheduleWakeup,
    StartAction,
)
from beamlink.flowlang.models import (
    ActionState,
    ChoiceState,
    ExpressionEvalState,
    FailState,
    FlowDefinition,
    MapState,
    ParallelState,
    PassState,
    State,
    WaitState,
)
from beamlink.flowlang.parameters import evaluate_parameters
from beamlink.flowlang.redact import redact
from beamlink.flowlang.runstate import (
    FanOut,
    Frame,
    FrameStatus,
    RunState,
    RunStatus,
    TimerInfo,
    TimerPurpose,
)

# Errors that end the run at once: retrying or catching them would only run into the limit again.
_UNCATCHABLE = frozenset({STEP_LIMIT_EXCEEDED, STATE_SIZE_EXCEEDED, FLOW_CANCELED})
_ALL = frozenset({STATES_ALL, "States.ALL"})

_Fanning = ParallelState | MapState


def _matches(error_equals: list[str], error: str) -> bool:
    return error in error_equals or not _ALL.isdisjoint(error_equals)


class Runner:
    """Computes one step: call :meth:`begin` (a new run) or apply an event and :meth:`run`, then
    :meth:`finish` for the new state and the instructions. Frames ready to execute wait in ``queue``."""

    def __init__(
        self, definition: FlowDefinition, state: RunState, now: datetime, registry: ActionRegistry
    ) -> None:
        self.definition = definition
        self.state = state
        self.now = now
        self.registry = registry
        self.instructions: list[Instruction] = []
        self.queue: deque[str] = deque()
        state.updated_at = now

    # -- bookkeeping -------------------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self.state.status is RunStatus.ACTIVE

    def emit(self, instruction: Instruction) -> None:
        self.instructions.append(instruction)

    def log(self, code: str, description: str, frame: Frame | None = None, **details: Any) -> None:
        state_name = frame.current if frame is not None else None
        state_type = self.current(frame).type if frame is not None and frame.current is not None else None
        self.emit(
            LogEntry(
                code=code,
                description=description,
                branch=frame.id if frame is not None else "",
                state_name=state_name,
                state_type=state_type,
                details=redact(details, self.state.private_keys),
            )
        )

    def current(self, frame: Frame) -> State:
        assert frame.current is not None
        return self.definition.machine(frame.scope).states[frame.current]

    def note_private(self, names: list[str]) -> None:
        if names and not set(names) <= set(self.state.private_keys):
            self.state.private_keys = sorted(set(self.state.private_keys) | set(names))

    def set_timer(
        self, frame: Frame, timer_id: str, purpose: TimerPurpose, at: datetime, request_id: str | None = None
    ) -> None:
        info = TimerInfo(frame=frame.id, purpose=purpose, at=at, request_id=request_id)
        self.state.timers[timer_id] = info
        frame.timer_id = timer_id
        seconds = max(0.0, (at - self.now).total_seconds())
        self.emit(ScheduleWakeup(timer_id=timer_id, at=at, seconds=seconds, purpose=info.purpose))

    def clear_timer(self, frame: Frame) -> None:
        if frame.timer_id is not None:
            if self.state.timers.pop(frame.timer_id, None) is not None:
                self.emit(CancelWakeup(timer_id=frame.timer_id))
            frame.timer_id = None

    def store(self, frame: Frame, path: str | None, value: Any) -> None:
        """Write a result into the frame's data and enforce the size limit."""
        frame.data = paths.write(frame.data, path, value)
        size = len(json.dumps(frame.data, separators=(",", ":")))
        if size > self.state.limits.max_state_bytes:
            raise StatesError(
                STATE_SIZE_EXCEEDED,
                f"the run state grew to {size} bytes, over the limit of {self.state.limits.max_state_bytes}",
            )

    # -- driving -----------------------------------------------------------------------------------------

    def begin(self) -> None:
        document = redact(self.state.document, self.state.private_keys)
        self.emit(LogEntry(code="FlowStarted", description="the run started", details={"input": document}))
        self.queue.append("")
        self.run()

    def run(self) -> None:
        while self.queue and self.active:
            frame = self.state.frames.get(self.queue.popleft())
            while frame is not None and frame.status is FrameStatus.RUNNING and self.active:
                self.execute(frame)

    def finish(self) -> tuple[RunState, list[Instruction]]:
        if self.active:
            size = len(self.state.model_dump_json())
            if size > self.state.limits.max_state_bytes:
                limit = self.state.limits.max_state_bytes
                self.terminate(
                    STATE_SIZE_EXCEEDED, f"the run state grew to {size} bytes, over the limit of {limit}"
                )
        return self.state, self.instructions

    def execute(self, frame: Frame) -> None:
        """Execute (or retry) the frame's current state once."""
        self.state.steps += 1
        sdef = self.current(frame)
        if self.state.steps > self.state.limits.max_steps:
            self.terminate(
                STEP_LIMIT_EXCEEDED,
                f"the run executed {self.state.limits.max_steps} states without ending; "
                "look for a loop, or raise the step limit",
                frame.current,
            )
            return
        if frame.attempt == 0:
            frame.visit, frame.attempt, frame.retries, frame.entered_at = self.state.steps, 1, {}, self.now
            self.log(f"{sdef.type}Started", f"{sdef.type} state {frame.current!r} started", frame)
        try:
            if isinstance(sdef, PassState):
                self.run_pass(frame, sdef)
            elif isinstance(sdef, ExpressionEvalState):
                result, private = evaluate_parameters(sdef.parameters, frame.data, self.state.context)
                self.note_private(private)
                self.store(frame, sdef.result_path, result)
                self.completed(frame, sdef, output=result)
            elif isinstance(sdef, ChoiceState):
                self.run_choice(frame, sdef)
            elif isinstance(sdef, WaitState):
                self.run_wait(frame, sdef)
            elif isinstance(sdef, FailState):
                self.run_fail(frame, sdef)
            elif isinstance(sdef, ActionState):
                self.run_action(frame, sdef)
            elif isinstance(sdef, ParallelState):
                self.run_parallel(frame, sdef)
            else:
                self.run_map(frame, sdef)
        except StatesError as exc:
            self.state_failed(frame, exc.error, exc.cause)

    # -- states ------------------------------------------------------------------------------------------

    def run_pass(self, frame: Frame, sdef: PassState) -> None:
        if sdef.parameters is not None:
            result, private = evaluate_parameters(sdef.parameters, frame.data, self.state.context)
            self.note_private(private)
        elif sdef.has_result:
            result = copy.deepcopy(sdef.result)
        else:
            result = copy.deepcopy(paths.resolve(sdef.input_path or "$", frame.data, self.state.context))
        self.store(frame, sdef.result_path, result)
        self.completed(frame, sdef, output=result)

    def run_choice(self, frame: Frame, sdef: ChoiceState) -> None:
        target = choose(sdef, frame.data, self.state.context)
        if target is None:
            raise StatesError(
                NO_CHOICE_MATCHED, f"no rule of Choice state {frame.current!r} matched and it has no Default"
            )
        self.log(
            f"{sdef.type}Completed", f"Choice state {frame.current!r} chose {target!r}", frame, next=target
        )
        self.goto(frame, target)

    def run_wait(self, frame: Frame, sdef: WaitState) -> None:
        entered = frame.entered_at or self.now
        context = self.state.context
        if sdef.seconds is not None:
            due = entered + timedelta(seconds=sdef.seconds)
        elif sdef.seconds_path is not None:
            seconds = paths.resolve(sdef.seconds_path, frame.data, context)
            if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
                raise StatesError(
                    RUNTIME, f"SecondsPath {sdef.seconds_path!r} is {seconds!r}, not a number of seconds"
                )
            due = entered + timedelta(seconds=seconds)
        else:
            source = sdef.timestamp if sdef.timestamp is not None else sdef.timestamp_path
            raw = (
                sdef.timestamp
                if sdef.timestamp is not None
                else paths.resolve(str(source), frame.data, context)
            )
            parsed = parse_timestamp(raw)
            if parsed is None:
                raise StatesError(RUNTIME, f"{raw!r} (from {source!r}) is not an RFC 3339 timestamp")
            due = parsed
        if due <= self.now:
            self.completed(frame, sdef)
            return
        self.set_timer(frame, f"{self.state.run_id}.{frame.visit}.wait", "wait", due)
        frame.status = FrameStatus.WAITING

    def run_fail(self, frame: Frame, sdef: FailState) -> None:
        context = self.state.context
        error = sdef.error
        if sdef.error_path is not None:
            error = str(paths.resolve(sdef.error_path, frame.data, context))
        cause = sdef.cause
        if sdef.cause_path is not None:
            cause = str(paths.resolve(sdef.cause_path, frame.data, context))
        self.frame_failed(
            frame, error or "States.Fail", cause or f"the flow reached Fail state {frame.current!r}"
        )

    def run_action(self, frame: Frame, sdef: ActionState) -> None:
        if sdef.parameters is not None:
            body, private = evaluate_parameters(sdef.parameters, frame.data, self.state.context)
        else:
            body, private = (
                copy.deepcopy(paths.resolve(sdef.input_path or "$", frame.data, self.state.context)),
                [],
            )
        self.note_private(private)
        target = self.registry.resolve(sdef.action_url)
        if target.kind == "unknown":
            raise StatesError(ACTION_UNABLE_TO_RUN, f"{sdef.action_url!r} is not a known action")
        request_id = f"{self.state.run_id}.{frame.visit}.{frame.attempt}"
        timeout_at = self.now + timedelta(seconds=sdef.wait_time)
        self.state.actions[request_id] = frame.id
        frame.request_id = request_id
        frame.status = FrameStatus.WAITING
        self.emit(
            StartAction(
                request_id=request_id,
                branch=frame.id,
                state_name=str(frame.current),
                attempt=frame.attempt,
                action_url=sdef.action_url,
                provider=target.provider,
                dialect=target.dialect,
                parameters=body,
                private_keys=private,
                wait_time=sdef.wait_time,
                timeout_at=timeout_at,
                run_as=sdef.run_as,
                action_scope=sdef.action_scope,
                exception_on_action_failure=sdef.exception_on_action_failure,
            )
        )
        self.set_timer(frame, f"{request_id}.timeout", "timeout", timeout_at, request_id)

    def fan_input(self, frame: Frame, sdef: _Fanning) -> Any:
        if sdef.input_path is None and isinstance(sdef, ParallelState) and sdef.parameters is not None:
            value, private = evaluate_parameters(sdef.parameters, frame.data, self.state.context)
            self.note_private(private)
            return value
        return paths.resolve(sdef.input_path or "$", frame.data, self.state.context)

    def run_parallel(self, frame: Frame, sdef: ParallelState) -> None:
        source = self.fan_input(frame, sdef)
        frame.fan = FanOut(kind="parallel", total=len(sdef.branches), results=[None] * len(sdef.branches))
        frame.status = FrameStatus.WAITING
        for index in range(len(sdef.branches)):
            self.spawn(frame, index, copy.deepcopy(source), f"{frame.current}#{index}")

    def run_map(self, frame: Frame, sdef: MapState) -> None:
        source = self.fan_input(frame, sdef)
        items = paths.resolve(sdef.items_path, source, self.state.context)
        if not isinstance(items, list):
            raise StatesError(
                RUNTIME, f"ItemsPath {sdef.items_path!r} selects {type(items).__name__}, not an array"
            )
        inputs: list[Any] = []
        for index, item in enumerate(items):
            if sdef.item_selector is None:
                inputs.append(copy.deepcopy(item))
                continue
            # ASL's $$.Map.Item.Value / .Index (read here as $._context.Map.Item...) exist only while
            # the ItemSelector of that item is evaluated.
            context = {**self.state.context, "Map": {"Item": {"Index": index, "Value": item}}}
            value, private = evaluate_parameters(sdef.item_selector, source, context)
            self.note_private(private)
            inputs.append(value)
        if not inputs:
            self.store(frame, sdef.result_path, [])
            self.completed(frame, sdef, output=[])
            return
        frame.fan = FanOut(kind="map", total=len(inputs), inputs=inputs, results=[None] * len(inputs))
        frame.status = FrameStatus.WAITING
        self.launch_items(frame, sdef)

    def launch_items(self, frame: Frame, sdef: MapState) -> None:
        fan = frame.fan
        assert fan is not None
        limit = sdef.max_concurrency or fan.total
        while fan.launched < fan.total and len(fan.active) < limit:
            index = fan.launched
            fan.launched += 1
            item, fan.inputs[index] = fan.inputs[index], None  # the child owns it now
            self.spawn(frame, index, item, str(frame.current))

    def spawn(self, parent: Frame, index: int, data: Any, scope_part: str) -> None:
        name = scope_part.partition("#")[0]
        child_id = f"{parent.id}/" if parent.id else ""
        child_id += f"{name}[{index}]@{parent.visit}.{parent.attempt}"
        scope = [*parent.scope, scope_part]
        machine = self.definition.machine(scope)
        self.state.frames[child_id] = Frame(
            id=child_id, parent=parent.id, index=index, scope=scope, data=data, current=machine.start_at
        )
        assert parent.fan is not None
        parent.fan.active.append(child_id)
        self.queue.append(child_id)

    # -- transitions -------------------------------------------------------------------------------------

    def goto(self, frame: Frame, target: str) -> None:
        frame.current, frame.attempt, frame.retries, frame.status = target, 0, {}, FrameStatus.RUNNING
        frame.entered_at = None
        self.queue.append(frame.id)

    def completed(self, frame: Frame, sdef: State, *, output: Any = None) -> None:
        """The current state finished: log it, then follow ``Next`` or end the frame."""
        details = {"output": output} if output is not None else {}
        self.log(f"{sdef.type}Completed", f"{sdef.type} state {frame.current!r} completed", frame, **details)
        if isinstance(sdef, ChoiceState | FailState):  # pragma: no cover - they never complete this way
            return
        if sdef.end or sdef.next is None:
            self.frame_succeeded(frame)
        else:
            self.goto(frame, sdef.next)

    def frame_succeeded(self, frame: Frame) -> None:
        frame.status, frame.current = FrameStatus.SUCCEEDED, None
        if frame.parent is not None:
            self.child_finished(frame)
            return
        self.state.status = RunStatus.SUCCEEDED
        self.state.finished_at = self.now
        output = redact(frame.data, self.state.private_keys)
        self.emit(LogEntry(code="FlowSucceeded", description="the run succeeded", details={"output": output}))
        self.emit(RunSucceeded(output=output))

    def child_finished(self, child: Frame) -> None:
        assert child.parent is not None
        parent = self.state.frames[child.parent]
        fan = parent.fan
        assert fan is not None
        del self.state.frames[child.id]
        fan.active.remove(child.id)
        fan.results[child.index] = child.data
        fan.done += 1
        sdef = self.current(parent)
        assert isinstance(sdef, ParallelState | MapState)
        if isinstance(sdef, MapState):
            self.launch_items(parent, sdef)
        if fan.done < fan.total:
            return
        results, parent.fan = fan.results, None
        parent.status = FrameStatus.RUNNING
        try:
            self.store(parent, sdef.result_path, results)
        except StatesError as exc:
            self.state_failed(parent, exc.error, exc.cause)
            return
        self.completed(parent, sdef, output=results)

    def state_failed(self, frame: Frame, error: str, cause: str) -> None:
        """The current state raised ``error``: retry it, catch it, or fail the frame."""
        if error in _UNCATCHABLE:
            self.terminate(error, cause, frame.current)
            return
        sdef = self.current(frame)
        self.log(
            f"{sdef.type}Failed",
            f"{sdef.type} state {frame.current!r} failed: {error}",
            frame,
            error=error,
            cause=cause,
        )
        retriers = sdef.retry if isinstance(sdef, ActionState | ParallelState | MapState) else []
        catchers = sdef.catch if isinstance(sdef, ActionState | ParallelState | MapState) else []
        for index, retrier in enumerate(retriers):
            if not _matches(retrier.error_equals, error):
                continue
            used = frame.retries.get(str(index), 0)
            if used >= retrier.max_attempts:
                break  # ASL: the first matching retrier decides; once spent, the catchers take over
            frame.retries[str(index)] = used + 1
            delay = retrier.delay(used)
            self.log(
                f"{sdef.type}Retrying",
                f"retrying {frame.current!r} in {delay:g} s (retry {used + 1} of {retrier.max_attempts})",
                frame,
                error=error,
                delay_seconds=delay,
            )
            frame.attempt += 1
            if delay > 0:
                frame.status = FrameStatus.WAITING
                self.set_timer(
                    frame,
                    f"{self.state.run_id}.{frame.visit}.{frame.attempt}.retry",
                    "retry",
                    self.now + timedelta(seconds=delay),
                )
            else:
                frame.status = FrameStatus.RUNNING
                self.queue.append(frame.id)
            return
        for catcher in catchers:
            if not _matches(catcher.error_equals, error):
                continue
            try:
                self.store(frame, catcher.result_path, {"Error": error, "Cause": cause})
            except StatesError as exc:
                self.frame_failed(frame, exc.error, exc.cause)
                return
            self.log(
                f"{sdef.type}Caught", f"{error} caught; going to {catcher.next!r}", frame, next=catcher.next
            )
            self.goto(frame, catcher.next)
            return
        self.frame_failed(frame, error, cause)

    def frame_failed(self, frame: Frame, error: str, cause: str) -> None:
        state_name = frame.current
        frame.status = FrameStatus.FAILED
        if frame.parent is None:
            self.terminate(error, cause, state_name)
            return
        parent = self.state.frames[frame.parent]
        self.cancel_frame(frame)
        self.state.frames.pop(frame.id, None)
        self.cancel_frame(parent)  # the other branches/iterations are pointless now
        parent.status = FrameStatus.RUNNING
        self.state_failed(parent, error, cause)

    def cancel_frame(self, frame: Frame) -> None:
        """Cancel the frame's action, timer and children (recursively); drop the children's frames."""
        if frame.request_id is not None and self.state.actions.pop(frame.request_id, None) is not None:
            self.emit(CancelAction(request_id=frame.request_id, reason="no longer needed"))
        frame.request_id = None
        self.clear_timer(frame)
        if frame.fan is not None:
            for child_id in list(frame.fan.active):
                child = self.state.frames.pop(child_id, None)
                if child is not None:
                    self.cancel_frame(child)
            frame.fan = None

    def terminate(self, error: str, cause: str, state_name: str | None = None) -> None:
        """End the run as FAILED: cancel everything outstanding and report."""
        self.cancel_frame(self.state.frames[""])
        for request_id in list(self.state.actions):  # defensive: nothing should be left
            self.emit(CancelAction(request_id=request_id, reason="the run ended"))
        for timer_id in list(self.state.timers):
            self.emit(CancelWakeup(timer_id=timer_id))
        self.state.actions.clear()
        self.state.timers.clear()
        self.state.status = RunStatus.FAILED
        self.state.frames[""].status = FrameStatus.FAILED
        self.state.error, self.state.cause = error, cause
        self.state.finished_at = self.now
        code = "FlowCanceled" if error == FLOW_CANCELED else "FlowFailed"
        self.emit(
            LogEntry(
                code=code,
                description=f"the run failed: {error}",
                state_name=state_name,
                details={"error": error, "cause": cause},
            )
        )
        self.emit(RunFailed(error=error, cause=cause, state_name=state_name))

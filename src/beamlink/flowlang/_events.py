"""How each event changes a run (the "events in" half of the step function)."""

from __future__ import annotations

import json

from beamlink.flowlang._runner import Runner
from beamlink.flowlang.errors import StatesError
from beamlink.flowlang.expressions import to_json
from beamlink.flowlang.messages import (
    ACTION_FAILED,
    ACTION_TIMEOUT,
    FLOW_CANCELED,
    ActionCompleted,
    ActionFailed,
    CancelAction,
    CancelRun,
    Event,
    ScheduleWakeup,
    TimerFired,
)
from beamlink.flowlang.models import ActionState
from beamlink.flowlang.runstate import FrameStatus

__all__ = ["apply_event"]


def apply_event(runner: Runner, event: Event) -> None:
    """Apply one event to the runner's run state, then execute whatever became ready."""
    if isinstance(event, CancelRun):
        runner.terminate(FLOW_CANCELED, event.reason)
    elif isinstance(event, TimerFired):
        _on_timer(runner, event)
    else:
        _on_action(runner, event)
    runner.run()


def _on_action(runner: Runner, event: ActionCompleted | ActionFailed) -> None:
    frame_id = runner.state.actions.pop(event.request_id, None)
    frame = runner.state.frames.get(frame_id) if frame_id is not None else None
    if frame is None or frame.request_id != event.request_id:
        return  # stale or repeated: the action was canceled, timed out, or already reported
    frame.request_id = None
    runner.clear_timer(frame)
    sdef = runner.current(frame)
    assert isinstance(sdef, ActionState)
    frame.status = FrameStatus.RUNNING
    runner.queue.append(frame.id)
    try:
        if isinstance(event, ActionCompleted):
            output = to_json(event.output, what="the action's output")
        elif event.error == ACTION_FAILED and not sdef.exception_on_action_failure:
            # Globus: with ExceptionOnActionFailure false a FAILED status is just the result.
            fallback = {"status": "FAILED", "details": {"error": event.error, "cause": event.cause}}
            output = to_json(
                event.output if event.output is not None else fallback, what="the action's output"
            )
        else:
            raise StatesError(event.error, event.cause or _describe_failure(event))
        runner.store(frame, sdef.result_path, output)
    except StatesError as exc:
        runner.state_failed(frame, exc.error, exc.cause)
        return
    runner.completed(frame, sdef, output=output)


def _describe_failure(event: ActionFailed) -> str:
    if event.output is None:
        return "the action failed"
    return json.dumps(event.output, sort_keys=True, default=str)[:4096]


def _on_timer(runner: Runner, event: TimerFired) -> None:
    info = runner.state.timers.get(event.timer_id)
    if info is None:
        return  # stale: canceled, or already fired
    if runner.now < info.at:
        # Early: ask again rather than trust it, so a clock-skewed engine cannot shorten a Wait.
        runner.emit(
            ScheduleWakeup(
                timer_id=event.timer_id,
                at=info.at,
                seconds=(info.at - runner.now).total_seconds(),
                purpose=info.purpose,
            )
        )
        return
    del runner.state.timers[event.timer_id]
    frame = runner.state.frames.get(info.frame)
    if frame is None or frame.timer_id != event.timer_id:
        return
    frame.timer_id = None
    frame.status = FrameStatus.RUNNING
    runner.queue.append(frame.id)
    if info.purpose == "wait":
        runner.completed(frame, runner.current(frame))
    elif info.purpose == "timeout" and info.request_id is not None:
        if runner.state.actions.pop(info.request_id, None) is not None:
            runner.emit(CancelAction(request_id=info.request_id, reason="WaitTime exceeded"))
        frame.request_id = None
        sdef = runner.current(frame)
        wait = sdef.wait_time if isinstance(sdef, ActionState) else 0
        runner.state_failed(frame, ACTION_TIMEOUT, f"the action did not finish within WaitTime ({wait:g} s)")
    # purpose "retry": the frame is RUNNING again and re-executes its state with the next attempt

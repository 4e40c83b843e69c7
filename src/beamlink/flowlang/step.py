"""The pure step function: events in, instructions out (in the style of dask distributed's scheduler).

::

    state, instructions = start(definition, run_input, context, now=now)
    # persist state + instructions, then carry the instructions out
    state, instructions = step(definition, state, ActionCompleted(request_id=..., output=...), now=now)

Both functions leave their arguments untouched and return a new :class:`RunState`; given the same
arguments they return the same result, so an engine that crashed between computing a step and storing
it can simply compute it again. Request and timer ids derive from the run id, the run's step counter and
the attempt number, so re-issued instructions are idempotent at the action provider.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from beamlink.errors import InvalidInput
from beamlink.flowlang._events import apply_event
from beamlink.flowlang._runner import Runner
from beamlink.flowlang.actions import DEFAULT_REGISTRY, ActionRegistry
from beamlink.flowlang.messages import Event, Instruction
from beamlink.flowlang.models import FlowDefinition
from beamlink.flowlang.parse import load_definition
from beamlink.flowlang.paths import CONTEXT_KEY
from beamlink.flowlang.runstate import TERMINAL_RUN_STATUSES, Frame, Limits, RunContext, RunState

__all__ = ["start", "step"]


def _utc(now: datetime) -> datetime:
    # A naive "now" is taken as UTC rather than as local time: runs move between hosts.
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _definition(definition: FlowDefinition | Mapping[str, Any] | str) -> FlowDefinition:
    return definition if isinstance(definition, FlowDefinition) else load_definition(definition)


def start(
    definition: FlowDefinition | Mapping[str, Any] | str,
    run_input: Mapping[str, Any],
    context: RunContext | Mapping[str, Any],
    *,
    now: datetime,
    limits: Limits | None = None,
    registry: ActionRegistry | None = None,
) -> tuple[RunState, list[Instruction]]:
    """Begin a run: execute states up to the first action, wait or end.

    ``run_input`` must be a JSON object (it becomes the run state); ``context`` gives ``$._context``
    (``run_id`` at least). Raises ``InvalidInput`` for an input that is not a JSON object and
    ``FlowInvalid`` for a definition given as text or a document that does not validate.
    """
    flow = _definition(definition)
    if not isinstance(run_input, Mapping):
        raise InvalidInput("the run input must be a JSON object", details={"field": "input"})
    if CONTEXT_KEY in run_input:
        raise InvalidInput(
            "the run input may not set _context: it is filled in by the service",
            details={"field": f"input.{CONTEXT_KEY}"},
        )
    try:
        data = json.loads(json.dumps(run_input, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"the run input is not JSON: {exc}", details={"field": "input"}) from None
    run_context = context if isinstance(context, RunContext) else RunContext.model_validate(context)
    moment = _utc(now)
    state = RunState(
        run_id=run_context.run_id,
        context=run_context.model_dump(mode="json", exclude_none=True),
        limits=limits or Limits(),
        frames={"": Frame(id="", data=data, current=flow.start_at)},
        started_at=moment,
        updated_at=moment,
    )
    runner = Runner(flow, state, moment, registry or DEFAULT_REGISTRY)
    runner.begin()
    return runner.finish()


def step(
    definition: FlowDefinition | Mapping[str, Any] | str,
    run_state: RunState,
    event: Event,
    *,
    now: datetime,
    registry: ActionRegistry | None = None,
) -> tuple[RunState, list[Instruction]]:
    """Apply one event to a run and return the new state and what to do next.

    Events for unknown or finished requests and timers are ignored (no instructions), so delivering an
    event twice is harmless; so is any event once the run has ended.
    """
    if run_state.status in TERMINAL_RUN_STATUSES:
        return run_state, []
    flow = _definition(definition)
    state = run_state.model_copy(deep=True)
    runner = Runner(flow, state, _utc(now), registry or DEFAULT_REGISTRY)
    apply_event(runner, event)
    return runner.finish()

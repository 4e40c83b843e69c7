"""Shared fixtures: a small driver that plays the engine's part around the pure step function."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from beamlink.flowlang import (
    ActionCompleted,
    ActionFailed,
    Event,
    FlowDefinition,
    Instruction,
    Limits,
    RunFailed,
    RunState,
    RunSucceeded,
    ScheduleWakeup,
    StartAction,
    TimerFired,
    instruction_from_dict,
    load_definition,
    start,
    step,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
# Byte-for-byte copies of /work/shared/reference/globus-flows: Globus flows that must run unchanged.
REFERENCE_FLOWS = Path(__file__).parent / "data"


def status_doc(request_id: str, details: Any, status: str = "SUCCEEDED") -> dict[str, Any]:
    """An action status document as an action provider would return it."""
    return {"action_id": "a-" + request_id, "status": status, "details": details}


class Run:
    """Drives one run: keeps the state, round-trips it through JSON on every step (as the engine's
    database would) and remembers every instruction."""

    def __init__(
        self,
        definition: Mapping[str, Any] | FlowDefinition,
        run_input: Mapping[str, Any],
        *,
        context: Mapping[str, Any] | None = None,
        limits: Limits | None = None,
        now: datetime = T0,
    ) -> None:
        self.definition = load_definition(definition)
        self.now = now
        self.state, self.instructions = start(
            self.definition, run_input, context or {"run_id": "run-1"}, now=now, limits=limits
        )
        self.history: list[Instruction] = list(self.instructions)
        self._check_serialisable()

    def _check_serialisable(self) -> None:
        for instruction in self.instructions:
            assert instruction_from_dict(json.loads(instruction.model_dump_json())) == instruction

    def send(self, event: Event, *, now: datetime | None = None) -> list[Instruction]:
        self.now = now or self.now
        persisted = RunState.model_validate_json(self.state.model_dump_json())
        self.state, self.instructions = step(self.definition, persisted, event, now=self.now)
        self.history.extend(self.instructions)
        self._check_serialisable()
        return self.instructions

    def started(self) -> list[StartAction]:
        """StartAction instructions of the last step."""
        return [i for i in self.instructions if isinstance(i, StartAction)]

    def only_action(self) -> StartAction:
        actions = self.started()
        assert len(actions) == 1, [a.state_name for a in actions]
        return actions[0]

    def complete(self, details: Any = None, *, request_id: str | None = None) -> list[Instruction]:
        request_id = request_id or self.only_action().request_id
        return self.send(ActionCompleted(request_id=request_id, output=status_doc(request_id, details)))

    def fail(self, error: str = "ActionFailedException", cause: str = "boom", **kw: Any) -> list[Instruction]:
        request_id = kw.pop("request_id", None) or self.only_action().request_id
        return self.send(ActionFailed(request_id=request_id, error=error, cause=cause, **kw))

    def wakeups(self) -> list[ScheduleWakeup]:
        return [i for i in self.instructions if isinstance(i, ScheduleWakeup)]

    def fire(self, purpose: str) -> list[Instruction]:
        """Fire the (single) wakeup of ``purpose`` scheduled by the last step, at its due time."""
        (wakeup,) = [w for w in self.wakeups() if w.purpose == purpose]
        return self.send(TimerFired(timer_id=wakeup.timer_id), now=max(self.now, wakeup.at))

    def later(self, seconds: float) -> datetime:
        return self.now + timedelta(seconds=seconds)

    @property
    def outcome(self) -> RunSucceeded | RunFailed | None:
        ends = [i for i in self.history if isinstance(i, RunSucceeded | RunFailed)]
        assert len(ends) <= 1, ends
        return ends[0] if ends else None

    @property
    def output(self) -> Any:
        outcome = self.outcome
        assert isinstance(outcome, RunSucceeded), outcome
        return outcome.output

    @property
    def failure(self) -> RunFailed:
        outcome = self.outcome
        assert isinstance(outcome, RunFailed), outcome
        return outcome

    def codes(self) -> list[str]:
        """Log codes of the whole run so far."""
        return [i.code for i in self.history if i.kind == "log"]


@pytest.fixture
def t0() -> datetime:
    """The time every driven run starts at (the driver's default ``now``)."""
    return T0


@pytest.fixture
def run() -> Callable[..., Run]:
    """Factory: ``run(definition, input, ...)`` starts a driven run."""
    return Run


def machine(states: dict[str, Any], start_at: str | None = None) -> dict[str, Any]:
    """A definition from its states (StartAt defaults to the first state)."""
    return {"StartAt": start_at or next(iter(states)), "States": states}


@pytest.fixture
def flow() -> Callable[..., dict[str, Any]]:
    """Factory: ``flow({"A": {...}, ...})`` builds a definition whose StartAt is the first state."""
    return machine


@pytest.fixture
def reference_flow() -> Callable[[str], dict[str, Any]]:
    """Load one of the two Globus reference flows by file stem."""

    def load(name: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((REFERENCE_FLOWS / f"{name}.json").read_text())
        return data

    return load

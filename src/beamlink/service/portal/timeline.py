"""A run's step timeline, folded from its event log: pure, fed one event at a time.

Each time a state is entered (``<Type>Started``) a step begins; ``Completed`` ends it, ``Failed`` marks it
failed unless a ``Retrying`` follows (the same step goes on) or a ``Caught`` sends the run elsewhere. The
server renders the steps it has folded so far and the live stream sends each step again whenever it
changes, keyed, so the page updates a step in place or appends a new one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from beamlink.protocol.flows import RunEvent

__all__ = ["Step", "Timeline"]

_FLOW_CODES = {
    "FlowStarted": "running",
    "FlowSucceeded": "succeeded",
    "FlowFailed": "failed",
    "FlowCanceled": "canceled",
}


@dataclass
class Step:
    key: str
    name: str
    state_type: str
    status: str
    started_at: datetime
    ended_at: datetime | None = None
    description: str = ""
    attempts: int = 1
    branch: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "state_type": self.state_type,
            "status": self.status,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "description": self.description,
            "attempts": self.attempts,
            "branch": self.branch,
        }


@dataclass
class Timeline:
    steps: list[Step] = field(default_factory=list)
    _open: dict[tuple[str, str], Step] = field(default_factory=dict)
    _visits: dict[tuple[str, str], int] = field(default_factory=dict)

    def feed(self, event: RunEvent) -> list[Step]:
        """Apply one event; returns the steps it created or changed."""
        if event.code in _FLOW_CODES:
            return self._flow(event)
        if not event.state_name:
            return []
        where = (event.branch, event.state_name)
        kind = event.code.removeprefix(event.state_type or "")
        step = self._open.get(where)
        if kind == "Started" and step is not None and step.status == "retrying":
            step.status = "running"  # the next attempt of the same step
        elif kind == "Started" or step is None:
            visit = self._visits.get(where, 0) + 1
            self._visits[where] = visit
            step = Step(
                key=f"{event.branch}/{event.state_name}/{visit}",
                name=event.state_name,
                state_type=event.state_type or "",
                status="running",
                started_at=event.time,
                branch=event.branch,
            )
            self.steps.append(step)
            self._open[where] = step
        step.description = event.description
        if kind == "Completed":
            self._close(where, step, "succeeded", event.time)
        elif kind == "Failed":
            step.status = "failed"
            step.ended_at = event.time
        elif kind == "Retrying":
            step.status = "retrying"
            step.ended_at = None
            step.attempts += 1
        elif kind == "Caught":
            self._close(where, step, "caught", event.time)
        return [step]

    def _close(self, where: tuple[str, str], step: Step, status: str, at: datetime) -> None:
        step.status = status
        step.ended_at = at
        self._open.pop(where, None)

    def _flow(self, event: RunEvent) -> list[Step]:
        status = _FLOW_CODES[event.code]
        name = "Start" if event.code == "FlowStarted" else "End"
        step = Step(
            key=f"flow/{name}",
            name=name,
            state_type="Flow",
            status="succeeded" if event.code == "FlowStarted" else status,
            started_at=event.time,
            ended_at=event.time,
            description=event.description,
        )
        changed = [step]
        if event.code != "FlowStarted":
            # Whatever was still running when the run ended (other branches, the step being canceled)
            # stopped with it.
            for where, open_step in list(self._open.items()):
                if open_step.status in ("running", "retrying"):
                    # The state the run failed in failed; anything else running was stopped.
                    failed_here = status == "failed" and open_step.name == event.state_name
                    self._close(where, open_step, "failed" if failed_here else "canceled", event.time)
                    changed.append(open_step)
        self.steps.append(step)
        return changed

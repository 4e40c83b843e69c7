"""Flows and runs through the service: store, validate, start, follow, cancel.

Definitions may be given as a dict, or as JSON/YAML text (a file's contents): they are parsed here so
the service receives a document, and a syntax error is reported before anything is sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from beamlink.errors import InvalidInput, WaitTimeout
from beamlink.flowlang.parse import parse_document
from beamlink.protocol.flows import (
    FlowCreate,
    FlowInfo,
    FlowUpdate,
    FlowValidation,
    LogPage,
    RunCreate,
    RunEvent,
    RunInfo,
    RunUpdate,
)
from beamlink.sdk._base import BaseClient
from beamlink.sdk._base import quote_segment as q

__all__ = ["TERMINAL_RUN_STATUSES", "FlowsMixin"]

TERMINAL_RUN_STATUSES = frozenset({"SUCCEEDED", "FAILED", "ENDED"})


def _document(definition: Mapping[str, Any] | str | bytes) -> dict[str, Any]:
    document = parse_document(definition) if isinstance(definition, str | bytes) else dict(definition)
    if not isinstance(document, dict):
        raise InvalidInput("a flow definition must be an object with StartAt and States")
    return document


class FlowsMixin(BaseClient):
    # -- flows ------------------------------------------------------------------------------------

    def create_flow(
        self,
        title: str,
        definition: Mapping[str, Any] | str | bytes,
        *,
        input_schema: Mapping[str, Any] | None = None,
        subtitle: str | None = None,
        description: str | None = None,
        keywords: Sequence[str] = (),
        **roles: Sequence[str],
    ) -> FlowInfo:
        """Store a flow. ``roles`` are Globus's lists: flow_administrators, flow_starters, flow_viewers,
        run_managers, run_monitors (entries 'user:NAME', 'group:NAME', 'public', ...)."""
        body = FlowCreate(
            title=title,
            definition=_document(definition),
            input_schema=dict(input_schema) if input_schema is not None else None,
            subtitle=subtitle,
            description=description,
            keywords=list(keywords),
            **{name: list(value) for name, value in roles.items()},
        )
        return FlowInfo.model_validate(
            self.request("POST", "/v1/flows", json=body.model_dump(mode="json", exclude_none=True))
        )

    def update_flow(self, flow_id: str, **changes: Any) -> FlowInfo:
        """Change the given fields (title, definition, input_schema, role lists, ...)."""
        if "definition" in changes and changes["definition"] is not None:
            changes["definition"] = _document(changes["definition"])
        body = FlowUpdate.model_validate(changes)
        return FlowInfo.model_validate(
            self.request(
                "PUT", f"/v1/flows/{q(flow_id)}", json=body.model_dump(mode="json", exclude_unset=True)
            )
        )

    def validate_flow(
        self, definition: Mapping[str, Any] | str | bytes, *, input_schema: Mapping[str, Any] | None = None
    ) -> FlowValidation:
        """Every problem of a definition, each with its JSON pointer and a hint (never raises for them)."""
        body = {"definition": _document(definition), "input_schema": input_schema}
        return FlowValidation.model_validate(self.request("POST", "/v1/flows/validate", json=body))

    def get_flow(self, flow_id: str) -> FlowInfo:
        return self._get_model(FlowInfo, f"/v1/flows/{q(flow_id)}")

    def list_flows(self, *, owned: bool = False, page_size: int | None = None) -> list[FlowInfo]:
        return list(self._walk(FlowInfo, "/v1/flows", page_size=page_size, owned=owned or None))

    def delete_flow(self, flow_id: str) -> None:
        self.request("DELETE", f"/v1/flows/{q(flow_id)}")

    # -- runs -------------------------------------------------------------------------------------

    def run_flow(
        self,
        flow_id: str,
        body: Mapping[str, Any] | None = None,
        *,
        label: str | None = None,
        tags: Sequence[str] = (),
        run_managers: Sequence[str] = (),
        run_monitors: Sequence[str] = (),
        request_id: str | None = None,
    ) -> RunInfo:
        """Start a run with ``body`` as its input; the same ``request_id`` twice starts one run."""
        create = RunCreate(
            body=dict(body or {}),
            label=label,
            tags=list(tags),
            run_managers=list(run_managers),
            run_monitors=list(run_monitors),
            request_id=request_id,
        )
        return RunInfo.model_validate(
            self.request("POST", f"/v1/flows/{q(flow_id)}/run", json=create.model_dump(mode="json"))
        )

    def get_run(self, run_id: str) -> RunInfo:
        return self._get_model(RunInfo, f"/v1/runs/{q(run_id)}")

    def list_runs(
        self, *, status: str | None = None, flow_id: str | None = None, page_size: int | None = None
    ) -> list[RunInfo]:
        return list(self._walk(RunInfo, "/v1/runs", page_size=page_size, status=status, flow_id=flow_id))

    def run_log(self, run_id: str, *, after: int = 0, limit: int = 100) -> LogPage:
        return LogPage.model_validate(
            self.request("GET", f"/v1/runs/{q(run_id)}/log", params={"after": after, "limit": limit})
        )

    def iter_run_log(self, run_id: str, *, after: int = 0) -> Iterator[RunEvent]:
        """Every log entry after ``after`` that exists now."""
        while True:
            page = self.run_log(run_id, after=after, limit=1000)
            yield from page.entries
            if not page.has_next_page or page.marker is None:
                return
            after = page.marker

    def cancel_run(self, run_id: str) -> RunInfo:
        return RunInfo.model_validate(self.request("POST", f"/v1/runs/{q(run_id)}/cancel"))

    def resume_run(self, run_id: str) -> RunInfo:
        return RunInfo.model_validate(self.request("POST", f"/v1/runs/{q(run_id)}/resume"))

    def release_run(self, run_id: str) -> RunInfo:
        return RunInfo.model_validate(self.request("POST", f"/v1/runs/{q(run_id)}/release"))

    def update_run(self, run_id: str, **changes: Any) -> RunInfo:
        body = RunUpdate.model_validate(changes)
        return RunInfo.model_validate(
            self.request(
                "PUT", f"/v1/runs/{q(run_id)}", json=body.model_dump(mode="json", exclude_unset=True)
            )
        )

    def wait_run(
        self,
        run_id: str,
        *,
        timeout: float | None = None,
        poll: float = 0.2,
        on_event: Callable[[RunEvent], None] | None = None,
    ) -> RunInfo:
        """Wait for the run to end (SUCCEEDED, FAILED or ENDED); ``on_event`` sees each new log entry."""
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = 0
        while True:
            info = self.get_run(run_id)
            if on_event is not None:
                for event in self.iter_run_log(run_id, after=seen):
                    seen = event.seq
                    on_event(event)
            if info.status in TERMINAL_RUN_STATUSES:
                return info
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(
                    f"run {run_id} is still {info.status} after {timeout:g} s ({info.display_status})",
                    details={"run_id": run_id, "status": info.status},
                )
            time.sleep(poll)

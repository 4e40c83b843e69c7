"""Timers (runs of a flow on a schedule) and triggers (a run for each new file in a collection)."""

from __future__ import annotations

from typing import Any

from beamlink.protocol.flows import TimerCreate, TimerInfo, TimerSchedule, TriggerCreate, TriggerInfo
from beamlink.sdk._base import BaseClient
from beamlink.sdk._base import quote_segment as q

__all__ = ["SchedulesMixin"]


class SchedulesMixin(BaseClient):
    # -- timers -----------------------------------------------------------------------------------

    def create_timer(
        self,
        flow_id: str,
        name: str,
        *,
        schedule: dict[str, Any] | TimerSchedule,
        body: dict[str, Any] | None = None,
        run_label: str | None = None,
    ) -> TimerInfo:
        """Start runs of ``flow_id`` with input ``body``: ``{"type": "once", "at": ...}``,
        ``{"type": "interval", "every_seconds": 60}`` or ``{"type": "cron", "cron": "*/5 * * * *"}``,
        each with an optional ``start`` and ``end``."""
        request = TimerCreate(
            flow_id=flow_id,
            name=name,
            schedule=TimerSchedule.model_validate(schedule),
            body=body or {},
            run_label=run_label,
        )
        return TimerInfo.model_validate(
            self.request("POST", "/v1/timers", json=request.model_dump(mode="json"))
        )

    def list_timers(
        self,
        *,
        flow_id: str | None = None,
        status: str | None = None,
        all_users: bool = False,
        page_size: int | None = None,
    ) -> list[TimerInfo]:
        """Your timers (``all_users``: everyone's, for admins)."""
        return list(
            self._walk(
                TimerInfo,
                "/v1/timers",
                page_size=page_size,
                flow_id=flow_id,
                status=status,
                all_users=all_users or None,
            )
        )

    def get_timer(self, timer_id: str) -> TimerInfo:
        return self._get_model(TimerInfo, f"/v1/timers/{q(timer_id)}")

    def pause_timer(self, timer_id: str) -> TimerInfo:
        return TimerInfo.model_validate(self.request("POST", f"/v1/timers/{q(timer_id)}/pause"))

    def resume_timer(self, timer_id: str) -> TimerInfo:
        return TimerInfo.model_validate(self.request("POST", f"/v1/timers/{q(timer_id)}/resume"))

    def delete_timer(self, timer_id: str) -> None:
        self.request("DELETE", f"/v1/timers/{q(timer_id)}")

    # -- triggers ---------------------------------------------------------------------------------

    def create_trigger(
        self,
        flow_id: str,
        name: str,
        *,
        collection: str,
        path: str = "/",
        glob: str = "*",
        recursive: bool = False,
        quiet_seconds: float = 5.0,
        poll_seconds: float = 2.0,
        body: dict[str, Any] | None = None,
        run_label: str | None = None,
    ) -> TriggerInfo:
        """Start a run of ``flow_id`` for each new file matching ``glob`` under ``path`` of ``collection``,
        once it has not changed for ``quiet_seconds``. In ``body``, ``{path}``, ``{name}``,
        ``{collection}`` and ``{collection_id}`` are filled in with the file's. Files already there
        start no run."""
        request = TriggerCreate(
            flow_id=flow_id,
            name=name,
            collection=collection,
            path=path,
            glob=glob,
            recursive=recursive,
            quiet_seconds=quiet_seconds,
            poll_seconds=poll_seconds,
            body=body or {},
            run_label=run_label,
        )
        return TriggerInfo.model_validate(
            self.request("POST", "/v1/triggers", json=request.model_dump(mode="json"))
        )

    def list_triggers(
        self,
        *,
        flow_id: str | None = None,
        status: str | None = None,
        all_users: bool = False,
        page_size: int | None = None,
    ) -> list[TriggerInfo]:
        """Your triggers (``all_users``: everyone's, for admins)."""
        return list(
            self._walk(
                TriggerInfo,
                "/v1/triggers",
                page_size=page_size,
                flow_id=flow_id,
                status=status,
                all_users=all_users or None,
            )
        )

    def get_trigger(self, trigger_id: str) -> TriggerInfo:
        return self._get_model(TriggerInfo, f"/v1/triggers/{q(trigger_id)}")

    def pause_trigger(self, trigger_id: str) -> TriggerInfo:
        return TriggerInfo.model_validate(self.request("POST", f"/v1/triggers/{q(trigger_id)}/pause"))

    def resume_trigger(self, trigger_id: str) -> TriggerInfo:
        return TriggerInfo.model_validate(self.request("POST", f"/v1/triggers/{q(trigger_id)}/resume"))

    def delete_trigger(self, trigger_id: str) -> None:
        self.request("DELETE", f"/v1/triggers/{q(trigger_id)}")

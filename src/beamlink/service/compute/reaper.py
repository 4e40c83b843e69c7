"""The compute housekeeping loop: tasks of endpoints gone too long, and results and submission ids past
their time to live."""

from __future__ import annotations

import asyncio
import logging

import anyio.to_thread

from beamlink.protocol.compute import TaskResult
from beamlink.service.compute import tasks
from beamlink.service.state import ServiceState

__all__ = ["run_reaper", "sweep"]

log = logging.getLogger(__name__)


def sweep(state: ServiceState) -> list[TaskResult]:
    """One pass; returns the tasks it failed (for the hub to publish)."""
    with state.db.transaction() as session:
        failed = tasks.lose_tasks_of_absent_endpoints(session, state.settings.endpoint_lost_grace_seconds)
        expired = tasks.expire_results(session)
        forgotten = tasks.expire_submissions(session, state.settings.compute_submission_ttl_seconds)
    if failed:
        log.warning("%d task(s) failed with EndpointLost", len(failed))
    if expired:
        log.info("%d task result(s) expired", expired)
    if forgotten:
        log.info("%d submission id(s) forgotten", forgotten)
    return failed


async def run_reaper(state: ServiceState) -> None:
    period = max(0.2, min(5.0, state.settings.endpoint_lost_grace_seconds / 4))
    while True:
        await asyncio.sleep(period)
        try:
            state.hub.publish(await anyio.to_thread.run_sync(sweep, state))
        except Exception:
            log.exception("compute reaper pass failed; trying again in %.1f s", period)

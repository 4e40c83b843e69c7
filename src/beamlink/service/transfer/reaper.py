"""Transfer housekeeping: tasks past their deadline fail, and the agents running them are told to stop."""

from __future__ import annotations

import asyncio
import logging

import anyio.to_thread

from beamlink.service.state import ServiceState
from beamlink.service.transfer import transfers

__all__ = ["run_transfer_reaper", "sweep"]

log = logging.getLogger(__name__)
PERIOD_SECONDS = 1.0


def sweep(state: ServiceState) -> tuple[list[str], list[tuple[str, str]]]:
    """One pass; returns the tasks that failed, and (collection, task) pairs whose agents must stop."""
    with state.db.transaction() as session:
        expired = transfers.expire_deadlines(session)
        stop = [(t.destination_id, t.id) for t in expired if t.held]
    if expired:
        log.warning("%d transfer task(s) failed past their deadline", len(expired))
    return [t.id for t in expired], stop


async def run_transfer_reaper(state: ServiceState) -> None:
    while True:
        await asyncio.sleep(PERIOD_SECONDS)
        try:
            expired, stop = await anyio.to_thread.run_sync(sweep, state)
            if expired:
                state.collections.changed(expired)
            for collection_id, transfer_id in stop:
                await state.collections.cancel(collection_id, transfer_id, "its deadline passed")
        except Exception:
            log.exception("transfer reaper pass failed; trying again in %.1f s", PERIOD_SECONDS)

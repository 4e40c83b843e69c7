"""The application factory: settings in, a FastAPI app out. Nothing is built at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import beamlink
from beamlink.config import Settings, load_settings
from beamlink.service import agent_rows, portal
from beamlink.service.api import actions as actions_api
from beamlink.service.api import agents, auth, clients, compute, groups, health, users
from beamlink.service.api import collections as collections_api
from beamlink.service.api import flows as flows_api
from beamlink.service.api import search as search_api
from beamlink.service.api import timers as timers_api
from beamlink.service.api import transfers as transfers_api
from beamlink.service.api.errors import install_error_handlers
from beamlink.service.api.middleware import RequestContextMiddleware
from beamlink.service.bootstrap import prepare_database
from beamlink.service.compute.models import Endpoint
from beamlink.service.compute.reaper import run_reaper
from beamlink.service.db.engine import Database
from beamlink.service.flows.timers import run_timer_loop
from beamlink.service.flows.triggers import run_trigger_loop
from beamlink.service.state import ServiceState
from beamlink.service.transfer.models import Collection
from beamlink.service.transfer.reaper import run_transfer_reaper

__all__ = ["create_app"]

log = logging.getLogger(__name__)

ROUTERS = (
    health.router,
    auth.router,
    users.router,
    clients.router,
    groups.router,
    compute.functions_router,
    compute.endpoints_router,
    compute.tasks_router,
    collections_api.router,
    transfers_api.transfers_router,
    transfers_api.deletes_router,
    flows_api.flows_router,
    flows_api.runs_router,
    actions_api.router,
    timers_api.timers_router,
    timers_api.triggers_router,
    search_api.router,
    agents.router,
    *portal.ROUTERS,
)


def create_app(settings: Settings | None = None, *, prepare: bool = True) -> FastAPI:
    """Build the service. ``prepare`` migrates and bootstraps the database on startup (``serve`` has
    already done so before binding, and passes False)."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database(settings.effective_database_url)
        if prepare:
            prepare_database(settings, database)
        state = ServiceState(settings=settings, db=database)
        state.hub.bind(asyncio.get_running_loop())
        with database.transaction() as session:
            for model in (Endpoint, Collection):
                agent_rows.mark_all_disconnected(session, model)
        app.state.beamlink = state
        await state.flows.start()
        reapers = [
            asyncio.create_task(run_reaper(state)),
            asyncio.create_task(run_transfer_reaper(state)),
            asyncio.create_task(run_timer_loop(state)),
            asyncio.create_task(run_trigger_loop(state)),
        ]
        log.info(
            "beamlink %s ready at %s (database: %s)",
            beamlink.__version__,
            settings.effective_public_url,
            database.dialect,
        )
        try:
            yield
        finally:
            await state.flows.stop()
            for reaper in reapers:
                reaper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reaper
            log.info("shutting down: closing the database")
            database.dispose()
            log.info("shutdown complete")

    app = FastAPI(
        title="beamlink",
        version=beamlink.__version__,
        description="Link instruments to computation: collections, transfers, compute endpoints, flows, "
        "search. Errors are `{code, message, details}`; objects you may not see answer 404.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.mount(portal.STATIC_PATH, portal.static_files(), name="portal-static")
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(RequestContextMiddleware)
    return app

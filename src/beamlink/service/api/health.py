"""Liveness and version: the only routes that need no token."""

from __future__ import annotations

import platform
from typing import Any

from fastapi import APIRouter
from sqlalchemy import text

import beamlink
from beamlink.errors import ServiceUnavailable
from beamlink.service.api.deps import State
from beamlink.service.db.base import utcnow
from beamlink.service.db.migrate import current_revision

router = APIRouter(tags=["health"])


@router.get("/health", summary="Is the service up and its database reachable?")
def health(state: State) -> dict[str, Any]:
    try:
        with state.db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        raise ServiceUnavailable(
            f"the database is unreachable: {exc.__class__.__name__}", details={"database": state.db.dialect}
        ) from exc
    return {
        "status": "ok",
        "version": beamlink.__version__,
        "database": state.db.dialect,
        "uptime_seconds": round((utcnow() - state.started_at).total_seconds(), 3),
    }


@router.get("/version", summary="Versions of the service, its API and its schema.")
def version(state: State) -> dict[str, Any]:
    return {
        "version": beamlink.__version__,
        "api_version": "v1",
        "python": platform.python_version(),
        "database": state.db.dialect,
        "schema_revision": current_revision(state.db),
    }

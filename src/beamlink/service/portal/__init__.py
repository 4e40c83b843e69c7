"""The web portal: server-rendered pages over the same domain functions as the API.

``ROUTERS`` go into the app after the API's; ``STATIC_PATH`` is where :func:`static_files` is mounted (before
the routers, so the portal's catch-all 404 page never shadows a stylesheet).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from starlette.staticfiles import StaticFiles

from beamlink.service.portal import routes, search_routes

__all__ = ["ROUTERS", "STATIC_PATH", "static_files"]

STATIC_PATH = "/portal/static"
ROUTERS: tuple[APIRouter, ...] = (
    routes.root_router,
    routes.router,
    search_routes.router,
    search_routes.fallback_router,
)


def static_files() -> StaticFiles:
    return StaticFiles(directory=Path(__file__).parent / "static")

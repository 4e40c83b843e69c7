"""The one place that turns exceptions into HTTP answers: ``{"code", "message", "details"}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from beamlink.errors import (
    AuthenticationFailed,
    BeamlinkError,
    InvalidInput,
    MethodNotAllowed,
    RouteNotFound,
)
from beamlink.service.logs import request_id_var

__all__ = ["install_error_handlers"]

log = logging.getLogger(__name__)


def _answer(error: BeamlinkError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, AuthenticationFailed) else None
    return JSONResponse(error.to_dict(), status_code=error.status, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or str(loc[0] if loc else "body")


def validation_error(exc: RequestValidationError) -> InvalidInput:
    problems = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        where = str(loc[0]) if loc else "body"
        if err.get("type") == "json_invalid":
            ctx = err.get("ctx") or {}
            problems.append(
                {
                    "field": "body",
                    "location": "body",
                    "message": f"the body is not valid JSON ({ctx.get('error', 'parse error')}) "
                    f"at character {loc[1] if len(loc) > 1 else '?'}",
                }
            )
            continue
        problems.append({"field": _field(loc), "location": where, "message": err.get("msg", "invalid")})
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    return InvalidInput(f"invalid request: {summary}", details={"errors": problems})


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(BeamlinkError)
    async def _beamlink(_: Request, exc: BeamlinkError) -> JSONResponse:
        if exc.status >= 500:
            log.error("%s: %s", exc.code, exc.message)
        return _answer(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _answer(validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return _answer(
                RouteNotFound(
                    f"no route {request.method} {request.url.path}: see /docs for the API",
                    details={"method": request.method, "path": request.url.path},
                )
            )
        if exc.status_code == 405:
            return _answer(
                MethodNotAllowed(
                    f"{request.method} is not allowed on {request.url.path}: see /docs for its methods",
                    details={"method": request.method, "path": request.url.path},
                )
            )
        return JSONResponse(
            {"code": f"HTTP_{exc.status_code}", "message": str(exc.detail), "details": {}},
            status_code=exc.status_code,
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        error = BeamlinkError(
            f"internal error; the service log has the details under request id {request_id_var.get()}",
            details={"request_id": request_id_var.get()},
        )
        return _answer(error)

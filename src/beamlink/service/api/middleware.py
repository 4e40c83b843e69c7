"""Request ids and access logging, as plain ASGI middleware (cheaper than BaseHTTPMiddleware)."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from beamlink.service.logs import request_id_var

__all__ = ["RequestContextMiddleware"]

log = logging.getLogger("beamlink.access")
_GOOD_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


class RequestContextMiddleware:
    """Tags every request with an id (the caller's ``X-Request-ID`` if sane), echoes it, logs the line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _GOOD_ID.match(incoming) else uuid.uuid4().hex[:16]
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            # A WebSocket's messages go straight through: only an HTTP response carries the id header.
            await self.app(scope, receive, send_with_id if scope["type"] == "http" else send)
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            log.info(
                "%s %s %s %.1fms",
                scope.get("method", "WS"),
                scope.get("path"),
                status,
                elapsed_ms,
                extra={
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": status,
                    "duration_ms": round(elapsed_ms, 2),
                },
            )
            request_id_var.reset(token)

"""uvicorn's httptools protocol with the ASGI *zero-copy send* extension, so the data server hands a file
range to the kernel (``sendfile``) instead of reading it into Python and writing it out again.

Why: a range served with ``pread`` and ``send`` copies every byte twice in the data server, and the
puller copies it twice more (``recv_into``, ``pwrite``). Over loopback those four copies were the cost of
a pull (``perf``: a third of all samples in the data server, mostly ``rep_movs``). With ``sendfile`` the
socket takes the page-cache pages as they are.

The extension is asgiref's "Zero Copy Send": a server that offers it puts
``"http.response.zerocopysend": {}`` in ``scope["extensions"]``, and the app may then send
``{"type": "http.response.zerocopysend", "file": <binary file object>, "offset": int, "count": int,
"more_body": bool}`` in place of a body message. uvicorn does not implement it; :class:`ZeroCopyProtocol`
does, through :meth:`asyncio.loop.sendfile` (``os.sendfile`` on a plain socket). It is offered only on
plain-HTTP connections: over TLS the bytes must be encrypted in this process anyway. Only responses with a
Content-Length may use it (a chunked body would need framing around the kernel's bytes).

Two things uvicorn's own ``send`` does not need, this one adds:

- A client that goes away in the middle of a ``sendfile`` is a ``ConnectionError`` from the loop, not a
  silently dropped write; the connection is aborted and the cycle ends as uvicorn ends a lost connection.
- A file that ends before ``count`` bytes (it was truncated while being sent) aborts the connection, so the
  client sees a short response, and raises :class:`FileEndedEarly` in the app, which knows what that means.

It relies on uvicorn's ``RequestResponseCycle`` attributes (``transport``, ``flow``, ``response_started``,
``chunked_encoding``, ``expected_content_length``, ``disconnected``); the data-server tests exercise it
against the uvicorn this project installs.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

__all__ = ["ZERO_COPY_SEND", "FileEndedEarly", "ZeroCopyProtocol"]

ZERO_COPY_SEND = "http.response.zerocopysend"


class FileEndedEarly(EOFError):
    """The file sent with zero-copy send ended before ``count`` bytes; the connection was aborted."""

    def __init__(self, sent: int, count: int) -> None:
        super().__init__(f"the file ended after {sent} of {count} bytes")
        self.sent = sent
        self.count = count


class ZeroCopyProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` that offers zero-copy send on connections without TLS."""

    def on_headers_complete(self) -> None:
        previous = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        # The request's task is created but has not run yet: it looks ``send`` up on the cycle when it
        # calls the app, so the cycle can still be given the extension here (also for a pipelined request,
        # which waits its turn).
        if cycle is None or cycle is previous or self.transport.get_extra_info("sslcontext") is not None:
            return
        cycle.scope.setdefault("extensions", {})[ZERO_COPY_SEND] = {}
        cycle.send = _ZeroCopySend(cycle, cycle.send)  # type: ignore[method-assign]


class _ZeroCopySend:
    """The cycle's ``send``, also taking zero-copy messages."""

    __slots__ = ("_cycle", "_send")

    def __init__(self, cycle: RequestResponseCycle, send: Any) -> None:
        self._cycle = cycle
        self._send = send

    async def __call__(self, message: Any) -> None:
        if message["type"] != ZERO_COPY_SEND:
            await self._send(message)
            return
        cycle = self._cycle
        if cycle.flow.write_paused and not cycle.disconnected:
            await cycle.flow.drain()
        if cycle.disconnected:
            return
        if not cycle.response_started or cycle.response_complete or cycle.chunked_encoding is not False:
            raise RuntimeError(f"'{ZERO_COPY_SEND}' needs a started response with a Content-Length")
        count = int(message["count"])
        if count > cycle.expected_content_length:
            raise RuntimeError("Response content longer than Content-Length")
        offset = int(message.get("offset") or 0)
        if count:
            loop = asyncio.get_running_loop()
            try:
                sent = await loop.sendfile(cycle.transport, message["file"], offset, count)
            except ConnectionError:
                # As uvicorn treats a lost connection: later sends are dropped, and the cycle does not
                # complain that the app returned without finishing its response.
                cycle.disconnected = True
                cycle.transport.abort()
                return
            if sent < count:
                cycle.transport.abort()
                raise FileEndedEarly(sent, count)
            cycle.expected_content_length -= sent
        if not message.get("more_body", False):
            await self._send({"type": "http.response.body", "body": b"", "more_body": False})

"""What a WebSocket route hands to the transport-free sessions behind it (agents' gateways, the task
session): a way to send a text frame and a way to close with a code and reason. The sessions never see
the socket, so they are driven in tests with plain coroutines."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

__all__ = ["Close", "Send"]

Send = Callable[[str], Awaitable[None]]
Close = Callable[[int, str], Awaitable[None]]

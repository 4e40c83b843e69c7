"""The live half of collections: which collection agents are connected, and their pending requests.

An operation (ls, stat, mkdir, rename, delete) is a request on the agent's WebSocket answered by an
``op_result`` with the same id. Everything here runs on the service's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from beamlink.errors import CollectionOffline, ServiceUnavailable, error_from_payload
from beamlink.protocol.collections import OpRequest, OpResult

__all__ = ["CollectionLink", "CollectionLinks"]

log = logging.getLogger(__name__)


class CollectionLink(Protocol):
    collection_id: str

    async def send_request(self, request: OpRequest) -> bool: ...

    async def send_jobs(self) -> None: ...

    async def cancel(self, transfer_id: str, reason: str) -> None: ...

    async def replace(self) -> None: ...


class CollectionLinks:
    def __init__(self) -> None:
        self._links: dict[str, CollectionLink] = {}
        self._pending: dict[str, asyncio.Future[OpResult]] = {}
        self._listeners: list[Callable[[Sequence[str]], None]] = []

    def on_changed(self, listener: Callable[[Sequence[str]], None]) -> None:
        """Call ``listener`` with the ids of transfer/delete tasks that finished or changed state (from the
        loop, after the commit): the flow engine's wake-up."""
        self._listeners.append(listener)

    def changed(self, transfer_ids: Sequence[str]) -> None:
        for listener in self._listeners:
            try:
                listener(transfer_ids)
            except Exception:
                log.exception("a transfer listener failed")

    async def attach(self, link: CollectionLink) -> None:
        old = self._links.get(link.collection_id)
        self._links[link.collection_id] = link
        if old is not None and old is not link:
            log.warning("collection %s connected again; closing its older connection", link.collection_id)
            await old.replace()

    def detach(self, link: CollectionLink) -> bool:
        if self._links.get(link.collection_id) is link:
            del self._links[link.collection_id]
            return True
        return False

    def online(self, collection_id: str) -> bool:
        return collection_id in self._links

    async def send_jobs(self, collection_ids: list[str]) -> None:
        """Tasks for these collections' agents may be waiting: their links send what they lack."""
        for collection_id in dict.fromkeys(collection_ids):
            link = self._links.get(collection_id)
            if link is not None:
                await link.send_jobs()

    async def cancel(self, collection_id: str, transfer_id: str, reason: str) -> None:
        link = self._links.get(collection_id)
        if link is not None:
            await link.cancel(transfer_id, reason)

    def resolve(self, result: OpResult) -> None:
        future = self._pending.pop(result.request_id, None)
        if future is not None and not future.done():
            future.set_result(result)

    async def request(
        self, collection_id: str, name: str, op: str, args: dict[str, Any], *, timeout: float
    ) -> Any:
        """Run ``op`` on the collection's agent and return its result; an error is raised as its class."""
        link = self._links.get(collection_id)
        if link is None:
            raise CollectionOffline(
                f"collection {name!r} is not connected: start its agent (`beamlink collection start {name}`) "
                "on the host that serves it",
                details={"collection_id": collection_id},
            )
        request = OpRequest(request_id=uuid.uuid4().hex, op=op, args=args)
        future: asyncio.Future[OpResult] = asyncio.get_running_loop().create_future()
        self._pending[request.request_id] = future
        try:
            if not await link.send_request(request):
                raise CollectionOffline(
                    f"collection {name!r} disconnected while the request was sent: try again",
                    details={"collection_id": collection_id},
                )
            answer = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise ServiceUnavailable(
                f"collection {name!r} did not answer {op} within {timeout:g} s: it may be overloaded; "
                "try again",
                details={"collection_id": collection_id, "op": op},
            ) from None
        finally:
            self._pending.pop(request.request_id, None)
        if answer.error is not None:
            raise error_from_payload(500, answer.error.model_dump())
        return answer.result

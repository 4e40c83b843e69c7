"""The collection agent: the gateway connection to the service, file operations on its root, its HTTP
data server (other agents pull from it with tokens the service signs), and the transfer and delete
tasks it runs (:mod:`.jobs`).

Operations arrive as ``op`` requests on the WebSocket and run in worker threads (a listing of a large
directory must not stall heartbeats); each answer carries the request id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import Any

import anyio.to_thread

import beamlink
from beamlink.agents.collection import fsops
from beamlink.agents.collection.config import CollectionConfig
from beamlink.agents.collection.dataserver import DataServer
from beamlink.agents.collection.jobs import JobRunner
from beamlink.agents.collection.paths import CollectionRoot, from_wire
from beamlink.agents.daemon import AgentProfile, GatewayClient, PidFile, serve_gateway
from beamlink.errors import BeamlinkError
from beamlink.protocol.agent import AGENT_HEADER, Heartbeat, encode
from beamlink.protocol.collections import (
    CollectionHello,
    CollectionWelcome,
    OpError,
    OpRequest,
    OpResult,
    decode_collection_service_message,
)
from beamlink.protocol.transfers import CancelTransfer, TransferDoneAck, TransferJob, TransferToken

__all__ = ["CollectionAgent", "run_operation"]

log = logging.getLogger(__name__)


def _ls(root: CollectionRoot, args: dict[str, Any]) -> dict[str, Any]:
    after = args.get("after")
    page = fsops.list_directory(
        root,
        from_wire(args.get("path") or ""),
        after=from_wire(after) if after else None,
        limit=int(args.get("limit") or 1000),
    )
    data = page.to_dict()
    return {"path": data["path"], "entries": data["entries"], "next_cursor": data["next_after"]}


def _stat(root: CollectionRoot, args: dict[str, Any]) -> dict[str, Any]:
    # Followed, like stat(1): a link leading out of the root is refused rather than described.
    return fsops.stat_path(root, from_wire(args.get("path") or ""), follow=True).to_dict()


def _mkdir(root: CollectionRoot, args: dict[str, Any]) -> dict[str, Any]:
    path = from_wire(args["path"])
    fsops.make_directory(root, path, parents=bool(args.get("parents")), exist_ok=bool(args.get("exist_ok")))
    return fsops.stat_path(root, path).to_dict()


def _rename(root: CollectionRoot, args: dict[str, Any]) -> dict[str, Any]:
    old, new = from_wire(args["old_path"]), from_wire(args["new_path"])
    fsops.rename(root, old, new, overwrite=bool(args.get("overwrite")))
    return fsops.stat_path(root, new).to_dict()


_OPERATIONS: dict[str, Callable[[CollectionRoot, dict[str, Any]], dict[str, Any]]] = {
    "ls": _ls,
    "stat": _stat,
    "mkdir": _mkdir,
    "rename": _rename,
}


def run_operation(root: CollectionRoot, request: OpRequest) -> OpResult:
    """Run one operation; every failure becomes an error answer naming the problem (never a crash)."""
    operation = _OPERATIONS.get(request.op)
    try:
        if operation is None:
            raise BeamlinkError(f"this agent cannot run {request.op!r} (upgrade the agent)")
        return OpResult(request_id=request.request_id, result=operation(root, request.args))
    except BeamlinkError as exc:
        return OpResult(request_id=request.request_id, error=OpError(**exc.to_dict()))
    except KeyError as exc:
        return OpResult(
            request_id=request.request_id,
            error=OpError(code="INVALID_INPUT", message=f"{request.op} needs {exc.args[0]!r}"),
        )
    except Exception as exc:  # a bug, not the caller's fault: say so, keep serving
        log.exception("operation %s failed", request.op)
        return OpResult(
            request_id=request.request_id,
            error=OpError(code="INTERNAL_ERROR", message=f"{request.op}: {exc}"),
        )


class CollectionAgent:
    """Runs until ``stop`` is set: connects to the service and serves operations on its root."""

    def __init__(self, profile: AgentProfile, config: CollectionConfig, identity: dict[str, Any]) -> None:
        self.profile = profile
        self.config = config
        self.root = CollectionRoot(config.root_path)
        self.collection_id = str(identity["collection_id"])
        self.service_url = str(identity["service_url"])
        self._secret = str(identity["agent_secret"])
        self.data_key = bytes.fromhex(str(identity["data_key"]))
        self.data_url: str | None = None
        self._welcomed = asyncio.Event()
        self._operations: set[asyncio.Task[None]] = set()
        self.gateway = GatewayClient(
            self.service_url,
            headers=self._headers,
            on_connect=self._on_connect,
            on_message=self._on_message,
            on_disconnect=self._on_disconnect,
            heartbeat=lambda: encode(Heartbeat(stats=self._stats())),
            heartbeat_period=config.heartbeat_period,
        )
        self.data_server = DataServer(
            self.root,
            collection_id=self.collection_id,
            key=self.data_key,
            host=config.listen_host,
            port=config.listen_port,
            checksum_algorithm=config.checksum_algorithm,
            tls=config.tls.server_context(),
        )
        self.jobs = JobRunner(profile.dir / "transfers", self.root, config, self.gateway.send)

    def _headers(self) -> dict[str, str]:
        return {AGENT_HEADER: self.collection_id, "Authorization": f"Bearer {self._secret}"}

    def _stats(self) -> dict[str, Any]:
        return {"operations_running": len(self._operations), "tasks_held": len(self.jobs.held())}

    async def _on_connect(self) -> None:
        hello = CollectionHello(
            agent_version=beamlink.__version__,
            host=socket.gethostname(),
            root_path=str(self.root.path),
            data_url=self.data_url,
            checksum_algorithm=self.config.checksum_algorithm,
            heartbeat_period=self.config.heartbeat_period,
            stats=self._stats(),
            held_transfer_ids=self.jobs.held(),
        )
        await self.gateway.send(encode(hello))
        await self.jobs.resend_outcomes()

    async def _on_disconnect(self) -> None:
        self._welcomed.clear()

    async def _on_message(self, frame: str) -> None:
        message = decode_collection_service_message(frame)
        if isinstance(message, CollectionWelcome):
            self._welcomed.set()
        elif isinstance(message, OpRequest):
            task = asyncio.create_task(self._operate(message))
            self._operations.add(task)
            task.add_done_callback(self._operations.discard)
        elif isinstance(message, TransferJob):
            self.jobs.accept(message)
        elif isinstance(message, CancelTransfer):
            log.info("task %s: %s", message.transfer_id, message.reason)
            self.jobs.cancel(message.transfer_id)
        elif isinstance(message, TransferDoneAck):
            self.jobs.acknowledged(message.transfer_id)
        elif isinstance(message, TransferToken):
            self.jobs.renewed(message)

    async def _operate(self, request: OpRequest) -> None:
        answer = await anyio.to_thread.run_sync(run_operation, self.root, request)
        if not await self.gateway.send(encode(answer)):
            log.info(
                "could not answer %s %s: disconnected (the caller retries)", request.op, request.request_id
            )

    async def run(
        self, stop: asyncio.Event, *, pid_file: PidFile | None = None, detached: bool = False
    ) -> None:
        log.info(
            "collection %s (%s) starting: root %s, service %s",
            self.profile.name,
            self.collection_id,
            self.root.path,
            self.service_url,
        )
        port = await self.data_server.start()
        self.data_url = self.config.advertised(port)
        log.info("data server listening on %s (advertised as %s)", self.data_server.url, self.data_url)
        self.jobs.resume()
        background: list[asyncio.Task[Any]] = []
        if pid_file is not None:
            background.append(asyncio.create_task(pid_file.keep_fresh(stop)))

        async def before_disconnect() -> None:
            await self.jobs.stop()
            await self.data_server.stop()
            for task in list(self._operations):
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await asyncio.wait_for(task, 5.0)  # let an answer in flight go out

        await serve_gateway(
            self.gateway,
            self._welcomed,
            stop,
            profile=self.profile,
            agent_id=self.collection_id,
            detached=detached,
            background=background,
            before_disconnect=before_disconnect,
        )
        log.info("collection %s stopped", self.collection_id)

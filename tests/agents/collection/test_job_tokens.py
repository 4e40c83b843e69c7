"""Data-token renewal on the agent: a job resumed from disk with an expired token asks the service for a
fresh one before pulling (again after a reconnect, again after "ask later"), keeps it in its job file,
and stops asking when the service refuses for good. A real data server; the service is played here."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from beamlink.agents.collection import jobs
from beamlink.agents.collection.config import CollectionConfig
from beamlink.agents.collection.dataserver import DataServer
from beamlink.agents.collection.jobs import JobRunner
from beamlink.agents.collection.paths import CollectionRoot
from beamlink.protocol.data_tokens import sign, token_expiry
from beamlink.protocol.transfers import (
    TOKEN_ASK_LATER,
    SourceAccess,
    TransferDone,
    TransferError,
    TransferJob,
    TransferJobItem,
    TransferToken,
)

KEY = b"k" * 32
DATA = os.urandom(3 * (64 << 10) + 5)  # several chunks
TRANSFER = "t-1"


def token(*, ttl: float, now: float | None = None) -> str:
    return sign(KEY, collection_id="src", path="", operations=("read", "list"), ttl_seconds=ttl, now=now)


def granted(fresh: str) -> TransferToken:
    expires_at = datetime.fromtimestamp(token_expiry(fresh), UTC)
    return TransferToken(transfer_id=TRANSFER, token=fresh, expires_at=expires_at)


def refused(code: str) -> TransferToken:
    return TransferToken(transfer_id=TRANSFER, error=TransferError(code=code, message=f"refused: {code}"))


@dataclass
class FakeService:
    """The gateway as the runner sees it: ``send`` fails while disconnected; answers come from ``answer``."""

    answer: Callable[[int], TransferToken]
    connected: bool = False
    requests: int = 0
    done: asyncio.Queue[TransferDone] = field(default_factory=asyncio.Queue)
    runner: JobRunner | None = None

    async def send(self, text: str) -> bool:
        if not self.connected:
            return False
        message = json.loads(text)
        if message["type"] == "transfer_token_request":
            self.requests += 1
            reply = self.answer(self.requests)
            assert self.runner is not None
            asyncio.get_running_loop().call_later(0.05, self.runner.renewed, reply)
        elif message["type"] == "transfer_done":
            self.done.put_nowait(TransferDone.model_validate(message))
        return True

    async def connect(self) -> None:
        self.connected = True
        assert self.runner is not None
        await self.runner.resend_outcomes()  # what the agent does after each (re)connect


@asynccontextmanager
async def resumed_job(tmp_path: Path, service: FakeService, stale: str) -> AsyncIterator[JobRunner]:
    """A job file left by a previous run of the agent, holding ``stale``; the runner resumes it."""
    source, destination, directory = tmp_path / "src", tmp_path / "dst", tmp_path / "transfers"
    source.mkdir()
    destination.mkdir()
    directory.mkdir()
    (source / "data.bin").write_bytes(DATA)
    server = DataServer(CollectionRoot(source), collection_id="src", key=KEY)
    port = await server.start()
    job = TransferJob(
        transfer_id=TRANSFER,
        kind="transfer",
        items=[TransferJobItem(source_path="data.bin", destination_path="data.bin")],
        source=SourceAccess(collection_id="src", data_url=f"http://127.0.0.1:{port}", token=stale),
    )
    (directory / f"{TRANSFER}.job.json").write_text(job.model_dump_json())
    config = CollectionConfig(root_path=destination, same_host_copy=False, chunk_size=64 << 10)
    runner = JobRunner(directory, CollectionRoot(destination), config, service.send)
    service.runner = runner
    try:
        runner.resume()
        yield runner
    finally:
        await runner.stop()
        await server.stop()


def saved_token(tmp_path: Path) -> str | None:
    job = TransferJob.model_validate_json((tmp_path / "transfers" / f"{TRANSFER}.job.json").read_bytes())
    assert job.source is not None
    return job.source.token


def test_a_job_resumed_with_an_expired_token_waits_for_a_fresh_one_and_keeps_it(tmp_path: Path) -> None:
    fresh = token(ttl=600)

    async def main() -> tuple[TransferDone, int]:
        service = FakeService(answer=lambda _: granted(fresh))
        async with resumed_job(tmp_path, service, token(ttl=10, now=time.time() - 60)):
            await asyncio.sleep(0.3)  # the agent is not connected yet: nothing may start with the stale token
            assert service.requests == 0
            assert not (tmp_path / "dst" / "data.bin").exists()
            await service.connect()
            done = await asyncio.wait_for(service.done.get(), 10)
        return done, service.requests

    done, requests = asyncio.run(main())
    assert done.state == "SUCCEEDED", done.error
    assert (tmp_path / "dst" / "data.bin").read_bytes() == DATA
    assert requests == 1  # 600 s of life left: no second request during a sub-second transfer
    assert saved_token(tmp_path) == fresh  # a restart now would resume with it


def test_ask_later_is_asked_again_and_a_refusal_for_good_stops_the_asking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "ANSWER_WAIT", 0.1)
    stale = token(ttl=10, now=time.time() - 60)

    async def main() -> tuple[TransferDone, int]:
        answers = {1: refused(TOKEN_ASK_LATER), 2: refused("TRANSFER_ENDED")}
        service = FakeService(answer=lambda n: answers.get(n, granted(token(ttl=600))), connected=True)
        async with resumed_job(tmp_path, service, stale):
            done = await asyncio.wait_for(service.done.get(), 10)
            await asyncio.sleep(0.3)  # time enough for more requests, were any still made
        return done, service.requests

    done, requests = asyncio.run(main())
    assert requests == 2
    # Refused for good, the job ran with what it had, and failed with the source's own reason.
    assert done.state == "FAILED"
    assert done.error is not None
    assert done.error.code == "TOKEN_EXPIRED"
    assert saved_token(tmp_path) == stale

"""Transfer and delete tasks on the agent that runs them: kept on disk from receipt to the service's
acknowledgement of their outcome, so neither an agent restart nor a service restart loses or repeats one.

``<profile>/transfers/<id>.job.json`` is written when a job arrives and read back at start, which resumes
it (the pull resumes large files from their verified chunks); ``<id>.done.json`` holds the outcome until
the service acknowledges it, and is sent again after every reconnect.

A transfer's data token expires long before a large transfer may end, so each running transfer asks the
service for a fresh one when a third of its token's lifetime is left (at once for a job read back from
disk, whose token's age is unknown), and writes it into the job file for the next restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import anyio.to_thread
from pydantic import ValidationError

from beamlink.agents.collection import fsops
from beamlink.agents.collection.config import CollectionConfig
from beamlink.agents.collection.paths import CollectionRoot, from_wire
from beamlink.agents.collection.plan import SyncLevel
from beamlink.agents.collection.pull import (
    Progress,
    TransferSpec,
    TransferStatus,
    TransferSummary,
    run_transfer,
)
from beamlink.agents.collection.pull import TransferEvent as PullEvent
from beamlink.agents.collection.sources import LocalSource, SourceClient
from beamlink.errors import BeamlinkError
from beamlink.protocol import data_tokens
from beamlink.protocol.agent import encode
from beamlink.protocol.transfers import (
    TOKEN_ASK_LATER,
    TransferCounts,
    TransferDone,
    TransferError,
    TransferEvent,
    TransferEvents,
    TransferJob,
    TransferProgress,
    TransferToken,
    TransferTokenRequest,
)

__all__ = ["JobRunner"]

log = logging.getLogger(__name__)

Send = Callable[[str], Awaitable[bool]]

RENEW_SHARE = 1 / 3
"""Ask for a fresh data token once less than this share of the current one's lifetime is left."""
ANSWER_WAIT = 10.0
"""Seconds to wait for the service's answer before asking again (a reconnect asks again at once)."""
USABLE_MARGIN = 1.0
"""A token this close to its expiry is treated as expired: a request sent now may arrive too late."""


def _counts(progress: Progress) -> TransferCounts:
    return TransferCounts(
        files=progress.files,
        directories=progress.directories,
        bytes_transferred=progress.bytes_transferred,
        bytes_expected=progress.bytes_planned,
        files_skipped=progress.skipped,
        files_retried=progress.retried,
        faults=progress.faults,
        deleted=progress.deleted,
    )


def _event(event: PullEvent) -> TransferEvent:
    return TransferEvent(
        at=datetime.fromtimestamp(event.time, UTC),
        code=str(event.code),
        description=event.description,
        is_error=event.is_error,
        details=event.details,
    )


def _outcome(transfer_id: str, summary: TransferSummary) -> TransferDone:
    error = None
    if summary.status == TransferStatus.CANCELLED:
        error = TransferError(code="CANCELED", message=summary.reason or "cancelled")
    elif summary.status == TransferStatus.FAILED:
        reason = summary.reason or "the transfer failed"
        code = "DEADLINE_EXCEEDED" if "deadline" in reason.lower() else "FAULTS"
        if summary.faults and code == "FAULTS":
            code = summary.faults[0].code
        error = TransferError(code=code, message=reason)
    return TransferDone(
        transfer_id=transfer_id,
        state="SUCCEEDED" if summary.status == TransferStatus.SUCCEEDED else "FAILED",
        error=error,
        counts=_counts(summary.progress),
        at=datetime.now(UTC),
    )


class _DataToken:
    """The data token of one running transfer.

    The pull's worker threads call it for every request: a plain attribute read, so the data path never
    waits for a renewal. The event loop replaces the value when the service sends a fresh token.
    """

    def __init__(self, token: str, *, received: float | None) -> None:
        self.value = token
        self.expires = data_tokens.token_expiry(token)
        # None for a token read back from disk: its lifetime, hence when to renew it, is unknown.
        self.lifetime = None if received is None else max(self.expires - received, 0.0)
        self.version = 0
        self.refused: TransferError | None = None
        self._changed = asyncio.Event()

    def __call__(self) -> str:
        return self.value

    def renew_at(self) -> float:
        """Unix time to ask for the next token (0: at once)."""
        if self.lifetime is None:
            return 0.0
        return self.expires - self.lifetime * RENEW_SHARE

    def usable(self) -> bool:
        return time.time() < self.expires - USABLE_MARGIN

    def replace(self, token: str, expires: float) -> None:
        self.value = token
        self.expires = expires
        self.lifetime = max(expires - time.time(), 0.0)
        self.version += 1
        self.wake()

    def refuse(self, error: TransferError) -> None:
        self.refused = error
        self.wake()

    def wake(self) -> None:
        """Wake whoever waits in :meth:`changed` (the event is replaced, so each wait sees one wake-up)."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self, timeout: float) -> None:
        """Until the token is replaced or refused, the agent reconnects, or ``timeout`` passes."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)


class JobRunner:
    """Runs the jobs the service sends this agent; reports through ``send`` (the gateway)."""

    def __init__(self, directory: Path, root: CollectionRoot, config: CollectionConfig, send: Send) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.root = root
        self.config = config
        self._send = send
        self._running: dict[str, asyncio.Task[None]] = {}
        self._cancel: dict[str, asyncio.Event] = {}
        self._interrupted: set[str] = set()  # stopped by the agent's shutdown, to resume at its next start
        self._tokens: dict[str, _DataToken] = {}  # of the transfers pulling over HTTP now

    # -- files ------------------------------------------------------------------------------------

    def _path(self, transfer_id: str, what: str) -> Path:
        return self.directory / f"{transfer_id}.{what}.json"

    def _write(self, path: Path, text: str) -> None:
        partial = path.with_name(path.name + ".partial")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)

    def held(self) -> list[str]:
        """Jobs running, waiting to resume, or finished but not yet acknowledged."""
        ids = {p.name.split(".", 1)[0] for p in self.directory.glob("*.json")}
        return sorted(ids | set(self._running))

    def _saved(self, what: str) -> list[TransferJob | TransferDone]:
        found: list[TransferJob | TransferDone] = []
        model = TransferJob if what == "job" else TransferDone
        for path in sorted(self.directory.glob(f"*.{what}.json")):
            try:
                found.append(model.model_validate_json(path.read_bytes()))
            except (OSError, ValidationError) as exc:
                log.error("%s is unreadable (%s); moved aside as .bad", path, exc)
                path.rename(path.with_suffix(".bad"))
        return found

    # -- service side -----------------------------------------------------------------------------

    def resume(self) -> None:
        """At start: run the jobs a previous run of the agent had not finished."""
        for job in self._saved("job"):
            assert isinstance(job, TransferJob)
            if not self._path(job.transfer_id, "done").exists():
                log.info("resuming %s %s", job.kind, job.transfer_id)
                self._start(job, resumed=True)

    async def resend_outcomes(self) -> None:
        """After each (re)connect: outcomes the service has not acknowledged yet; token requests it has
        not answered are sent again too."""
        for done in self._saved("done"):
            await self._send(encode(done))
        for token in self._tokens.values():
            token.wake()

    def accept(self, job: TransferJob) -> None:
        if job.transfer_id in self._running or self._path(job.transfer_id, "done").exists():
            return  # sent again after a reconnect: already running or finished
        self._write(self._path(job.transfer_id, "job"), job.model_dump_json())
        self._start(job, resumed=False)

    def cancel(self, transfer_id: str) -> None:
        event = self._cancel.get(transfer_id)
        if event is not None:
            event.set()

    def renewed(self, answer: TransferToken) -> None:
        """The service's answer to a token request: hold the fresh token, or stop asking for one."""
        token = self._tokens.get(answer.transfer_id)
        if token is None:
            return  # the transfer ended meanwhile
        if answer.token is not None and answer.expires_at is not None:
            token.replace(answer.token, answer.expires_at.timestamp())
            self._save_token(answer.transfer_id, answer.token)
            log.info(
                "transfer %s: fresh data token, valid until %s",
                answer.transfer_id,
                answer.expires_at.isoformat(timespec="seconds"),
            )
        elif answer.error is not None and answer.error.code == TOKEN_ASK_LATER:
            log.debug("transfer %s: no data token yet (%s)", answer.transfer_id, answer.error.message)
        elif answer.error is not None:
            log.warning(
                "transfer %s: the service refuses a fresh data token (%s); it goes on with the one it has",
                answer.transfer_id,
                answer.error.message,
            )
            token.refuse(answer.error)

    def _save_token(self, transfer_id: str, token: str) -> None:
        """Put ``token`` into the job file, so that a restart resumes with it rather than an expired one."""
        path = self._path(transfer_id, "job")
        try:
            job = TransferJob.model_validate_json(path.read_bytes())
            if job.source is not None:
                job.source = job.source.model_copy(update={"token": token})
                self._write(path, job.model_dump_json())
        except (OSError, ValidationError) as exc:
            log.warning("transfer %s: could not keep the fresh data token in %s: %s", transfer_id, path, exc)

    def acknowledged(self, transfer_id: str) -> None:
        for what in ("job", "done"):
            self._path(transfer_id, what).unlink(missing_ok=True)

    async def stop(self) -> None:
        """Agent shutdown: stop every job (each resumes at the next start), wait for them briefly."""
        self._interrupted = set(self._running)
        for event in self._cancel.values():
            event.set()
        running = list(self._running.values())
        if running:
            await asyncio.wait(running, timeout=10.0)

    # -- running ----------------------------------------------------------------------------------

    def _start(self, job: TransferJob, *, resumed: bool) -> None:
        self._cancel[job.transfer_id] = asyncio.Event()
        task = asyncio.create_task(
            self._run(job, resumed=resumed), name=f"beamlink-{job.kind}-{job.transfer_id}"
        )
        self._running[job.transfer_id] = task

    async def _report(self, message: TransferProgress | TransferEvents) -> None:
        await self._send(encode(message))  # best effort: the outcome is what is kept

    async def _run(self, job: TransferJob, *, resumed: bool) -> None:
        cancel = self._cancel[job.transfer_id]
        try:
            if job.kind == "delete":
                done = await self._delete(job, cancel)
            else:
                done = await self._transfer(job, cancel, resumed=resumed)
            if job.transfer_id in self._interrupted:
                return  # the agent is stopping: keep the job file, resume at the next start
            self._write(self._path(job.transfer_id, "done"), done.model_dump_json())
            await self._send(encode(done))
        except Exception:
            log.exception("%s %s crashed", job.kind, job.transfer_id)
            done = TransferDone(
                transfer_id=job.transfer_id,
                state="FAILED",
                error=TransferError(code="INTERNAL_ERROR", message="the agent failed; see its log"),
                counts=TransferCounts(),
                at=datetime.now(UTC),
            )
            self._write(self._path(job.transfer_id, "done"), done.model_dump_json())
            await self._send(encode(done))
        finally:
            self._running.pop(job.transfer_id, None)
            self._cancel.pop(job.transfer_id, None)

    def _source(self, job: TransferJob, *, resumed: bool) -> SourceClient | LocalSource:
        """Where the bytes come from; a data server's token is held in ``_tokens``, to be renewed."""
        access = job.source
        if access is None:
            raise BeamlinkError("the transfer job names no source")
        same_host = access.host == socket.gethostname() and self.config.same_host_copy
        if same_host and access.root_path and Path(access.root_path).is_dir():
            with contextlib.suppress(OSError, BeamlinkError):
                return LocalSource(CollectionRoot(access.root_path))
        if not access.data_url or not access.token:
            raise BeamlinkError(
                f"source collection {access.collection_id} has no data server address: start (or restart) "
                "its agent with a reachable `listen`/`advertise_url`"
            )
        token = _DataToken(access.token, received=None if resumed else time.time())
        self._tokens[job.transfer_id] = token
        # https data servers are verified against this agent's tls.ca_file (or the system's CAs).
        return SourceClient(access.data_url, token, tls=self.config.tls.client_context())

    async def _keep_fresh(self, transfer_id: str, token: _DataToken) -> None:
        """Ask for a fresh token each time the one held nears its expiry, until the service refuses or the
        transfer ends (which cancels this task)."""
        while token.refused is None:
            await asyncio.sleep(max(0.0, token.renew_at() - time.time()))
            version = token.version
            while token.version == version and token.refused is None:
                if not await self._send(encode(TransferTokenRequest(transfer_id=transfer_id))):
                    log.debug("transfer %s: not connected; the token request waits", transfer_id)
                await token.changed(ANSWER_WAIT)

    async def _until_usable(self, token: _DataToken, cancel: asyncio.Event) -> None:
        """While the token is (nearly) expired, wait for the first fresh one: the source would refuse
        every request made with it.

        Only a job resumed after a long stop holds such a token, and asks for a fresh one as soon as the
        agent connects. One fresh token ends the wait even if it is short-lived (a TTL set below the
        margin), and so does a refusal: the transfer then fails with the source's own error.
        """
        while token.version == 0 and not token.usable() and token.refused is None and not cancel.is_set():
            await token.changed(1.0)  # wakes at least each second to see a cancel

    async def _transfer(self, job: TransferJob, cancel: asyncio.Event, *, resumed: bool) -> TransferDone:
        options = job.options
        loop = asyncio.get_running_loop()
        spec = TransferSpec(
            items=[(from_wire(i.source_path), from_wire(i.destination_path), i.recursive) for i in job.items],
            sync_level=SyncLevel(options.sync_level) if options.sync_level else None,
            include=tuple(options.include),
            exclude=tuple(options.exclude),
            delete_extra=options.delete_extra,
            preserve_timestamps=options.preserve_timestamps,
            verify_checksum=options.verify_checksum,
            checksum_algorithm=options.checksum_algorithm or self.config.checksum_algorithm,  # type: ignore[arg-type]
            skip_source_errors=options.skip_source_errors,
            concurrency=self.config.concurrency,
            chunk_size=self.config.chunk_size,
            direct_writes=self.config.direct_writes,
            deadline=job.deadline.timestamp() if job.deadline else None,
            source_collection_id=job.source.collection_id if job.source else None,
        )
        source = self._source(job, resumed=resumed)
        token = self._tokens.get(job.transfer_id)
        renewal = None if token is None else asyncio.create_task(self._keep_fresh(job.transfer_id, token))

        def on_event(event: PullEvent) -> None:
            message = TransferEvents(transfer_id=job.transfer_id, events=[_event(event)])
            loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._report(message)))

        def on_progress(progress: Progress) -> None:
            message = TransferProgress(
                transfer_id=job.transfer_id, counts=_counts(progress), at=datetime.now(UTC)
            )
            loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._report(message)))

        try:
            if token is not None:
                await self._until_usable(token, cancel)
            summary = await run_transfer(
                spec,
                local=self.root,
                source=source,
                on_event=on_event,
                on_progress=on_progress,
                cancel=cancel,
            )
        finally:
            if renewal is not None:
                renewal.cancel()
            self._tokens.pop(job.transfer_id, None)
            source.close()
        return _outcome(job.transfer_id, summary)

    async def _delete(self, job: TransferJob, cancel: asyncio.Event) -> TransferDone:
        counts = TransferCounts()
        loop = asyncio.get_running_loop()

        def report() -> None:
            message = TransferProgress(
                transfer_id=job.transfer_id, counts=counts.model_copy(), at=datetime.now(UTC)
            )
            loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._report(message)))

        def run() -> TransferError | None:
            for item in job.items:
                before = counts.deleted
                try:
                    for step in fsops.delete(
                        self.root,
                        from_wire(item.destination_path),
                        recursive=job.recursive,
                        ignore_missing=job.ignore_missing,
                    ):
                        counts.deleted = before + step.files + step.directories
                        report()
                        if cancel.is_set():
                            return TransferError(code="CANCELED", message="cancelled")
                except BeamlinkError as exc:
                    counts.faults += 1
                    return TransferError(code=exc.code, message=exc.message)
            return None

        error = await anyio.to_thread.run_sync(run)
        return TransferDone(
            transfer_id=job.transfer_id,
            state="FAILED" if error else "SUCCEEDED",
            error=error,
            counts=counts,
            at=datetime.now(UTC),
        )

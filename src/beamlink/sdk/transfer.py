"""Collections through the service: registration, access rules and file operations.

Paths are root-relative, in wire form (names that are not UTF-8 arrive with ``\\xHH`` escapes).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from urllib.parse import quote

import httpx

from beamlink.protocol.collections import (
    CollectionInfo,
    CollectionRegister,
    CollectionRegistered,
    DirectoryPage,
    FileEntry,
    RuleCreate,
    RuleInfo,
)
from beamlink.protocol.transfers import (
    DeleteCreate,
    TransferCreate,
    TransferEvent,
    TransferInfo,
)
from beamlink.sdk._base import BaseClient
from beamlink.sdk._base import quote_segment as q

__all__ = ["TransferMixin"]


class TransferMixin(BaseClient):
    # -- collections ------------------------------------------------------------------------------

    def register_collection(
        self, body: CollectionRegister, *, collection_id: str | None = None
    ) -> CollectionRegistered:
        """What `beamlink collection start` calls: create or refresh the registration, get fresh secrets."""
        payload = body.model_dump(mode="json")
        if collection_id is None:
            return CollectionRegistered.model_validate(self.request("POST", "/v1/collections", json=payload))
        return CollectionRegistered.model_validate(
            self.request("PUT", f"/v1/collections/{q(collection_id)}", json=payload)
        )

    def get_collection(self, collection: str) -> CollectionInfo:
        """By id, or one of your own by name."""
        return self._get_model(CollectionInfo, f"/v1/collections/{q(collection)}")

    def list_collections(self, *, owned: bool = False, page_size: int | None = None) -> list[CollectionInfo]:
        return list(self._walk(CollectionInfo, "/v1/collections", page_size=page_size, owned=owned or None))

    def update_collection(
        self, collection: str, *, public_read: bool | None = None, description: str | None = None
    ) -> CollectionInfo:
        body = {
            k: v for k, v in (("public_read", public_read), ("description", description)) if v is not None
        }
        return CollectionInfo.model_validate(
            self.request("PATCH", f"/v1/collections/{q(collection)}", json=body)
        )

    def delete_collection(self, collection: str, *, force: bool = False) -> None:
        """Forget the collection at the service (its files are never touched)."""
        self.request("DELETE", f"/v1/collections/{q(collection)}", params={"force": force or None})

    # -- access rules -----------------------------------------------------------------------------

    def add_collection_rule(self, collection: str, rule: RuleCreate) -> RuleInfo:
        return RuleInfo.model_validate(
            self.request("POST", f"/v1/collections/{q(collection)}/rules", json=rule.model_dump())
        )

    def list_collection_rules(self, collection: str) -> list[RuleInfo]:
        return [
            RuleInfo.model_validate(r) for r in self.request("GET", f"/v1/collections/{q(collection)}/rules")
        ]

    def delete_collection_rule(self, collection: str, rule_id: str) -> None:
        self.request("DELETE", f"/v1/collections/{q(collection)}/rules/{q(rule_id)}")

    # -- operations -------------------------------------------------------------------------------

    def ls_page(
        self, collection: str, path: str = "", *, after: str | None = None, limit: int = 1000
    ) -> DirectoryPage:
        params = {"path": path, "after": after, "limit": limit}
        return DirectoryPage.model_validate(
            self.request("GET", f"/v1/collections/{q(collection)}/ls", params=params)
        )

    def ls(self, collection: str, path: str = "", *, page_size: int = 10_000) -> Iterator[FileEntry]:
        """Every entry of a directory, by name, fetched a page at a time (never the whole directory)."""
        after: str | None = None
        while True:
            page = self.ls_page(collection, path, after=after, limit=page_size)
            yield from page.entries
            if page.next_cursor is None:
                return
            after = page.next_cursor

    def stat(self, collection: str, path: str = "") -> FileEntry:
        return FileEntry.model_validate(
            self.request("GET", f"/v1/collections/{q(collection)}/stat", params={"path": path})
        )

    def mkdir(
        self, collection: str, path: str, *, parents: bool = False, exist_ok: bool = False
    ) -> FileEntry:
        body = {"path": path, "parents": parents, "exist_ok": exist_ok}
        return FileEntry.model_validate(
            self.request("POST", f"/v1/collections/{q(collection)}/mkdir", json=body)
        )

    def rename(self, collection: str, old_path: str, new_path: str, *, overwrite: bool = False) -> FileEntry:
        body = {"old_path": old_path, "new_path": new_path, "overwrite": overwrite}
        return FileEntry.model_validate(
            self.request("POST", f"/v1/collections/{q(collection)}/rename", json=body)
        )

    def download(
        self,
        collection: str,
        path: str,
        destination: str | os.PathLike[str],
        *,
        byte_range: tuple[int, int] | None = None,
    ) -> int:
        """Stream a file (or ``byte_range``: start, end exclusive) to ``destination``; returns its size."""
        headers = {} if byte_range is None else {"Range": f"bytes={byte_range[0]}-{byte_range[1] - 1}"}
        written = 0
        url = f"/v1/collections/{q(collection)}/files/{quote(path.lstrip('/'), safe='/')}"
        timeout = httpx.Timeout(10.0, read=120.0)
        with (
            self.stream("GET", url, headers=headers, timeout=timeout) as response,
            open(destination, "wb") as out,
        ):
            for chunk in response.iter_bytes(1 << 20):
                out.write(chunk)
                written += len(chunk)
        return written

    # -- transfer and delete tasks ----------------------------------------------------------------

    def submit_transfer(self, body: TransferCreate) -> TransferInfo:
        """Queue a transfer; with a ``submission_id`` seen before, returns that task instead."""
        return TransferInfo.model_validate(
            self.request("POST", "/v1/transfers", json=body.model_dump(mode="json"))
        )

    def submit_delete(self, body: DeleteCreate) -> TransferInfo:
        return TransferInfo.model_validate(
            self.request("POST", "/v1/deletes", json=body.model_dump(mode="json"))
        )

    def get_transfer(self, transfer_id: str) -> TransferInfo:
        return self._get_model(TransferInfo, f"/v1/transfers/{q(transfer_id)}")

    def list_transfers(
        self, *, state: str | None = None, kind: str | None = None, page_size: int | None = None
    ) -> list[TransferInfo]:
        return list(self._walk(TransferInfo, "/v1/transfers", page_size=page_size, state=state, kind=kind))

    def transfer_events(self, transfer_id: str, *, after: int = 0) -> list[TransferEvent]:
        rows = self.request("GET", f"/v1/transfers/{q(transfer_id)}/events", params={"after": after})
        return [TransferEvent.model_validate(r) for r in rows]

    def cancel_transfer(self, transfer_id: str) -> TransferInfo:
        return TransferInfo.model_validate(self.request("POST", f"/v1/transfers/{q(transfer_id)}/cancel"))

    def wait_transfer(
        self,
        transfer_id: str,
        *,
        timeout: float | None = None,
        on_update: Callable[[TransferInfo], None] | None = None,
        interval: float = 0.25,
    ) -> TransferInfo:
        """Until the task SUCCEEDS or FAILS (or ``timeout`` seconds); ``on_update`` sees every poll."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            info = self.get_transfer(transfer_id)
            if on_update is not None:
                on_update(info)
            if info.state in ("SUCCEEDED", "FAILED"):
                return info
            if deadline is not None and time.monotonic() >= deadline:
                return info
            time.sleep(interval)

"""Collections through the service: registration, access rules and file operations.

Paths are root-relative, in wire form (names that are not UTF-8 arrive with ``\\xHH`` escapes).
"""

from __future__ import annotations

from collections.abc import Iterator

from beamlink.protocol.collections import (
    CollectionInfo,
    CollectionRegister,
    CollectionRegistered,
    DirectoryPage,
    FileEntry,
    RuleCreate,
    RuleInfo,
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

    def ls(self, collection: str, path: str = "", *, page_size: int = 1000) -> Iterator[FileEntry]:
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

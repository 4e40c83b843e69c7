"""search_ingest and search_delete: a flow's publish step, into beamlink's own search index.

Bodies follow Globus's hosted Search providers (``actions.globus.org/search/ingest`` and ``/delete``), so
a Globus flow's publish state runs unchanged. Both work inside the run's transaction, as the run's owner:
the record is in the index when the step that wrote it commits, and is written once.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from beamlink.errors import InvalidInput
from beamlink.protocol.search import DeleteByQuery, FilterRequest, IngestEntry, IngestRecord, IngestRequest
from beamlink.service.flows.providers.base import ActionCall, Progress, Provider
from beamlink.service.flows.providers.basic import StrictBody, description_of, parse_body
from beamlink.service.search import query, records

__all__ = ["SearchDeleteProvider", "SearchIngestProvider"]


class _IngestBody(StrictBody):
    search_index: str = Field(min_length=1, description="Index id or name.")
    subject: str = Field(min_length=1, max_length=512)
    visible_to: list[str] = Field(min_length=1)
    content: dict[str, Any]
    id: str | None = Field(default=None, max_length=128, description="Entry id (Globus's name for it).")


class _DeleteBody(StrictBody):
    search_index: str = Field(min_length=1)
    delete_by: Literal["subject", "entry", "query"] = "subject"
    subject: str | None = Field(default=None, min_length=1, max_length=512)
    entry_id: str | None = None
    q: str | None = None
    filters: list[dict[str, Any]] = Field(default_factory=list)


class SearchIngestProvider(Provider):
    """Add or replace one entry of a record (the run's owner must be a writer of the index)."""

    name = "search_ingest"
    description = description_of(
        "Search ingest", _IngestBody, synchronous=True, subtitle="Publish a record to a search index"
    )

    def start(self, call: ActionCall) -> Progress:
        body = parse_body(_IngestBody, call.action.body, self.name)
        entry = IngestEntry(visible_to=body.visible_to, content=body.content, entry_id=body.id)
        request = IngestRequest(records=[IngestRecord(subject=body.subject, entries=[entry])])
        result = records.ingest(
            call.session,
            call.principal,
            body.search_index,
            request,
            max_entry_bytes=call.services.settings.search_max_entry_bytes,
        )
        details = {**result.model_dump(mode="json"), "subject": body.subject, "entry_id": body.id}
        return Progress("SUCCEEDED", details, "Succeeded")


class SearchDeleteProvider(Provider):
    """Delete a record, one entry of it, or every entry matching a query (writers)."""

    name = "search_delete"
    description = description_of(
        "Search delete", _DeleteBody, synchronous=True, subtitle="Remove records from a search index"
    )

    def start(self, call: ActionCall) -> Progress:
        body = parse_body(_DeleteBody, call.action.body, self.name)
        if body.delete_by == "query":
            request = DeleteByQuery(
                q=body.q or "", filters=[FilterRequest.model_validate(f) for f in body.filters]
            )
            result = query.delete_by_query(call.session, call.principal, body.search_index, request)
        else:
            if body.subject is None:
                raise InvalidInput(
                    f"{self.name}: delete_by {body.delete_by!r} needs 'subject'", details={"field": "subject"}
                )
            if body.delete_by == "entry":
                result = records.delete_entry(
                    call.session, call.principal, body.search_index, body.subject, body.entry_id
                )
            else:
                result = records.delete_subjects(
                    call.session, call.principal, body.search_index, [body.subject]
                )
        return Progress("SUCCEEDED", result.model_dump(mode="json"), "Succeeded")

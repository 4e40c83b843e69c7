"""Search: indexes, ingest, query, read and delete records (Globus Search's SearchClient, self-hosted)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from beamlink.protocol.search import (
    DeleteByQuery,
    DeleteResult,
    FacetRequest,
    IndexCreate,
    IndexInfo,
    IndexRoleCreate,
    IndexRoleInfo,
    IndexUpdate,
    IngestRequest,
    IngestResult,
    SearchRequest,
    SearchResult,
    SubjectInfo,
)
from beamlink.sdk._base import BaseClient, quote_segment

__all__ = ["SearchMixin"]


class SearchMixin(BaseClient):
    # -- indexes ----------------------------------------------------------------------------------

    def create_index(
        self,
        name: str,
        *,
        display_name: str | None = None,
        description: str | None = None,
        facets: Sequence[FacetRequest | Mapping[str, Any]] = (),
    ) -> IndexInfo:
        """``facets``: what the portal offers to narrow this index's results (FacetRequest documents)."""
        body = IndexCreate(
            name=name,
            display_name=display_name,
            description=description,
            facets=[FacetRequest.model_validate(f) for f in facets],
        )
        return IndexInfo.model_validate(
            self.request("POST", "/v1/indexes", json=body.model_dump(mode="json", exclude_defaults=True))
        )

    def list_indexes(self) -> list[IndexInfo]:
        return [IndexInfo.model_validate(item) for item in self.request("GET", "/v1/indexes")]

    def get_index(self, index: str) -> IndexInfo:
        return self._get_model(IndexInfo, f"/v1/indexes/{quote_segment(index)}")

    def update_index(
        self,
        index: str,
        *,
        display_name: str | None = None,
        description: str | None = None,
        facets: Sequence[FacetRequest | Mapping[str, Any]] | None = None,
    ) -> IndexInfo:
        changes: dict[str, Any] = {"display_name": display_name, "description": description}
        if facets is not None:
            changes["facets"] = [FacetRequest.model_validate(f) for f in facets]
        body = IndexUpdate.model_validate({k: v for k, v in changes.items() if v is not None})
        return IndexInfo.model_validate(
            self.request(
                "PATCH",
                f"/v1/indexes/{quote_segment(index)}",
                json=body.model_dump(mode="json", exclude_unset=True, exclude_none=True),
            )
        )

    def delete_index(self, index: str) -> None:
        self.request("DELETE", f"/v1/indexes/{quote_segment(index)}")

    def add_index_role(self, index: str, principal: str, role: str) -> IndexRoleInfo:
        """Make ``principal`` ('user:NAME', 'group:NAME') an ``admin`` or ``writer`` of the index."""
        body = IndexRoleCreate.model_validate({"principal": principal, "role": role})
        return IndexRoleInfo.model_validate(
            self.request("POST", f"/v1/indexes/{quote_segment(index)}/roles", json=body.model_dump())
        )

    def list_index_roles(self, index: str) -> list[IndexRoleInfo]:
        return [
            IndexRoleInfo.model_validate(item)
            for item in self.request("GET", f"/v1/indexes/{quote_segment(index)}/roles")
        ]

    def remove_index_role(self, index: str, role_id: str) -> None:
        self.request("DELETE", f"/v1/indexes/{quote_segment(index)}/roles/{quote_segment(role_id)}")

    # -- records ----------------------------------------------------------------------------------

    def ingest(self, index: str, document: dict[str, Any] | IngestRequest) -> IngestResult:
        """Add or replace records: ``{"subject", "entries": [...]}``, ``{"records": [...]}`` or Globus's
        ``{"ingest_type": "GMetaEntry"|"GMetaList", "ingest_data": ...}``. All or nothing."""
        body = document if isinstance(document, IngestRequest) else IngestRequest.model_validate(document)
        return IngestResult.model_validate(
            self.request(
                "POST", f"/v1/indexes/{quote_segment(index)}/ingest", json=body.model_dump(mode="json")
            )
        )

    def ingest_many(
        self, index: str, records: Iterable[dict[str, Any]], *, batch_size: int = 500
    ) -> Iterator[IngestResult]:
        """Ingest ``records`` (each ``{"subject", "entries"}``) in batches, yielding each batch's result."""
        batch: list[dict[str, Any]] = []
        for record in records:
            batch.append(record)
            if len(batch) >= batch_size:
                yield self.ingest(index, {"records": batch})
                batch = []
        if batch:
            yield self.ingest(index, {"records": batch})

    def search(
        self,
        index: str,
        q: str = "",
        *,
        filters: Sequence[dict[str, Any]] = (),
        facets: Sequence[dict[str, Any]] = (),
        sort: Sequence[dict[str, Any]] = (),
        limit: int = 10,
        offset: int = 0,
        bypass_visible_to: bool = False,
    ) -> SearchResult:
        """Entries you may see matching ``q`` and ``filters``, with ``facets`` counted over all matches.

        ``filters``: ``{"type": "match_any"|"match_all"|"range", "field_name", "values"}``; ``facets``:
        ``{"type": "terms"|"date_histogram"|"numeric_histogram"|"sum"|"avg", "field_name", ...}``;
        ``sort``: ``{"field_name", "order": "asc"|"desc"}`` (Globus Search's shapes).
        """
        body = SearchRequest.model_validate(
            {
                "q": q,
                "filters": list(filters),
                "facets": list(facets),
                "sort": list(sort),
                "limit": limit,
                "offset": offset,
                "bypass_visible_to": bypass_visible_to,
            }
        )
        return SearchResult.model_validate(
            self.request(
                "POST",
                f"/v1/indexes/{quote_segment(index)}/query",
                json=body.model_dump(mode="json", by_alias=True),
            )
        )

    def get_subject(self, index: str, subject: str) -> SubjectInfo:
        return self._get_model(SubjectInfo, f"/v1/indexes/{quote_segment(index)}/subject", subject=subject)

    def delete_subject(self, index: str, subject: str, *, entry_id: str | None = None) -> DeleteResult:
        return DeleteResult.model_validate(
            self.request(
                "DELETE",
                f"/v1/indexes/{quote_segment(index)}/subject",
                params={"subject": subject, "entry_id": entry_id},
            )
        )

    def delete_subjects(self, index: str, subjects: Sequence[str]) -> DeleteResult:
        return DeleteResult.model_validate(
            self.request(
                "POST",
                f"/v1/indexes/{quote_segment(index)}/delete_by_subject",
                json={"subjects": list(subjects)},
            )
        )

    def delete_by_query(
        self, index: str, q: str = "", *, filters: Sequence[dict[str, Any]] = ()
    ) -> DeleteResult:
        body = DeleteByQuery.model_validate({"q": q, "filters": list(filters)})
        return DeleteResult.model_validate(
            self.request(
                "POST",
                f"/v1/indexes/{quote_segment(index)}/delete_by_query",
                json=body.model_dump(mode="json", by_alias=True),
            )
        )

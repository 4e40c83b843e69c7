"""Wire models of search: indexes, ingest, queries and their results (shared by service and SDK).

Names follow Globus Search where a user already knows them (``subject``, ``visible_to``, ``content``,
``field_name``, ``match_any``, ``facet_results``, ``gmeta``), so a Globus Search script needs few changes.

A record is a *subject* (a URI or path, unique in its index) with up to ten *entries*; each entry has its
own ``visible_to`` and free JSON ``content``. Content keys the portal understands (all optional):
``title``, ``description``, ``keywords``, ``files`` / ``images`` / ``thumbnail`` (file references, see
:class:`FileRef`), ``plots`` (see :class:`Plot`) and ``run_id`` (the flow run that produced the record).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "MAX_ENTRIES_PER_SUBJECT",
    "MAX_QUERY_LENGTH",
    "DeleteByQuery",
    "DeleteBySubjects",
    "DeleteResult",
    "FacetBucket",
    "FacetRequest",
    "FacetResult",
    "FileRef",
    "FilterRequest",
    "IndexCreate",
    "IndexInfo",
    "IndexRoleCreate",
    "IndexRoleInfo",
    "IndexUpdate",
    "IngestEntry",
    "IngestRecord",
    "IngestRequest",
    "IngestResult",
    "Plot",
    "PlotSeries",
    "RangeValue",
    "SearchEntry",
    "SearchHit",
    "SearchRequest",
    "SearchResult",
    "SortField",
    "SubjectInfo",
]

MAX_ENTRIES_PER_SUBJECT = 10
MAX_QUERY_LENGTH = 1024
_PRINCIPALS_HELP = (
    "Who may see the entry: 'public', 'all_authenticated_users', 'user:NAME', 'group:ID-OR-NAME', or the "
    "Globus forms 'urn:globus:auth:identity:ID' / 'urn:globus:groups:id:ID'."
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- indexes -------------------------------------------------------------------------------------------


_FACETS_HELP = (
    "The facets the portal shows for this index (terms, numeric_histogram with histogram_range, "
    "date_histogram); empty: the portal picks short text fields of recent records."
)


class IndexCreate(_Strict):
    name: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9._-]*$",
        description="Unique short name (lower case, digits, '.', '_', '-'); usable wherever an id is.",
    )
    display_name: str | None = Field(default=None, max_length=128)
    description: str | None = Field(default=None, max_length=4000)
    facets: list[FacetRequest] = Field(default_factory=list, max_length=20, description=_FACETS_HELP)


class IndexUpdate(_Strict):
    display_name: str | None = Field(default=None, max_length=128)
    description: str | None = Field(default=None, max_length=4000)
    facets: list[FacetRequest] | None = Field(default=None, max_length=20, description=_FACETS_HELP)


class IndexInfo(BaseModel):
    id: str
    name: str
    display_name: str
    description: str | None = None
    owner_id: str
    owner_name: str | None = None
    #: The caller's highest role: owner, admin, writer, or null (may search only).
    user_role: str | None = None
    num_subjects: int = 0
    num_entries: int = 0
    facets: list[FacetRequest] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime


class IndexRoleCreate(_Strict):
    principal: str = Field(description="'user:NAME', 'group:ID-OR-NAME' or a Globus URN.")
    role: Literal["admin", "writer"]


class IndexRoleInfo(BaseModel):
    id: str
    principal: str
    role: str
    created_at: datetime


# -- ingest --------------------------------------------------------------------------------------------


class FileRef(BaseModel):
    """A file a record points at, served to the portal through the authorised file route."""

    collection: str = Field(description="Collection id or name.")
    path: str = Field(min_length=1, description="Path inside the collection.")
    name: str | None = None
    size: int | None = Field(default=None, ge=0)
    mimetype: str | None = None
    caption: str | None = None


class PlotSeries(BaseModel):
    name: str | None = None
    x: list[float | None]
    y: list[float | None]


class Plot(BaseModel):
    """Plot data a record carries; the portal draws it as an interactive chart."""

    title: str | None = None
    x_label: str | None = None
    y_label: str | None = None
    log_x: bool = False
    log_y: bool = False
    series: list[PlotSeries] = Field(min_length=1)


class IngestEntry(_Strict):
    entry_id: str | None = Field(
        default=None, max_length=128, description="Distinguishes entries of one subject (null: the default)."
    )
    visible_to: list[str] = Field(min_length=1, description=_PRINCIPALS_HELP)
    content: dict[str, Any]
    # Globus's GMetaEntry carries these too; accepted so a Globus document ingests unchanged.
    id: str | None = Field(default=None, max_length=128, description="Globus spelling of entry_id.")
    subject: str | None = Field(default=None, description="Globus GMetaEntry form: the subject per entry.")
    mimetype: str | None = Field(default=None)


class IngestRecord(_Strict):
    subject: str = Field(min_length=1, max_length=512, description="Unique in the index; usually a URI.")
    entries: list[IngestEntry] = Field(min_length=1, max_length=MAX_ENTRIES_PER_SUBJECT)


class IngestRequest(BaseModel):
    """One record (``subject`` + ``entries``), a batch (``records``), or Globus's
    ``{ingest_type: GMetaEntry|GMetaList, ingest_data}``; all are normalised to ``records``."""

    model_config = ConfigDict(extra="forbid")

    records: list[IngestRecord] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if "ingest_type" in data or "ingest_data" in data:
            return {"records": _from_globus(data.get("ingest_type"), data.get("ingest_data"))}
        if "subject" in data or "entries" in data:
            return {"records": [data]}
        return data


def _from_globus(kind: Any, data: Any) -> list[dict[str, Any]]:
    if kind == "GMetaEntry":
        entries = [data]
    elif kind == "GMetaList":
        if not isinstance(data, dict) or not isinstance(data.get("gmeta"), list):
            raise ValueError("a GMetaList ingest needs ingest_data.gmeta, a list of entries")
        entries = data["gmeta"]
    else:
        raise ValueError(f"ingest_type must be 'GMetaEntry' or 'GMetaList', got {kind!r}")
    by_subject: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("subject"), str):
            raise ValueError("every GMetaEntry needs a 'subject' string")
        body = {k: v for k, v in entry.items() if k != "subject"}
        by_subject.setdefault(entry["subject"], []).append(body)
    return [{"subject": subject, "entries": items} for subject, items in by_subject.items()]


class IngestResult(BaseModel):
    index_id: str
    subjects: int
    entries: int
    created: int
    updated: int
    #: Globus answers an ingest with a task; ours is done when this answer arrives, so this is "SUCCESS".
    status: str = "SUCCESS"


# -- query ---------------------------------------------------------------------------------------------


class RangeValue(_Strict):
    """Bounds of a range filter; ``"*"`` or null leaves an end open. Numbers, or ISO 8601 dates."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: float | str | None = Field(default=None, alias="from")
    to: float | str | None = None


class FilterRequest(_Strict):
    type: Literal["match_any", "match_all", "range"] = "match_any"
    field_name: str = Field(min_length=1, max_length=256)
    values: list[Any] = Field(min_length=1, max_length=100)


class FacetRequest(_Strict):
    name: str | None = Field(default=None, description="Result name; defaults to field_name.")
    type: Literal["terms", "date_histogram", "numeric_histogram", "sum", "avg"] = "terms"
    field_name: str = Field(min_length=1, max_length=256)
    size: int = Field(default=10, ge=1, le=1000, description="Buckets to return (terms, histograms).")
    date_interval: Literal["year", "month", "day", "hour", "minute", "second"] | None = None
    histogram_range: dict[str, float] | None = Field(
        default=None, description="numeric_histogram: {'low': L, 'high': H}, split into `size` buckets."
    )


class SortField(_Strict):
    field_name: str = Field(min_length=1, max_length=256)
    order: Literal["asc", "desc"] = "asc"


class SearchRequest(_Strict):
    q: str = Field(
        default="",
        max_length=MAX_QUERY_LENGTH,
        description='Words and "phrases"; AND, OR, NOT (or -word), parentheses, prefix*, field:value, '
        "field:>N / field:<N. Empty: every entry you may see.",
    )
    filters: list[FilterRequest] = Field(default_factory=list, max_length=50)
    facets: list[FacetRequest] = Field(default_factory=list, max_length=20)
    sort: list[SortField] = Field(default_factory=list, max_length=5)
    limit: int = Field(default=10, ge=0, le=1000)
    offset: int = Field(default=0, ge=0, le=10_000)
    bypass_visible_to: bool = Field(
        default=False, description="Index owner and admins: see every entry whatever its visible_to."
    )


class SearchEntry(BaseModel):
    entry_id: str | None = None
    content: dict[str, Any]
    visible_to: list[str] = Field(default_factory=list)
    updated_at: datetime | None = None


class SearchHit(BaseModel):
    """One subject of a result (Globus's GMetaResult) with the entries the caller may see."""

    subject: str
    entries: list[SearchEntry]


class FacetBucket(BaseModel):
    value: Any
    count: int


class FacetResult(BaseModel):
    name: str
    buckets: list[FacetBucket] = Field(default_factory=list)
    #: sum and avg facets answer one number.
    value: float | None = None


class SearchResult(BaseModel):
    total: int
    count: int
    offset: int
    has_next_page: bool
    gmeta: list[SearchHit]
    facet_results: list[FacetResult] = Field(default_factory=list)


class SubjectInfo(BaseModel):
    index_id: str
    subject: str
    entries: list[SearchEntry]


# -- delete --------------------------------------------------------------------------------------------


class DeleteBySubjects(_Strict):
    subjects: list[str] = Field(min_length=1, max_length=10_000)


class DeleteByQuery(_Strict):
    q: str = Field(default="", max_length=MAX_QUERY_LENGTH)
    filters: list[FilterRequest] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _not_everything(self) -> DeleteByQuery:
        if not self.q.strip() and not self.filters:
            raise ValueError(
                "a delete by query needs q or filters: to empty an index, delete it (`beamlink search "
                "index delete NAME`)"
            )
        return self


class DeleteResult(BaseModel):
    index_id: str
    subjects: int
    entries: int


IndexCreate.model_rebuild()
IndexUpdate.model_rebuild()
IndexInfo.model_rebuild()

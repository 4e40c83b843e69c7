"""What the search and record pages show, read through the search domain (which filters every entry by
its ``visible_to``, so anonymous visitors see public records only).

Facets: an index may declare its facets (``IndexInfo.facets``: terms, numeric histograms whose buckets
become range filters, date histograms, sums and averages); an index that declares none has no schema,
so the page facets on ``keywords`` and on the short text fields that its most recent records carry (the
same few for every query of an index, so checking a box never makes its own facet disappear).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from pydantic import ValidationError
from sqlalchemy.orm import Session

from beamlink.errors import BeamlinkError, NotFound
from beamlink.protocol.search import (
    FacetRequest,
    FacetResult,
    FileRef,
    FilterRequest,
    IndexInfo,
    Plot,
    SearchEntry,
    SearchRequest,
    SearchResult,
)
from beamlink.service.auth.principal import Principal
from beamlink.service.flows import runs
from beamlink.service.search import indexes, query, records
from beamlink.service.search.fields import FIELD_NAME

__all__ = [
    "PER_PAGE",
    "Card",
    "FacetView",
    "RecordView",
    "SearchPage",
    "file_url",
    "parse_filters",
    "record_page",
    "record_url",
    "search_page",
]

PER_PAGE = 10
#: Content keys the portal shows in their own way (never as metadata rows or facets).
PRESENTED_KEYS = ("title", "description", "files", "images", "thumbnail", "plots", "run_id")
_FACET_PROBE = 50
_MAX_FACETS = 5
_FACET_VALUE_CHARS = 60
_FACET_BUCKETS = 12
_DESCRIPTION_CHARS = 280


def file_url(ref: FileRef, *, download: bool = False) -> str:
    url = f"/portal/files/{quote(ref.collection, safe='')}/{quote(ref.path.lstrip('/'), safe='/')}"
    return url + ("?download=1" if download else "")


def record_url(index: str, subject: str) -> str:
    # The subject is one encoded segment: a subject holding '..' or '?' must not be rewritten by browsers.
    return f"/portal/records/{quote(index, safe='')}/{quote(subject, safe='')}"


def _file_refs(value: Any) -> list[FileRef]:
    items = value if isinstance(value, list) else [value] if value is not None else []
    refs = []
    for item in items:
        try:
            refs.append(FileRef.model_validate(item))
        except ValidationError:
            continue  # the ingest checked references; anything odd is simply not shown
    return refs


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


# -- search --------------------------------------------------------------------------------------------


def parse_filters(raw: list[str]) -> dict[str, list[str]]:
    """``field:value`` URL parameters, grouped by field (values of one field match any)."""
    chosen: dict[str, list[str]] = {}
    for item in raw:
        name, sep, value = item.partition(":")
        if sep and name and value and value not in chosen.setdefault(name, []):
            chosen[name].append(value)
    return {k: v for k, v in chosen.items() if v}


@dataclass
class Card:
    subject: str
    url: str
    title: str
    description: str | None
    keywords: list[str]
    thumbnail: str | None


@dataclass
class FacetView:
    """``buckets`` are (value as the checkbox sends it, label, count, checked); ``total`` is the one
    number of a sum or avg facet (no buckets)."""

    field: str
    label: str
    buckets: list[tuple[str, str, int, bool]]
    total: str | None = None


@dataclass
class SearchPage:
    indexes: list[IndexInfo]
    index: IndexInfo | None
    q: str
    chosen: dict[str, list[str]]
    cards: list[Card] = field(default_factory=list)
    facets: list[FacetView] = field(default_factory=list)
    total: int = 0
    page: int = 1
    has_next: bool = False
    error: str | None = None
    error_position: int | None = None

    def url(self, *, keep_filters: bool = True, **changes: Any) -> str:
        """This search with some parameters changed (paging, dropping the filters)."""
        params: dict[str, Any] = {"index": self.index.name if self.index else "", "q": self.q, "page": 1}
        params.update(changes)
        pairs: list[tuple[str, Any]] = [(k, v) for k, v in params.items() if v not in ("", None, 1)]
        if keep_filters:
            pairs += [("f", f"{name}:{value}") for name, values in self.chosen.items() for value in values]
        return "/portal/search" + (f"?{urlencode(pairs)}" if pairs else "")


def _card(index: str, subject: str, entries: list[SearchEntry]) -> Card:
    content = entries[0].content if entries else {}
    thumbs = _file_refs(content.get("thumbnail")) or _file_refs(content.get("images"))
    description = _text(content.get("description"))
    if description and len(description) > _DESCRIPTION_CHARS:
        description = description[:_DESCRIPTION_CHARS].rsplit(" ", 1)[0] + "…"
    keywords = content.get("keywords")
    return Card(
        subject=subject,
        url=record_url(index, subject),
        title=_text(content.get("title")) or subject,
        description=description,
        keywords=[str(k) for k in keywords][:8] if isinstance(keywords, list) else [],
        thumbnail=file_url(thumbs[0]) if thumbs else None,
    )


def _facet_fields(session: Session, principal: Principal | None, index: str) -> list[str]:
    probe = query.search(session, principal, index, SearchRequest(limit=_FACET_PROBE))
    seen: Counter[str] = Counter()
    for hit in probe.gmeta:
        for entry in hit.entries:
            for key, value in entry.content.items():
                values = value if isinstance(value, list) else [value]
                if (
                    key not in PRESENTED_KEYS
                    and FIELD_NAME.fullmatch(key)
                    and values
                    and all(isinstance(v, str) and 0 < len(v) <= _FACET_VALUE_CHARS for v in values)
                ):
                    seen[key] += 1
    ordered = ["keywords"] + [name for name, _ in seen.most_common() if name != "keywords"]
    return ordered[:_MAX_FACETS]


def _number_text(value: float) -> str:
    return f"{value:.3g}"


def _bucket(value: Any) -> tuple[str, str]:
    """(value the checkbox sends, label shown) of one bucket."""
    if isinstance(value, dict) and "from" in value and "to" in value:
        low, high = _number_text(float(value["from"])), _number_text(float(value["to"]))
        return f"{low}..{high}", f"{low} to {high}"
    return str(value), str(value)


def _facet_views(
    results: list[FacetResult], chosen: dict[str, list[str]], declared: dict[str, FacetRequest]
) -> list[FacetView]:
    views = []
    for result in results:
        facet = declared.get(result.name)
        label = result.name.replace("_", " ").capitalize()
        if facet is not None and facet.type in ("sum", "avg"):
            if result.value is not None:
                views.append(
                    FacetView(result.name, f"{label} ({facet.type})", [], _number_text(result.value))
                )
            continue
        picked = chosen.get(result.name, [])
        buckets = []
        for b in result.buckets:
            value, text = _bucket(b.value)
            # Empty histogram slots are noise; a chosen one stays (checked) so it can be unchecked.
            if b.count or value in picked:
                buckets.append((value, text, b.count, value in picked))
        buckets += [
            (value, value.replace("..", " to "), 0, True)
            for value in picked
            if value not in {b[0] for b in buckets}
        ]
        if buckets:
            views.append(FacetView(result.name, label, buckets))
    return views


def _range(text: str) -> dict[str, str] | None:
    low, sep, high = text.partition("..")
    return {"from": low, "to": high} if sep and low and high else None


def _filters(chosen: dict[str, list[str]], declared: dict[str, FacetRequest]) -> list[FilterRequest]:
    """A numeric-histogram facet's checked buckets are ranges; every other facet matches values."""
    filters = []
    for name, values in chosen.items():
        facet = declared.get(name)
        if facet is not None and facet.type == "numeric_histogram":
            ranges = [r for r in map(_range, values) if r is not None]
            if ranges:
                filters.append(FilterRequest(type="range", field_name=facet.field_name, values=ranges))
            continue
        filters.append(FilterRequest(field_name=facet.field_name if facet else name, values=values))
    return filters


def search_page(
    session: Session,
    principal: Principal | None,
    *,
    index: str | None,
    q: str,
    chosen: dict[str, list[str]],
    page: int,
) -> SearchPage:
    available = indexes.list_indexes(session, principal)
    current = next((i for i in available if index in (i.name, i.id)), None)
    if index and current is None:
        raise NotFound(f"no search index {index!r}", details={"index": index})
    current = current or (available[0] if available else None)
    view = SearchPage(indexes=available, index=current, q=q, chosen=chosen, page=page)
    if current is None:
        return view
    declared = {f.name or f.field_name: f for f in current.facets}
    if declared:
        facets = list(declared.values())
    else:
        facets = [
            FacetRequest(field_name=name, size=_FACET_BUCKETS)
            for name in _facet_fields(session, principal, current.id)
        ]
    facets += [
        FacetRequest(field_name=name, size=_FACET_BUCKETS)
        for name in chosen
        if name not in {f.name or f.field_name for f in facets}
    ]
    request = SearchRequest(
        q=q,
        filters=_filters(chosen, declared),
        facets=facets,
        limit=PER_PAGE,
        offset=(page - 1) * PER_PAGE,
    )
    try:
        result: SearchResult = query.search(session, principal, current.id, request, concurrent_facets=True)
    except BeamlinkError as exc:
        if exc.status not in (400, 422):
            raise
        view.error = exc.message
        position = exc.details.get("position")
        view.error_position = position if isinstance(position, int) else None
        return view
    view.cards = [_card(current.name, hit.subject, hit.entries) for hit in result.gmeta]
    view.facets = _facet_views(result.facet_results, chosen, declared)
    view.total = result.total
    view.has_next = result.has_next_page
    return view


# -- one record ----------------------------------------------------------------------------------------


@dataclass
class EntryView:
    entry_id: str | None
    title: str
    description: str | None
    metadata: list[tuple[str, Any]]
    images: list[tuple[FileRef, str]]
    files: list[tuple[FileRef, str]]
    plots: list[Plot]
    bad_plots: int
    keywords: list[str]


@dataclass
class RecordView:
    index: IndexInfo
    subject: str
    entries: list[EntryView]
    run_id: str | None
    run_visible: bool

    @property
    def title(self) -> str:
        return self.entries[0].title if self.entries else self.subject


def _flatten(content: dict[str, Any], prefix: str = "", depth: int = 0) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in content.items():
        if not prefix and (key in PRESENTED_KEYS or key == "keywords"):  # keywords show as chips
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and depth < 2:
            rows += _flatten(value, name + ".", depth + 1)
        else:
            rows.append((name, value))
    return rows


def _plots(value: Any) -> tuple[list[Plot], int]:
    items = value if isinstance(value, list) else [value] if value is not None else []
    good, bad = [], 0
    for item in items:
        try:
            good.append(Plot.model_validate(item))
        except ValidationError:
            bad += 1
    return good, bad


def _entry_view(subject: str, entry: SearchEntry) -> EntryView:
    content = entry.content
    images = _file_refs(content.get("images")) or _file_refs(content.get("thumbnail"))
    plots, bad = _plots(content.get("plots"))
    keywords = content.get("keywords")
    return EntryView(
        entry_id=entry.entry_id,
        title=_text(content.get("title")) or subject,
        description=_text(content.get("description")),
        metadata=_flatten(content),
        images=[(ref, file_url(ref)) for ref in images],
        files=[(ref, file_url(ref, download=True)) for ref in _file_refs(content.get("files"))],
        plots=plots,
        bad_plots=bad,
        keywords=[str(k) for k in keywords] if isinstance(keywords, list) else [],
    )


def _visible_run(session: Session, principal: Principal | None, run_id: str | None) -> bool:
    if principal is None or not run_id:
        return False
    try:
        runs.get_run(session, principal, run_id)
    except BeamlinkError:
        return False
    return True


def record_page(session: Session, principal: Principal | None, index: str, subject: str) -> RecordView:
    info = records.get_subject(session, principal, index, subject)
    found = indexes.index_info(session, principal, indexes.find_index(session, index))
    entries = [_entry_view(subject, e) for e in info.entries]
    run_id = next(
        (str(e.content["run_id"]) for e in info.entries if isinstance(e.content.get("run_id"), str)), None
    )
    return RecordView(
        index=found,
        subject=subject,
        entries=entries,
        run_id=run_id,
        run_visible=_visible_run(session, principal, run_id),
    )

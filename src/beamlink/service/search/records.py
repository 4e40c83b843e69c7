"""Records: ingest (an idempotent upsert by subject and entry id), read a subject, delete, and the check
the portal's file route makes.

One ingest is one transaction: every entry of the request is written, or none is. Each entry is stored
with its words (for full text), its leaf values (for filters and facets), who may see it, and the files
it references. A writer may reference only files they may read themselves, since publishing a record
lets everyone it is visible to fetch those files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, exists, func, insert, select
from sqlalchemy.orm import Session

from beamlink.errors import InvalidInput, NotFound, PayloadTooLarge
from beamlink.protocol.search import (
    DeleteResult,
    IngestEntry,
    IngestRecord,
    IngestRequest,
    IngestResult,
    SubjectInfo,
)
from beamlink.protocol.search import (
    SearchEntry as SearchEntryInfo,
)
from beamlink.service.auth import permissions
from beamlink.service.auth.grants import parse_principal
from beamlink.service.auth.principal import Principal
from beamlink.service.db.base import utcnow
from beamlink.service.search.fields import entry_text, field_values, file_references
from beamlink.service.search.indexes import find_index, require_role
from beamlink.service.search.models import (
    SearchEntry,
    SearchEntryFile,
    SearchField,
    SearchIndex,
    SearchVisibility,
)
from beamlink.service.transfer import collections

__all__ = [
    "caller_principals",
    "delete_entries",
    "delete_entry",
    "delete_subjects",
    "entry_info",
    "file_is_published",
    "get_subject",
    "ingest",
    "visible_clause",
]


_DELETE_CHUNK = 500


def caller_principals(principal: Principal | None) -> list[str]:
    """The visibility keys that let this caller see an entry."""
    keys = [permissions.PUBLIC]
    if principal is not None:
        keys += [permissions.ALL_AUTHENTICATED, f"user:{principal.id}"]
        keys += [f"group:{group_id}" for group_id in sorted(principal.group_ids)]
    return keys


def visible_clause(principal: Principal | None) -> Any:
    """WHERE clause: entries this caller may see (filtered in the query, never after it)."""
    return exists(
        select(SearchVisibility.entry_pk).where(
            SearchVisibility.entry_pk == SearchEntry.pk,
            SearchVisibility.principal.in_(caller_principals(principal)),
        )
    )


def _visibility_keys(session: Session, visible_to: Sequence[str], pointer: str) -> list[str]:
    keys: set[str] = set()
    for position, text in enumerate(visible_to):
        where = f"{pointer}/visible_to/{position}"
        try:
            kind, principal_id = parse_principal(session, text, field=where)
        except NotFound as exc:
            raise _located(exc, where) from None
        keys.add(kind if principal_id is None else f"{kind}:{principal_id}")
    return sorted(keys)


def _located(error: NotFound | InvalidInput, where: str, hint: str = "") -> NotFound | InvalidInput:
    """The same error, its message starting with the JSON pointer of the offending value."""
    return type(error)(f"{where}: {error.message}{hint}", details={**error.details, "field": where})


def _check_size(entry: IngestEntry, pointer: str, limit: int) -> int:
    size = len(json.dumps(entry.content, separators=(",", ":"), default=str))
    if size > limit:
        raise PayloadTooLarge(
            f"{pointer}/content is {size:,} bytes; an entry's content may be at most {limit:,} bytes "
            "(BEAMLINK_SEARCH_MAX_ENTRY_BYTES): keep bulky data in a file the record references",
            details={"field": f"{pointer}/content", "size": size, "limit": limit},
        )
    return size


def _resolve_files(
    session: Session, principal: Principal, content: dict[str, Any], pointer: str
) -> list[tuple[str, str, str]]:
    resolved = []
    for ref in file_references(content):
        where = pointer + ref.pointer
        try:
            path = collections.normalize_path(ref.path)
            collection = collections.get_collection(session, principal, ref.collection, "reader", path=path)
        except (NotFound, InvalidInput) as exc:
            raise _located(exc, where, " (a record may reference only files its writer can read)") from None
        resolved.append((collection.id, path, ref.kind))
    return resolved


def _write_entry(
    session: Session,
    index: SearchIndex,
    subject: str,
    entry: IngestEntry,
    keys: list[str],
    files: list[tuple[str, str, str]],
) -> bool:
    """Insert or replace one entry with its derived rows; True when it was new."""
    entry_id = entry.entry_id if entry.entry_id is not None else (entry.id or "")
    now = utcnow()
    row = session.scalar(
        select(SearchEntry).where(
            SearchEntry.index_id == index.id, SearchEntry.subject == subject, SearchEntry.entry_id == entry_id
        )
    )
    created = row is None
    text = entry_text(subject, entry.content)
    if row is None:
        row = SearchEntry(
            index_id=index.id,
            subject=subject,
            entry_id=entry_id,
            content=entry.content,
            visible_to=list(entry.visible_to),
            text=text,
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        session.flush()
    else:
        row.content = entry.content
        row.visible_to = list(entry.visible_to)
        row.text = text
        row.updated_at = now
        for model in (SearchVisibility, SearchField, SearchEntryFile):
            session.execute(delete(model).where(model.entry_pk == row.pk))
    session.execute(insert(SearchVisibility), [{"entry_pk": row.pk, "principal": key} for key in keys])
    values = field_values(entry.content)
    if values:
        session.execute(
            insert(SearchField),
            [
                {
                    "entry_pk": row.pk,
                    "field": v.field,
                    "value_text": v.text,
                    "value_key": v.key,
                    "value_num": v.number,
                    "value_date": v.date,
                }
                for v in values
            ],
        )
    if files:
        session.execute(
            insert(SearchEntryFile),
            [{"entry_pk": row.pk, "collection_id": c, "path": p, "kind": k} for c, p, k in files],
        )
    return created


def _check_record(record: IngestRecord, pointer: str) -> None:
    seen: set[str] = set()
    for position, entry in enumerate(record.entries):
        if entry.subject is not None and entry.subject != record.subject:
            raise InvalidInput(
                f"{pointer}/entries/{position}: subject {entry.subject!r} differs from the record's "
                f"{record.subject!r}",
                details={"field": f"{pointer}/entries/{position}/subject"},
            )
        entry_id = entry.entry_id if entry.entry_id is not None else (entry.id or "")
        if entry_id in seen:
            raise InvalidInput(
                f"{pointer}/entries/{position}: entry_id {entry_id or None!r} appears twice in one subject",
                details={"field": f"{pointer}/entries/{position}/entry_id"},
            )
        seen.add(entry_id)


def ingest(
    session: Session, principal: Principal, ref: str, body: IngestRequest, *, max_entry_bytes: int
) -> IngestResult:
    """Upsert every entry of ``body`` (writers); all or nothing."""
    index = require_role(session, principal, ref, "writer")
    created = updated = 0
    for number, record in enumerate(body.records):
        pointer = f"/records/{number}"
        _check_record(record, pointer)
        for position, entry in enumerate(record.entries):
            where = f"{pointer}/entries/{position}"
            _check_size(entry, where, max_entry_bytes)
            keys = _visibility_keys(session, entry.visible_to, where)
            files = _resolve_files(session, principal, entry.content, where)
            if _write_entry(session, index, record.subject, entry, keys, files):
                created += 1
            else:
                updated += 1
    index.updated_at = utcnow()
    return IngestResult(
        index_id=index.id,
        subjects=len({record.subject for record in body.records}),
        entries=created + updated,
        created=created,
        updated=updated,
    )


def entry_info(row: SearchEntry) -> SearchEntryInfo:
    return SearchEntryInfo(
        entry_id=row.entry_id or None,
        content=row.content,
        visible_to=row.visible_to,
        updated_at=row.updated_at,
    )


def get_subject(
    session: Session, principal: Principal | None, ref: str, subject: str, *, bypass_visible_to: bool = False
) -> SubjectInfo:
    """The entries of ``subject`` the caller may see; NotFound when there are none (or none visible)."""
    index = find_index(session, ref)
    if bypass_visible_to:
        require_role(session, principal, ref, "admin")
    query = select(SearchEntry).where(SearchEntry.index_id == index.id, SearchEntry.subject == subject)
    if not bypass_visible_to:
        query = query.where(visible_clause(principal))
    rows = list(session.scalars(query.order_by(SearchEntry.entry_id)))
    if not rows:
        raise NotFound(
            f"no record {subject!r} in index {index.name!r} (or none you may see"
            + ("" if principal else ": sign in to see more")
            + ")",
            details={"index": index.name, "subject": subject},
        )
    return SubjectInfo(index_id=index.id, subject=subject, entries=[entry_info(row) for row in rows])


def delete_subjects(
    session: Session, principal: Principal, ref: str, subjects: Sequence[str]
) -> DeleteResult:
    """Delete every entry of these subjects (writers)."""
    index = require_role(session, principal, ref, "writer")
    return _delete_where(session, index, SearchEntry.subject.in_(list(subjects)))


def delete_entries(session: Session, index: SearchIndex, where: Any) -> DeleteResult:
    """Delete the entries of ``index`` matching ``where`` (the caller has checked the writer role)."""
    return _delete_where(session, index, where)


def _delete_where(session: Session, index: SearchIndex, where: Any) -> DeleteResult:
    condition = (SearchEntry.index_id == index.id) & where
    subjects, entries = session.execute(
        select(func.count(func.distinct(SearchEntry.subject)), func.count()).where(condition)
    ).one()
    # The condition may read search_fields, so the entries are chosen before anything is deleted; the
    # foreign keys cascade from each entry to its derived rows (and the FTS5 trigger forgets its words).
    pks = list(session.scalars(select(SearchEntry.pk).where(condition)))
    for start in range(0, len(pks), _DELETE_CHUNK):
        session.execute(delete(SearchEntry).where(SearchEntry.pk.in_(pks[start : start + _DELETE_CHUNK])))
    index.updated_at = utcnow()
    return DeleteResult(index_id=index.id, subjects=subjects, entries=entries)


def delete_entry(
    session: Session, principal: Principal, ref: str, subject: str, entry_id: str | None
) -> DeleteResult:
    """Delete one entry of a subject (writers); NotFound when it does not exist."""
    index = require_role(session, principal, ref, "writer")
    result = _delete_where(
        session, index, (SearchEntry.subject == subject) & (SearchEntry.entry_id == (entry_id or ""))
    )
    if not result.entries:
        raise NotFound(
            f"index {index.name!r} has no entry {entry_id!r} of subject {subject!r}",
            details={"subject": subject, "entry_id": entry_id},
        )
    return result


def file_is_published(session: Session, principal: Principal | None, collection_id: str, path: str) -> bool:
    """True when an entry the caller may see references this file (``path`` normalised)."""
    query = (
        select(SearchEntryFile.id)
        .join(SearchEntry, SearchEntry.pk == SearchEntryFile.entry_pk)
        .where(
            SearchEntryFile.collection_id == collection_id,
            SearchEntryFile.path == path,
            visible_clause(principal),
        )
        .limit(1)
    )
    return session.scalar(query) is not None

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
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, exists, insert, select, update
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
from beamlink.service.search.access import access_text
from beamlink.service.search.fields import FILE_KEYS, FieldValue, entry_text, field_values, file_references
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
    "visible_to_keys",
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
    return visible_to_keys(caller_principals(principal))


def visible_to_keys(keys: list[str]) -> Any:
    """WHERE clause: entries visible to any of these keys (see :func:`caller_principals`)."""
    return exists(
        select(SearchVisibility.entry_pk).where(
            SearchVisibility.entry_pk == SearchEntry.pk, SearchVisibility.principal.in_(keys)
        )
    )


def _visibility_keys(
    session: Session, visible_to: Sequence[str], pointer: str, known: dict[str, str]
) -> list[str]:
    """The keys of ``visible_to``; ``known`` remembers names already looked up in this ingest."""
    keys: set[str] = set()
    for position, text in enumerate(visible_to):
        if text not in known:
            where = f"{pointer}/visible_to/{position}"
            try:
                kind, principal_id = parse_principal(session, text, field=where)
            except NotFound as exc:
                raise _located(exc, where) from None
            known[text] = kind if principal_id is None else f"{kind}:{principal_id}"
        keys.add(known[text])
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
    ids: dict[str, str] = {}
    for ref in file_references(content):
        where = pointer + ref.pointer
        try:
            path = collections.normalize_path(ref.path)
            collection = collections.get_collection(session, principal, ref.collection, "reader", path=path)
        except (NotFound, InvalidInput) as exc:
            raise _located(exc, where, " (a record may reference only files its writer can read)") from None
        resolved.append((collection.id, path, ref.kind))
        ids[ref.collection] = collection.id
    _refer_by_id(content, ids)
    return resolved


def _refer_by_id(content: dict[str, Any], ids: dict[str, str]) -> None:
    """Rewrite collection names in file references to the ids they resolved to: a name means something
    only among its owner's collections, and the portal serves these files to everyone who sees the record."""
    for key in FILE_KEYS:
        value = content.get(key)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict) and item.get("collection") in ids:
                item["collection"] = ids[item["collection"]]


@dataclass
class _Prepared:
    """One entry, checked and turned into its rows, before anything is written."""

    subject: str
    entry_id: str
    entry: IngestEntry
    keys: list[str]
    files: list[tuple[str, str, str]]
    values: list[FieldValue]
    pk: int = 0


def _entry_id(entry: IngestEntry) -> str:
    return entry.entry_id if entry.entry_id is not None else (entry.id or "")


def _existing(session: Session, index: SearchIndex, prepared: list[_Prepared]) -> dict[tuple[str, str], int]:
    subjects = sorted({item.subject for item in prepared})
    found: dict[tuple[str, str], int] = {}
    for start in range(0, len(subjects), _DELETE_CHUNK):
        rows = session.execute(
            select(SearchEntry.subject, SearchEntry.entry_id, SearchEntry.pk).where(
                SearchEntry.index_id == index.id,
                SearchEntry.subject.in_(subjects[start : start + _DELETE_CHUNK]),
            )
        )
        found.update({(subject, entry_id): pk for subject, entry_id, pk in rows})
    return found


def _insert_rows(session: Session, model: Any, rows: list[dict[str, Any]]) -> None:
    """Bulk rows of a derived table. PostgreSQL gets COPY on the session's own connection (in its
    transaction): a driver executemany is a round per row there, ten-odd rows per entry, and SQLAlchemy's
    multi-row VALUES spends as long compiling. SQLite runs in-process, where executemany is fast."""
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        session.execute(insert(model), rows)
        return
    columns = list(rows[0])
    driver = connection.connection.driver_connection
    assert driver is not None
    statement = f"COPY {model.__tablename__} ({', '.join(columns)}) FROM STDIN"
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([row[column] for column in columns])


def _write(session: Session, index: SearchIndex, prepared: list[_Prepared]) -> int:
    """Insert or replace every entry with its derived rows, a statement per table; returns how many were
    new. Statements go in batches (executemany, one INSERT ... RETURNING) rather than row by row: this is
    what makes a 1,000-record ingest take tens of milliseconds, not seconds."""
    now = utcnow()
    existing = _existing(session, index, prepared)
    fresh = [item for item in prepared if (item.subject, item.entry_id) not in existing]
    replaced = [item for item in prepared if (item.subject, item.entry_id) in existing]
    for item in replaced:
        item.pk = existing[(item.subject, item.entry_id)]
    if replaced:
        pks = [item.pk for item in replaced]
        for model in (SearchVisibility, SearchField, SearchEntryFile):
            for start in range(0, len(pks), _DELETE_CHUNK):
                session.execute(delete(model).where(model.entry_pk.in_(pks[start : start + _DELETE_CHUNK])))
        session.execute(
            update(SearchEntry),
            [
                {
                    "pk": item.pk,
                    "content": item.entry.content,
                    "visible_to": list(item.entry.visible_to),
                    "text": entry_text(item.subject, item.entry.content),
                    "access": access_text(index.id, item.keys),
                    "updated_at": now,
                }
                for item in replaced
            ],
        )
    if fresh:
        inserted = session.execute(
            insert(SearchEntry).returning(SearchEntry.pk, sort_by_parameter_order=True),
            [
                {
                    "index_id": index.id,
                    "subject": item.subject,
                    "entry_id": item.entry_id,
                    "content": item.entry.content,
                    "visible_to": list(item.entry.visible_to),
                    "text": entry_text(item.subject, item.entry.content),
                    "access": access_text(index.id, item.keys),
                    "created_at": now,
                    "updated_at": now,
                }
                for item in fresh
            ],
        )
        for item, pk in zip(fresh, inserted.scalars(), strict=True):
            item.pk = pk
    visibility = [{"entry_pk": item.pk, "principal": key} for item in prepared for key in item.keys]
    _insert_rows(session, SearchVisibility, visibility)
    fields = [
        {
            "entry_pk": item.pk,
            "field": v.field,
            "value_text": v.text,
            "value_key": v.key,
            "value_num": v.number,
            "value_date": v.date,
        }
        for item in prepared
        for v in item.values
    ]
    _insert_rows(session, SearchField, fields)
    files = [
        {"entry_pk": item.pk, "collection_id": c, "path": p, "kind": k}
        for item in prepared
        for c, p, k in item.files
    ]
    _insert_rows(session, SearchEntryFile, files)
    return len(fresh)


def _check_record(record: IngestRecord, pointer: str) -> None:
    for position, entry in enumerate(record.entries):
        if entry.subject is not None and entry.subject != record.subject:
            raise InvalidInput(
                f"{pointer}/entries/{position}: subject {entry.subject!r} differs from the record's "
                f"{record.subject!r}",
                details={"field": f"{pointer}/entries/{position}/subject"},
            )


def ingest(
    session: Session, principal: Principal, ref: str, body: IngestRequest, *, max_entry_bytes: int
) -> IngestResult:
    """Upsert every entry of ``body`` (writers); all or nothing."""
    index = require_role(session, principal, ref, "writer")
    principals: dict[str, str] = {}
    prepared: list[_Prepared] = []
    seen: set[tuple[str, str]] = set()
    for number, record in enumerate(body.records):
        pointer = f"/records/{number}"
        _check_record(record, pointer)
        for position, entry in enumerate(record.entries):
            where = f"{pointer}/entries/{position}"
            key = (record.subject, _entry_id(entry))
            if key in seen:
                raise InvalidInput(
                    f"{where}: subject {record.subject!r} entry {key[1] or None!r} comes twice in one ingest",
                    details={"field": where},
                )
            seen.add(key)
            _check_size(entry, where, max_entry_bytes)
            try:
                values = field_values(entry.content)
            except InvalidInput as exc:
                raise _located(exc, where) from None
            keys = _visibility_keys(session, entry.visible_to, where, principals)
            files = _resolve_files(session, principal, entry.content, where)
            prepared.append(_Prepared(record.subject, key[1], entry, keys, files, values))
    created = _write(session, index, prepared)
    index.updated_at = utcnow()
    return IngestResult(
        index_id=index.id,
        subjects=len({record.subject for record in body.records}),
        entries=len(prepared),
        created=created,
        updated=len(prepared) - created,
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
    return delete_entries(session, index, SearchEntry.subject.in_(list(subjects)))


def delete_entries(session: Session, index: SearchIndex, where: Any) -> DeleteResult:
    """Delete the entries of ``index`` matching ``where`` (the caller has checked the writer role)."""
    condition = (SearchEntry.index_id == index.id) & where
    # The condition may read search_fields, so the entries are chosen (once) before anything is deleted;
    # the foreign keys cascade from each entry to its derived rows (and the FTS5 trigger forgets its words).
    chosen = session.execute(select(SearchEntry.pk, SearchEntry.subject).where(condition)).all()
    pks = [pk for pk, _ in chosen]
    for start in range(0, len(pks), _DELETE_CHUNK):
        session.execute(delete(SearchEntry).where(SearchEntry.pk.in_(pks[start : start + _DELETE_CHUNK])))
    index.updated_at = utcnow()
    return DeleteResult(index_id=index.id, subjects=len({subject for _, subject in chosen}), entries=len(pks))


def delete_entry(
    session: Session, principal: Principal, ref: str, subject: str, entry_id: str | None
) -> DeleteResult:
    """Delete one entry of a subject (writers); NotFound when it does not exist."""
    index = require_role(session, principal, ref, "writer")
    result = delete_entries(
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

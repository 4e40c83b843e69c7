"""Tables of the search domain: indexes, entries, who may see each entry, their fields and their files.

Full text lives beside these tables, outside the models, because each database does it its own way
(migration 0005 creates it): on SQLite an FTS5 table ``search_fts`` kept in step with
``search_entries.text`` and ``.access`` by triggers; on PostgreSQL a generated ``tsv`` column with a GIN
index.
Filters, facets and sorting run on ``search_fields`` (one row per leaf value of an entry's content), the
same SQL on both databases.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from beamlink.service.auth.models import User
from beamlink.service.db.base import Base, created_column, id_column

__all__ = ["SearchEntry", "SearchEntryFile", "SearchField", "SearchIndex", "SearchVisibility"]

# SQLite makes an INTEGER PRIMARY KEY the rowid (which FTS5 keys on); PostgreSQL gets a bigint identity.
_ENTRY_PK = BigInteger().with_variant(Integer(), "sqlite")


class SearchIndex(Base):
    """An index. Roles ``admin`` and ``writer`` are grants; anyone may query it (entries are filtered)."""

    __tablename__ = "search_indexes"
    __table_args__ = (Index("ix_search_indexes_owner", "owner_id"),)

    id: Mapped[str] = id_column()
    name: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    display_name: Mapped[str] = mapped_column(String(128), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    # The portal's facets for this index, as FacetRequest documents (a list; empty: guessed).
    facets: Mapped[list[Any]] = mapped_column(JSON, nullable=False, default=list)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = created_column()

    owner: Mapped[User] = relationship(lazy="joined")


class SearchEntry(Base):
    """One entry of a subject. ``entry_id`` is '' for the default entry (Globus's null id)."""

    __tablename__ = "search_entries"
    __table_args__ = (
        UniqueConstraint("index_id", "subject", "entry_id", name="uq_search_entries_key"),
        Index("ix_search_entries_recent", "index_id", "updated_at"),
    )

    pk: Mapped[int] = mapped_column(_ENTRY_PK, primary_key=True, autoincrement=True)
    index_id: Mapped[str] = mapped_column(ForeignKey("search_indexes.id", ondelete="CASCADE"), nullable=False)
    subject: Mapped[str] = mapped_column(String(512), nullable=False)
    entry_id: Mapped[str] = mapped_column(String(128), nullable=False, default="")
    content: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    #: As the writer gave it (for display); search_visibility holds the resolved form the query uses.
    visible_to: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    #: Every word of the subject and content, for full-text search.
    text: Mapped[str] = mapped_column(Text, nullable=False)
    #: One word per principal that may see the entry, and one for its index (see search/access.py): on
    #: SQLite, full text checks visibility inside its own index instead of row by row.
    access: Mapped[str] = mapped_column(Text, nullable=False, default="")
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = created_column()


class SearchVisibility(Base):
    """Who may see an entry: ``public``, ``all_authenticated_users``, ``user:<id>`` or ``group:<id>``."""

    __tablename__ = "search_visibility"
    __table_args__ = (Index("ix_search_visibility_principal", "principal", "entry_pk"),)

    entry_pk: Mapped[int] = mapped_column(
        ForeignKey("search_entries.pk", ondelete="CASCADE"), primary_key=True
    )
    principal: Mapped[str] = mapped_column(String(48), primary_key=True)


class SearchField(Base):
    """One leaf value of an entry's content, under its dotted path (array positions dropped).

    ``value_key`` is the lower-cased text the filters compare; ``value_num`` is set for numbers,
    ``value_date`` (``YYYY-MM-DDTHH:MM:SS``, UTC) for strings that are ISO 8601 dates.
    """

    __tablename__ = "search_fields"
    __table_args__ = (
        # Covers a terms facet (entry → field → value) without reading the table: half its cost.
        Index("ix_search_fields_entry", "entry_pk", "field", "value_text"),
        Index("ix_search_fields_value", "field", "value_key"),
    )

    id: Mapped[int] = mapped_column(_ENTRY_PK, primary_key=True, autoincrement=True)
    entry_pk: Mapped[int] = mapped_column(ForeignKey("search_entries.pk", ondelete="CASCADE"), nullable=False)
    field: Mapped[str] = mapped_column(String(256), nullable=False)
    value_text: Mapped[str] = mapped_column(String(1024), nullable=False)
    value_key: Mapped[str] = mapped_column(String(256), nullable=False)
    value_num: Mapped[float | None] = mapped_column(Float)
    value_date: Mapped[str | None] = mapped_column(String(19))


class SearchEntryFile(Base):
    """A file an entry references (``files``, ``images``, ``thumbnail``): the portal serves it to anyone
    who may see the entry, even without read access to the collection."""

    __tablename__ = "search_entry_files"
    __table_args__ = (Index("ix_search_entry_files_path", "collection_id", "path"),)

    id: Mapped[int] = mapped_column(_ENTRY_PK, primary_key=True, autoincrement=True)
    entry_pk: Mapped[int] = mapped_column(ForeignKey("search_entries.pk", ondelete="CASCADE"), nullable=False)
    collection_id: Mapped[str] = mapped_column(String(36), nullable=False)
    path: Mapped[str] = mapped_column(Text, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)

"""Persistence: the declarative base, engines and sessions, paging, and the Alembic migrations."""
